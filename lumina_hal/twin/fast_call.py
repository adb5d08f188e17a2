"""The fused per-call path of mock://: ``PhotonicDevice.matmul`` straight to lk_forward_from.

A 64² batch-1 call is ~0.5 µs of C; the layers around it (device fast path, engine,
``try_forward``) cost three times that in Python. ``fast_matmul`` builds, once per engine
(per weights and temperature), one function that makes the whole call with everything
per-engine bound as closure constants. It keeps every check of the general path, made
cheap: the device's lock is held by the caller; closed, reset or reprogrammed devices have
no fast path or a stale engine (declined); type, dtype and shape are compared against
constants; ``ffi.from_buffer`` refuses non-contiguous and read-only buffers; the kernel
refuses NaN/Inf (InputError) and declines misaligned or overlapping buffers. Whatever is
declined goes the general path, which converts or raises the contract's error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from lumina_hal.twin.kernel import KernelModel, decline_codes, ffi, raise_for

if TYPE_CHECKING:
    from lumina_hal.twin.device import MockDevice

log = logging.getLogger(__name__)

#: fast(x, out) -> the result, or None when declined (nothing done, no state changed).
FastMatmul = Callable[[Any, "np.ndarray | None"], "np.ndarray | None"]


def fast_matmul(device: MockDevice, engine: KernelModel, max_batch: int) -> FastMatmul:
    """The fast path of ``device`` while its chip runs ``engine``.

    ``max_batch`` is the largest batch whose fresh output fits in memory (larger ones are
    declined, so the general path refuses them with its message).
    """
    chip = device.chip
    forward, struct, clipped = engine.call_entry()
    rows, cols = engine.rows, engine.cols
    seed, threads = chip.config.seed, chip.config.threads
    board = device.board if device.board.timing.active else None  # mock://?baudrate=...
    block = (rows, cols)
    x_single: tuple[int, ...] = (cols,)
    out_single: tuple[int, ...] = (rows,)
    from_buffer, float_array = ffi.from_buffer, ffi.typeof("float[]")
    ndarray, f32, empty = np.ndarray, np.dtype(np.float32), np.empty
    declined = decline_codes()

    def fast(x: Any, out: np.ndarray | None) -> np.ndarray | None:
        if chip._engine is not engine:  # reprogrammed or cleared behind the device's back
            device._install_fast_matmul()  # for the next call; this one goes the general path
            return None
        if type(x) is not ndarray or x.dtype is not f32:
            return None
        shape = x.shape
        if shape == x_single:
            batch, out_shape = 1, out_single
        elif len(shape) == 2 and shape[1] == cols and 0 < shape[0] <= max_batch:
            batch = shape[0]
            out_shape = (batch, rows)
        else:
            return None
        if out is None:
            y = empty(out_shape, f32)
        elif type(out) is ndarray and out.dtype is f32 and out.shape == out_shape:
            y = out
        else:
            return None
        try:  # both C-contiguous, y writeable (a buffer of the checked shape's size)
            px = from_buffer(float_array, x)
            py = from_buffer(float_array, y, True)
        except (BufferError, TypeError, ValueError):
            return None
        index = chip.call_index
        rc = forward(struct, px, batch, 0, py, seed, index, threads, clipped)
        if rc:
            if rc in declined:  # misaligned or overlapping: the general path copies
                return None
            raise_for(rc)  # NaN/Inf in x: InputError
        chip.call_index = index + 1
        counters = device._counters
        counters["matmul_calls"] += 1
        counters["vectors"] += batch
        if board is not None:
            board.run(batch, block)
        n = clipped[0]
        if n:
            counters["clipped_outputs"] += n
            log.debug("%d output(s) clipped at ADC full scale", n)
        return y

    return fast
