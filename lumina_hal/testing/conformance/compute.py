"""Checks of the computation: weights ids, result shapes and dtype, refused input, accuracy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lumina_hal.device import PhotonicDevice
from lumina_hal.errors import InputError
from lumina_hal.testing.conformance.support import (
    MAX_BATCH,
    ConformanceFailure,
    assert_accurate,
    assert_raises,
    inputs,
    opened,
    require_accuracy_threshold,
    uniform,
    work_shape,
)


def _smaller(shape: tuple[int, int]) -> tuple[int, int]:
    """A block strictly inside ``shape`` where possible (a 1 x 1 array keeps 1 x 1)."""
    return max(1, shape[0] // 2), max(1, (shape[1] + 1) // 2)


def check_load_weights(uri: str) -> None:
    """load_weights returns the weights id; weights_id/shape/telemetry follow; ids identify."""
    with opened(uri) as device:
        r, c = work_shape(device.info)
        if device.weights_id is not None:
            raise ConformanceFailure(f"weights_id is {device.weights_id!r} before a load")
        w = uniform(1, r, c)
        first = device.load_weights(w)
        if not (isinstance(first, str) and first):
            raise ConformanceFailure(f"load_weights returned {first!r}")
        if not device.weights_id == first:
            raise ConformanceFailure(f"weights_id {device.weights_id!r} != {first!r}")
        if not device.weights_shape == (r, c):
            raise ConformanceFailure(f"weights_shape {device.weights_shape}")
        reported = device.telemetry().weights_id
        if not reported == first:
            raise ConformanceFailure(f"telemetry().weights_id {reported!r} != {first!r}")
        if not device.load_weights(w.copy()) == first:
            raise ConformanceFailure("the same matrix got another id")
        if not device.load_weights(-w) != first:
            raise ConformanceFailure("the negated matrix got the same id")
        small = _smaller((r, c))
        w_small = uniform(3, *small)
        device.load_weights(w_small)
        if not device.weights_shape == small:
            raise ConformanceFailure(f"weights_shape {device.weights_shape} != {small}")
        x = inputs(4, 3, small[1])
        assert_accurate(device.matmul(x), x, w_small, device.info, f"a {small} block")


def _assert_result(y: Any, shape: tuple[int, ...], what: str) -> None:
    if not isinstance(y, np.ndarray):
        raise ConformanceFailure(f"{what}: matmul returned a {type(y).__name__}")
    if not y.shape == shape:
        raise ConformanceFailure(f"{what}: shape {y.shape}, expected {shape}")
    if not y.dtype == np.float32:
        raise ConformanceFailure(f"{what}: dtype {y.dtype}, expected float32")
    if not np.isfinite(y).all():
        raise ConformanceFailure(f"{what}: non-finite values in the result")


def _assert_fills_out(device: PhotonicDevice, x: np.ndarray, shape: tuple[int, ...]) -> None:
    out = np.full(shape, np.nan, dtype=np.float32)
    result = device.matmul(x, out=out)
    if result is not out:
        raise ConformanceFailure(f"matmul(out=...) for shape {shape} did not return the out buffer")
    if not np.isfinite(out).all():
        raise ConformanceFailure(f"matmul(out=...) left part of the {shape} buffer unwritten")


def check_matmul_shapes(uri: str) -> None:
    """Vector, batch, empty batch, list input, out= and a smaller block: shapes and float32."""
    with opened(uri) as device:
        r, c = work_shape(device.info)
        device.load_weights(uniform(1, r, c))
        x = inputs(2, 5, c)
        _assert_result(device.matmul(x[0]), (r,), "vector")
        _assert_result(device.matmul(x), (5, r), "batch")
        _assert_result(device.matmul(np.empty((0, c), np.float32)), (0, r), "empty batch")
        _assert_result(device.matmul(x[:2].tolist()), (2, r), "list input")
        _assert_result(device.matmul(x.astype(np.float64)), (5, r), "float64 input")
        _assert_fills_out(device, x[0], (r,))
        _assert_fills_out(device, x, (5, r))
        small = _smaller((r, c))
        device.load_weights(uniform(3, *small))
        _assert_result(device.matmul(inputs(4, 3, small[1])), (3, small[0]), "smaller block")


def check_matmul_before_load(uri: str) -> None:
    """matmul with no weights loaded (after open, after reset) raises InputError."""
    with opened(uri) as device:
        r, c = work_shape(device.info)
        assert_raises(InputError, lambda: device.matmul(np.ones(c)), "matmul right after open")
        device.load_weights(uniform(1, r, c))
        device.reset()
        assert_raises(InputError, lambda: device.matmul(np.ones(c)), "matmul after reset()")
        device.load_weights(uniform(1, r, c))
        _assert_result(device.matmul(np.ones(c)), (r,), "after loading")


def _bad_calls(device: PhotonicDevice, r: int, c: int) -> dict[str, Callable[[], Any]]:
    """Each call must raise InputError; the keys say what is wrong."""
    info = device.info
    ones = np.ones(c, dtype=np.float32)
    nan_x, inf_x, nan_w = ones.copy(), ones.copy(), np.ones((r, c))
    nan_x[0], inf_x[-1], nan_w[0, 0] = np.nan, np.inf, np.nan
    return {
        "input with one column too many": lambda: device.matmul(np.ones((2, c + 1))),
        "3-D input": lambda: device.matmul(np.ones((2, 2, c))),
        "scalar input": lambda: device.matmul(np.float64(1.0)),
        "input with NaN": lambda: device.matmul(nan_x),
        "input with Inf": lambda: device.matmul(inf_x),
        "complex input": lambda: device.matmul(ones.astype(np.complex64)),
        "bool input": lambda: device.matmul(np.ones(c, dtype=bool)),
        "1-D weights": lambda: device.load_weights(np.ones(c)),
        "empty weights": lambda: device.load_weights(np.ones((0, c))),
        "weights with NaN": lambda: device.load_weights(nan_w),
        "complex weights": lambda: device.load_weights(np.ones((r, c), dtype=complex)),
        "weights with one row too many": lambda: device.load_weights(np.ones((info.rows + 1, 1))),
        "weights with one column too many": lambda: device.load_weights(
            np.ones((1, info.cols + 1))
        ),
        "out of the wrong shape": lambda: device.matmul(ones, out=np.empty(r + 1, np.float32)),
        "float64 out": lambda: device.matmul(ones, out=np.empty(r, np.float64)),
        "non-contiguous out": lambda: device.matmul(
            np.ones((2, c)), out=np.empty((2, 2 * r), np.float32)[:, ::2]
        ),
    }


def check_bad_input(uri: str) -> None:
    """Wrong shape, NaN/Inf, wrong dtype, oversized matrix: InputError; the device stays usable."""
    with opened(uri) as device:
        info = device.info
        r, c = work_shape(info)
        w = uniform(1, r, c)
        weights_id = device.load_weights(w)
        x = inputs(2, 4, c)
        for what, call in _bad_calls(device, r, c).items():
            assert_raises(InputError, call, what)
            if not device.weights_id == weights_id:
                raise ConformanceFailure(f"{what} changed the loaded weights")
            assert_accurate(device.matmul(x), x, w, info, f"matmul after {what}")


def check_accuracy(uri: str) -> None:
    """SNR of X @ W.T is at least min(20, 6.02 b - 20) dB (b: narrowest converter)."""
    with opened(uri) as device:
        info = device.info
        require_accuracy_threshold(info)
        r, c = work_shape(info)
        w, x = uniform(1, r, c), inputs(2, MAX_BATCH, c)
        device.load_weights(w)
        assert_accurate(device.matmul(x), x, w, info, f"weights {r}x{c}, batch {MAX_BATCH}")
