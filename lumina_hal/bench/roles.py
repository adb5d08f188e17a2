"""Lab-instrument roles: Laser, PowerMeter, TemperatureController (docs/instruments.md).

Scripts and tests ask for a role, never for a model. Every setter of a role, and every settable
SCPI attribute of a driver, writes through :meth:`Instrument._gated_write`, which hands the
value to the instrument's :class:`~lumina_hal.bench.safety.SafetyGate` (type, soft limit,
interlocks) before the driver checks its own range and writes (docs/safety.md). Limits are
fixed when the instrument opens. Every call takes the instrument's lock and refuses to run
after ``close()``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from lumina_hal.bench.exits import SigtermUnwinds, track_open, untrack
from lumina_hal.bench.limits import LaserLimits, Limits, NoLimits, TecLimits
from lumina_hal.bench.safety import Kind, SafetyGate, coerce
from lumina_hal.bench.safety import ramp_points as ramp_points  # re-export (old home)
from lumina_hal.errors import (
    ConfigurationError,
    DeviceClosedError,
    InputError,
    InstrumentError,
    LuminaError,
)
from lumina_hal.params import Param
from lumina_hal.uri import DeviceURI

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstrumentIdentity:
    """The four ``*IDN?`` fields."""

    vendor: str
    model: str
    serial: str
    firmware: str

    @classmethod
    def parse(cls, reply: str) -> InstrumentIdentity:
        fields = [f.strip() for f in reply.strip().split(",")]
        if len(fields) < 4:
            raise InstrumentError(
                f"*IDN? reply {reply!r} does not have 4 comma-separated fields", command="*IDN?"
            )
        return cls(fields[0], fields[1], fields[2], ",".join(fields[3:]))


class Instrument(ABC):
    """A lab instrument: open/close, identity, lock, safe state. Roles derive from it."""

    role: ClassVar[str] = "instrument"
    summary: ClassVar[str] = ""
    uri_params: ClassVar[tuple[Param, ...]] = ()
    #: True for simulated instruments (pyvisa-sim, loopback SCPI models).
    simulated: bool = False
    #: The soft limits this role takes (docs/safety.md §2).
    limits_type: ClassVar[type[Limits]] = NoLimits

    def __init__(self) -> None:
        self._gate = SafetyGate(self.limits_type())
        self._lock = threading.RLock()
        self._is_open = False
        self._identity: InstrumentIdentity | None = None
        self.uri = ""
        #: Apply the role's safe state in close() (laser off, TEC safe).
        self.safe_on_close = True
        self._sigterm = SigtermUnwinds()

    @classmethod
    def from_uri(cls, uri: DeviceURI, **params: Any) -> Instrument:
        raise ConfigurationError(f"{cls.__name__} cannot be opened from a URI")

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @property
    def is_open(self) -> bool:
        return self._is_open

    @property
    def limits(self) -> Limits:
        """The soft limits; fixed when the instrument is first opened (read-only afterwards)."""
        return self._gate.limits

    @limits.setter
    def limits(self, limits: Limits) -> None:
        with self._lock:
            self._gate.replace(limits)

    def open(self) -> Instrument:
        with self._lock:
            if not self._is_open:
                self._gate.seal()
                self._identity = self._open()
                self._is_open = True
                track_open(self)  # made safe at interpreter exit if never closed
                log.info("%s opened: %s", self.role, self._identity)
        return self

    def close(self) -> None:
        """Apply the safe state (if configured) and close. Idempotent; never raises LuminaError."""
        with self._lock:
            if not self._is_open:
                return
            try:
                if self.safe_on_close:
                    self.safe_shutdown()
            except LuminaError as exc:
                log.error("%s: safe state on close failed: %s", self.role, exc)
            finally:
                self._is_open = False
                untrack(self)
                try:
                    self._close()
                except Exception as exc:  # a close must not raise: the link may be gone
                    log.warning("%s: closing the resource failed: %s", self.role, exc)

    def __enter__(self) -> Instrument:
        self.open()
        self._sigterm.__enter__()  # SIGTERM unwinds the with, so close() makes it safe
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.close()
        finally:
            self._sigterm.__exit__()

    def _require_open(self) -> None:
        if not self._is_open:
            raise DeviceClosedError(f"{self.role} {self.uri or type(self).__name__} is closed")

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            self._require_open()
            return fn(*args)

    def _gated_write(
        self, quantity: str, kind: Kind, value: Any, send: Callable[[Any], None]
    ) -> None:
        """Every write of a setting ends here: the safety gate checks ``value``, then ``send``.

        Role setters call it with the driver's ``_set_*`` hook; driver SCPI attributes call it
        with their own write (docs/safety.md §3), so no path reaches the wire unchecked.
        """
        with self._lock:
            self._gate.write(quantity, kind, value, send, self._read_quantity)

    def _preflight(self, quantity: str, value: Any) -> None:
        """Check a value as the driver would send it (range, rounding), sending nothing.

        Used before a ramp's first write, so a ramp is refused whole rather than half done.
        Drivers with SCPI attributes implement it; the default checks nothing more.
        """
        return None

    def _read_quantity(self, quantity: str) -> float:
        """The current value of a gated quantity, from the role's ``_get_<quantity>`` hook."""
        getter = getattr(self, f"_get_{quantity}", None)
        if getter is None:
            raise ConfigurationError(
                f"{type(self).__name__} has no _get_{quantity}() to check an interlock"
            )
        return float(getter())

    # --- common operations -------------------------------------------------------------------
    @property
    def identity(self) -> InstrumentIdentity:
        with self._lock:
            self._require_open()
            if self._identity is None:
                raise DeviceClosedError(f"{self.role}: no identity (the open did not finish)")
            return self._identity

    def reset(self) -> None:
        """Reset to the instrument's defaults (``*RST``); soft limits stay in force."""
        self._call(self._reset)

    def clear(self) -> None:
        """Clear the status and error queue (``*CLS``)."""
        self._call(self._clear)

    @abstractmethod
    def safe_shutdown(self) -> None:
        """Put the instrument in its safe state (laser off, TEC safe); no-op for a meter."""

    def snapshot(self) -> dict[str, Any]:
        """Identity, URI, limits and settings, as plain JSON-ready values (for run records)."""
        with self._lock:
            self._require_open()
            return {
                "role": self.role,
                "uri": self.uri,
                "identity": asdict(self.identity),
                "settings": self._settings(),
                "limits": self._limits_dict(),
            }

    # --- hooks -------------------------------------------------------------------------------
    @abstractmethod
    def _open(self) -> InstrumentIdentity: ...

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def _reset(self) -> None: ...

    @abstractmethod
    def _clear(self) -> None: ...

    def _settings(self) -> dict[str, Any]:
        return {}

    def _limits_dict(self) -> dict[str, Any]:
        return asdict(self.limits)


