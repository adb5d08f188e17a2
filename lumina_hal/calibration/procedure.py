"""``calibrate(device)``: measure a chip's cell model through the public device API.

docs/calibration.md §3. Only ``load_weights``, ``matmul``, ``info``, ``telemetry`` and
``set_temperature`` are used, so it runs unchanged on the twin, the FPGA emulator and a
board. Cost per mode (``PLANS``): patterns x repeats matmul calls (+1 for the noise
estimate in quick mode), each of ``probe_vectors(cols)`` vectors; full mode adds the same
patterns at a second temperature for the arm imbalance.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from lumina_hal.codes import envelopes_from_steps, heater_codes
from lumina_hal.device import Capability, PhotonicDevice
from lumina_hal.errors import ConfigurationError, LuminaError
from lumina_hal.twin.physics import DN_DT_SLOPE_PER_K, PhysicsParams
from lumina_hal.twin.physics_v2 import V2_FIELDS, V2Params
from lumina_hal.twin.snapshot import MODES, CalibrationSnapshot, heater_phase_of_codes

from .fit import CellFit, PhaseObservation, fit_cells, observe
from .probing import (
    GROUP_COLS,
    column_groups,
    group_cols_for_codes,
    measure,
    measure_codes,
    probe_order,
)

log = logging.getLogger(__name__)

#: progress(done, total, stage): called after each probe run
ProgressCallback = Callable[[int, int, str], None]

NOMINAL_WAVELENGTH_NM = 1550.0
NOMINAL_DN_DT_PER_K = 1.86e-4
OFFSET_SIGNIFICANCE = 5.0  # offsets below this many standard errors are recorded as 0
OFFSET_FLOOR = 1e-5  # ... and below this (normalized units: a 17-bit ADC step at 64 inputs)


@dataclass(frozen=True)
class Plan:
    """What a calibration mode measures."""

    patterns: int
    repeats: int
    temperature_step_k: float | None  # second temperature for arm imbalance (full mode)


PLANS: dict[str, Plan] = {
    "quick": Plan(patterns=6, repeats=1, temperature_step_k=None),
    "full": Plan(patterns=16, repeats=2, temperature_step_k=10.0),
}


def probe_vectors(cols: int, heater_codes: bool = False) -> int:
    """Vectors in one probe run of a chip with ``cols`` inputs (probing by heater codes:
    groups of ``group_cols_for_codes(cols)`` columns)."""
    group_cols = group_cols_for_codes(cols) if heater_codes else GROUP_COLS
    return sum(probe_order(len(g)) for g in column_groups(cols, group_cols))


def probe_runs(mode: str, set_temperature: bool = True) -> int:
    """matmul calls of one calibration in ``mode`` (docs/calibration.md §3 cost table)."""
    plan = _plan(mode)
    runs = plan.patterns * plan.repeats + (1 if plan.repeats < 2 else 0)
    if plan.temperature_step_k is not None and set_temperature:
        runs += plan.patterns * plan.repeats
    return runs


def _plan(mode: str) -> Plan:
    if mode not in PLANS:
        raise ConfigurationError(f"calibration mode {mode!r} is not one of {MODES}")
    return PLANS[mode]


def loss_steps_of(device: PhotonicDevice) -> tuple[float, float]:
    """The loss per pitch the device's programming compensates; (0, 0) if it does not say."""
    steps = getattr(device, "loss_steps_db", None)
    if steps is None:
        log.warning("%s does not report loss_steps_db; assuming a lossless array", device)
        return 0.0, 0.0
    return float(steps[0]), float(steps[1])


def declared_physics(device: PhotonicDevice) -> dict[str, object] | None:
    """The physics a twin declares about itself (None for hardware): v1's fields, and for a
    physics-v2 twin also the v2 fields (docs/calibration.md §2)."""
    p = getattr(device, "physics", None)
    extra: dict[str, object] = {}
    if isinstance(p, V2Params):
        extra = {name: getattr(p, name) for name in V2_FIELDS}
        p = p.base
    if not isinstance(p, PhysicsParams):
        return None
    return {**{f.name: getattr(p, f.name) for f in fields(PhysicsParams)}, **extra}


