"""Santec TSL-570 tunable laser in SCPI mode (metres, dBm, NR3 replies).

Commands: docs/instruments.md §4 (from the TSL-570 manual's command table, checked against the
QCoDeS-contrib and PyMeasure drivers). The socket interface ends lines with CR both ways.
"""

from __future__ import annotations

from lumina_hal.bench.roles import Laser
from lumina_hal.drivers.instruments.scpi import (
    ScpiSwitchedSource,
    control,
    format_bool,
    in_range,
    m_to_nm,
    measurement,
    nm_to_m,
    parse_bool,
)


class SantecTsl570(ScpiSwitchedSource, Laser):
    """Santec TSL-570 (also TSL-550/TSL-710 with the same SCPI set)."""

    model_name = "santec-tsl570"
    idn_vendor = "SANTEC"
    idn_models = ("TSL-570", "TSL-550", "TSL-710")
    write_termination = "\r"
    read_termination = "\r"
    error_query = ":SYST:ERR?"
    # SCPI command set (metres, NR3), power unit dBm.
    init_commands = (":SYST:COMM:COD 1", ":POW:UNIT 0")

    # Private and gated (docs/safety.md §5): the public surface is the Laser role.
    _wavelength_nm = control(
        ":WAV?",
        ":WAV {:.8E}",
        "Output wavelength (nm; sent and read in m).",
        parse=m_to_nm,
        format=nm_to_m,
        validate=in_range("_wavelength_min_nm", "_wavelength_max_nm", "nm"),
    )
    _power_dbm = control(
        ":POW?",
        ":POW {:.2f}",
        "Output power setpoint (dBm).",
        validate=in_range("_power_min_dbm", "_power_max_dbm", "dBm"),
    )
    _power_monitor_dbm = measurement(":POW:ACT?", "Monitored output power (dBm).")
    _output = control(
        ":POW:STAT?", ":POW:STAT {}", "Optical output on/off.", parse=parse_bool,
        format=format_bool,
    )

    def _after_open(self) -> None:
        self._wavelength_min_nm = float(self._query_parsed(":WAV? MIN", m_to_nm))
        self._wavelength_max_nm = float(self._query_parsed(":WAV? MAX", m_to_nm))
        self._power_min_dbm = float(self._query_parsed(":POW? MIN"))
        self._power_max_dbm = float(self._query_parsed(":POW? MAX"))

    def _get_wavelength_nm(self) -> float:
        return float(self._wavelength_nm)

    def _set_wavelength_nm(self, nm: float) -> None:
        self._wavelength_nm = nm

    def _wavelength_range_nm(self) -> tuple[float, float]:
        return self._wavelength_min_nm, self._wavelength_max_nm

    def monitor_power_dbm(self) -> float:
        """The power the laser's own monitor measures (dBm), not the setpoint."""
        return float(self._call(lambda: self._power_monitor_dbm))
