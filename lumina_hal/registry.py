"""Open devices by URI. Schemes map to PhotonicDevice classes through entry points.

A third-party package adds a backend by declaring, in its pyproject.toml::

    [project.entry-points."lumina_hal.drivers"]
    mychip = "mypackage.driver:MyChip"

after which ``open_device("mychip://...")`` works. ``register_driver`` does the same at run
time (for tests and notebooks). Entry points are re-read when a scheme is not found, so a
package installed after import is still picked up.
"""

from __future__ import annotations

import difflib
import logging
import os
import threading
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from lumina_hal.device import PhotonicDevice
from lumina_hal.errors import ConfigurationError
from lumina_hal.params import resolve_params
from lumina_hal.uri import DeviceURI, parse_uri

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "lumina_hal.drivers"
DEFAULT_URI_ENV = "LUMINA_DEVICE"
FALLBACK_URI = "mock://"

_registry_lock = threading.Lock()
_runtime: dict[str, type[PhotonicDevice]] = {}
_entry_points: dict[str, EntryPoint] | None = None


def _scan_entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        scheme = ep.name.lower()
        if scheme in found and found[scheme].value != ep.value:
            log.warning(
                "scheme %r is declared by two packages (%s, %s); using the first",
                scheme,
                found[scheme].value,
                ep.value,
            )
            continue
        found[scheme] = ep
    return found


def _declared(refresh: bool = False) -> dict[str, EntryPoint]:
    global _entry_points
    with _registry_lock:
        if _entry_points is None or refresh:
            _entry_points = _scan_entry_points()
        return dict(_entry_points)


def register_driver(scheme: str, driver: type[PhotonicDevice]) -> None:
    """Register ``driver`` for ``scheme`` at run time (takes precedence over entry points)."""
    _check_driver(scheme, driver)
    with _registry_lock:
        _runtime[scheme.lower()] = driver


def unregister_driver(scheme: str) -> None:
    with _registry_lock:
        _runtime.pop(scheme.lower(), None)


def available_schemes(refresh: bool = False) -> list[str]:
    """All schemes that can be opened: entry points plus run-time registrations."""
    with _registry_lock:
        runtime = set(_runtime)
    return sorted(runtime | set(_declared(refresh)))


def driver_for_scheme(scheme: str) -> type[PhotonicDevice]:
    """The PhotonicDevice class that serves ``scheme``; ConfigurationError if there is none."""
    key = scheme.lower()
    with _registry_lock:
        if key in _runtime:
            return _runtime[key]
    declared = _declared()
    if key not in declared:
        declared = _declared(refresh=True)
    if key not in declared:
        choices = available_schemes()
        hint = difflib.get_close_matches(key, choices, n=1)
        suggestion = f" (did you mean '{hint[0]}://'?)" if hint else ""
        raise ConfigurationError(
            f"unknown device scheme {scheme!r}{suggestion}; available: "
            + ", ".join(f"{s}://" for s in choices)
        )
    ep = declared[key]
    try:
        driver = ep.load()
    except Exception as exc:
        raise ConfigurationError(
            f"driver for {scheme}:// ({ep.value}) failed to import: {exc}"
        ) from exc
    _check_driver(key, driver)
    return driver


def _check_driver(scheme: str, driver: Any) -> None:
    if not (isinstance(driver, type) and issubclass(driver, PhotonicDevice)):
        raise ConfigurationError(
            f"driver for {scheme}:// must be a PhotonicDevice subclass, got {driver!r}"
        )


def default_uri() -> str:
    """The URI used when none is given: $LUMINA_DEVICE, else the twin (mock://)."""
    return os.environ.get(DEFAULT_URI_ENV, "").strip() or FALLBACK_URI


def build_device(uri: str | None = None, **overrides: Any) -> PhotonicDevice:
    """Like :func:`open_device` but returns the device unopened."""
    parsed: DeviceURI = parse_uri(uri if uri is not None else default_uri())
    driver = driver_for_scheme(parsed.scheme)
    context = f"{parsed.scheme}:// ({driver.__name__})"
    params = resolve_params(driver.uri_params, parsed.query, context=context, source="URI")
    params.update(_typed_overrides(driver, overrides, context))
    device = driver.from_uri(parsed, **params)
    device.uri = parsed.uri
    return device


def _typed_overrides(
    driver: type[PhotonicDevice], overrides: Mapping[str, Any], context: str
) -> dict[str, Any]:
    return resolve_params(driver.uri_params, overrides, context=context, source="keyword")


def open_device(uri: str | None = None, **overrides: Any) -> PhotonicDevice:
    """Open the device named by ``uri`` (default: $LUMINA_DEVICE, else ``mock://``).

    Query parameters become typed keyword arguments of the driver; ``overrides`` are
    keyword arguments that take precedence over the query. Unknown schemes, unknown or
    misspelt parameters and bad values raise ConfigurationError naming the problem.
    """
    device = build_device(uri, **overrides)
    device.open()
    return device
