"""Pre-compensation: the weights to program so that the measured chip realizes the target.

docs/calibration.md §4. The device normalizes a loaded matrix by its largest entry and
programs each cell to the transmission t = |w_n| / (R C). For target weights W the cell must
see φ = 2 arccos(|W| / (s' R C)); the heater phase that produces it under the snapshot's
cell model is found by fixed-point iteration, and the matrix is rescaled (s', by bisection)
so that its largest entry is exactly the one the device normalizes by.
"""

from __future__ import annotations

import math

import numpy as np

from lumina_hal.codes import envelopes_from_steps
from lumina_hal.errors import InputError
from lumina_hal.twin.snapshot import CalibrationSnapshot, neighbour_sums

FIXED_POINT_ITERATIONS = 30
BISECTION_STEPS = 40
SATURATION_FRACTION = 0.0


def _heater_phase_for(
    target: np.ndarray, s: CalibrationSnapshot, rows: int, cols: int
) -> np.ndarray:
    """Heater phases φ_q in [0, π] whose cell phases are ``target`` under the cell model."""
    gain = s.gain_error[:rows, :cols]
    offset = s.phase_offset_rad[:rows, :cols]
    heated = np.clip(target - offset, 0.0, None)
    for _ in range(FIXED_POINT_ITERATIONS):
        edge, diag = neighbour_sums(heated)
        heated = np.clip(
            target - offset - s.crosstalk_edge * edge - s.crosstalk_diagonal * diag, 0.0, None
        )
    return np.clip(heated / (1.0 + gain), 0.0, math.pi)


def compensated_weights(
    weights: np.ndarray,
    snapshot: CalibrationSnapshot,
    saturation_fraction: float = SATURATION_FRACTION,
) -> np.ndarray:
    """The matrix to load so that the chip computes ``weights`` (docs/calibration.md §4).

    At most ``saturation_fraction`` of the cells may be left short of their target (held at
    the largest transmission the device can program) instead of scaling every cell down.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] > snapshot.rows or w.shape[1] > snapshot.cols:
        raise InputError(
            f"weights of shape {w.shape} do not fit the {snapshot.rows}x{snapshot.cols} snapshot"
        )
    rows, cols = w.shape
    scale = float(np.max(np.abs(w))) or 1.0
    sign = np.where(w < 0, -1.0, 1.0)
    row_env, col_env = envelopes_from_steps(rows, cols, *snapshot.loss_steps_db)
    envelope = row_env[:, None] * col_env[None, :]
    magnitude = np.abs(w) / scale

    def realized(extra: float) -> tuple[np.ndarray, float]:
        target = 2.0 * np.arccos(np.clip(magnitude / (extra * envelope), 0.0, 1.0))
        heater = _heater_phase_for(target, snapshot, rows, cols)
        amplitude = envelope * np.cos(heater / 2.0)
        return amplitude, float(np.quantile(amplitude, 1.0 - saturation_fraction))

    lo, hi = 0.5, 2.0  # the largest amplitude falls as the extra scale rises
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if realized(mid)[1] > 1.0:
            lo = mid
        else:
            hi = mid
    extra = hi
    amplitude, _ = realized(extra)
    # max|W'| = s' (to the bisection's precision): the device programs t = cos(φ_q / 2)
    return sign * np.minimum(amplitude, 1.0) * (scale * extra)


def compensated_codes(
    weights: np.ndarray, snapshot: CalibrationSnapshot
) -> tuple[np.ndarray, float]:
    """Heater codes and weight scale that make the measured chip compute ``weights`` (§8).

    For a snapshot measured through heater codes (``heater_range_rad`` set). The cell
    targets are ``Φ = 2 arccos(|w_n| / (R C))`` with no extra scale; the heater phases solve
    ``h = Φ' − θ̂ − κ̂1 E(h) − κ̂2 D(h)`` (fixed point, ``0 ≤ h``), where ``Φ' = Φ``, or
    ``2π − Φ`` with the sign bit flipped for a cell whose ``h`` would be negative when the
    range reaches 2π (cos(φ/2) changes sign there: the same amplitude, opposite sign).
    """
    if snapshot.heater_range_rad is None:
        raise InputError("this snapshot was measured through load_weights; use compensated_weights")
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] > snapshot.rows or w.shape[1] > snapshot.cols:
        raise InputError(
            f"weights of shape {w.shape} do not fit the {snapshot.rows}x{snapshot.cols} snapshot"
        )
    rows, cols = w.shape
    span = snapshot.heater_range_rad
    scale = float(np.max(np.abs(w))) or 1.0
    row_env, col_env = envelopes_from_steps(rows, cols, *snapshot.loss_steps_db)
    envelope = row_env[:, None] * col_env[None, :]
    target = 2.0 * np.arccos(np.clip(np.abs(w) / scale / envelope, 0.0, 1.0))
    gain = snapshot.gain_error[:rows, :cols]
    offset = snapshot.phase_offset_rad[:rows, :cols]
    flip = np.zeros(w.shape, dtype=bool)
    can_flip = span >= 2.0 * math.pi
    heated = np.clip(target - offset, 0.0, None)
    for _ in range(FIXED_POINT_ITERATIONS):
        edge, diag = neighbour_sums(heated)
        rest = offset + snapshot.crosstalk_edge * edge + snapshot.crosstalk_diagonal * diag
        if can_flip:
            flip |= target - rest < 0.0
        heated = np.clip(np.where(flip, 2.0 * math.pi - target, target) - rest, 0.0, None)
    dac_max = (1 << snapshot.weight_bits) - 1
    phase_q = np.clip(heated / (1.0 + gain), 0.0, span)
    q = np.rint(np.sqrt(phase_q / span) * dac_max).astype(np.int64)
    negative = ((w < 0) ^ flip).astype(np.int64) << snapshot.weight_bits
    return (q | negative).astype(np.int32), scale
