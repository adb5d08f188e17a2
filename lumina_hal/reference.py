"""Pure-numpy reference of the twin's model: the test oracle and benchmark baseline.

Unfused and readable, one step per line, following docs/physics.md. Arithmetic that the C
kernel does in float32 is done in float32 here too, so the converters (DAC/ADC) agree
bit for bit wherever the accumulated sum agrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def levels(bits: int) -> int:
    """Positive code levels of a signed symmetric converter: codes lie in [-L, L]."""
    return (1 << (bits - 1)) - 1


@dataclass(frozen=True)
class ProgrammedWeights:
    """What load_weights leaves on the chip: DAC codes and the scale to undo them."""

    codes: np.ndarray  # int32 (r, c), in [-L_w, L_w]
    scale: float  # max|W|, so W ~= codes / L_w * scale
    normalized: np.ndarray  # float32 (r, c): codes / L_w, what the kernel multiplies by


def program_weights(weights: np.ndarray, weight_bits: int) -> ProgrammedWeights:
    """Weight DAC: normalize by max|W| and round to ``weight_bits`` signed codes."""
    w = np.asarray(weights, dtype=np.float64)
    scale = float(np.max(np.abs(w)))
    if scale == 0.0:
        scale = 1.0
    lw = levels(weight_bits)
    codes = np.rint(w / scale * lw).astype(np.int32)
    normalized = (codes.astype(np.float32) / np.float32(lw)).astype(np.float32)
    return ProgrammedWeights(codes=codes, scale=scale, normalized=normalized)


def output_full_scale(adc_full_scale: float, cols: int) -> float:
    """ADC full scale in normalized output units: ``adc_full_scale * sqrt(cols)``."""
    return float(np.float32(adc_full_scale * np.sqrt(cols)))


def forward(
    x: np.ndarray,
    programmed: ProgrammedWeights,
    *,
    input_bits: int,
    output_bits: int,
    adc_full_scale: float,
) -> tuple[np.ndarray, int]:
    """The ideal model for a batch ``x`` (batch, c): returns (y (batch, r), clipped count)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    cols = programmed.normalized.shape[1]
    li = np.float32(levels(input_bits))
    lo = np.float32(levels(output_bits))
    fs = np.float32(output_full_scale(adc_full_scale, cols))

    x_scale = np.max(np.abs(x), axis=1).astype(np.float32)  # per-vector DAC range
    safe_scale = np.where(x_scale == 0, np.float32(1), x_scale)
    to_input_code = (li / safe_scale).astype(np.float32)  # float32, as in C
    x_codes = np.rint(x * to_input_code[:, None])  # input DAC
    x_norm = (x_codes / li).astype(np.float32)  # in [-1, 1]
    y_norm = x_norm.astype(np.float64) @ programmed.normalized.T.astype(np.float64)
    y_codes = np.rint(y_norm.astype(np.float32) * (lo / fs))  # ADC
    clipped = int(np.count_nonzero(np.abs(y_codes) > lo))
    y_codes = np.clip(y_codes, -lo, lo)
    y = y_codes * (fs / lo) * x_scale[:, None]  # back to float units
    y = y.astype(np.float32) * np.float32(programmed.scale)
    y[x_scale == 0] = 0.0
    return y.astype(np.float32), clipped
