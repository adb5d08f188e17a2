"""Lab-instrument roles: Laser, PowerMeter, TemperatureController (docs/instruments.md).

Scripts and tests ask for a role, never for a model. The public properties here check the
value (finite number), then the soft limits, and only then call the driver's ``_`` hook, which
checks the instrument's own range and writes. So an out-of-limit value is never sent, whatever
the driver. Every call takes the instrument's lock and refuses to run after ``close()``.
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

from lumina_hal.errors import (
    ConfigurationError,
    DeviceClosedError,
    InputError,
    InstrumentError,
    LuminaError,
    SafetyLimitError,
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


def _finite(value: Any, name: str, unit: str) -> float:
    if isinstance(value, bool):
        raise InputError(f"{name} must be a number in {unit}, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number in {unit}, got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{name} must be finite, got {value!r}")
    return number


def check_limit(
    name: str, value: float, unit: str, low: float | None, high: float | None, source: str
) -> None:
    """Raise SafetyLimitError when ``value`` is outside [low, high] (None = unbounded)."""
    if low is not None and value < low:
        raise SafetyLimitError(
            f"{name} = {value:g} {unit} is below the soft limit {low:g} {unit} ({source}); "
            "nothing was sent"
        )
    if high is not None and value > high:
        raise SafetyLimitError(
            f"{name} = {value:g} {unit} is above the soft limit {high:g} {unit} ({source}); "
            "nothing was sent"
        )


def _check_ordered(low: float | None, high: float | None, what: str, source: str) -> None:
    if low is not None and high is not None and low > high:
        raise ConfigurationError(f"{source}: {what} minimum {low:g} is above maximum {high:g}")


@dataclass(frozen=True)
class LaserLimits:
    """Soft limits of a laser. ``source`` says where they came from (for error messages)."""

    max_power_dbm: float | None = None
    min_wavelength_nm: float | None = None
    max_wavelength_nm: float | None = None
    source: str = "laser limits"

    def __post_init__(self) -> None:
        _check_ordered(self.min_wavelength_nm, self.max_wavelength_nm, "wavelength", self.source)


@dataclass(frozen=True)
class TecLimits:
    """Soft limits, ramp and safe state of a TEC controller (docs/instruments.md §5–6)."""

    min_c: float | None = None
    max_c: float | None = None
    max_step_c: float | None = None
    step_interval_s: float = 0.0
    safe_state: str = "off"  # "off" or "setpoint"
    safe_setpoint_c: float | None = None
    source: str = "TEC limits"

    def __post_init__(self) -> None:
        _check_ordered(self.min_c, self.max_c, "temperature", self.source)
        if self.max_step_c is not None and not self.max_step_c > 0:
            raise ConfigurationError(f"{self.source}: max_step_c must be > 0 °C")
        if not self.step_interval_s >= 0:
            raise ConfigurationError(f"{self.source}: step_interval_s must be >= 0 s")
        if self.safe_state not in ("off", "setpoint"):
            raise ConfigurationError(
                f"{self.source}: safe_state must be 'off' or 'setpoint', got {self.safe_state!r}"
            )
        if self.safe_state == "setpoint":
            if self.safe_setpoint_c is None:
                raise ConfigurationError(
                    f"{self.source}: safe_state = 'setpoint' needs safe_setpoint_c"
                )
            check_limit_config(self.safe_setpoint_c, self.min_c, self.max_c, self.source)


def check_limit_config(value: float, low: float | None, high: float | None, source: str) -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigurationError(
            f"{source}: safe_setpoint_c {value:g} °C is outside the limits [{low}, {high}] °C"
        )


def ramp_points(start: float, target: float, max_step: float | None) -> list[float]:
    """Setpoints from ``start`` (excluded) to ``target`` (included), steps ≤ ``max_step``."""
    if max_step is None or abs(target - start) <= max_step:
        return [target]
    count = math.ceil(abs(target - start) / max_step - 1e-12)
    step = math.copysign(max_step, target - start)
    return [start + step * k for k in range(1, count)] + [target]


class Instrument(ABC):
    """A lab instrument: open/close, identity, lock, safe state. Roles derive from it."""

    role: ClassVar[str] = "instrument"
    summary: ClassVar[str] = ""
    uri_params: ClassVar[tuple[Param, ...]] = ()
    #: True for simulated instruments (pyvisa-sim, loopback SCPI models).
    simulated: bool = False

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._is_open = False
        self._identity: InstrumentIdentity | None = None
        self.uri = ""
        #: Apply the role's safe state in close() (laser off, TEC safe).
        self.safe_on_close = True

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

    def open(self) -> Instrument:
        with self._lock:
            if not self._is_open:
                self._identity = self._open()
                self._is_open = True
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
                try:
                    self._close()
                except Exception as exc:  # a close must not raise: the link may be gone
                    log.warning("%s: closing the resource failed: %s", self.role, exc)

    def __enter__(self) -> Instrument:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_open(self) -> None:
        if not self._is_open:
            raise DeviceClosedError(f"{self.role} {self.uri or type(self).__name__} is closed")

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            self._require_open()
            return fn(*args)

    # --- common operations -------------------------------------------------------------------
    @property
    def identity(self) -> InstrumentIdentity:
        with self._lock:
            self._require_open()
            assert self._identity is not None
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
        limits = getattr(self, "limits", None)
        return asdict(limits) if limits is not None else {}


class Laser(Instrument):
    """A tunable laser source: wavelength (nm), power (dBm or W), output on/off."""

    role = "laser"

    def __init__(self) -> None:
        super().__init__()
        self.limits = LaserLimits()

    @property
    def wavelength_nm(self) -> float:
        return float(self._call(self._get_wavelength_nm))

    @wavelength_nm.setter
    def wavelength_nm(self, value: float) -> None:
        nm = _finite(value, "wavelength_nm", "nm")
        lim = self.limits
        check_limit(
            "wavelength", nm, "nm", lim.min_wavelength_nm, lim.max_wavelength_nm, lim.source
        )
        self._call(self._set_wavelength_nm, nm)

    @property
    def power_dbm(self) -> float:
        return float(self._call(self._get_power_dbm))

    @power_dbm.setter
    def power_dbm(self, value: float) -> None:
        dbm = _finite(value, "power_dbm", "dBm")
        check_limit("power", dbm, "dBm", None, self.limits.max_power_dbm, self.limits.source)
        self._call(self._set_power_dbm, dbm)

    @property
    def power_w(self) -> float:
        return dbm_to_w(self.power_dbm)

    @power_w.setter
    def power_w(self, value: float) -> None:
        watts = _finite(value, "power_w", "W")
        if watts <= 0:
            raise InputError(f"power_w must be > 0 W, got {value!r}")
        self.power_dbm = w_to_dbm(watts)

    @property
    def output(self) -> bool:
        return bool(self._call(self._get_output))

    @output.setter
    def output(self, enabled: bool) -> None:
        if not isinstance(enabled, bool):
            raise InputError(f"output must be True or False, got {enabled!r}")
        with self._lock:
            self._require_open()
            if enabled:
                # A setpoint left above the limit (set before the limit existed) must not shine.
                setpoint = float(self._get_power_dbm())
                check_limit(
                    "power setpoint", setpoint, "dBm", None, self.limits.max_power_dbm,
                    self.limits.source,
                )
            self._set_output(enabled)

    def on(self) -> None:
        self.output = True

    def off(self) -> None:
        self.output = False

    @property
    def wavelength_range_nm(self) -> tuple[float, float]:
        return self._call(self._wavelength_range_nm)

    @property
    def power_range_dbm(self) -> tuple[float, float]:
        return self._call(self._power_range_dbm)

    def safe_shutdown(self) -> None:
        """Laser output off."""
        self._call(self._set_output, False)
        log.info("laser output off (safe state)")

    def _settings(self) -> dict[str, Any]:
        return {
            "wavelength_nm": float(self._get_wavelength_nm()),
            "power_dbm": float(self._get_power_dbm()),
            "output": bool(self._get_output()),
        }

    @abstractmethod
    def _get_wavelength_nm(self) -> float: ...
    @abstractmethod
    def _set_wavelength_nm(self, nm: float) -> None: ...
    @abstractmethod
    def _get_power_dbm(self) -> float: ...
    @abstractmethod
    def _set_power_dbm(self, dbm: float) -> None: ...
    @abstractmethod
    def _get_output(self) -> bool: ...
    @abstractmethod
    def _set_output(self, enabled: bool) -> None: ...
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
        self._call(self._set_wavelength_nm, _finite(value, "wavelength_nm", "nm"))

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
        if not isinstance(enabled, bool):
            raise InputError(f"auto_range must be True or False, got {enabled!r}")
        self._call(self._set_auto_range, enabled)

    @property
    def range_w(self) -> float:
        return float(self._call(self._get_range_w))

    @range_w.setter
    def range_w(self, value: float) -> None:
        watts = _finite(value, "range_w", "W")
        if watts <= 0:
            raise InputError(f"range_w must be > 0 W, got {value!r}")
        self._call(self._set_range_w, watts)

    @property
    def averages(self) -> int:
        return int(self._call(self._get_averages))

    @averages.setter
    def averages(self, count: int) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InputError(f"averages must be an integer >= 1, got {count!r}")
        self._call(self._set_averages, count)

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


class TemperatureController(Instrument):
    """A TEC controller: setpoint and measured temperature (°C), output on/off, ramps."""

    role = "tec"

    def __init__(self) -> None:
        super().__init__()
        self.limits = TecLimits()
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

        Every intermediate point is clipped into the soft limits, so none is ever sent outside
        them, and the target itself is checked before the first write.
        """
        target = _finite(target_c, "setpoint_c", "°C")
        lim = self.limits
        check_limit("TEC setpoint", target, "°C", lim.min_c, lim.max_c, lim.source)
        with self._lock:
            self._require_open()
            points = [target]
            if lim.max_step_c is not None:
                start = float(self._get_setpoint_c())
                points = [_clip(p, lim.min_c, lim.max_c) for p in
                          ramp_points(start, target, lim.max_step_c)]
            for k, point in enumerate(points):
                if k:
                    self.sleep(lim.step_interval_s)
                self._set_setpoint_c(point)
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
    def output(self) -> bool:
        return bool(self._call(self._get_output))

    @output.setter
    def output(self, enabled: bool) -> None:
        if not isinstance(enabled, bool):
            raise InputError(f"output must be True or False, got {enabled!r}")
        self._call(self._set_output, enabled)

    def on(self) -> None:
        self.output = True

    def off(self) -> None:
        self.output = False

    @property
    def setpoint_range_c(self) -> tuple[float, float]:
        return self._call(self._setpoint_range_c)

    def safe_shutdown(self) -> None:
        """Ramp to the safe setpoint (output stays on) or switch off, as configured.

        If the ramp fails or is interrupted, the output is switched off instead.
        """
        with self._lock:
            self._require_open()
            if self.limits.safe_state == "setpoint":
                assert self.limits.safe_setpoint_c is not None
                try:
                    self.ramp_to(self.limits.safe_setpoint_c)
                    log.info("TEC at safe setpoint %.2f °C", self.limits.safe_setpoint_c)
                    return
                except BaseException:
                    log.error("TEC ramp to the safe setpoint failed; switching the output off")
                    self._set_output(False)
                    raise
            self._set_output(False)
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
    def _get_output(self) -> bool: ...
    @abstractmethod
    def _set_output(self, enabled: bool) -> None: ...
    @abstractmethod
    def _setpoint_range_c(self) -> tuple[float, float]: ...


def _clip(value: float, low: float | None, high: float | None) -> float:
    if low is not None:
        value = max(value, low)
    if high is not None:
        value = min(value, high)
    return value


def dbm_to_w(dbm: float) -> float:
    """P_W = 1 mW · 10^(P_dBm / 10)."""
    return 1e-3 * 10.0 ** (dbm / 10.0)


def w_to_dbm(watts: float) -> float:
    """P_dBm = 10 · log10(P_W / 1 mW); ``watts`` must be > 0."""
    return 10.0 * math.log10(watts / 1e-3)
