"""Open devices and instruments by URI. Schemes map to classes through entry points.

A third-party package adds a backend by declaring, in its pyproject.toml::

    [project.entry-points."lumina_hal.drivers"]
    mychip = "mypackage.driver:MyChip"

after which ``open_device("mychip://...")`` works. ``register_driver`` does the same at run
time (for tests and notebooks). Entry points are re-read when a scheme is not found, so a
package installed after import is still picked up. A scheme's class is either a
PhotonicDevice (``open_device``) or a lab Instrument transport such as ``visa://``
(``open_instrument``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from importlib.metadata import EntryPoint
from typing import Any

from lumina_hal.device import PhotonicDevice
from lumina_hal.errors import ConfigurationError
from lumina_hal.params import resolve_params
from lumina_hal.plugin_table import EntryPointTable
from lumina_hal.uri import DeviceURI, parse_uri

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "lumina_hal.drivers"
DEFAULT_URI_ENV = "LUMINA_DEVICE"
FALLBACK_URI = "mock://"


#: A class the table can serve: a PhotonicDevice, or a lab Instrument (lumina_hal.bench), which
#: the core knows only by its shape (``from_uri`` and ``uri_params``) so it never imports a room.
Driver = type[Any]


def _check_driver(scheme: str, driver: Any) -> None:
    openable = isinstance(driver, type) and all(
        hasattr(driver, name) for name in ("from_uri", "uri_params")
    )
    if not openable:
        raise ConfigurationError(
            f"driver for {scheme}:// must be a PhotonicDevice or Instrument subclass, "
            f"got {driver!r}"
        )


#: Schemes of photonic devices and instrument transports, one table for both.
SCHEMES = EntryPointTable(ENTRY_POINT_GROUP, "device scheme", _check_driver, display="{}://")


def _declared(refresh: bool = False) -> dict[str, EntryPoint]:
    return SCHEMES.declared(refresh)


def register_driver(scheme: str, driver: Driver) -> None:
    """Register ``driver`` for ``scheme`` at run time (takes precedence over entry points)."""
    SCHEMES.register(scheme, driver)


def unregister_driver(scheme: str) -> None:
    SCHEMES.unregister(scheme)


def available_schemes(refresh: bool = False) -> list[str]:
    """All schemes that can be opened: entry points plus run-time registrations."""
    return SCHEMES.names(refresh)


def driver_for_scheme(scheme: str) -> Driver:
    """The class that serves ``scheme``; ConfigurationError if there is none."""
    return SCHEMES.get(scheme)


def default_uri() -> str:
    """The URI used when none is given: $LUMINA_DEVICE, else the twin (mock://)."""
    return os.environ.get(DEFAULT_URI_ENV, "").strip() or FALLBACK_URI


def build_device(uri: str | None = None, **overrides: Any) -> PhotonicDevice:
    """Like :func:`open_device` but returns the device unopened."""
    parsed: DeviceURI = parse_uri(uri if uri is not None else default_uri())
    driver = driver_for_scheme(parsed.scheme)
    if not issubclass(driver, PhotonicDevice):
        raise ConfigurationError(
            f"{parsed.scheme}:// opens a lab instrument, not a photonic device; "
            "use lumina_hal.open_instrument()"
        )
    params = driver_params(driver, parsed, overrides)
    device = driver.from_uri(parsed, **params)
    device.uri = parsed.uri
    return device


def driver_params(
    driver: Driver, parsed: DeviceURI, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    context = f"{parsed.scheme}:// ({driver.__name__})"
    params = resolve_params(driver.uri_params, parsed.query, context=context, source="URI")
    params.update(resolve_params(driver.uri_params, overrides, context=context, source="keyword"))
    return params


def open_device(uri: str | None = None, **overrides: Any) -> PhotonicDevice:
    """Open the device named by ``uri`` (default: $LUMINA_DEVICE, else ``mock://``).

    Query parameters become typed keyword arguments of the driver; ``overrides`` are
    keyword arguments that take precedence over the query. Unknown schemes, unknown or
    misspelt parameters and bad values raise ConfigurationError naming the problem.
    """
    device = build_device(uri, **overrides)
    device.open()
    return device
