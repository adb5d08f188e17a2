"""Open one lab instrument by URI: ``open_instrument("visa://...?model=...")``.

Same scheme table and parameter rules as ``open_device`` (docs/instruments.md §2); the
instrument-model table (entry-point group ``lumina_hal.instruments``) is consulted by the
``visa://`` scheme's driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lumina_hal.bench.limits import Limits
from lumina_hal.bench.roles import Instrument
from lumina_hal.errors import ConfigurationError
from lumina_hal.registry import driver_for_scheme, driver_params
from lumina_hal.uri import parse_uri


def open_instrument(
    uri: str, *, limits: Limits | Mapping[str, Any] | None = None, **overrides: Any
) -> Instrument:
    """Open the lab instrument named by ``uri``, e.g.
    ``visa://USB0::0x1313::0x8078::P0009368::INSTR?model=thorlabs-pm100d&backend=@sim``.

    ``limits`` are the soft limits, fixed from now on (docs/safety.md §2): a limits object of
    the instrument's role (``LaserLimits``, ``TecLimits``) or a dict with the keys of the
    role's bench-file section, e.g. ``{"max_power_dbm": 10.0}``. Same registry and parameter
    rules as :func:`open_device` (docs/instruments.md §2).
    """
    if not isinstance(uri, str):
        raise ConfigurationError(f"an instrument URI must be a str, got {uri!r}")
    parsed = parse_uri(uri)
    driver = driver_for_scheme(parsed.scheme)
    if not issubclass(driver, Instrument):
        raise ConfigurationError(
            f"{parsed.scheme}:// opens a photonic device, not a lab instrument; "
            "use lumina_hal.open_device()"
        )
    instrument = driver.from_uri(parsed, **driver_params(driver, parsed, overrides))
    instrument.uri = parsed.uri
    if limits is not None:
        instrument.limits = _limits_for(instrument, limits, parsed.uri)
    try:
        instrument.open()
    except BaseException:
        instrument.close()
        raise
    return instrument


def _limits_for(instrument: Instrument, limits: Limits | Mapping[str, Any], uri: str) -> Limits:
    """``limits`` as the role's limits object; a mismatch is a ConfigurationError naming both."""
    expected = instrument.limits_type
    if isinstance(limits, Mapping):
        return expected.from_mapping(limits, f"open_instrument({uri!r}, limits=...)")
    if not isinstance(limits, expected):
        raise ConfigurationError(
            f"{uri} is a {instrument.role}, not a {getattr(limits, 'role', type(limits).__name__)}"
            f" (it takes {expected.__name__} limits)"
        )
    return limits
