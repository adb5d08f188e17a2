"""Accuracy metrics and the reference workload used by the demo, the tests and calibration."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Workload:
    """A weight matrix W (rows, cols) and inputs X (batch, cols), both uniform in [-1, 1]."""

    weights: np.ndarray
    inputs: np.ndarray

    @property
    def ideal(self) -> np.ndarray:
        """The exact float64 result ``X @ W.T``."""
        return self.inputs.astype(np.float64) @ self.weights.astype(np.float64).T


def reference_workload(rows: int = 64, cols: int = 64, batch: int = 256, seed: int = 0) -> Workload:
    """The documented reference workload (docs/physics.md): uniform [-1, 1] W and X."""
    rng = np.random.default_rng(seed)
    weights = rng.uniform(-1.0, 1.0, size=(rows, cols))
    inputs = rng.uniform(-1.0, 1.0, size=(batch, cols)).astype(np.float32)
    return Workload(weights=weights, inputs=inputs)


def snr_db(measured: np.ndarray, ideal: np.ndarray) -> float:
    """Signal-to-noise ratio in dB: ``10 log10(sum ideal^2 / sum (measured - ideal)^2)``.

    Returns +inf when the two are identical.
    """
    ideal64 = np.asarray(ideal, dtype=np.float64)
    err = np.asarray(measured, dtype=np.float64) - ideal64
    noise = float(np.sum(err * err))
    signal = float(np.sum(ideal64 * ideal64))
    if noise == 0.0:
        return float("inf")
    return 10.0 * float(np.log10(signal / noise))


def error_stats(measured: np.ndarray, ideal: np.ndarray) -> dict[str, float]:
    """Max and RMS absolute error, RMS of the ideal result, and SNR in dB."""
    err = np.asarray(measured, dtype=np.float64) - np.asarray(ideal, dtype=np.float64)
    return {
        "max_abs_error": float(np.max(np.abs(err))),
        "rms_error": float(np.sqrt(np.mean(err * err))),
        "rms_signal": float(np.sqrt(np.mean(np.square(ideal, dtype=np.float64)))),
        "snr_db": snr_db(measured, ideal),
    }
