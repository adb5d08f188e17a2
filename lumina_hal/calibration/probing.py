"""Measure the effective matrix of a chip through its public API (docs/calibration.md §3).

A test pattern is loaded with ``load_weights``; the inputs are split into groups of at most
``GROUP_COLS`` columns and each group is probed with the columns 1..g of a Sylvester
Hadamard matrix of order N >= g + 1 (±1 inputs, other groups at 0). Hadamard columns are
orthogonal, so ``Y^T H / N`` returns every cell at once with the noise averaged over N
vectors, and column 0 (all ones, orthogonal to the others) returns the detector offsets.
Small groups keep the outputs far from ADC full scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lumina_hal.device import PhotonicDevice

GROUP_COLS = 32


def group_cols_for_codes(cols: int) -> int:
    """Group size of heater-code probes: cols / 4, in [2, GROUP_COLS].

    A code drives a cell up to its full envelope R C (not |w_n| <= 1). A group's output rms
    grows as sqrt(group) and the ADC full scale as sqrt(cols) (docs/physics.md §3), so a
    fixed fraction of cols keeps the probes inside the ADC range on any array size
    (16 columns on a 64-column chip: measured without clipping on the v1 and v2 twins).
    """
    return max(2, min(GROUP_COLS, cols // 4))


def hadamard(order: int) -> np.ndarray:
    """Sylvester Hadamard matrix of a power-of-two order (float64 ±1)."""
    h = np.ones((1, 1))
    while h.shape[0] < order:
        h = np.block([[h, h], [h, -h]])
    return h


def column_groups(cols: int, group_cols: int = GROUP_COLS) -> list[range]:
    """Consecutive column groups of at most ``group_cols`` columns."""
    return [range(start, min(start + group_cols, cols)) for start in range(0, cols, group_cols)]


def probe_order(group_cols: int) -> int:
    """N: the smallest power of two above the group size (column 0 measures the offset)."""
    order = 1
    while order < group_cols + 1:
        order *= 2
    return order


def probe_batch(
    cols: int, group_cols: int = GROUP_COLS
) -> tuple[np.ndarray, list[tuple[range, np.ndarray]]]:
    """The probe inputs (float32, one matmul call) and, per group, its Hadamard matrix."""
    blocks, groups = [], []
    for group in column_groups(cols, group_cols):
        h = hadamard(probe_order(len(group)))
        x = np.zeros((h.shape[0], cols), dtype=np.float32)
        x[:, group.start : group.stop] = h[:, 1 : len(group) + 1]
        blocks.append(x)
        groups.append((group, h))
    return np.concatenate(blocks), groups


@dataclass(frozen=True)
class Measurement:
    """One pattern's measurement in normalized units (divided by the weight scale)."""

    matrix: np.ndarray  # (rows, cols) effective weights / s_w
    offset: np.ndarray  # (rows,) per-output offset / s_w, averaged over groups
    noise_rms: float  # output noise rms from two repeats (nan with one)
    runs: int  # matmul calls used


def measure(device: PhotonicDevice, weights: np.ndarray, repeats: int = 1) -> Measurement:
    """Load ``weights`` and measure W_eff / s_w with Hadamard probes (``repeats`` >= 1 runs)."""
    device.load_weights(weights)
    scale = float(np.max(np.abs(weights))) or 1.0
    return measure_loaded(device, weights.shape, scale, repeats, GROUP_COLS)


def measure_codes(device: PhotonicDevice, codes: np.ndarray, repeats: int = 1) -> Measurement:
    """Load heater ``codes`` (weight scale 1) and measure W_eff with Hadamard probes."""
    device.load_heater_codes(codes, 1.0)
    return measure_loaded(device, codes.shape, 1.0, repeats, group_cols_for_codes(codes.shape[1]))


def measure_loaded(
    device: PhotonicDevice, shape: tuple[int, ...], scale: float, repeats: int, group_cols: int
) -> Measurement:
    """Measure the loaded block of ``shape`` (weight scale ``scale``) with Hadamard probes."""
    rows, cols = shape
    x, groups = probe_batch(cols, group_cols)
    runs = [np.asarray(device.matmul(x), dtype=np.float64) / scale for _ in range(repeats)]
    y = np.mean(runs, axis=0)
    noise = float("nan")
    if repeats >= 2:
        noise = float(np.std(runs[0] - runs[1]) / np.sqrt(2.0))
    matrix = np.empty((rows, cols))
    offsets = []
    start = 0
    for group, h in groups:
        block = y[start : start + h.shape[0]]
        start += h.shape[0]
        n = h.shape[0]
        matrix[:, group.start : group.stop] = block.T @ h[:, 1 : len(group) + 1] / n
        offsets.append(block.mean(axis=0))
    return Measurement(matrix, np.mean(offsets, axis=0), noise, repeats)
