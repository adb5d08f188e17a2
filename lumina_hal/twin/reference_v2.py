"""Numpy reference of physics v2 (docs/physics.md §7): the oracle of the C engine (lk_v2.c).

Host side: the target phases are pre-compensated with the chip's calibration state taken at
``calibration_temperature_c`` and quantised by a heater DAC spanning [0, 2π]. Chip side: the
raw cell model at the present temperature (heater efficiency ∝ n_T, imbalance phase from
the exact index integral). Per call: exact phase-noise statistics, AR(1)-correlated phase
noise with the shifter's bandwidth (restarting at each call), balanced detector noise,
converters as in v1, normals from v1's keyed stream (§4, ``reference_normals``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lumina_hal.codes import envelopes_from_steps
from lumina_hal.twin import physics, physics_v2, reference_normals
from lumina_hal.twin.physics_v2 import V2Params
from lumina_hal.twin.reference import (
    adc,
    cell_normals,
    full_scale,
    neighbour_sums,
    quantize_inputs,
    serial_key,
)

_FIXED_POINT_ITERATIONS = 50
HEATER_RANGE_RAD = 2.0 * math.pi  # v2 heater DAC full scale (§7.3)


@dataclass(frozen=True)
class RawChip:
    """What fabrication made, drawn from the serial for the whole array (§7.1)."""

    gain_error: np.ndarray  # ε
    arm_imbalance_um: np.ndarray  # ΔL
    crosstalk_edge: float
    crosstalk_diagonal: float
    phase_bias_rad: np.ndarray | None = None  # θ0 (§7.1: 0; a snapshot twin's, §7.10)

    def imbalance_phase(self, p: physics.PhysicsParams, temperature_c: float) -> np.ndarray:
        """θ(T) = θ0 + (2π/λ) N(T) ΔL of every cell (§7.2), rad."""
        theta = physics_v2.imbalance_phase_per_um(p, temperature_c) * self.arm_imbalance_um
        return theta if self.phase_bias_rad is None else theta + self.phase_bias_rad


@dataclass(frozen=True)
class CalibrationState:
    """What the host knows, taken at ``temperature_c`` (§7.3)."""

    temperature_c: float
    gain_error: np.ndarray  # ε̂
    phase_offset_rad: np.ndarray  # θ̂ = θ(T_c) + r_θ
    crosstalk_edge: float
    crosstalk_diagonal: float


def raw_chip(v: V2Params, serial: str, rows: int, cols: int) -> RawChip:
    p = v.base
    key = serial_key(serial)
    eps = p.fab_sigma * np.clip(cell_normals(key, 0, rows, cols), -3.0, 3.0)
    arm = p.arm_imbalance_um * cell_normals(key, 1, rows, cols)
    return RawChip(eps, arm, p.crosstalk, p.crosstalk * physics.CROSSTALK_DIAGONAL_RATIO)


def calibration_keys(serial: str) -> tuple[int, int]:
    """Keys of the calibration residual draws (§7.3): ``cell_normals`` has two streams
    per key (the two 32-bit words of the cell hash), so the residuals use keys of their own."""
    return serial_key(serial + "/calibration"), serial_key(serial + "/calibration-crosstalk")


@dataclass(frozen=True)
class Residuals:
    """Errors a calibration leaves (§7.3): r_ε, r_θ per cell (rad), r_κ relative."""

    gain_error: np.ndarray
    phase_rad: np.ndarray
    crosstalk: float


def calibration_residuals(
    v: V2Params, keys: tuple[int, int], rows: int, cols: int, sigma_gamma: float
) -> Residuals:
    """r_ε ~ N(0, (ρ σ_γ)²), r_θ ~ N(0, σ_θ,res²) (streams 0, 1 of ``keys[0]``) and
    r_κ ~ N(0, ρ²/(rows cols)) (cell (0, 0) of stream 0 of ``keys[1]``), §7.3."""
    rho = v.calibration_residual
    cell_key, kappa_key = keys
    r_eps = rho * sigma_gamma * cell_normals(cell_key, 0, rows, cols)
    r_theta = v.calibration_phase_residual_rad * cell_normals(cell_key, 1, rows, cols)
    # κ is one number fitted over every cell: its relative error is ρ / sqrt(cells) (§7.3)
    r_kappa = rho / math.sqrt(rows * cols) * float(cell_normals(kappa_key, 0, 1, 1)[0, 0])
    return Residuals(r_eps, r_theta, r_kappa)


def factory_calibration(v: V2Params, chip: RawChip, serial: str) -> CalibrationState:
    """The calibration state at T_c with residuals ρ and σ_θ,res drawn from the serial."""
    p = v.base
    rows, cols = chip.gain_error.shape
    t_c = p.calibration_temperature_c
    r = calibration_residuals(v, calibration_keys(serial), rows, cols, p.fab_sigma)
    r_eps, r_theta, r_kappa = r.gain_error, r.phase_rad, r.crosstalk
    theta = chip.imbalance_phase(p, t_c)
    return CalibrationState(
        t_c,
        chip.gain_error + r_eps,
        theta + r_theta,
        chip.crosstalk_edge * (1.0 + r_kappa),
        chip.crosstalk_diagonal * (1.0 + r_kappa),
    )


@dataclass(frozen=True)
class ProgrammedV2:
    codes: np.ndarray  # heater DAC codes | sign << bits (DAC spans [0, 2π])
    scale: float
    sign: np.ndarray
    heater_phase: np.ndarray  # φ_q (rad, at 25 °C efficiency)
    row_envelope: np.ndarray
    col_envelope: np.ndarray
    min_amplitude: float


def program(
    weights: np.ndarray, v: V2Params, cal: CalibrationState, array_shape: tuple[int, int]
) -> ProgrammedV2:
    """Host side (§7.3): targets, pre-compensation with ``cal``, heater DAC over [0, 2π]."""
    p = v.base
    w = np.asarray(weights, dtype=np.float64)
    rows, cols = w.shape
    scale = float(np.max(np.abs(w))) or 1.0
    w_n = w / scale
    k_row, k_col = (float(np.float32(k)) for k in physics.loss_steps_db(p, *array_shape))
    row_env, col_env = envelopes_from_steps(rows, cols, k_row, k_col)
    t = np.abs(w_n) / (row_env[:, None] * col_env[None, :])
    target = 2.0 * np.arccos(np.clip(t, 0.0, 1.0))
    offset = cal.phase_offset_rad[:rows, :cols]
    heated = np.clip(target - offset, 0.0, 2.0 * math.pi)
    for _ in range(_FIXED_POINT_ITERATIONS):
        edge, diag = neighbour_sums(heated)
        nxt = target - offset - cal.crosstalk_edge * edge - cal.crosstalk_diagonal * diag
        nxt = np.clip(nxt, 0.0, 2.0 * math.pi)
        done = np.max(np.abs(nxt - heated)) < 1e-9
        heated = nxt
        if done:
            break
    efficiency = physics_v2.heater_efficiency(p, cal.temperature_c)
    command = heated / ((1.0 + cal.gain_error[:rows, :cols]) * efficiency)
    command = np.clip(command, 0.0, 2.0 * math.pi)
    dac_max = (1 << p.weight_bits) - 1
    q = np.rint(np.sqrt(command / HEATER_RANGE_RAD) * dac_max).astype(np.int64)
    negative = (w_n < 0).astype(np.int64) << p.weight_bits
    return program_codes((q | negative).astype(np.int32), scale, v, array_shape)


def program_codes(
    codes: np.ndarray, scale: float, v: V2Params, array_shape: tuple[int, int]
) -> ProgrammedV2:
    """Heater codes as loaded (``load_heater_codes``, or the end of ``program``): φ_q =
    2π (q / q_max)², σ from the sign bit, the nominal envelopes of the loss steps."""
    p = v.base
    rows, cols = codes.shape
    dac_max = (1 << p.weight_bits) - 1
    q = codes.astype(np.int64) & dac_max
    phase_q = HEATER_RANGE_RAD * (q / dac_max) ** 2
    sign = np.where((codes.astype(np.int64) >> p.weight_bits) & 1, -1.0, 1.0)
    k_row, k_col = (float(np.float32(k)) for k in physics.loss_steps_db(p, *array_shape))
    row_env, col_env = envelopes_from_steps(rows, cols, k_row, k_col)
    a_min = physics.envelopes(p, rows, cols, *array_shape)[2]
    return ProgrammedV2(codes.astype(np.int32), scale, sign, phase_q, row_env, col_env, a_min)


def static_phase(prog: ProgrammedV2, chip: RawChip, v: V2Params) -> np.ndarray:
    """Chip side at v's temperature: (1+ε) φ_q η(T) + crosstalk + θ(T) (§7.3)."""
    p = v.base
    rows, cols = prog.codes.shape
    heated = (1.0 + chip.gain_error[:rows, :cols]) * prog.heater_phase
    heated = heated * physics_v2.heater_efficiency(p, p.temperature_c)
    edge, diag = neighbour_sums(heated)
    theta = chip.imbalance_phase(p, p.temperature_c)[:rows, :cols]
    return heated + chip.crosstalk_edge * edge + chip.crosstalk_diagonal * diag + theta