class SwitchedInstrument(Instrument):
    """A role with an output that switches on and off (laser emission, TEC drive).

    Switching goes through the safety gate, which refuses "on" while a quantity named in the
    role's interlocks (docs/safety.md §2) is outside its soft limit; "off" is never refused.
    """

    @property
    def output(self) -> bool:
        return bool(self._call(self._get_output))

    @output.setter
    def output(self, enabled: bool) -> None:
        self._call(self._gated_write, "output", "bool", enabled, self._set_output)

    def on(self) -> None:
        self.output = True

    def off(self) -> None:
        self.output = False

    @abstractmethod
    def _get_output(self) -> bool: ...
    @abstractmethod
    def _set_output(self, enabled: bool) -> None: ...


class Laser(SwitchedInstrument):
    """A tunable laser source: wavelength (nm), power (dBm or W), output on/off."""

    role = "laser"
    limits_type = LaserLimits
    limits: LaserLimits

    @property
    def wavelength_nm(self) -> float:
        return float(self._call(self._get_wavelength_nm))

    @wavelength_nm.setter
    def wavelength_nm(self, value: float) -> None:
        self._call(self._gated_write, "wavelength_nm", "number", value, self._set_wavelength_nm)

    @property
    def power_dbm(self) -> float:
        return float(self._call(self._get_power_dbm))

    @power_dbm.setter
    def power_dbm(self, value: float) -> None:
        self._call(self._gated_write, "power_dbm", "number", value, self._set_power_dbm)

    @property
    def power_w(self) -> float:
        return dbm_to_w(self.power_dbm)

    @power_w.setter
    def power_w(self, value: float) -> None:
        watts = coerce("power_w", "number", value)
        if watts <= 0:
            raise InputError(f"power_w must be > 0 W, got {value!r}")
        self.power_dbm = w_to_dbm(watts)

    @property
    def wavelength_range_nm(self) -> tuple[float, float]:
        return self._call(self._wavelength_range_nm)

    @property
    def power_range_dbm(self) -> tuple[float, float]:
        return self._call(self._power_range_dbm)

    def safe_shutdown(self) -> None:
        """Laser output off."""
        self._call(self._gated_write, "output", "bool", False, self._set_output)
        log.info("laser output off (safe state)")

    def _settings(self) -> dict[str, Any]:
        return {
            "wavelength_nm": float(self._get_wavelength_nm()),
            "power_dbm": float(self._get_power_dbm()),
            "output": bool(self._get_output()),
        }

    def _get_emitted_power_dbm(self) -> float:
        """The power emitted when the output is on (dBm); drivers with a manual attenuator
        override it (the output interlock checks it against ``max_power_dbm``)."""
        return self._get_power_dbm()

    @abstractmethod
    def _get_wavelength_nm(self) -> float: ...
    @abstractmethod
    def _set_wavelength_nm(self, nm: float) -> None: ...
    @abstractmethod
    def _get_power_dbm(self) -> float: ...
    @abstractmethod
    def _set_power_dbm(self, dbm: float) -> None: ...
    @abstractmethod
    def _wavelength_range_nm(self) -> tuple[float, float]: ...
    @abstractmethod
    def _power_range_dbm(self) -> tuple[float, float]: ...


