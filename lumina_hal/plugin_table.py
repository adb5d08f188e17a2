"""A name → class table filled from one entry-point group plus run-time registrations.

Device schemes (``lumina_hal.drivers``) and instrument models (``lumina_hal.instruments``) are
both plug-in tables of this kind, so a third-party package extends either the same way.
Entry points are re-read when a name is missing, so a package installed after import is found.
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from lumina_hal.errors import ConfigurationError

log = logging.getLogger(__name__)


class EntryPointTable:
    """Names of one entry-point group, loaded lazily and checked by ``check``."""

    def __init__(
        self, group: str, what: str, check: Callable[[str, Any], None], display: str = "{}"
    ) -> None:
        self.group = group
        self.what = what  # e.g. "device scheme", used in messages
        self._check = check
        self._display = display  # how a name is shown in messages, e.g. "{}://"
        self._lock = threading.Lock()
        self._runtime: dict[str, Any] = {}
        self._declared: dict[str, EntryPoint] | None = None

    def _scan(self) -> dict[str, EntryPoint]:
        found: dict[str, EntryPoint] = {}
        for ep in entry_points(group=self.group):
            name = ep.name.lower()
            if name in found and found[name].value != ep.value:
                log.warning(
                    "%s %r is declared by two packages (%s, %s); using the first",
                    self.what,
                    name,
                    found[name].value,
                    ep.value,
                )
                continue
            found[name] = ep
        return found

    def declared(self, refresh: bool = False) -> dict[str, EntryPoint]:
        """The entry points of the group (re-scanned when ``refresh``)."""
        with self._lock:
            if self._declared is None or refresh:
                self._declared = self._scan()
            return dict(self._declared)

    def register(self, name: str, cls: Any) -> None:
        """Add ``cls`` under ``name`` at run time (takes precedence over entry points)."""
        self._check(name, cls)
        with self._lock:
            self._runtime[name.lower()] = cls

    def unregister(self, name: str) -> None:
        with self._lock:
            self._runtime.pop(name.lower(), None)

    def names(self, refresh: bool = False) -> list[str]:
        with self._lock:
            runtime = set(self._runtime)
        return sorted(runtime | set(self.declared(refresh)))

    def get(self, name: str) -> Any:
        """The class registered for ``name``; ConfigurationError with a hint if there is none."""
        key = name.lower()
        with self._lock:
            if key in self._runtime:
                return self._runtime[key]
        declared = self.declared()
        if key not in declared:
            declared = self.declared(refresh=True)
        if key not in declared:
            choices = self.names()
            hint = difflib.get_close_matches(key, choices, n=1)
            suggestion = f" (did you mean '{self._display.format(hint[0])}'?)" if hint else ""
            raise ConfigurationError(
                f"unknown {self.what} {name!r}{suggestion}; available: "
                + ", ".join(self._display.format(c) for c in choices)
            )
        ep = declared[key]
        try:
            cls = ep.load()
        except Exception as exc:
            raise ConfigurationError(
                f"{self.what} {self._display.format(name)} ({ep.value}) failed to import: {exc}"
            ) from exc
        self._check(key, cls)
        return cls
