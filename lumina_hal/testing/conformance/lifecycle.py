"""Checks of a device's life: open, close, context manager, reopen, reset and its identity."""

from __future__ import annotations

import json

import numpy as np

from lumina_hal.device import Capability, DeviceInfo, PhotonicDevice
from lumina_hal.errors import DeviceClosedError, InputError
from lumina_hal.registry import build_device
from lumina_hal.testing.conformance.support import (
    ConformanceFailure,
    assert_accurate,
    assert_raises,
    inputs,
    opened,
    uniform,
    work_shape,
)


class _BodyFailed(Exception):
    """Raised inside a ``with`` block to see that the device still closes."""


def _assert_works(device: PhotonicDevice, what: str) -> None:
    """Load a matrix and multiply: right shape and accurate."""
    info = device.info
    r, c = work_shape(info)
    w, x = uniform(1, r, c), inputs(2, 4, c)
    device.load_weights(w)
    assert_accurate(device.matmul(x), x, w, info, what)


def check_lifecycle(uri: str) -> None:
    """build/open/close/with: idempotent, closes on every path, reopens and works."""
    device = build_device(uri)
    if device.is_open:
        raise ConformanceFailure("build_device returned an open device")
    if device.open() is not device:
        raise ConformanceFailure("open() must return the device itself")
    if not device.is_open:
        raise ConformanceFailure("is_open is False after open()")
    device.open()  # idempotent
    if not device.is_open:
        raise ConformanceFailure("conformance check failed: device.is_open")
    _assert_works(device, "after open()")
    device.close()
    if device.is_open:
        raise ConformanceFailure("is_open is True after close()")
    device.close()  # idempotent
    with device as entered:
        if entered is not device:
            raise ConformanceFailure("'with device as d' must bind the device itself")
        if not device.is_open:
            raise ConformanceFailure("the device is not open inside 'with'")
        _assert_works(device, "reopened by 'with'")
    if device.is_open:
        raise ConformanceFailure("the device is still open after 'with'")
    try:
        with device:
            raise _BodyFailed
    except _BodyFailed:
        pass
    if device.is_open:
        raise ConformanceFailure("the device stays open after an exception inside 'with'")


def check_closed_device(uri: str) -> None:
    """Every call on a closed device raises DeviceClosedError; a reopen forgets the weights."""
    with opened(uri) as device:
        r, c = work_shape(device.info)
        device.load_weights(uniform(1, r, c))
    if device.weights_id is not None:
        raise ConformanceFailure("weights_id survives close()")
    calls = {
        "info": lambda: device.info,
        "telemetry()": device.telemetry,
        "load_weights": lambda: device.load_weights(np.eye(2)),
        "matmul": lambda: device.matmul(np.ones(c)),
        "reset()": device.reset,
        "set_temperature": lambda: device.set_temperature(25.0),
    }
    for name, call in calls.items():
        assert_raises(DeviceClosedError, call, f"{name} on a closed device")
    with device:
        assert_raises(InputError, lambda: device.matmul(np.ones(c)), "matmul after a reopen")


def _assert_info_fields(info: DeviceInfo) -> None:
    for name in ("vendor", "model", "serial", "firmware"):
        value = getattr(info, name)
        if not (isinstance(value, str) and value.strip()):
            raise ConformanceFailure(f"info.{name} is {value!r}")
    for name in ("rows", "cols"):
        value = getattr(info, name)
        if not (type(value) is int and value >= 1):
            raise ConformanceFailure(f"info.{name} is {value!r}")
    for name in ("weight_bits", "input_bits", "output_bits"):
        value = getattr(info, name)
        if not (type(value) is int and 1 <= value <= 64):
            raise ConformanceFailure(f"info.{name} is {value!r}")
    caps = info.capabilities
    if not isinstance(caps, frozenset):
        raise ConformanceFailure(f"info.capabilities is a {type(caps).__name__}")
    if not all(isinstance(c, str) for c in caps):
        raise ConformanceFailure(f"info.capabilities holds non-strings: {caps}")
    kinds = {Capability.SIMULATED.value, Capability.HARDWARE.value} & caps
    if not len(kinds) == 1:
        raise ConformanceFailure(
            "info.capabilities must hold exactly one of 'simulated', 'hardware'; "
            f"got {sorted(caps)}"
        )


def check_info(uri: str) -> None:
    """info: typed non-empty fields, one of simulated/hardware, stable, JSON-serializable."""
    with opened(uri) as device:
        info = device.info
        _assert_info_fields(info)
        if not info.uri == device.uri:
            raise ConformanceFailure(f"info.uri {info.uri!r} is not the URI {device.uri!r}")
        if not device.info == info:
            raise ConformanceFailure("two reads of info differ")
        data = info.to_dict()
        json.dumps(data)
        if not data["capabilities"] == sorted(info.capabilities):
            raise ConformanceFailure("to_dict capabilities unsorted")
    with opened(uri) as again:
        if not again.info == info:
            raise ConformanceFailure(f"info differs after a reopen: {again.info} vs {info}")


def check_reset(uri: str) -> None:
    """reset(): weights gone (weights_id None, matmul refused), then loading works again."""
    with opened(uri) as device:
        r, c = work_shape(device.info)
        device.load_weights(uniform(1, r, c))
        device.matmul(inputs(2, 2, c))
        device.reset()
        if device.weights_id is not None:
            raise ConformanceFailure("weights_id survives reset()")
        if device.weights_shape is not None:
            raise ConformanceFailure("weights_shape survives reset()")
        if device.telemetry().weights_id is not None:
            raise ConformanceFailure("telemetry().weights_id survives reset()")
        assert_raises(InputError, lambda: device.matmul(np.ones(c)), "matmul after reset()")
        _assert_works(device, "after reset() and a new load")