@dataclass(frozen=True)
class SensorInfo:
    """A power-meter sensor head, from ``SYST:SENS:IDN?``."""

    name: str
    serial: str
    calibration_date: str
    type: int
    subtype: int
    flags: int


class PowerMeter(Instrument):
    """An optical power meter: correction wavelength (nm), readings in W or dBm, ranging."""

    role = "power_meter"

    @property
    def wavelength_nm(self) -> float:
        return float(self._call(self._get_wavelength_nm))

    @wavelength_nm.setter
    def wavelength_nm(self, value: float) -> None:
        self._call(self._gated_write, "wavelength_nm", "number", value, self._set_wavelength_nm)

    def read_power_w(self) -> float:
        """One reading in W (blocks for the averaging time)."""
        return float(self._call(self._read_power_w))

    def read_power_dbm(self) -> float:
        """One reading in dBm; -inf for exactly 0 W."""
        watts = self.read_power_w()
        if watts < 0:
            raise InstrumentError(
                f"power meter read {watts:g} W (negative: dark offset larger than the signal); "
                "it has no dBm value — zero the meter or read power_w"
            )
        return w_to_dbm(watts) if watts > 0 else -math.inf

    @property
    def auto_range(self) -> bool:
        return bool(self._call(self._get_auto_range))

    @auto_range.setter
    def auto_range(self, enabled: bool) -> None:
        self._call(self._gated_write, "auto_range", "bool", enabled, self._set_auto_range)

    @property
    def range_w(self) -> float:
        return float(self._call(self._get_range_w))

    @range_w.setter
    def range_w(self, value: float) -> None:
        if coerce("range_w", "number", value) <= 0:
            raise InputError(f"range_w must be > 0 W, got {value!r}")
        self._call(self._gated_write, "range_w", "number", value, self._set_range_w)

    @property
    def averages(self) -> int:
        return int(self._call(self._get_averages))

    @averages.setter
    def averages(self, count: int) -> None:
        if coerce("averages", "int", count) < 1:
            raise InputError(f"averages must be an integer >= 1, got {count!r}")
        self._call(self._gated_write, "averages", "int", count, self._set_averages)

    @property
    def sensor(self) -> SensorInfo | None:
        return self._call(self._sensor)

    def safe_shutdown(self) -> None:
        """A power meter has nothing hazardous to switch off."""

    def _settings(self) -> dict[str, Any]:
        sensor = self._sensor()
        return {
            "wavelength_nm": float(self._get_wavelength_nm()),
            "auto_range": bool(self._get_auto_range()),
            "range_w": float(self._get_range_w()),
            "averages": int(self._get_averages()),
            "sensor": asdict(sensor) if sensor else None,
        }

    @abstractmethod
    def _get_wavelength_nm(self) -> float: ...
    @abstractmethod
    def _set_wavelength_nm(self, nm: float) -> None: ...
    @abstractmethod
    def _read_power_w(self) -> float: ...
    @abstractmethod
    def _get_auto_range(self) -> bool: ...
    @abstractmethod
    def _set_auto_range(self, enabled: bool) -> None: ...
    @abstractmethod
    def _get_range_w(self) -> float: ...
    @abstractmethod
    def _set_range_w(self, watts: float) -> None: ...
    @abstractmethod
    def _get_averages(self) -> int: ...
    @abstractmethod
    def _set_averages(self, count: int) -> None: ...
    @abstractmethod
    def _sensor(self) -> SensorInfo | None: ...


