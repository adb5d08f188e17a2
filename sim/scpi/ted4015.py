"""Simulated Thorlabs TED4015 TEC controller (USBTMC, LF termination) with a thermal model.

The measured temperature approaches its target with one time constant on the injected clock:

    T(t) = T_target + (T(t0) - T_target) * exp(-(t - t0) / tau_s)

where T_target is the setpoint while the output is on (and the TEC is connected), else the
ambient. Every change of setpoint, output, ambient or tau first advances T to "now", so the
piecewise closed form holds exactly however often it is sampled. See docs/instrument-sim.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from lumina_hal.sim.scpi.engine import Clock, Command, ScpiEngine, SimulatedInstrument
from lumina_hal.sim.scpi.params import (
    NumberSpec,
    Unit,
    expect_params,
    format_e,
    parse_bool,
    parse_choice,
)

SETPOINT_MIN_C = -45.0
SETPOINT_MAX_C = 145.0
SETPOINT_DEFAULT_C = 25.0

# STAT:MEAS:COND? bits (Series 4000 programmer's reference)
COND_TEMPERATURE_PROTECTION = 256
COND_WINDOW_FAILURE = 512
COND_SENSOR_FAILURE = 1024
COND_TEC_OPEN = 4096

_TO_C = {
    "CEL": lambda v: v,
    "K": lambda v: v - 273.15,
    "FAR": lambda v: (v - 32.0) * 5.0 / 9.0,
}
_FROM_C = {
    "CEL": lambda c: c,
    "K": lambda c: c + 273.15,
    "FAR": lambda c: c * 9.0 / 5.0 + 32.0,
}
_SUFFIXES = {"C": "CEL", "CEL": "CEL", "K": "K", "F": "FAR", "FAR": "FAR"}


def _converted(
    to_unit: Callable[[float], float], to_c: Callable[[float], float]
) -> Callable[[float], float]:
    """A value given with one temperature suffix, expressed in the current unit."""
    return lambda v: to_unit(to_c(v))


def _advancing(name: str) -> property:
    """An attribute that changes the thermal target: setting it first advances the model to
    "now", so the temperature history before the change stays exact.
    """

    def get(self: ThorlabsTed4015) -> float | bool:
        return getattr(self, name)

    def set_(self: ThorlabsTed4015, value: float | bool) -> None:
        self._advance()
        setattr(self, name, value)

    return property(get, set_)


class ThorlabsTed4015(SimulatedInstrument):
    """Setpoint, output, measured temperature (first-order lag), units and condition bits."""

    model = "thorlabs-ted4015"
    read_termination = "\n"
    write_termination = "\n"

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        serial: str = "M00324477",
        firmware: str = "1.2.3/2.0.1/1.0.0",
        tau_s: float = 10.0,
        ambient_c: float = 25.0,
    ) -> None:
        super().__init__(clock)
        if tau_s <= 0:
            raise ValueError(f"tau_s must be > 0, got {tau_s}")
        self.serial = serial
        self.firmware = firmware
        self._tau_s = tau_s
        self._ambient_c = ambient_c
        self._temperature_c = ambient_c  # at time self._t0_s
        self._t0_s = self.clock()
        self._setpoint_c = SETPOINT_DEFAULT_C
        self._output_on = False
        self._tec_open = False
        self.fault_temperature_protection = False
        self.fault_window = False
        self.fault_sensor = False
        self.unit = "CEL"
        self.engine = ScpiEngine(
            self._commands(),
            idn=self.idn,
            reset=self.reset,
            no_error='+0,"No error"',
            overflow_text="Error queue overflow",
        )

    def idn(self) -> str:
        return f"THORLABS,TED4015,{self.serial},{self.firmware}"

    def reset(self) -> None:
        """``*RST``: output off, setpoint to its default, unit back to Celsius."""
        self.output_on = False
        self.setpoint_c = SETPOINT_DEFAULT_C
        self.unit = "CEL"

    # -- thermal model -----------------------------------------------------------------------

    def _target_c(self) -> float:
        driven = self._output_on and not self._tec_open
        return self._setpoint_c if driven else self._ambient_c

    def _advance(self) -> None:
        now = self.clock()
        elapsed = now - self._t0_s
        if elapsed > 0:
            target = self._target_c()
            decay = math.exp(-elapsed / self._tau_s)
            self._temperature_c = target + (self._temperature_c - target) * decay
        self._t0_s = max(now, self._t0_s)

    @property
    def temperature_c(self) -> float:
        """The measured (plate) temperature now."""
        self._advance()
        return self._temperature_c

    setpoint_c = _advancing("_setpoint_c")
    output_on = _advancing("_output_on")
    ambient_c = _advancing("_ambient_c")
    tau_s = _advancing("_tau_s")
    tec_open = _advancing("_tec_open")  # a disconnected TEC cannot drive the plate

    @property
    def condition(self) -> int:
        """``STAT:MEAS:COND?`` bits from the fault attributes."""
        bits = 0
        bits |= COND_TEMPERATURE_PROTECTION if self.fault_temperature_protection else 0
        bits |= COND_WINDOW_FAILURE if self.fault_window else 0
        bits |= COND_SENSOR_FAILURE if self.fault_sensor else 0
        bits |= COND_TEC_OPEN if self.tec_open else 0
        return bits

    # -- units -------------------------------------------------------------------------------

    def _to_unit(self, celsius: float) -> float:
        return _FROM_C[self.unit](celsius)

    def _setpoint_spec(self) -> NumberSpec:
        to_unit = _FROM_C[self.unit]
        units: dict[str, Unit] = {
            suffix: _converted(to_unit, _TO_C[name]) for suffix, name in _SUFFIXES.items()
        }
        return NumberSpec(
            to_unit(SETPOINT_MIN_C),
            to_unit(SETPOINT_MAX_C),
            default=to_unit(SETPOINT_DEFAULT_C),
            units=units,
        )

    # -- handlers ------------------------------------------------------------------------------

    def _set_setpoint(self, params: list[str]) -> None:
        value = self._setpoint_spec().parse_params(params)
        self.setpoint_c = _TO_C[self.unit](value)

    def _query_setpoint(self, params: list[str]) -> str:
        current = self._to_unit(self.setpoint_c)
        return format_e(self._setpoint_spec().query_value(params, current))

    def _query_temperature(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return format_e(self._to_unit(self.temperature_c))

    def _set_output(self, params: list[str]) -> None:
        expect_params(params, 1, 1)
        self.output_on = parse_bool(params[0])

    def _query_output(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return str(int(self.output_on))

    def _set_unit(self, params: list[str]) -> None:
        expect_params(params, 1, 1)
        self.unit = parse_choice(params[0], ("CEL", "FAR", "K"))

    def _query_unit(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return self.unit

    def _query_condition(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return str(self.condition)

    def _no_op(self, params: list[str]) -> None:
        expect_params(params, 0, 0)

    def _query_configuration(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        return "TEMP"

    def _commands(self) -> list[Command]:
        temperature = self._query_temperature
        return [
            Command(
                "[SOURce[1]]:TEMPerature[:SPOint]",
                set=self._set_setpoint,
                query=self._query_setpoint,
            ),
            Command("MEASure[:SCALar]:TEMPerature?", query=temperature),
            Command("CONFigure[:SCALar]:TEMPerature", set=self._no_op),
            Command("CONFigure?", query=self._query_configuration),
            Command("INITiate[:IMMediate]", set=self._no_op),
            Command("FETCh[:SCALar]:TEMPerature?", query=temperature),
            Command("READ?", query=temperature),
            Command("OUTPut[1][:STATe]", set=self._set_output, query=self._query_output),
            Command("UNIT:TEMPerature", set=self._set_unit, query=self._query_unit),
            Command("STATus:MEASurement:CONDition?", query=self._query_condition),
        ]