@dataclass(frozen=True)
class CallConstants:
    """The per-call constants of §7.5-7.6, computed once for both engines (float64)."""

    noise: bool
    correlated: bool  # per-cell AR(1) (f_φ < f_s/2); else the white shortcut
    sigma_rad: float
    ar1: float  # a
    innovation_rad: float  # k = sqrt(1 − a²) σ
    mean_factor: float  # white: e^{−σ²/8}
    var_a: float
    var_b: float
    detector: physics.DetectorNoise
    full_scale: float


def call_constants(prog: ProgrammedV2, v: V2Params) -> CallConstants:
    p = v.base
    cols = prog.codes.shape[1]
    sigma = physics_v2.phase_noise_sigma_rad(p) if p.noise else 0.0
    a = physics_v2.ar1_coefficient(v)
    correlated = p.noise and sigma > 0 and v.shifter_bandwidth_hz < v.symbol_rate_hz / 2
    big_a, big_b = physics_v2.phase_noise_variance_terms(sigma)
    return CallConstants(
        noise=p.noise,
        correlated=correlated,
        sigma_rad=sigma,
        ar1=a,
        innovation_rad=math.sqrt(1.0 - a * a) * sigma,
        mean_factor=physics_v2.phase_noise_mean_factor(sigma),
        var_a=big_a,
        var_b=big_b,
        detector=physics_v2.balanced_detector_noise(v, cols, prog.min_amplitude),
        full_scale=full_scale(p, cols),
    )


