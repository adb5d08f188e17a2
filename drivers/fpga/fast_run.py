"""The fused per-call path of an FPGA device: ``PhotonicDevice.matmul`` straight to one RUN.

A small RUN's round trip is a few tens of µs; the general call path (the contract's checks
and conversions, ``_matmul``'s batching, the input DAC's general cases) cost as much again
in Python. ``fast_matmul`` builds, once per load (weights, HELLO and shape fixed), a function
that makes the common call, an aligned float32 ndarray of at most one inline RUN's vectors
with no ``out``, with the general path's functions (``codes.input_codes`` and
``codes.output_values``). Anything else is declined (None, nothing done, no state
changed) and goes the general path, which converts or raises the contract's error: another
dtype or shape, ``out=``, a NaN or Inf (its InputError), lost weights, a new HELLO (the
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
    ndarray, f32, empty = np.ndarray, np.dtype(np.float32), np.empty
    x_single: tuple[int, ...] = (cols,)
    input_bits, largest = hello.input_bits, float(np.finfo(np.float32).max)
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
        s_x = chip_codes.input_scales(x2)
        if not float(s_x.max()) <= largest:  # NaN or Inf: the general path's InputError
            return None
        codes_f, _ = chip_codes.input_codes(x2, input_bits, s_x)  # the general path's DAC
        call_index = device._call_index
        y_codes = run(plan, codes_f.astype(np.int32), call_index, 0, rows)
        y = empty((x2.shape[0], rows), f32)
        chip_codes.output_values(y_codes, from_code, s_x, device._scale, y)
        device._call_index = call_index + 1
        return y[0] if single else y

    return fast