def test_patterns(rows: int, cols: int, count: int, seed: int) -> list[np.ndarray]:
    """Random test matrices: magnitudes uniform in [0.05, 1], random signs.

    No cell is pinned (a cell held at the same phase in every pattern cannot separate its
    gain error from its phase offset)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        w = rng.uniform(0.05, 1.0, (rows, cols)) * rng.choice((-1.0, 1.0), (rows, cols))
        out.append(w)
    return out


class _Runner:
    """Counts probe runs and reports progress."""

    def __init__(self, total: int, progress: ProgressCallback | None) -> None:
        self.done, self.total, self.progress = 0, total, progress

    def tick(self, runs: int, stage: str) -> None:
        self.done += runs
        if self.progress is not None:
            self.progress(self.done, self.total, stage)


CODE_PATTERN_MAX_PHASE_RAD = 5.3  # below 2π by more than heater gain, crosstalk and θ add


def code_patterns(
    rows: int, cols: int, count: int, seed: int, weight_bits: int, range_rad: float
) -> list[np.ndarray]:
    """Random heater-code patterns: φ_q uniform in [0.15 range, min(0.97 range, 5.3 rad)],
    random sign bits.

    With a 2π DAC the phases reach past π (the fit recovers φ in [0, 2π] from cos(φ/2)) but
    stay clear of 2π, where the light's phase would fold back; the ends, where sin(φ/2)
    vanishes, carry no phase information, and the low end keeps the probe outputs (amplitude
    up to R C, not |w_n| <= 1) inside the ADC range."""
    rng = np.random.default_rng(seed)
    dac_max = (1 << weight_bits) - 1
    top = min(0.97, CODE_PATTERN_MAX_PHASE_RAD / range_rad)
    out = []
    for _ in range(count):
        q = np.rint(np.sqrt(rng.uniform(0.15, top, (rows, cols))) * dac_max).astype(np.int64)
        negative = rng.integers(0, 2, (rows, cols)) << weight_bits
        out.append((q | negative).astype(np.int32))
    return out


def uses_heater_codes(device: PhotonicDevice) -> bool:
    """Whether calibrate() probes and CalibratedDevice programs through heater codes."""
    return Capability.HEATER_CODES.value in device.info.capabilities


def _observe_patterns(
    device: PhotonicDevice,
    patterns: list[np.ndarray],
    repeats: int,
    loss: tuple[float, float],
    runner: _Runner,
    stage: str,
) -> tuple[list[PhaseObservation], list[np.ndarray], list[float]]:
    """Patterns are weight matrices, or heater codes (int) on a HEATER_CODES device."""
    bits = device.info.weight_bits
    rows, cols = patterns[0].shape
    row_env, col_env = envelopes_from_steps(rows, cols, *loss)
    envelope = row_env[:, None] * col_env[None, :]
    observations, offsets, noises = [], [], []
    for k, w in enumerate(patterns):
        reps = max(repeats, 2) if k == 0 else repeats  # the first pattern measures noise
        if w.dtype.kind == "i":  # heater codes, loaded as they are
            m = measure_codes(device, w, reps)
            codes, range_rad = w, float(device.heater_range_rad)
            sign = np.where((w >> bits) & 1, -1.0, 1.0)
        else:
            m = measure(device, w, reps)
            (codes, _), range_rad = heater_codes(w, bits, loss), math.pi
            sign = np.where(w < 0, -1.0, 1.0)
        runner.tick(m.runs, stage)
        phase_q = heater_phase_of_codes(codes, bits, range_rad)
        observations.append(observe(m.matrix, sign, envelope, phase_q))
        offsets.append(m.offset)
        if math.isfinite(m.noise_rms):
            noises.append(m.noise_rms)
    return observations, offsets, noises


def _index_change(temperature_c: float) -> float:
    """N(T) / (dn/dT): ∫ n_T dT from 25 °C (docs/physics.md §7.2)."""
    d = temperature_c - 25.0
    return d + 0.5 * DN_DT_SLOPE_PER_K * d * d


def calibrate(
    device: PhotonicDevice,
    mode: str = "quick",
    progress: ProgressCallback | None = None,
    seed: int = 0,
) -> CalibrationSnapshot:
    """Measure ``device`` and return its CalibrationSnapshot (docs/calibration.md §3).

    The device must be open. Its loaded weights are replaced by test patterns (reload
    yours afterwards); its temperature is restored after a full-mode temperature step.
    """
    plan = _plan(mode)
    info = device.info
    rows, cols = info.rows, info.cols
    loss = loss_steps_of(device)
    can_heat = Capability.SET_TEMPERATURE.value in info.capabilities
    runner = _Runner(probe_runs(mode, can_heat), progress)
    temperature_c = device.telemetry().temperature_c
    by_codes = uses_heater_codes(device)
    if by_codes:
        span = float(device.heater_range_rad)
        patterns = code_patterns(rows, cols, plan.patterns, seed, info.weight_bits, span)
    else:
        patterns = test_patterns(rows, cols, plan.patterns, seed)
    obs, offsets, noises = _observe_patterns(device, patterns, plan.repeats, loss, runner, "cells")
    fit = fit_cells(obs)
    noise_rms = float(np.mean(noises)) if noises else 0.0
    offset = np.mean(offsets, axis=0)
    vectors = probe_vectors(cols, by_codes) * len(obs) * plan.repeats
    stderr = noise_rms / math.sqrt(max(vectors, 1))
    threshold = max(OFFSET_SIGNIFICANCE * stderr, OFFSET_FLOOR)
    offset = np.where(np.abs(offset) > threshold, offset, 0.0)
    arm = None
    if plan.temperature_step_k is not None and can_heat:
        arm = _arm_imbalance(device, plan, patterns, loss, runner, temperature_c, fit)
    snapshot = CalibrationSnapshot(
        serial=info.serial,
        rows=rows,
        cols=cols,
        weight_bits=info.weight_bits,
        loss_steps_db=loss,
        temperature_c=float(temperature_c),
        created_s=time.time(),
        mode=mode,
        probe_runs=runner.done,
        gain_error=fit.gain_error,
        phase_offset_rad=fit.phase_offset_rad,
        crosstalk_edge=fit.crosstalk_edge,
        crosstalk_diagonal=fit.crosstalk_diagonal,
        detector_offset=offset,
        probe_noise_rms=noise_rms,
        arm_imbalance_um=arm,
        physics=declared_physics(device),
        heater_range_rad=float(device.heater_range_rad) if by_codes else None,
    )
    log.info(
        "calibrated %s (%s, %d probe runs): gain error rms %.2e, crosstalk %.2e",
        info.serial,
        mode,
        runner.done,
        float(np.std(fit.gain_error)),
        fit.crosstalk_edge,
    )
    return snapshot


def _arm_imbalance(
    device: PhotonicDevice,
    plan: Plan,
    patterns: list[np.ndarray],
    loss: tuple[float, float],
    runner: _Runner,
    temperature_c: float,
    fit: CellFit,
) -> np.ndarray | None:
    """ΔL per cell from the phase offsets at two temperatures; None if the step is refused."""
    step = plan.temperature_step_k or 0.0
    hot_c = temperature_c + step
    try:
        device.set_temperature(hot_c)
    except LuminaError as exc:
        log.warning("no arm-imbalance measurement: cannot go to %.1f °C (%s)", hot_c, exc)
        return None
    try:
        obs, _, _ = _observe_patterns(device, patterns, plan.repeats, loss, runner, "imbalance")
    finally:
        device.set_temperature(temperature_c)
    kappa = (fit.crosstalk_edge, fit.crosstalk_diagonal)
    hot = fit_cells(obs, kappa=kappa)
    wavelength_um = NOMINAL_WAVELENGTH_NM * 1e-3
    per_um = 2.0 * math.pi / wavelength_um * NOMINAL_DN_DT_PER_K
    per_um *= _index_change(hot_c) - _index_change(temperature_c)
    return np.asarray((hot.phase_offset_rad - fit.phase_offset_rad) / per_um)
