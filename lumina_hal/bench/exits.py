"""Exit paths that must leave instruments safe: SIGTERM inside ``with``, interpreter exit.

- :class:`SigtermUnwinds`: inside ``with bench:`` or ``with instrument:`` on the main thread,
  SIGTERM raises SystemExit(128 + 15), so the ``with`` exits and the safe states run, as on
  Ctrl-C. The previous handler is restored on the way out.
- :func:`track_open` / :func:`untrack`: every open instrument is remembered until it is
  closed; at interpreter exit (end of script, ``sys.exit``, an uncaught exception) the ones a
  script forgot to close get their safe state, lasers first (docs/safety.md §6).
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
from types import FrameType
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Closable(Protocol):
    @property
    def role(self) -> str: ...

    @property
    def is_open(self) -> bool: ...

    def close(self) -> None: ...


#: Safe-state order at exit: the hazard to people first.
_EXIT_ORDER = {"laser": 0, "tec": 1}
_open: dict[int, Closable] = {}
_open_lock = threading.Lock()


def track_open(instrument: Closable) -> None:
    """Remember an opened instrument until :func:`untrack`; re-registers the exit hook last.

    atexit runs hooks last-in first-out, and pyvisa registers its own (which closes every
    session) when a resource manager is made: ours must come after it to still reach the
    instrument, so it moves to the end of the queue on every open.
    """
    with _open_lock:
        _open[id(instrument)] = instrument
    atexit.unregister(close_forgotten_instruments)
    atexit.register(close_forgotten_instruments)


def untrack(instrument: Closable) -> None:
    with _open_lock:
        _open.pop(id(instrument), None)


def close_forgotten_instruments() -> None:
    """Close (with safe state) every instrument still open; runs at interpreter exit."""
    with _open_lock:
        forgotten = sorted(_open.values(), key=lambda i: _EXIT_ORDER.get(i.role, 2))
    for instrument in forgotten:
        if not instrument.is_open:
            continue
        log.warning("%s still open at exit; applying its safe state", instrument.role)
        try:
            instrument.close()
        except BaseException as exc:  # keep going: the next instrument must still be made safe
            log.error("safe state of the %s at exit failed: %r", instrument.role, exc)



def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so the safe states of the enclosing ``with`` run."""
    raise SystemExit(128 + signum)


class SigtermUnwinds:
    """Context manager: SIGTERM raises SystemExit inside it (main thread only)."""

    def __init__(self) -> None:
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> SigtermUnwinds:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, _terminate)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False
