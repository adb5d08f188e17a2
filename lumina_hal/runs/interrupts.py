"""Ctrl-C that cannot be lost during a recorded run (docs/records.md §3).

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be; inside a
finalizer (a weakref callback, ``__del__``) it is printed as "Exception ignored in ..." and
discarded, so the run would carry on. :class:`InterruptGuard` installs a SIGINT handler that
also *remembers* the interrupt: the run raises it again at its next safe point. Inside a
critical section (a frame being appended) the handler only remembers it, and the section
raises it when it ends, so no frame is ever half written by a Ctrl-C.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)


class InterruptGuard:
    """Remembers a SIGINT while installed; ``check()`` re-raises it at safe points."""

    def __init__(self) -> None:
        self.interrupted = False
        self._pending = False
        self._depth = 0
        self._handler = self._on_sigint  # one bound-method object, compared with `is`
        self._installed = False

    def install(self) -> None:
        """Take over SIGINT if this is the main thread and Python's default handler is in force."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return  # someone else handles Ctrl-C (a host application, an outer run)
        signal.signal(signal.SIGINT, self._handler)
        self._installed = True

    def uninstall(self) -> None:
        """Give SIGINT back to Python's default handler (if ours is still the one in force)."""
        if not self._installed:
            return
        self._installed = False
        if threading.current_thread() is threading.main_thread() and (
            signal.getsignal(signal.SIGINT) is self._handler
        ):
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self.interrupted = True
        if self._depth:
            self._pending = True
            return
        raise KeyboardInterrupt

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if a Ctrl-C arrived (even one Python discarded)."""
        if self.interrupted:
            raise KeyboardInterrupt

    @contextmanager
    def critical(self, *, raise_at_end: bool = True) -> Iterator[None]:
        """Defer a Ctrl-C until the block ends (the block must be short).

        With ``raise_at_end=False`` the Ctrl-C is only remembered, for the next ``check()``.
        """
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if self._pending and not self._depth:
            self._pending = False
            if raise_at_end:
                raise KeyboardInterrupt
