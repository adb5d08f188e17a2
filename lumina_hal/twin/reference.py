"""Pure-numpy reference of the twin's chip model: the test oracle and the benchmark baseline.

Unfused and readable, one step of docs/physics.md per line. Arithmetic that the C kernel
does in float32 (the converters) is done in float32 here too, so DAC and ADC codes agree
bit for bit wherever the accumulated sums agree; sums are float64 here.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass

import numpy as np

from lumina_hal.codes import heater_codes, input_codes, levels
from lumina_hal.twin import physics, reference_normals
from lumina_hal.twin.physics import PhysicsParams


def serial_key(serial: str) -> int:
    """64-bit key of a device serial: the seed of its fabrication draws."""
    return int.from_bytes(hashlib.sha256(serial.encode("utf-8")).digest()[:8], "little")


# splitmix64 has one definition, shared with the per-call normals (reference_normals).
_splitmix64 = reference_normals.splitmix64
_sm = reference_normals.splitmix64_int


_ZIG_R = 3.6541528853610088  # right edge of the ziggurat's base layer (docs/kernel.md)
_ZIG_LAYERS = 256
_M64 = (1 << 64) - 1
_GOLDEN_INT = 0x9E3779B97F4A7C15


@functools.lru_cache(maxsize=1)
def ziggurat_tables() -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """(x_i 2^-23 as float32, k_i as uint32, f(x_i)) of the kernel's 256-layer float ziggurat,
    built as native/lk_rng.c builds them (Marsaglia and Tsang 2000), in double precision."""

    def density(x: float) -> float:
        return math.exp(-0.5 * x * x)

    r = _ZIG_R
    v = r * density(r) + math.sqrt(math.pi / 2.0) * math.erfc(r / math.sqrt(2.0))
    x = [0.0] * (_ZIG_LAYERS + 1)
    x[0], x[1] = v / density(r), r
    for i in range(1, _ZIG_LAYERS - 1):
        x[i + 1] = math.sqrt(-2.0 * math.log(density(x[i]) + v / x[i]))
    widths = np.array([x[i] * 2.0**-23 for i in range(_ZIG_LAYERS)], dtype=np.float32)
    ks = np.array([math.ceil(2.0**23 * x[i + 1] / x[i]) for i in range(_ZIG_LAYERS)], np.uint32)
    f = (*(density(x[i]) for i in range(_ZIG_LAYERS)), 1.0)
    return widths, ks, f


class _Xoshiro:
    """xoshiro256++ keyed as lk_rng_panel_key(h, stream); 32-bit words, low half first."""

    def __init__(self, h: int, stream: int) -> None:
        k = _sm(h ^ stream)
        self.s = [_sm((k + i * _GOLDEN_INT) & _M64) for i in range(4)]
        self.buf, self.have = 0, False

    def next32(self) -> int:
        if self.have:
            self.have = False
            return self.buf >> 32
        s = self.s
        total = (s[0] + s[3]) & _M64
        self.buf = ((((total << 23) | (total >> 41)) & _M64) + s[0]) & _M64
        t = (s[1] << 17) & _M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = ((s[3] << 45) | (s[3] >> 19)) & _M64
        self.have = True
        return self.buf & 0xFFFFFFFF


def _zig_slow(g: _Xoshiro, w: int) -> float:
    """The ziggurat's rare path (lk_zig_slow in native/lk_rng.c), word by word."""
    widths, ks, f = ziggurat_tables()
    while True:
        layer, m, negative = w & 0xFF, w >> 9, (w >> 8) & 1
        x = float(np.float32(m) * widths[layer])
        if m < ks[layer]:
            return -x if negative else x
        if layer == 0:  # the tail beyond r (Marsaglia 1964)
            while True:
                a = -math.log(((g.next32() >> 8) + 1) * 2.0**-24) / _ZIG_R
                b = -math.log(((g.next32() >> 8) + 1) * 2.0**-24)
                if b + b > a * a:
                    x = float(np.float32(_ZIG_R + a))
                    return -x if negative else x
        y = f[layer] + ((g.next32() >> 8) * 2.0**-24) * (f[layer + 1] - f[layer])
        if y < math.exp(-0.5 * x * x):
            return -x if negative else x
        w = g.next32()


