"""Thorlabs TED4015 TEC controller (Series 4000 SCPI, USBTMC, LF termination).

Temperatures in °C (``UNIT:TEMP CEL`` at open). ``*RST`` switches the output off and does not
clear the error queue (manual). Beyond the TemperatureController role: the PID shares and
autotune, the TEC current limit (soft limit ``max_current_a``), the temperature window and its
protection, the condition register and the TEC current/voltage/sensor readings; every setting
is a private, gated SCPI attribute (docs/safety.md §5). docs/instruments.md §4.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from lumina_hal.bench.roles import TemperatureController
from lumina_hal.drivers.instruments.scpi import (
    ScpiProperty,
    ScpiSwitchedSource,
    control,
    format_bool,
    in_range,
    measurement,
    parse_bool,
    parse_int,
)
from lumina_hal.errors import InstrumentError, LinkError

#: ``STAT:MEAS:COND?`` bits (Series 4000 programmer's reference).
CONDITION_BITS = {
    "temperature_protection": 256,
    "window_failure": 512,
    "sensor_failure": 1024,
    "tec_open": 4096,
}
#: ``SOUR:TEMP:ATUN:STAT?`` first field.
AUTOTUNE_STATES = ("never run", "running", "canceled", "failed", "finished")
_PID_MAX = 1000.0  # the model's range of each share [sim]


@dataclass(frozen=True)
class PidSettings:
    """The loop's shares: P (A/K), I (A/(K·s)), D (A·s/K) and the oscillation period (s)."""

    p_a_per_k: float
    i_a_per_k_s: float
    d_a_s_per_k: float
    period_s: float


def _autotune_state(reply: str) -> int:
    """``4,0,0`` (state, phase, loop) → 4."""
    return parse_int(reply.split(",")[0])


def _autotune_command(start: bool) -> str:
    return "INIT" if start else "CANC"


def _pid_share(node: str, doc: str, unit: str, low: float = 0.0) -> ScpiProperty:
    """``SOUR:TEMP:LCON:<node>``: one PID share, gated under the attribute's name."""
    return control(
        f"SOUR:TEMP:LCON:{node}?", f"SOUR:TEMP:LCON:{node} {{:.6g}}", doc,
        validate=in_range(low, _PID_MAX, unit),
    )  # fmt: skip


