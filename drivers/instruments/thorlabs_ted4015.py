"""Thorlabs TED4015 TEC controller (Series 4000 SCPI, USBTMC, LF termination).

Temperatures in °C (``UNIT:TEMP CEL`` at open). ``*RST`` switches the output off and does not
clear the error queue (manual). docs/instruments.md §4.
"""

from __future__ import annotations

from lumina_hal.bench.roles import TemperatureController
from lumina_hal.drivers.instruments.scpi import (
    ScpiSwitchedSource,
    control,
    format_bool,
    in_range,
    measurement,
    parse_bool,
)


class ThorlabsTed4015(ScpiSwitchedSource, TemperatureController):
    """Thorlabs TED4015."""

    model_name = "thorlabs-ted4015"
    idn_vendor = "THORLABS"
    idn_models = ("TED4015",)
    init_commands = ("UNIT:TEMP CEL",)

    # Private and gated (docs/safety.md §5): the public surface is the TemperatureController role.
    _setpoint_c = control(
        "SOUR:TEMP?",
        "SOUR:TEMP {:.3f}",
        "Temperature setpoint (°C).",
        validate=in_range("_setpoint_min_c", "_setpoint_max_c", "°C"),
    )
    _measured_temperature_c = measurement("MEAS:TEMP?", "Measured temperature (°C).")
    _output = control(
        "OUTP?", "OUTP {}", "TEC current on/off.", parse=parse_bool, format=format_bool
    )

    def _after_open(self) -> None:
        self._setpoint_min_c = float(self._query_parsed("SOUR:TEMP? MIN"))
        self._setpoint_max_c = float(self._query_parsed("SOUR:TEMP? MAX"))

    def _get_setpoint_c(self) -> float:
        return float(self._setpoint_c)

    def _set_setpoint_c(self, celsius: float) -> None:
        self._setpoint_c = celsius

    def _get_temperature_c(self) -> float:
        return float(self._measured_temperature_c)

    def _setpoint_range_c(self) -> tuple[float, float]:
        return self._setpoint_min_c, self._setpoint_max_c
