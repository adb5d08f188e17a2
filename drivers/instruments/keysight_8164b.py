"""Keysight (Agilent) 8164B mainframe with a back-loaded tunable laser in slot 0.

Wavelength is set in nm with a unit suffix and read back in metres; power in dBm
(docs/instruments.md §4, from the 8163A/B/8164A/B programming guide).
"""

from __future__ import annotations

from lumina_hal.bench.roles import InstrumentIdentity, Laser
from lumina_hal.drivers.instruments.scpi import (
    ScpiSwitchedSource,
    control,
    format_bool,
    in_range,
    m_to_nm,
    measurement,
    parse_bool,
    setting,
)


class Keysight8164B(ScpiSwitchedSource, Laser):
    """Keysight/Agilent 8164B, TLS module in slot 0."""

    model_name = "keysight-8164b"
    idn_vendor = "Keysight Technologies"
    idn_models = ("8164B",)
    init_commands = ("SOUR0:POW:UNIT 0",)  # dBm

    # Private and gated (docs/safety.md §5): the public surface is the Laser role.
    _wavelength_readback_nm = measurement(
        "SOUR0:WAV?", "Output wavelength (nm; read back in m).", parse=m_to_nm
    )
    _wavelength_setpoint_nm = setting(
        "SOUR0:WAV {:.4f}NM",
        "Output wavelength, written in nm with the NM suffix.",
        validate=in_range("_wavelength_min_nm", "_wavelength_max_nm", "nm"),
        gate="wavelength_nm",
    )
    _power_dbm = control(
        "SOUR0:POW?",
        "SOUR0:POW {:.3f}DBM",
        "Output power (dBm).",
        validate=in_range("_power_min_dbm", "_power_max_dbm", "dBm"),
    )
    _output = control(
        "SOUR0:POW:STAT?", "SOUR0:POW:STAT {}", "Laser current on/off.", parse=parse_bool,
        format=format_bool,
    )

    @classmethod
    def serves(cls, identity: InstrumentIdentity) -> bool:
        # Older units answer "Agilent Technologies".
        vendor = identity.vendor.lower()
        return vendor in ("keysight technologies", "agilent technologies") and (
            identity.model.upper() in cls.idn_models
        )

    def _after_open(self) -> None:
        self._wavelength_min_nm = float(self._query_parsed("SOUR0:WAV? MIN", m_to_nm))
        self._wavelength_max_nm = float(self._query_parsed("SOUR0:WAV? MAX", m_to_nm))
        self._power_min_dbm = float(self._query_parsed("SOUR0:POW? MIN"))
        self._power_max_dbm = float(self._query_parsed("SOUR0:POW? MAX"))

    def _get_wavelength_nm(self) -> float:
        return float(self._wavelength_readback_nm)

    def _set_wavelength_nm(self, nm: float) -> None:
        self._wavelength_setpoint_nm = nm

    def _wavelength_range_nm(self) -> tuple[float, float]:
        return self._wavelength_min_nm, self._wavelength_max_nm