class TemperatureController(SwitchedInstrument):
    """A TEC controller: setpoint and measured temperature (°C), output on/off, ramps."""

    role = "tec"
    limits_type = TecLimits
    limits: TecLimits

    def __init__(self) -> None:
        super().__init__()
        #: Called between ramp steps; replace in tests (seconds).
        self.sleep: Callable[[float], None] = time.sleep

    @property
    def setpoint_c(self) -> float:
        return float(self._call(self._get_setpoint_c))

    @setpoint_c.setter
    def setpoint_c(self, value: float) -> None:
        self.ramp_to(value)

    def ramp_to(self, target_c: float) -> None:
        """Move the setpoint to ``target_c``, in steps of at most ``limits.max_step_c``.

        The target is admitted by the safety gate (type, soft limit) and the number of steps
        checked (at most MAX_RAMP_POINTS) before the first write; every intermediate point is
        clipped into the soft limits and goes through the gate again as it is written.
        """
        with self._lock:
            self._require_open()
            gate, lim = self._gate, self.limits
            target = gate.admit("setpoint_c", "number", target_c, self._read_quantity)
            points = [target]
            if lim.max_step_c is not None:
                start = float(self._get_setpoint_c())
                points = gate.plan_ramp("setpoint_c", start, target, lim.max_step_c)
            for point in points:  # all or nothing: no ramp stops half way on a bad point
                self._preflight("setpoint_c", point)
            for k, point in enumerate(points):
                if k:
                    self.sleep(lim.step_interval_s)
                self._gated_write("setpoint_c", "number", point, self._set_setpoint_c)
                log.debug("TEC setpoint %.3f °C (%d/%d)", point, k + 1, len(points))

    @property
    def temperature_c(self) -> float:
        """The measured temperature (°C)."""
        return float(self._call(self._get_temperature_c))

    def wait_settled(
        self, tolerance_c: float = 0.1, timeout_s: float = 600.0, poll_s: float = 0.5
    ) -> float:
        """Poll until the measured temperature is within ``tolerance_c`` of the setpoint.

        Returns the measured temperature; raises InstrumentError after ``timeout_s`` (the
        loop has failed, the output is off, or the load is too large for the TEC).
        """
        target = self.setpoint_c
        deadline = time.monotonic() + timeout_s
        while True:
            measured = self.temperature_c
            if abs(measured - target) <= tolerance_c:
                return measured
            if time.monotonic() >= deadline:
                raise InstrumentError(
                    f"TEC did not settle within {tolerance_c:g} °C of {target:g} °C in "
                    f"{timeout_s:g} s (last reading {measured:g} °C; output "
                    f"{'on' if self.output else 'off'})"
                )
            self.sleep(poll_s)

    @property
    def setpoint_range_c(self) -> tuple[float, float]:
        return self._call(self._setpoint_range_c)

    def safe_shutdown(self) -> None:
        """Ramp to the safe setpoint (output stays on) or switch off, as configured.

        If the ramp fails or is interrupted, the output is switched off instead.
        """
        with self._lock:
            self._require_open()
            safe_c = self.limits.safe_setpoint_c
            if self.limits.safe_state == "setpoint" and safe_c is not None:
                try:
                    self.ramp_to(safe_c)
                    log.info("TEC at safe setpoint %.2f °C", safe_c)
                    return
                except BaseException:
                    log.error("TEC ramp to the safe setpoint failed; switching the output off")
                    self._gated_write("output", "bool", False, self._set_output)
                    raise
            self._gated_write("output", "bool", False, self._set_output)
            log.info("TEC output off (safe state)")

    def _settings(self) -> dict[str, Any]:
        return {
            "setpoint_c": float(self._get_setpoint_c()),
            "temperature_c": float(self._get_temperature_c()),
            "output": bool(self._get_output()),
        }

    @abstractmethod
    def _get_setpoint_c(self) -> float: ...
    @abstractmethod
    def _set_setpoint_c(self, celsius: float) -> None: ...
    @abstractmethod
    def _get_temperature_c(self) -> float: ...
    @abstractmethod
    def _setpoint_range_c(self) -> tuple[float, float]: ...


def dbm_to_w(dbm: float) -> float:
    """P_W = 1 mW · 10^(P_dBm / 10)."""
    return 1e-3 * 10.0 ** (dbm / 10.0)


def w_to_dbm(watts: float) -> float:
    """P_dBm = 10 · log10(P_W / 1 mW); ``watts`` must be > 0."""
    return 10.0 * math.log10(watts / 1e-3)
