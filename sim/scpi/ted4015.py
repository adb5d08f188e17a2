"""Simulated Thorlabs TED4015 TEC controller (USBTMC, LF termination) with a PID thermal model.

The plate temperature follows a first-order plant driven by the TEC current of a PID loop with
a current limit (``tec_loop.py``), on the model's clock (scaled like every model's). Every
change of a setting, of the ambient or of the plant first advances the state to "now", so the
history before the change is kept. PID gains, autotune, current limit, the temperature window
and its protection, the condition register and the TEC current/voltage/sensor readings follow
the Series 4000 programmer's reference; docs/instrument-sim.md, "Thorlabs TED4015".
"""

from __future__ import annotations

import math
from collections.abc import Callable

from lumina_hal.sim.scpi.engine import (
    Clock,
    Command,
    QueryHandler,
    ScpiEngine,
    SetHandler,
    SimulatedInstrument,
)
from lumina_hal.sim.scpi.params import (
    NumberSpec,
    ScpiError,
    Unit,
    expect_params,
    format_e,
    parse_bool,
    parse_choice,
)
from lumina_hal.sim.scpi.tec_loop import PidGains, TecLoop

SETPOINT_MIN_C = -45.0
SETPOINT_MAX_C = 145.0
SETPOINT_DEFAULT_C = 25.0
CURRENT_LIMIT_MAX_A = 15.0  # the TED4015 drives up to 15 A
CURRENT_LIMIT_DEFAULT_A = 10.0  # [sim]
GAIN_K_PER_A = 10.0  # plant: steady-state plate rise per amp [sim]
TEC_RESISTANCE_OHM = 1.0  # TEC voltage = R·I [sim]
THERMISTOR_R0_OHM, THERMISTOR_T0_C, THERMISTOR_BETA_K = 10e3, 25.0, 3988.0  # [sim]
WINDOW_DEFAULT_K, WINDOW_DELAY_DEFAULT_S = 1.0, 1.0  # [sim]
AUTOTUNE_TAUS = 10.0  # an autotune takes this many plant time constants [sim]
Handlers = tuple[SetHandler, QueryHandler]

# STAT:MEAS:COND? bits (Series 4000 programmer's reference)
COND_TEMPERATURE_PROTECTION = 256
COND_WINDOW_FAILURE = 512
COND_SENSOR_FAILURE = 1024
COND_TEC_OPEN = 4096

# SOUR:TEMP:ATUN:STAT? first field
ATUNE_NEVER_RUN, ATUNE_RUNNING, ATUNE_CANCELED, ATUNE_FAILED, ATUNE_FINISHED = range(5)

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
#: PID shares: attribute of PidGains, range and *RST default (defaults from the manual,
#: ranges [sim]).
PID_SPECS: dict[str, tuple[str, NumberSpec]] = {
    "GAIN": ("p_a_per_k", NumberSpec(0.0, 1000.0, default=1.0)),
    "INTegral": ("i_a_per_k_s", NumberSpec(0.0, 1000.0, default=0.1)),
    "DERivative": ("d_a_s_per_k", NumberSpec(0.0, 1000.0, default=0.0)),
    "PERiod": ("period_s", NumberSpec(0.1, 1000.0, default=1.0, units={"S": 1.0, "MS": 1e-3})),
}
CURRENT_LIMIT = NumberSpec(
    0.0, CURRENT_LIMIT_MAX_A, default=CURRENT_LIMIT_DEFAULT_A, units={"A": 1.0, "MA": 1e-3}
)
WINDOW = NumberSpec(0.001, 100.0, default=WINDOW_DEFAULT_K, units={"K": 1.0})
WINDOW_DELAY = NumberSpec(0.0, 600.0, default=WINDOW_DELAY_DEFAULT_S, units={"S": 1.0})


def _converted(
    to_unit: Callable[[float], float], to_c: Callable[[float], float]
) -> Callable[[float], float]:
    """A value given with one temperature suffix, expressed in the current unit."""
    return lambda v: to_unit(to_c(v))