def amplitudes(prog: ProgrammedV2) -> np.ndarray:
    """A_ij = σ_ij R_i C_j (float64), the amplitude each cell's cos((φ+δ)/2) multiplies."""
    return prog.sign * (prog.row_envelope[:, None] * prog.col_envelope[None, :])


_NORMALS_PER_CHUNK = 1 << 20


def forward(
    x: np.ndarray,
    prog: ProgrammedV2,
    phase: np.ndarray,
    v: V2Params,
    seed: int,
    call_index: int,
    array_shape: tuple[int, int],
    detector_offset: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Call ``call_index`` (§7.5-7.6): returns (y float32 (batch, r), clipped count).

    The AR(1) filter restarts at vector 0; ξ_ij of vector b is normal i C + j and output
    i's detector normal is R C + i of §4's keyed stream. ``detector_offset`` (normalised
    units per output, §7.10) is added before the ADC."""
    p = v.base
    rows, cols = prog.codes.shape
    big_r, big_c = array_shape
    k = call_constants(prog, v)
    x_n, s_x = quantize_inputs(x, p.input_bits)
    x64 = x_n.astype(np.float64)
    amp = amplitudes(prog)
    det = k.detector
    total = prog.row_envelope[None, :] * (np.abs(x64) @ prog.col_envelope)[:, None]
    batch = x.shape[0]
    out = np.empty((batch, rows))
    n_all = big_r * big_c + big_r
    chunk = max(1, _NORMALS_PER_CHUNK // n_all)
    delta = np.zeros((rows, cols))
    w_mean = amp * np.cos(phase / 2.0)
    for b0 in range(0, batch, chunk):
        nb = min(chunk, batch - b0)
        if k.correlated:
            z = reference_normals.batch_normals(seed, call_index, b0, nb, n_all)
            xi_all = z[:, : big_r * big_c].reshape(nb, big_r, big_c)[:, :rows, :cols]
            z_det = z[:, big_r * big_c : big_r * big_c + rows]
        elif k.noise:
            z_det = np.stack([
                reference_normals.call_normals(seed, call_index, b0 + n, big_r * big_c, rows)
                for n in range(nb)
            ])  # fmt: skip
        for n in range(nb):
            b = b0 + n
            if k.correlated:
                xi = xi_all[n].astype(np.float64)
                delta = k.sigma_rad * xi if b == 0 else k.ar1 * delta + k.innovation_rad * xi
                u = (amp * np.cos((phase + delta) / 2.0)) @ x64[b]
                var = np.zeros(rows)
            else:
                u = (w_mean * k.mean_factor) @ x64[b]
                xsq = x64[b] ** 2
                var = k.var_a * prog.row_envelope**2 * (xsq @ prog.col_envelope**2)
                var -= k.var_b * (w_mean**2 @ xsq)
                var = np.maximum(var, 0.0)
            if k.noise:
                tot = total[b]
                var = var + det.c0 + det.c1 * tot + det.c2 * tot * tot
                u = u + np.sqrt(var) * z_det[n].astype(np.float64)
            out[b] = u
    if detector_offset is not None:
        out += detector_offset[:rows]
    codes, clipped = adc(out, p.output_bits, k.full_scale)
    from_code = np.float32(k.full_scale) / np.float32((1 << (p.output_bits - 1)) - 1)
    y = (codes * from_code) * s_x[:, None]
    y = y * np.float32(prog.scale)
    y[s_x == 0] = 0.0
    return y.astype(np.float32), clipped


def phase_noise_mean(w_mean: np.ndarray, sigma_rad: float) -> np.ndarray:
    """E[W] under white phase noise: W e^{−σ²/8} (§7.6)."""
    return w_mean * physics_v2.phase_noise_mean_factor(sigma_rad)
