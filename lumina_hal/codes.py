"""The integer codes a host and a chip exchange (docs/physics.md §2-3, docs/protocol.md).

Host drivers and the twin share these conventions: the host turns weights into heater codes and
inputs into DAC codes, the chip turns ADC codes back into numbers. They live in the core so that
drivers never import the twin or the simulators.
"""

from __future__ import annotations

import math

import numpy as np

from lumina_hal.errors import InputError

#: Heater phase of the full-scale DAC code in the v1 mapping, rad: φ_q = π (q / q_max)²
#: (docs/physics.md §2 step 4).
HEATER_RANGE_RAD = math.pi


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
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Host side of programming (steps 1-4): weights -> wire codes and the scale s_w.

    Codes are ``dac_code | negative << weight_bits`` (int32), what travels to the chip and
    what the weights id checksums. ``loss_steps_db`` = (k_r, k_c), the loss per row and per
    column pitch that factory calibration compensates (an FPGA reports them in HELLO).
    Computed by the compiled kernel (lk_heater_codes, ``threads`` threads) when it is built,
    else by :func:`heater_codes_numpy`, which gives the same bits. ``out``: a writeable
    C-contiguous int32 array of the matrix's shape to write the codes into (reused memory).
    """
    # float32 stays float32 (the kernel widens each row exactly): the same codes as of its
    # float64 copy, without a float64 copy of the whole matrix.
    single = isinstance(weights, np.ndarray) and weights.dtype == np.float32
    w = np.ascontiguousarray(weights, dtype=np.float32 if single else np.float64)
    rows, cols = w.shape
    row_env, col_env = envelopes_from_steps(rows, cols, *loss_steps_db)
    try:
        from lumina_hal._lumina_kernel import ffi, lib
    except ImportError:  # a source tree without the compiled kernel
        return heater_codes_numpy(w.astype(np.float64), weight_bits, loss_steps_db)
    codes = (
        out
        if out is not None
        and out.shape == (rows, cols)
        and out.dtype == np.int32
        and out.flags.c_contiguous
        and out.flags.writeable
        else np.empty((rows, cols), dtype=np.int32)
    )
    scale = ffi.new("double *")
    entry, matrix = (
        (lib.lk_heater_codes_f32, ffi.from_buffer("float[]", w))
        if single
        else (lib.lk_heater_codes, ffi.from_buffer("double[]", w))
    )
    rc = entry(
        matrix, rows, cols, weight_bits,
        ffi.from_buffer("double[]", row_env), ffi.from_buffer("double[]", col_env),
        ffi.from_buffer("int32_t[]", codes, require_writable=True), scale, max(1, threads),
    )  # fmt: skip
    if rc != lib.LK_OK:
        raise InputError(f"weights cannot be programmed (kernel code {rc}: NaN or Inf?)")
    return codes, float(scale[0])


_PIO2_HI, _PIO2_LO = 1.57079632679489655800e00, 6.12323399573676603587e-17
_ACOS_P = (
    1.66666666666666657415e-01, -3.25565818622400915405e-01, 2.01212532134862925881e-01,
    -4.00555345006794114027e-02, 7.91534994289814532176e-04, 3.47933107596021167570e-05,
)  # fmt: skip
_ACOS_Q = (
    -2.40339491173441421878e00, 2.02094576023350569471e00, -6.88283971605453293030e-01,
    7.70381505559019352791e-02,
)  # fmt: skip


def _acos_ratio(z: np.ndarray) -> np.ndarray:
    p = _ACOS_P
    num = z * (p[0] + z * (p[1] + z * (p[2] + z * (p[3] + z * (p[4] + z * p[5])))))
    q = _ACOS_Q
    return num / (1.0 + z * (q[0] + z * (q[1] + z * (q[2] + z * q[3]))))


def acos_poly(t: np.ndarray) -> np.ndarray:
    """arccos on [0, 1] as docs/physics.md section 2 ("Arithmetic") defines it: fdlibm's
    e_acos.c rational approximation, +, -, *, / and sqrt only, so the C kernel
    (lk_heater_codes) computes the same bits; within 1 ulp of arccos."""
    x = np.asarray(t, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        small = _PIO2_HI - (x - (_PIO2_LO - x * _acos_ratio(x * x)))
        z = (1.0 - x) * 0.5
        s = np.sqrt(z)
        df = (s.view(np.uint64) & np.uint64(0xFFFFFFFF00000000)).view(np.float64)
        c = (z - df * df) / (s + df)
        large = 2.0 * (df + (_acos_ratio(z) * s + c))
    return np.where(x < 0.5, small, np.where(x == 1.0, 0.0, large))


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
    phase = 2.0 * acos_poly(np.clip(transmission, 0.0, 1.0))  # 3. target phase
    dac_max = (1 << weight_bits) - 1  # 4. heater DAC
    dac_codes = np.rint(np.sqrt(phase / HEATER_RANGE_RAD) * dac_max).astype(np.int64)
    negative = (w_n < 0).astype(np.int64) << weight_bits
    return (dac_codes | negative).astype(np.int32), scale


# Above this scale L / s_x is finite for any L < 2^24 (float32 overflows near 2^128), so no
# zero, subnormal or overflow handling is needed: the fast path of input_codes.
_NO_OVERFLOW_SCALE = 2.0**-100


def input_scales(x: np.ndarray) -> np.ndarray:
    """s_x = max_j |x_j| per vector of a float32 batch (NaN or Inf propagate)."""
    return np.max(np.abs(x), axis=1).astype(np.float32, copy=False)


def input_codes(
    x: np.ndarray, bits: int, s_x: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Input DAC codes (float32 arithmetic, §3 step 1): (rint(x (L_x / s_x)), s_x) per vector.

    These integers are what an FPGA receives; ``quantize_inputs`` divides them by L_x.
    ``s_x``: ``input_scales(x)`` when the caller has already computed it (to check it).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    lx = np.float32(levels(bits))
    if s_x is None:
        s_x = input_scales(x)
    if s_x.size and float(s_x.min()) > _NO_OVERFLOW_SCALE:  # the common case, cheaply:
        return np.rint(x * (lx / s_x)[:, None]), s_x  # the same float32 steps as below
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


def output_values(
    y_codes: np.ndarray,
    from_code: np.float32,
    s_x: np.ndarray,
    weight_scale: float,
    out: np.ndarray,
) -> None:
    """Host side of the output ADC (docs/protocol.md §6): ``((q_y (FS / L_y)) s_x) s_w`` in
    float32, step by step, written into ``out`` (batch, rows); ``s_x`` per vector."""
    np.multiply(y_codes, from_code, out=out, dtype=np.float32, casting="unsafe")
    out *= s_x[:, None]
    out *= np.float32(weight_scale)