def _advancing(name: str) -> property:
    """An attribute that changes the thermal model: setting it first advances the model to
    "now", so the temperature history before the change stays exact.
    """

    def get(self: ThorlabsTed4015) -> float | bool:
        return getattr(self, name)

    def set_(self: ThorlabsTed4015, value: float | bool) -> None:
        self._advance()
        setattr(self, name, value)

    return property(get, set_)


class ThorlabsTed4015(SimulatedInstrument):
    """Setpoint, output, PID loop with current limit, window protection, readings, status."""

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
        gain_k_per_a: float = GAIN_K_PER_A,
    ) -> None:
        super().__init__(clock)
        if tau_s <= 0 or gain_k_per_a <= 0:
            raise ValueError(f"tau_s and gain_k_per_a must be > 0, got {tau_s}, {gain_k_per_a}")
        self.serial = serial
        self.firmware = firmware
        self._loop = TecLoop(ambient_c, tau_s, gain_k_per_a)
        self._ambient_c = ambient_c
        self._t0_s = self.clock()
        self._tec_open = False
        self._tripped = False  # the window protection switched the output off
        self._out_of_window_since: float | None = None
        self._atune_state = ATUNE_NEVER_RUN
        self._atune_end_s = 0.0
        self.fault_temperature_protection = False
        self.fault_sensor = False
        self._defaults()
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
        """``*RST``: output off, setpoint, PID shares, current limit, window to defaults, °C.
        The plate temperature is physics: it keeps evolving; an autotune in progress stops."""
        self._advance()
        if self._atune_state == ATUNE_RUNNING:
            self._atune_state = ATUNE_CANCELED
        self._defaults()

    def _defaults(self) -> None:
        self._output_on = False
        self._setpoint_c = SETPOINT_DEFAULT_C
        self._gains = PidGains()
        self._current_limit_a = CURRENT_LIMIT_DEFAULT_A
        self._window_k = WINDOW_DEFAULT_K
        self._window_delay_s = WINDOW_DELAY_DEFAULT_S
        self._protection_on = False
        self._tripped = False
        self._out_of_window_since = None
        self.unit = "CEL"

    # -- thermal model -----------------------------------------------------------------------

    @property
    def _driven(self) -> bool:
        return self._output_on and not self._tec_open

    def _advance(self) -> None:
        """Advance the loop to the clock's now (handling an autotune that ends on the way)."""
        now = self.clock()
        if self._atune_state == ATUNE_RUNNING and self._atune_end_s <= now:
            self._advance_to(self._atune_end_s)
            self._finish_autotune()
        self._advance_to(now)

    def _advance_to(self, when_s: float) -> None:
        elapsed = when_s - self._t0_s
        if elapsed <= 0:
            return  # a clock that goes backwards is ignored (T holds)
        # The window protection is checked at least every quarter of its delay.
        chunk = elapsed
        if self._protection_on and self._driven:
            chunk = max(self._window_delay_s / 4.0, self._loop.tau_s / 400.0)
        t = self._t0_s
        self._watch_window(t)
        while t < when_s:
            step = min(chunk, when_s - t)
            self._loop.advance(
                step, drive=self._driven, setpoint_c=self._setpoint_c, ambient_c=self._ambient_c,
                gains=self._gains, limit_a=self._current_limit_a,
            )  # fmt: skip
            t += step
            self._watch_window(t)
        self._t0_s = when_s

    def _watch_window(self, now_s: float) -> None:
        if not (self._driven and self._outside_window()):
            self._out_of_window_since = None
            return
        if self._out_of_window_since is None:
            self._out_of_window_since = now_s
        elif self._protection_on and now_s - self._out_of_window_since >= self._window_delay_s:
            self._output_on = False  # the protection switches the TEC current off
            self._tripped = True
            self._out_of_window_since = None

    def _outside_window(self) -> bool:
        return abs(self._loop.temperature_c - self._setpoint_c) > self._window_k

    def _finish_autotune(self) -> None:
        """IMC tuning of the first-order plant for a closed loop 5 times faster [sim]."""
        if not self._driven:
            self._atune_state = ATUNE_FAILED
            return
        tau, k = self._loop.tau_s, self._loop.gain_k_per_a
        p = 5.0 / k
        self._gains = PidGains(p, p / tau, 0.0, tau)
        self._atune_state = ATUNE_FINISHED

    @property
    def temperature_c(self) -> float:
        """The measured (plate) temperature now."""
        self._advance()
        return self._loop.temperature_c

    @property
    def tec_current_a(self) -> float:
        """The TEC current now (0 with the output off)."""
        self._advance()
        return self._loop.current_a if self._driven else 0.0

    setpoint_c = _advancing("_setpoint_c")
    output_on = _advancing("_output_on")
    ambient_c = _advancing("_ambient_c")
    tec_open = _advancing("_tec_open")  # a disconnected TEC cannot drive the plate
    current_limit_a = _advancing("_current_limit_a")
    window_k = _advancing("_window_k")

    @property
    def tau_s(self) -> float:
        return self._loop.tau_s

    @tau_s.setter
    def tau_s(self, value: float) -> None:
        self._advance()
        self._loop.tau_s = value

    @property
    def gains(self) -> PidGains:
        return self._gains

    @gains.setter
    def gains(self, value: PidGains) -> None:
        self._advance()
        self._gains = value

    @property
    def condition(self) -> int:
        """``STAT:MEAS:COND?`` bits from the loop and the fault attributes."""
        self._advance()
        bits = 0
        bits |= COND_TEMPERATURE_PROTECTION if self.fault_temperature_protection else 0
        bits |= COND_WINDOW_FAILURE if self._driven and self._outside_window() else 0
        bits |= COND_SENSOR_FAILURE if self.fault_sensor else 0
        bits |= COND_TEC_OPEN if self._tec_open else 0
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

    def _reading(self, value: Callable[[], float]) -> QueryHandler:
        def query(params: list[str]) -> str:
            expect_params(params, 0, 0)
            return format_e(value())

        return query

    def _sensor_ohm(self) -> float:
        kelvin = self.temperature_c + 273.15
        t0 = THERMISTOR_T0_C + 273.15
        return THERMISTOR_R0_OHM * math.exp(THERMISTOR_BETA_K * (1.0 / kelvin - 1.0 / t0))

    def _set_output(self, params: list[str]) -> None:
        expect_params(params, 1, 1)
        on = parse_bool(params[0])
        self._advance()
        if on and not self._output_on:
            self._loop.integral_a = 0.0  # the loop starts afresh
            self._tripped = False
        self._output_on = on

    def _query_output(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        self._advance()  # the window protection may have switched it off meanwhile
        return str(int(self._output_on))

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

    def _number(self, spec: NumberSpec, get: Callable[[], float],
                put: Callable[[float], None]) -> Handlers:
        def set_value(params: list[str]) -> None:
            value = spec.parse_params(params)
            self._advance()
            put(value)

        def query_value(params: list[str]) -> str:
            return format_e(spec.query_value(params, get()))

        return set_value, query_value

    def _pid_share(self, attribute: str, spec: NumberSpec) -> Handlers:
        def put(value: float) -> None:
            setattr(self._gains, attribute, value)

        return self._number(spec, lambda: getattr(self._gains, attribute), put)

    def _start_autotune(self, params: list[str]) -> None:
        expect_params(params, 0, 0)
        self._advance()
        if not self._driven:
            raise ScpiError(-221, "autotune needs the TEC output on")
        self._atune_state = ATUNE_RUNNING
        self._atune_end_s = self._t0_s + AUTOTUNE_TAUS * self._loop.tau_s

    def _cancel_autotune(self, params: list[str]) -> None:
        expect_params(params, 0, 0)
        self._advance()
        if self._atune_state == ATUNE_RUNNING:
            self._atune_state = ATUNE_CANCELED

    def _query_autotune(self, params: list[str]) -> str:
        expect_params(params, 0, 0)
        self._advance()
        return f"{self._atune_state},0,0"  # state, phase (0: full tuning), loop [?]

    def _set_protection(self, params: list[str]) -> None:
        expect_params(params, 1, 1)
        on = parse_bool(params[0])
        self._advance()
        self._protection_on = on

    def _query_flag(self, value: Callable[[], bool]) -> QueryHandler:
        def query(params: list[str]) -> str:
            expect_params(params, 0, 0)
            self._advance()
            return str(int(value()))

        return query

    def _commands(self) -> list[Command]:
        temperature = self._reading(lambda: self._to_unit(self.temperature_c))

        def row(pattern: str, handlers: Handlers) -> Command:
            return Command(pattern, set=handlers[0], query=handlers[1])

        pid = [
            row(f"[SOURce[1]]:TEMPerature:LCONstants:{name}", self._pid_share(attribute, spec))
            for name, (attribute, spec) in PID_SPECS.items()
        ]
        return [
            Command(
                "[SOURce[1]]:TEMPerature[:SPOint]",
                set=self._set_setpoint,
                query=self._query_setpoint,
            ),
            *pid,
            Command("[SOURce[1]]:TEMPerature:ATUNe[:INITiate]", set=self._start_autotune),
            Command("[SOURce[1]]:TEMPerature:ATUNe:CANCel", set=self._cancel_autotune),
            Command("[SOURce[1]]:TEMPerature:ATUNe:STATe?", query=self._query_autotune),
            row("[SOURce[1]]:CURRent:LIMit[:AMPLitude]", self._number(
                CURRENT_LIMIT, lambda: self._current_limit_a,
                lambda v: setattr(self, "_current_limit_a", v))),
            row("[SOURce[1]]:TEMPerature:PROTection:WINDow", self._number(
                WINDOW, lambda: self._window_k, lambda v: setattr(self, "_window_k", v))),
            row("[SOURce[1]]:TEMPerature:PROTection:DELay", self._number(
                WINDOW_DELAY, lambda: self._window_delay_s,
                lambda v: setattr(self, "_window_delay_s", v))),
            Command("[SOURce[1]]:TEMPerature:PROTection[:STATe]", set=self._set_protection,
                    query=self._query_flag(lambda: self._protection_on)),
            Command("[SOURce[1]]:TEMPerature:PROTection:TRIPped?",
                    query=self._query_flag(lambda: self._tripped)),
            Command("MEASure[:SCALar]:TEMPerature?", query=temperature),
            Command("MEASure[:SCALar]:CURRent[:DC]?", query=self._reading(
                lambda: self.tec_current_a)),
            Command("MEASure[:SCALar]:VOLTage[:DC]?", query=self._reading(
                lambda: TEC_RESISTANCE_OHM * self.tec_current_a)),
            Command("MEASure[:SCALar]:POWer?", query=self._reading(
                lambda: TEC_RESISTANCE_OHM * self.tec_current_a**2)),
            Command("MEASure[:SCALar]:RESistance?", query=self._reading(self._sensor_ohm)),
            Command("CONFigure[:SCALar]:TEMPerature", set=self._no_op),
            Command("CONFigure?", query=self._query_configuration),
            Command("INITiate[:IMMediate]", set=self._no_op),
            Command("FETCh[:SCALar]:TEMPerature?", query=temperature),
            Command("READ?", query=temperature),
            Command("OUTPut[1][:STATe]", set=self._set_output, query=self._query_output),
            Command("UNIT:TEMPerature", set=self._set_unit, query=self._query_unit),
            Command("STATus:MEASurement:CONDition?", query=self._query_condition),
        ]
