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
    measurement,
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

    wavelength_m = control(
        ":WAV?",
        ":WAV {:.8E}",
        "Output wavelength (m).",
        validate=in_range("_wavelength_min_m", "_wavelength_max_m", "m"),
    )
    power_setpoint_dbm = control(
        ":POW?",
        ":POW {:.2f}",
        "Output power setpoint (dBm).",
        validate=in_range("_power_min_dbm", "_power_max_dbm", "dBm"),
    )
    power_monitor_dbm = measurement(":POW:ACT?", "Monitored output power (dBm).")
    output_enabled = control(
        ":POW:STAT?", ":POW:STAT {}", "Optical output on/off.", parse=parse_bool,
        format=format_bool,
    )

    def _after_open(self) -> None:
        self._wavelength_min_m = float(self.query_parsed(":WAV? MIN"))
        self._wavelength_max_m = float(self.query_parsed(":WAV? MAX"))
        self._power_min_dbm = float(self.query_parsed(":POW? MIN"))
        self._power_max_dbm = float(self.query_parsed(":POW? MAX"))

    def _get_wavelength_nm(self) -> float:
        return self.wavelength_m * 1e9

    def _set_wavelength_nm(self, nm: float) -> None:
        self.wavelength_m = nm * 1e-9

    def _wavelength_range_nm(self) -> tuple[float, float]:
        return self._wavelength_min_m * 1e9, self._wavelength_max_m * 1e9
