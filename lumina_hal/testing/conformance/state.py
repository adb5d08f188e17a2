"""Checks of the device's state: telemetry fields and the temperature setpoint with its limits."""

from __future__ import annotations

import functools
import math

from lumina_hal.device import Capability, PhotonicDevice, Telemetry
from lumina_hal.errors import InputError, SafetyLimitError, UnsupportedOperationError
from lumina_hal.testing.conformance.support import (
    ConformanceFailure,
    assert_raises,
    has,
    inputs,
    opened,
    uniform,
    work_shape,
)

#: Set points no chip accepts: far above any package rating, and below absolute zero.
OUT_OF_RANGE_C = (1000.0, -300.0)
#: A simulated device reads back its setpoint to this precision (a float32 on some links).
READBACK_TOLERANCE_C = 0.01


def _assert_telemetry_fields(t: Telemetry, optical_power: bool) -> None:
    if not isinstance(t, Telemetry):
        raise ConformanceFailure(f"telemetry() returned a {type(t).__name__}")
    if not (isinstance(t.temperature_c, float) and math.isfinite(t.temperature_c)):
        raise ConformanceFailure(f"temperature_c is {t.temperature_c!r}")
    power = t.optical_power_dbm
    if not (power is None or (isinstance(power, float) and math.isfinite(power))):
        raise ConformanceFailure(f"optical_power_dbm is {power!r}")
    if optical_power and power is None:
        raise ConformanceFailure(
            "the device declares 'optical_power' but optical_power_dbm is None"
        )
    if not isinstance(t.counters, dict):
        raise ConformanceFailure(f"counters is a {type(t.counters).__name__}")
    for key, value in t.counters.items():
        if not isinstance(key, str):
            raise ConformanceFailure(f"counter name {key!r} is not a str")
        if not (type(value) is int and value >= 0):
            raise ConformanceFailure(f"counter {key!r} is {value!r}")
    if not (isinstance(t.timestamp_s, float) and math.isfinite(t.timestamp_s)):
        raise ConformanceFailure(f"timestamp_s is {t.timestamp_s!r}")


def check_telemetry(uri: str) -> None:
    """Telemetry: typed finite fields, weights_id follows, counters non-negative ints."""
    with opened(uri) as device:
        optical_power = has(device.info, Capability.OPTICAL_POWER)
        first = device.telemetry()
        _assert_telemetry_fields(first, optical_power)
        if first.weights_id is not None:
            raise ConformanceFailure(f"weights_id {first.weights_id!r} before any load")
        r, c = work_shape(device.info)
        weights_id = device.load_weights(uniform(1, r, c))
        device.matmul(inputs(2, 3, c))
        second = device.telemetry()
        _assert_telemetry_fields(second, optical_power)
        if not second.weights_id == weights_id:
            raise ConformanceFailure(
                f"telemetry().weights_id {second.weights_id!r} != loaded {weights_id!r}"
            )
        if not second.timestamp_s >= first.timestamp_s:
            raise ConformanceFailure("timestamp_s went backwards")


def _temperature(device: PhotonicDevice) -> float:
    return device.telemetry().temperature_c


def check_temperature(uri: str) -> None:
    """set_temperature: accepted in range, SafetyLimitError/InputError out of it, else gated."""
    with opened(uri) as device:
        info = device.info
        start = _temperature(device)
        if not has(info, Capability.SET_TEMPERATURE):
            assert_raises(
                UnsupportedOperationError,
                lambda: device.set_temperature(start),
                "set_temperature without the 'set_temperature' capability",
            )
            return
        simulated = has(info, Capability.SIMULATED)
        try:
            target = _step_setpoint(device, start)
            if simulated:
                _assert_reads_back(device, target, "after set_temperature")
            for value in OUT_OF_RANGE_C:
                assert_raises(
                    SafetyLimitError,
                    functools.partial(device.set_temperature, value),
                    f"set_temperature({value:g})",
                )
            assert_raises(InputError, lambda: device.set_temperature(math.nan), "NaN setpoint")
            if simulated:
                _assert_reads_back(device, target, "after refused setpoints")
        finally:
            device.set_temperature(start)


def _step_setpoint(device: PhotonicDevice, start_c: float) -> float:
    """Set 1 °C below ``start_c`` (above it if that is refused: the chip is at its minimum)."""
    try:
        device.set_temperature(start_c - 1.0)
    except SafetyLimitError:
        device.set_temperature(start_c + 1.0)
        return start_c + 1.0
    return start_c - 1.0


def _assert_reads_back(device: PhotonicDevice, expected_c: float, what: str) -> None:
    measured = _temperature(device)
    if not abs(measured - expected_c) <= READBACK_TOLERANCE_C:
        raise ConformanceFailure(
            f"{what}: telemetry reads {measured:g} °C, setpoint {expected_c:g} °C"
        )
