"""The twin's per-call pipeline (reference.forward) written in PyTorch, CPU only.

A benchmark baseline: what the model costs when written with a tensor library instead of
the fused kernel. It translates ``lumina_hal.twin.reference.forward`` step by step with the same
dtypes (converters in float32, sums in float64). Weight-only quantities (W_eff, W_eff²,
the envelopes) are derived once in the constructor, as the twin does at load time; only
``forward`` is per call. Importable without torch: ``available()`` is then False and
``UNAVAILABLE`` is the text the benchmark prints in the column.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lumina_hal.twin import physics, reference
from lumina_hal.twin.physics import PhysicsParams

torch: Any
try:
    import torch
except ImportError:  # torch is optional
    torch = None

UNAVAILABLE = "n/a (torch not installed)"


def available() -> bool:
    """True when torch imported."""
    return torch is not None


def version() -> str | None:
    """torch.__version__, or None without torch."""
    return None if torch is None else str(torch.__version__)


def num_threads() -> int | None:
    """torch's intra-op CPU threads, or None without torch."""
    return None if torch is None else int(torch.get_num_threads())


def _require_torch() -> Any:
    if torch is None:
        raise RuntimeError(UNAVAILABLE)
    return torch


class TorchPipeline:
    """reference.forward in torch ops for one programmed array at one set of physics."""

    def __init__(self, programmed: reference.ProgrammedArray, p: PhysicsParams) -> None:
        t = _require_torch()
        rows, cols = programmed.shape
        self.rows, self.cols = rows, cols
        self.noise = p.noise
        self.input_levels = float(reference.levels(p.input_bits))
        output_levels = np.float32(reference.levels(p.output_bits))
        fs = reference.full_scale(p, cols)
        self.output_levels = float(output_levels)
        # float32 scalars computed exactly as reference.adc / reference.forward do
        self.to_code = float(output_levels / np.float32(fs))
        self.from_code = float(np.float32(fs) / output_levels)
        self.weight_scale = float(np.float32(programmed.scale))
        w_eff = t.from_numpy(np.ascontiguousarray(programmed.effective(p)))  # float64
        self.w_eff_t = w_eff.T  # (c, r) view: u = x_n @ W_eff.T
        self.w_eff_sq_t = (w_eff * w_eff).T.contiguous()
        self.col_env_sq = t.from_numpy(programmed.col_envelope**2)
        self.row_env_sq = t.from_numpy(programmed.row_envelope**2)
        self.phase_var = physics.phase_noise_sigma_rad(p) ** 2 / 4.0
        det = physics.detector_noise(p, cols, programmed.min_amplitude)
        self.det = (det.c0, det.c1, det.c2)

    def forward(self, x: Any, generator: Any = None) -> tuple[Any, int]:
        """One call for x (batch, c) float32 tensor: (y (batch, r) float32 tensor, clipped)."""
        t = _require_torch()
        x = t.as_tensor(x, dtype=t.float32)
        # 1. input DAC, float32
        lx = self.input_levels
        s_x = x.abs().amax(dim=1)
        safe = t.where(s_x == 0, t.ones_like(s_x), s_x)
        to_code = t.full_like(safe, lx) / safe  # tensor / tensor: a true float32 division
        x_n = t.round(x * to_code[:, None]) / lx  # round: half to even, like numpy.rint
        # 2. matmul and noise accumulators, float64
        x_n64 = x_n.double()
        x_sq = x_n64 * x_n64
        u = x_n64 @ self.w_eff_t
        v = u
        if self.noise:
            s2 = x_sq @ self.w_eff_sq_t
            q = x_sq @ self.col_env_sq
            # 3. phase noise and 4. detector variance
            var_phase = self.phase_var * t.clamp(self.row_env_sq[None, :] * q[:, None] - s2, min=0)
            c0, c1, c2 = self.det
            var_det = c0 + c1 * u.abs() + c2 * u * u
            # 5. one normal per output
            z = t.randn(u.shape, dtype=t.float64, generator=generator)
            v = u + t.sqrt(var_phase + var_det) * z
        # 6. ADC, float32
        codes = t.round(v.float() * self.to_code)
        clipped = int(t.count_nonzero(codes.abs() >= self.output_levels))
        codes = t.clamp(codes, -self.output_levels, self.output_levels)
        # 7. back to float units
        y = (codes * self.from_code) * s_x[:, None]
        y = y * self.weight_scale
        y[s_x == 0] = 0.0
        return y, clipped
