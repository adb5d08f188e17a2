"""Open one lab instrument by URI: ``open_instrument("visa://...?model=...")``.

Same scheme table and parameter rules as ``open_device`` (docs/instruments.md §2); the
instrument-model table (entry-point group ``lumina_hal.instruments``) is consulted by the
``visa://`` scheme's driver.
"""

from __future__ import annotations

from typing import Any

from lumina_hal.bench.roles import Instrument
from lumina_hal.errors import ConfigurationError
from lumina_hal.registry import driver_for_scheme, driver_params
from lumina_hal.uri import parse_uri


def open_instrument(uri: str, **overrides: Any) -> Instrument:
    """Open the lab instrument named by ``uri``, e.g.
    ``visa://USB0::0x1313::0x8078::P0009368::INSTR?model=thorlabs-pm100d&backend=@sim``.

    Same registry and parameter rules as :func:`open_device` (docs/instruments.md §2).
    """
    parsed = parse_uri(uri)
    driver = driver_for_scheme(parsed.scheme)
    if not issubclass(driver, Instrument):
        raise ConfigurationError(
            f"{parsed.scheme}:// opens a photonic device, not a lab instrument; "
            "use lumina_hal.open_device()"
        )
    instrument = driver.from_uri(parsed, **driver_params(driver, parsed, overrides))
    instrument.uri = parsed.uri
    try:
        instrument.open()
    except BaseException:
        instrument.close()
        raise
    return instrument
