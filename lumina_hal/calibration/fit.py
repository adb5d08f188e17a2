"""Fit the cell model of docs/calibration.md §1 to measured matrices (pure numpy).

Model per cell and pattern k: φ_k = (1+ε) φ_q,k + κ1 E(h_k) + κ2 D(h_k) + θ, with
h_k = (1+ε) φ_q,k the heater phases and E, D the edge and diagonal neighbour sums. The
measured phase is φ = 2 arccos(σ m / (R C)) of the measured normalized weight m. The fit
alternates a global weighted least squares for (κ1, κ2), with each cell's (ε, θ) profiled
out, and a per-cell one for (ε, θ) given κ;
the weights are the inverse variances of the measured phases, ∝ (R C sin(φ/2))².
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lumina_hal.twin.snapshot import neighbour_sums

ITERATIONS = 6
_MIN_WEIGHT = 1e-6


@dataclass(frozen=True)
class PhaseObservation:
    """One pattern: the commanded heater phases and the measured cell phases."""

    heater_phase: np.ndarray  # φ_q (rad)
    phase: np.ndarray  # measured φ (rad)
    weight: np.ndarray  # inverse-variance weight of each measured phase


@dataclass(frozen=True)
class CellFit:
    gain_error: np.ndarray
    phase_offset_rad: np.ndarray
    crosstalk_edge: float
    crosstalk_diagonal: float


def observe(
    measured: np.ndarray, sign: np.ndarray, envelope: np.ndarray, heater_phase: np.ndarray
) -> PhaseObservation:
    """Measured normalized weights -> measured phases and their weights."""
    c = np.clip(sign * measured / envelope, -1.0, 1.0)
    phase = 2.0 * np.arccos(c)
    weight = np.maximum((envelope * np.sin(phase / 2.0)) ** 2, _MIN_WEIGHT)
    return PhaseObservation(heater_phase, phase, weight)


class _CellRegression:
    """Per-cell weighted least squares on the regressors (φ_q, 1) over the patterns."""

    def __init__(self, obs: list[PhaseObservation]) -> None:
        self.obs = obs
        self.s_w = sum(o.weight for o in obs)
        self.s_a = sum(o.weight * o.heater_phase for o in obs)
        s_aa = sum(o.weight * o.heater_phase**2 for o in obs)
        det = np.asarray(self.s_w * s_aa - self.s_a * self.s_a)
        self.det = np.where(np.abs(det) > 1e-12, det, np.inf)

    def solve(self, values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(slope, intercept) per cell of ``values[k]`` against φ_q,k."""
        s_v = sum(o.weight * v for o, v in zip(self.obs, values, strict=True))
        s_av = sum(o.weight * o.heater_phase * v for o, v in zip(self.obs, values, strict=True))
        slope = (self.s_w * s_av - self.s_a * s_v) / self.det
        return np.asarray(slope), np.asarray((s_v - slope * self.s_a) / self.s_w)

    def residuals(self, values: list[np.ndarray]) -> list[np.ndarray]:
        slope, intercept = self.solve(values)
        return [
            v - slope * o.heater_phase - intercept for o, v in zip(self.obs, values, strict=True)
        ]


def _crosstalk_fit(reg: _CellRegression, gain: np.ndarray) -> tuple[float, float]:
    """(κ1, κ2) by global weighted least squares, with (ε, θ) of every cell profiled out."""
    sums = [neighbour_sums((1.0 + gain) * o.heater_phase) for o in reg.obs]
    r_edge = reg.residuals([e for e, _ in sums])
    r_diag = reg.residuals([d for _, d in sums])
    r_z = reg.residuals([o.phase - o.heater_phase for o in reg.obs])
    a = np.zeros((2, 2))
    b = np.zeros(2)
    for o, e, d, z in zip(reg.obs, r_edge, r_diag, r_z, strict=True):
        regressors = (e, d)
        for i in range(2):
            b[i] += np.sum(o.weight * regressors[i] * z)
            for j in range(2):
                a[i, j] += np.sum(o.weight * regressors[i] * regressors[j])
    if abs(np.linalg.det(a)) < 1e-18:
        return 0.0, 0.0
    k1, k2 = np.linalg.solve(a, b)
    return float(k1), float(k2)


def _cell_fit(
    reg: _CellRegression, kappa: tuple[float, float], gain: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(ε, θ) per cell with κ and the crosstalk sources fixed."""
    values = []
    for o in reg.obs:
        edge, diag = neighbour_sums((1.0 + gain) * o.heater_phase)
        values.append(o.phase - o.heater_phase - kappa[0] * edge - kappa[1] * diag)
    return reg.solve(values)


def fit_cells(obs: list[PhaseObservation], kappa: tuple[float, float] | None = None) -> CellFit:
    """Fit (ε, θ) per cell and (κ1, κ2) globally; a given ``kappa`` is kept fixed."""
    reg = _CellRegression(obs)
    gain = np.zeros(obs[0].phase.shape)
    k = kappa if kappa is not None else (0.0, 0.0)
    for _ in range(ITERATIONS):
        if kappa is None:
            k = _crosstalk_fit(reg, gain)
        gain, offset = _cell_fit(reg, k, gain)
    return CellFit(gain, offset, k[0], k[1])