class ThorlabsTed4015(ScpiSwitchedSource, TemperatureController):
    """Thorlabs TED4015."""

    model_name = "thorlabs-ted4015"
    idn_vendor = "THORLABS"
    idn_models = ("TED4015",)
    init_commands = ("UNIT:TEMP CEL",)

    # Private and gated (docs/safety.md §5): the public surface is the role and the methods below.
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
    _current_limit_a = control(
        "SOUR:CURR:LIM?", "SOUR:CURR:LIM {:.4f}", "TEC current limit (A).",
        validate=in_range("_current_limit_min_a", "_current_limit_max_a", "A"),
    )  # fmt: skip
    _pid_p_a_per_k = _pid_share("GAIN", "Proportional share (A/K).", "A/K")
    _pid_i_a_per_k_s = _pid_share("INT", "Integral share (A/(K·s)).", "A/(K·s)")
    _pid_d_a_s_per_k = _pid_share("DER", "Derivative share (A·s/K).", "A·s/K")
    _pid_period_s = _pid_share("PER", "Oscillation period (s).", "s", low=0.1)
    _autotune = control(
        "SOUR:TEMP:ATUN:STAT?", "SOUR:TEMP:ATUN:{}", "PID autotune: start (True) or cancel.",
        parse=lambda reply: _autotune_state(reply) == 1, format=_autotune_command, kind="bool",
    )  # fmt: skip
    _autotune_status = measurement("SOUR:TEMP:ATUN:STAT?", "Autotune state.", parse=_autotune_state)
    _window_k = control(
        "SOUR:TEMP:PROT:WIND?", "SOUR:TEMP:PROT:WIND {:.4f}", "Temperature window (± K).",
        validate=in_range(0.001, 100.0, "K"),
    )  # fmt: skip
    _window_delay_s = control(
        "SOUR:TEMP:PROT:DEL?", "SOUR:TEMP:PROT:DEL {:.3f}", "Window protection delay (s).",
        validate=in_range(0.0, 600.0, "s"),
    )  # fmt: skip
    _window_protection = control(
        "SOUR:TEMP:PROT?", "SOUR:TEMP:PROT {}", "Window protection on/off.",
        parse=parse_bool, format=format_bool,
    )  # fmt: skip
    _protection_tripped = measurement(
        "SOUR:TEMP:PROT:TRIP?", "The window protection switched off.", parse=parse_bool
    )
    _condition = measurement("STAT:MEAS:COND?", "Condition register.", parse=parse_int)
    _tec_current_a = measurement("MEAS:CURR?", "TEC current (A).")
    _tec_voltage_v = measurement("MEAS:VOLT?", "TEC voltage (V).")
    _sensor_ohm = measurement("MEAS:RES?", "Thermistor resistance (Ω).")

    def _after_open(self) -> None:
        self._setpoint_min_c = float(self._query_parsed("SOUR:TEMP? MIN"))
        self._setpoint_max_c = float(self._query_parsed("SOUR:TEMP? MAX"))
        self._current_limit_min_a = float(self._query_parsed("SOUR:CURR:LIM? MIN"))
        self._current_limit_max_a = float(self._query_parsed("SOUR:CURR:LIM? MAX"))

    # --- role hooks --------------------------------------------------------------------------
    def _get_setpoint_c(self) -> float:
        return float(self._setpoint_c)

    def _set_setpoint_c(self, celsius: float) -> None:
        self._setpoint_c = celsius

    def _get_temperature_c(self) -> float:
        return float(self._measured_temperature_c)

    def _setpoint_range_c(self) -> tuple[float, float]:
        return self._setpoint_min_c, self._setpoint_max_c

    def _get_current_limit_a(self) -> float:
        return float(self._current_limit_a)

    def _settings(self) -> dict[str, Any]:
        return {
            **super()._settings(),
            "current_limit_a": self._get_current_limit_a(),
            "pid": asdict(self._read_pid()),
            "window_k": float(self._window_k),
            "window_delay_s": float(self._window_delay_s),
            "window_protection": bool(self._window_protection),
        }

    # --- current limit -------------------------------------------------------------------------
    @property
    def current_limit_a(self) -> float:
        """The TEC current limit (A); setting it is checked against ``max_current_a``."""
        return float(self._call(self._get_current_limit_a))

    @current_limit_a.setter
    def current_limit_a(self, amps: float) -> None:
        self._call(setattr, self, "_current_limit_a", amps)

    @property
    def current_limit_range_a(self) -> tuple[float, float]:
        return self._call(lambda: (self._current_limit_min_a, self._current_limit_max_a))

    # --- PID and autotune ----------------------------------------------------------------------
    def _read_pid(self) -> PidSettings:
        return PidSettings(
            float(self._pid_p_a_per_k), float(self._pid_i_a_per_k_s),
            float(self._pid_d_a_s_per_k), float(self._pid_period_s),
        )  # fmt: skip

    @property
    def pid(self) -> PidSettings:
        return self._call(self._read_pid)

    def configure_pid(
        self,
        p_a_per_k: float,
        i_a_per_k_s: float,
        d_a_s_per_k: float,
        period_s: float | None = None,
    ) -> None:
        """Set the PID shares (each a gated write; the period only when given)."""

        def configure() -> None:
            self._pid_p_a_per_k = p_a_per_k
            self._pid_i_a_per_k_s = i_a_per_k_s
            self._pid_d_a_s_per_k = d_a_s_per_k
            if period_s is not None:
                self._pid_period_s = period_s

        self._call(configure)

    def start_autotune(self) -> None:
        """Start the PID autotune (the output must be on; the instrument refuses otherwise)."""
        self._call(setattr, self, "_autotune", True)

    def cancel_autotune(self) -> None:
        self._call(setattr, self, "_autotune", False)

    def autotune_state(self) -> str:
        """'never run', 'running', 'canceled', 'failed' or 'finished'."""
        state = int(self._call(lambda: self._autotune_status))
        return AUTOTUNE_STATES[state] if 0 <= state < len(AUTOTUNE_STATES) else str(state)

    def wait_for_autotune(self, timeout_s: float = 600.0, poll_s: float = 0.5) -> PidSettings:
        """Poll until the autotune ends; its PID shares, or InstrumentError if it did not finish
        (LinkError and a cancel on timeout)."""
        deadline = time.monotonic() + timeout_s
        while (state := self.autotune_state()) == "running":
            if time.monotonic() >= deadline:
                self.cancel_autotune()
                raise LinkError(f"{self._label}: autotune still running after {timeout_s:g} s")
            self.sleep(poll_s)
        if state != "finished":
            raise InstrumentError(f"{self._label}: autotune ended {state!r}")
        return self.pid

    # --- temperature window and status -----------------------------------------------------------
    def configure_window(self, window_k: float, delay_s: float, *, protection: bool) -> None:
        """Temperature window ±``window_k`` around the setpoint; with ``protection`` the TEC
        switches off after ``delay_s`` outside it."""

        def configure() -> None:
            self._window_k = window_k
            self._window_delay_s = delay_s
            self._window_protection = protection

        self._call(configure)

    @property
    def condition(self) -> dict[str, bool]:
        """The condition register, bit by bit (``STAT:MEAS:COND?``)."""
        bits = int(self._call(lambda: self._condition))
        return {name: bool(bits & mask) for name, mask in CONDITION_BITS.items()}

    @property
    def temperature_ok(self) -> bool:
        """Output on and the temperature inside its window (no window failure)."""
        return self.output and not self.condition["window_failure"]

    @property
    def protection_tripped(self) -> bool:
        return bool(self._call(lambda: self._protection_tripped))

    # --- readings ------------------------------------------------------------------------------
    @property
    def tec_current_a(self) -> float:
        return float(self._call(lambda: self._tec_current_a))

    @property
    def tec_voltage_v(self) -> float:
        return float(self._call(lambda: self._tec_voltage_v))

    @property
    def sensor_resistance_ohm(self) -> float:
        return float(self._call(lambda: self._sensor_ohm))
