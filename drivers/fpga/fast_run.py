"""The fused per-call path of an FPGA device: ``PhotonicDevice.matmul`` straight to one RUN.

A small RUN's round trip is a few tens of µs; the general call path (the contract's checks
and conversions, ``_matmul``'s batching, the input DAC's general cases) cost as much again
in Python. ``fast_matmul`` builds, once per load (weights, HELLO and shape fixed), a function
that makes the common call, an aligned float32 ndarray of at most one inline RUN's vectors
with no ``out``, with the same arithmetic and checks. Anything else is declined (None,
nothing done, no state changed) and goes the general path, which converts or raises the
contract's error: another dtype or shape, ``out=``, a NaN or Inf (its InputError), a
vector whose scale needs the input DAC's overflow care, lost weights, a new HELLO (the
path is then bound to it for the next call).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from lumina_hal import codes as chip_codes
from lumina_hal.drivers.fpga import messages as msg

if TYPE_CHECKING:
    from lumina_hal.drivers.fpga.device import FpgaDevice, RunPlan

#: fast(x, out) -> the result, or None when declined (nothing done, no state changed).
FastMatmul = Callable[[Any, "np.ndarray | None"], "np.ndarray | None"]


def fast_matmul(
    device: FpgaDevice,
    hello: msg.Hello,
    rows: int,
    cols: int,
    plan: RunPlan,
    from_code: np.float32,
) -> FastMatmul:
    """The fast path of ``device`` for weights of ``rows x cols`` sent inline (``plan``)."""
    ndarray, f32, i32, empty = np.ndarray, np.dtype(np.float32), np.int32, np.empty
    absolute, rint, multiply, largest = np.abs, np.rint, np.multiply, np.maximum.reduce
    x_single: tuple[int, ...] = (cols,)
    lx = np.float32(chip_codes.levels(hello.input_bits))
    # codes.input_codes' common case: every scale above this needs no overflow care
    low, high = chip_codes._NO_OVERFLOW_SCALE, float(np.finfo(np.float32).max)
    per_run = plan.per_run
    run = device._run

    def fast(x: Any, out: np.ndarray | None) -> np.ndarray | None:
        if out is not None or type(x) is not ndarray or x.dtype is not f32:
            return None
        shape = x.shape
        if shape == x_single:
            single, x2 = True, x.reshape(1, cols)
        elif len(shape) == 2 and shape[1] == cols and 0 < shape[0] <= per_run:
            single, x2 = False, x
        else:
            return None
        if device._lost:
            return None  # the general path raises the reboot's LinkError
        if device._hello is not hello:  # a re-HELLO: bind to it for the next call
            device._install_fast_matmul((rows, cols))
            return None
        s_x = largest(absolute(x2), axis=1)  # NaN and Inf propagate here: declined below
        if single:  # float32 scalars: the same float32 steps as the arrays below
            s_single = s_x[0]
            if not low < float(s_single) <= high:
                return None
            codes = rint(x2 * (lx / s_single)).astype(i32)
        elif low < float(s_x.min()) and float(s_x.max()) <= high:
            codes = rint(x2 * (lx / s_x)[:, None]).astype(i32)  # codes.input_codes' steps
        else:
            return None
        call_index = device._call_index
        y_codes = run(plan, codes, call_index, 0, rows)
        # ((q_y (FS / L_y)) s_x) s_w in float32, step by step (§6), as FpgaDevice._matmul
        y = empty((codes.shape[0], rows), f32)
        multiply(y_codes, from_code, out=y, dtype=f32, casting="unsafe")
        y *= s_single if single else s_x[:, None]
        y *= np.float32(device._scale)
        device._call_index = call_index + 1
        return y[0] if single else y

    return fast
