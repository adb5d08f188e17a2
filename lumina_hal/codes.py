"""The integer codes a host and a chip exchange (docs/physics.md §2-3, docs/protocol.md).

Host drivers and the twin share these conventions: the host turns weights into heater codes and
inputs into DAC codes, the chip turns ADC codes back into numbers. They live in the core so that
drivers never import the twin or the simulators.
"""

from __future__ import annotations

import math

import numpy as np


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
    weights: np.ndarray, weight_bits: int, loss_steps_db: tuple[float, float]
) -> tuple[np.ndarray, float]:
    """Host side of programming (steps 1-4): weights -> wire codes and the scale s_w.

    Codes are ``dac_code | negative << weight_bits`` (int32), what travels to the chip and
    what the weights id checksums. ``loss_steps_db`` = (k_r, k_c), the loss per row and per
    column pitch that factory calibration compensates (an FPGA reports them in HELLO).
    """
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
    with np.errstate(over="ignore", divide="ignore"):
        to_code = lx / safe  # float32 division
    # A subnormal-range vector (L / s_x overflows): x and s_x scaled by 2^64 first, which is
    # exact, so the arithmetic is the same with an unbounded exponent range (as the kernel).
    tiny = np.isinf(to_code)
    if tiny.any():
        up = np.where(tiny, np.float32(2.0**64), np.float32(1)).astype(np.float32)
        to_code = lx / (safe * up)
        return np.rint((x * up[:, None]) * to_code[:, None]), s_x
    return np.rint(x * to_code[:, None]), s_x