def cell_hashes(key: int, rows: int, cols: int) -> np.ndarray:
    """h_ij = sm(sm(key ^ sm(0)) ^ (i << 32 | j)): one 64-bit hash per cell (uint64)."""
    i = np.arange(rows, dtype=np.uint64)[:, None]
    j = np.arange(cols, dtype=np.uint64)[None, :]
    base = _splitmix64(np.uint64(key) ^ _splitmix64(np.uint64(0)))
    return _splitmix64(base ^ ((i << np.uint64(32)) | j))


def cell_normals(key: int, stream: int, rows: int, cols: int) -> np.ndarray:
    """Standard normals for cells (i, j), each a pure function of (key, stream, i, j).

    Stream 0 (fabrication) uses the low 32-bit word of the cell hash, stream 1 (arm
    imbalance) the high one, each through the kernel's float ziggurat; a word that misses
    its layer's rectangle continues on the xoshiro256++ stream keyed (h_ij, stream)
    (docs/physics.md section 2 step 5). A cell's value does not depend on the block size.
    """
    widths, ks, _ = ziggurat_tables()
    h = cell_hashes(key, rows, cols)
    w = ((h >> np.uint64(32 * stream)) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    layer = w & np.uint32(0xFF)
    m = w >> np.uint32(9)
    x = m.astype(np.float32) * widths[layer]
    x = np.where(w & np.uint32(0x100), -x, x).astype(np.float64)
    for flat in np.flatnonzero(m >= ks[layer]):
        x.flat[flat] = _zig_slow(_Xoshiro(int(h.flat[flat]), stream), int(w.flat[flat]))
    return x


_TWO_OVER_PI = 6.36619772367581382433e-01
_PIO2_1, _PIO2_1T = 1.57079632673412561417e00, 6.07710050650619224932e-11
_COS_C = (
    4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05,
    -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11,
)  # fmt: skip
_SIN_S = (
    -1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04,
    2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10,
)  # fmt: skip


def _horner(z: np.ndarray, coefficients: tuple[float, ...]) -> np.ndarray:
    """c0 + z (c1 + z (c2 + ...)), innermost first, as the C writes it."""
    acc = coefficients[-1] * z
    for c in reversed(coefficients[1:-1]):
        acc = z * (c + acc)
    return coefficients[0] + acc


def cos_poly(x: np.ndarray) -> np.ndarray:
    """cos as docs/physics.md section 2 ("Arithmetic") defines it (native/lk_program.c's
    cos_poly): Cody-Waite reduction by pi/2 and fdlibm's kernel polynomials, +, -, *, rint and
    floor only, so numpy and C give the same bits; within 2 ulp of cos for |x| < 1.6e6."""
    x = np.asarray(x, dtype=np.float64)
    k = np.rint(x * _TWO_OVER_PI)
    r = (x - k * _PIO2_1) - k * _PIO2_1T
    z = r * r
    c = (1.0 - 0.5 * z) + (z * z) * _horner(z, _COS_C)
    s = r + (r * z) * _horner(z, _SIN_S)
    n = k - 4.0 * np.floor(k * 0.25)
    return np.where(n == 0.0, c, np.where(n == 1.0, -s, np.where(n == 2.0, -c, s)))


def neighbour_sums(phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sums over the 4 edge and the 4 diagonal neighbours, zero outside the block."""
    padded = np.pad(phi, 1)
    edge = padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]
    diag = padded[:-2, :-2] + padded[:-2, 2:] + padded[2:, :-2] + padded[2:, 2:]
    return edge, diag


@dataclass(frozen=True)
class ProgrammedArray:
    """What load_weights leaves on the chip (docs/physics.md section 2)."""

    codes: np.ndarray  # int32 (r, c): heater DAC code | (negative << weight_bits)
    scale: float  # s_w = max|W|
    sign: np.ndarray  # float64 (r, c), ±1
    phase_static: np.ndarray  # φ_x: after DAC, fabrication scatter and crosstalk (rad)
    arm_imbalance_um: np.ndarray  # ΔL_ij (µm)
    row_envelope: np.ndarray  # R_i
    col_envelope: np.ndarray  # C_j
    min_amplitude: float  # A_min, field transmission of the lossiest cell

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.codes.shape
        return rows, cols

    def effective(self, p: PhysicsParams) -> np.ndarray:
        """W_eff at p.temperature_c (normalized units, float64)."""
        phase = self.phase_static + physics.drift_phase_per_um(p) * self.arm_imbalance_um
        envelope = self.row_envelope[:, None] * self.col_envelope[None, :]
        return self.sign * envelope * cos_poly(phase / 2.0)


def program_codes(
    codes: np.ndarray,
    scale: float,
    p: PhysicsParams,
    serial: str,
    array_shape: tuple[int, int] | None = None,
) -> ProgrammedArray:
    """Chip side of programming (steps 4-7): wire codes -> static phases of this device.

    This is all the chip needs from the host, so a firmware emulator given the same codes
    reproduces the twin exactly.
    """
    codes = np.asarray(codes, dtype=np.int32)
    rows, cols = codes.shape
    array_rows, array_cols = array_shape if array_shape is not None else (rows, cols)
    row_env, col_env, a_min = physics.envelopes(p, rows, cols, array_rows, array_cols)
    dac_max = (1 << p.weight_bits) - 1
    sign = np.where((codes >> p.weight_bits) & 1, -1.0, 1.0)
    phase_q = math.pi * ((codes & dac_max) / dac_max) ** 2  # 4. heater law
    key = serial_key(serial)
    scatter = np.clip(cell_normals(key, 0, rows, cols), -3.0, 3.0)  # 5. fabrication
    phase_f = phase_q * (1.0 + p.fab_sigma * scatter)
    edge, diag = neighbour_sums(phase_f)  # 6. crosstalk
    kappa2 = p.crosstalk * physics.CROSSTALK_DIAGONAL_RATIO
    phase_x = phase_f + p.crosstalk * edge + kappa2 * diag
    arm_um = p.arm_imbalance_um * cell_normals(key, 1, rows, cols)  # 7. drift source
    return ProgrammedArray(codes, scale, sign, phase_x, arm_um, row_env, col_env, a_min)


def program(
    weights: np.ndarray,
    p: PhysicsParams,
    serial: str,
    array_shape: tuple[int, int] | None = None,
) -> ProgrammedArray:
    """Weights -> programmed array (docs/physics.md section 2, steps 1-7): host then chip."""
    rows, cols = np.shape(weights)
    array_rows, array_cols = array_shape if array_shape is not None else (rows, cols)
    # rounded to float32, as an FPGA reports them in HELLO, so both hosts compute equal codes
    k_row, k_col = (float(np.float32(k)) for k in physics.loss_steps_db(p, array_rows, array_cols))
    codes, scale = heater_codes(weights, p.weight_bits, (k_row, k_col))
    return program_codes(codes, scale, p, serial, array_shape)


def quantize_inputs(x: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Input DAC (float32): returns (x_n, s_x) per docs/physics.md section 3 step 1."""
    codes, s_x = input_codes(x, bits)
    return (codes / np.float32(levels(bits))).astype(np.float32), s_x


def adc(v: np.ndarray, bits: int, full_scale: float) -> tuple[np.ndarray, int]:
    """ADC (float32): codes = clip(rint(v * (L/FS)), -L, L) and the clipped count."""
    ly = np.float32(levels(bits))
    to_code = ly / np.float32(full_scale)
    codes = np.rint(np.asarray(v, dtype=np.float32) * to_code)
    clipped = int(np.count_nonzero(np.abs(codes) >= ly))
    return np.clip(codes, -ly, ly).astype(np.float32), clipped


def full_scale(p: PhysicsParams, cols: int) -> float:
    """FS = adc_full_scale sqrt(c), rounded to float32 as the kernel holds it."""
    return float(np.float32(p.adc_full_scale * math.sqrt(cols)))


@dataclass(frozen=True)
class KernelNoise:
    """The kernel's own normals for one call (docs/physics.md section 4): with it the
    reference draws what the native engine draws, so the two differ only by arithmetic."""

    seed: int
    call_index: int
    first_vector: int = 0

    def normals(self, batch: int, rows: int) -> np.ndarray:
        z = reference_normals.batch_normals(
            self.seed, self.call_index, self.first_vector, batch, rows
        )
        return z.astype(np.float64)


def forward(
    x: np.ndarray,
    programmed: ProgrammedArray,
    p: PhysicsParams,
    rng: np.random.Generator | KernelNoise | None,
) -> tuple[np.ndarray, int]:
    """One call for a batch x (batch, c): returns (y (batch, r) float32, clipped count).
    Normals come from `rng`: a numpy generator, or the kernel's streams (KernelNoise)."""
    cols = programmed.shape[1]
    w_eff = programmed.effective(p)
    fs = full_scale(p, cols)
    x_n, s_x = quantize_inputs(x, p.input_bits)  # 1. input DAC
    x_n64 = x_n.astype(np.float64)
    u = x_n64 @ w_eff.T  # 2. matmul
    s2 = (x_n64**2) @ (w_eff**2).T
    q = (x_n64**2) @ (programmed.col_envelope**2)
    v = u
    if p.noise:
        sigma_phi = physics.phase_noise_sigma_rad(p)  # 3. phase noise
        row_sq = programmed.row_envelope**2
        var_phase = sigma_phi**2 / 4.0 * np.maximum(row_sq[None, :] * q[:, None] - s2, 0.0)
        det = physics.detector_noise(p, cols, programmed.min_amplitude)  # 4. detector
        var_det = det.c0 + det.c1 * np.abs(u) + det.c2 * u * u
        assert rng is not None, "noise on needs a generator"
        z = rng.normals(*u.shape) if isinstance(rng, KernelNoise) else rng.standard_normal(u.shape)
        v = u + np.sqrt(var_phase + var_det) * z  # 5. draw
    codes, clipped = adc(v, p.output_bits, fs)  # 6. ADC
    from_code = np.float32(fs) / np.float32(levels(p.output_bits))
    y = (codes * from_code) * s_x[:, None]  # 7. float units
    y = y * np.float32(programmed.scale)
    y[s_x == 0] = 0.0
    return y.astype(np.float32), clipped


def forward_per_cell_phase_noise(
    x: np.ndarray, programmed: ProgrammedArray, p: PhysicsParams, rng: np.random.Generator
) -> np.ndarray:
    """Brute-force oracle: one phase draw per cell per vector, exact cosine, no linearization.

    Returns the noisy analog outputs u + δu (normalized units, before detector noise and
    ADC) for comparison with the one-normal-per-output formulation.
    """
    x_n, _ = quantize_inputs(x, p.input_bits)
    sigma_phi = physics.phase_noise_sigma_rad(p)
    phase = programmed.phase_static + physics.drift_phase_per_um(p) * programmed.arm_imbalance_um
    envelope = programmed.row_envelope[:, None] * programmed.col_envelope[None, :]
    out = np.empty((x_n.shape[0], programmed.shape[0]))
    for b, xb in enumerate(x_n.astype(np.float64)):
        noisy_phase = phase + sigma_phi * rng.standard_normal(phase.shape)
        w_noisy = programmed.sign * envelope * np.cos(noisy_phase / 2.0)
        out[b] = w_noisy @ xb
    return out
