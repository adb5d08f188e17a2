"""The integer codes a host and a chip exchange (docs/physics.md §2-3, docs/protocol.md).

Host drivers and the twin share these conventions: the host turns weights into heater codes and
inputs into DAC codes, the chip turns ADC codes back into numbers. They live in the core so that
drivers never import the twin or the simulators.
"""

from __future__ import annotations

import math

import numpy as np

from lumina_hal.errors import InputError


def levels(bits: int) -> int:
    """Positive code levels of a signed symmetric converter: codes lie in [-L, L]."""
    return (1 << (bits - 1)) - 1


def envelopes_from_steps(
    rows: int, cols: int, k_row_db: float, k_col_db: float
) -> tuple[np.ndarray, np.ndarray]:
    """(R_i, C_j) from the per-row and per-column loss steps (what a host learns in HELLO)."""
    row_env = 10.0 ** ((rows - 1 - np.arange(rows)) * k_row_db / 20.0)
    col_env = 10.0 ** ((cols - 1 - np.arange(cols)) * k_col_db / 20.0)
    return row_env, col_env


def heater_codes(
    weights: np.ndarray,
    weight_bits: int,
    loss_steps_db: tuple[float, float],
    threads: int = 1,
) -> tuple[np.ndarray, float]:
    """Host side of programming (steps 1-4): weights -> wire codes and the scale s_w.

    Codes are ``dac_code | negative << weight_bits`` (int32), what travels to the chip and
    what the weights id checksums. ``loss_steps_db`` = (k_r, k_c), the loss per row and per
    column pitch that factory calibration compensates (an FPGA reports them in HELLO).
    Computed by the compiled kernel (lk_heater_codes, ``threads`` threads) when it is built,
    else by :func:`heater_codes_numpy`; the two differ only where a code lies within one
    rounding of a half step (libm's acos against numpy's, ~1e-12 per cell).
    """
    w = np.ascontiguousarray(weights, dtype=np.float64)
    rows, cols = w.shape
    row_env, col_env = envelopes_from_steps(rows, cols, *loss_steps_db)
    try:
        from lumina_hal._lumina_kernel import ffi, lib
    except ImportError:  # a source tree without the compiled kernel
        return heater_codes_numpy(w, weight_bits, loss_steps_db)
    codes = np.empty((rows, cols), dtype=np.int32)
    scale = ffi.new("double *")
    rc = lib.lk_heater_codes(
        ffi.from_buffer("double[]", w), rows, cols, weight_bits,
        ffi.from_buffer("double[]", row_env), ffi.from_buffer("double[]", col_env),
        ffi.from_buffer("int32_t[]", codes, require_writable=True), scale, max(1, threads),
    )  # fmt: skip
    if rc != lib.LK_OK:
        raise InputError(f"weights cannot be programmed (kernel code {rc}: NaN or Inf?)")
    return codes, float(scale[0])


def heater_codes_numpy(
    weights: np.ndarray, weight_bits: int, loss_steps_db: tuple[float, float]
) -> tuple[np.ndarray, float]:
    """:func:`heater_codes` step by step in numpy (the formula as docs/physics.md writes it)."""
    w = np.asarray(weights, dtype=np.float64)
    rows, cols = w.shape
    scale = float(np.max(np.abs(w))) or 1.0
    w_n = w / scale  # 1. normalize
    row_env, col_env = envelopes_from_steps(rows, cols, *loss_steps_db)  # 2. loss
    transmission = np.abs(w_n) / (row_env[:, None] * col_env[None, :])
    phase = 2.0 * np.arccos(np.clip(transmission, 0.0, 1.0))  # 3. target phase
    dac_max = (1 << weight_bits) - 1  # 4. heater DAC
    dac_codes = np.rint(np.sqrt(phase / math.pi) * dac_max).astype(np.int64)
    negative = (w_n < 0).astype(np.int64) << weight_bits
    return (dac_codes | negative).astype(np.int32), scale


def input_codes(x: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Input DAC codes (float32 arithmetic, §3 step 1): (rint(x (L_x / s_x)), s_x) per vector.

    These integers are what an FPGA receives; ``quantize_inputs`` divides them by L_x.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    lx = np.float32(levels(bits))
    s_x = np.max(np.abs(x), axis=1).astype(np.float32)
    safe = np.where(s_x == 0, np.float32(1), s_x)
    to_code = lx / safe  # float32 division
    return np.rint(x * to_code[:, None]), s_x
