"""The twin's per-call model written the way a careful user would, in numpy and in PyTorch.

Honest baselines for bench_twin.py (issue 12): float32 throughout, and every weight-only
array (W_eff.T, (W_eff**2).T, the envelopes squared, the scalar constants) built once in
the constructor, as the twin does at load. Per call only what depends on x is computed:
input DAC, ``u = x_n @ W_eff.T``, ``s2 = x_n**2 @ (W_eff**2).T``, ``q = x_n**2 @ C**2``, the
variance, one normal per output, the ADC and the scaling back (docs/physics.md section 3).
With noise off the noise terms are skipped, as in the twin. The BLAS and torch thread
counts are the caller's to set (the benchmark sets the same count everywhere).

Importable without torch: ``torch_available()`` is then False and ``TORCH_UNAVAILABLE`` is
the text the benchmark prints in the column.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lumina_hal.codes import levels
from lumina_hal.twin import physics, reference
from lumina_hal.twin.physics import PhysicsParams

torch: Any
try:
    import torch
except ImportError:  # torch is optional
    torch = None

TORCH_UNAVAILABLE = "n/a (torch not installed)"


def torch_available() -> bool:
    return torch is not None


def torch_version() -> str | None:
    return None if torch is None else str(torch.__version__)


class _Model:
    """The weight-only part of the model, float32, computed once."""

    def __init__(self, programmed: reference.ProgrammedArray, p: PhysicsParams) -> None:
        rows, cols = programmed.shape
        self.rows, self.cols, self.noise = rows, cols, p.noise
        f32 = np.float32
        w_eff = programmed.effective(p).astype(f32)
        self.w_t = np.ascontiguousarray(w_eff.T)  # (c, r)
        self.w2_t = np.ascontiguousarray((w_eff * w_eff).T)
        self.col_sq = (programmed.col_envelope**2).astype(f32)
        self.row_sq = (programmed.row_envelope**2).astype(f32)
        self.in_levels = f32(levels(p.input_bits))
        self.out_levels = f32(levels(p.output_bits))
        fs = f32(reference.full_scale(p, cols))
        self.to_code = self.out_levels / fs
        self.from_code = fs / self.out_levels
        self.scale = f32(programmed.scale)
        self.phase_var = f32(physics.phase_noise_sigma_rad(p) ** 2 / 4.0)
        det = physics.detector_noise(p, cols, programmed.min_amplitude)
        self.det = (f32(det.c0), f32(det.c1), f32(det.c2))


class NumpyPipeline(_Model):
    """The model in float32 numpy; ``forward(x, rng)`` -> (y, clipped)."""

    def forward(self, x: np.ndarray, rng: np.random.Generator | None) -> tuple[np.ndarray, int]:
        s_x = np.abs(x).max(axis=1)
        to_code = self.in_levels / np.where(s_x == 0, np.float32(1), s_x)
        x_n = np.rint(x * to_code[:, None])
        x_n /= self.in_levels
        u = x_n @ self.w_t
        v = u
        if self.noise:
            if rng is None:
                raise ValueError("noise on needs a generator")
            x_sq = x_n * x_n
            s2 = x_sq @ self.w2_t
            q = x_sq @ self.col_sq
            var = np.maximum(self.row_sq[None, :] * q[:, None] - s2, 0) * self.phase_var
            c0, c1, c2 = self.det
            var += c0 + c1 * np.abs(u) + c2 * (u * u)
            np.sqrt(var, out=var)
            var *= rng.standard_normal(u.shape, dtype=np.float32)
            v = u + var
        codes = np.rint(v * self.to_code)
        clipped = int(np.count_nonzero(np.abs(codes) >= self.out_levels))
        np.clip(codes, -self.out_levels, self.out_levels, out=codes)
        y = codes
        y *= self.from_code
        y *= s_x[:, None]
        y *= self.scale
        return y, clipped


class TorchPipeline(_Model):
    """The model in float32 torch on the CPU; ``forward(x, generator)`` -> (y, clipped)."""

    def __init__(self, programmed: reference.ProgrammedArray, p: PhysicsParams) -> None:
        if torch is None:
            raise RuntimeError(TORCH_UNAVAILABLE)
        super().__init__(programmed, p)
        t = torch
        self.tw_t = t.from_numpy(self.w_t)
        self.tw2_t = t.from_numpy(self.w2_t)
        self.tcol_sq = t.from_numpy(self.col_sq)
        self.trow_sq = t.from_numpy(self.row_sq)[None, :]
        self.fl = (float(self.in_levels), float(self.out_levels), float(self.to_code))
        self.fs = (float(self.from_code), float(self.scale), float(self.phase_var))
        self.fdet = tuple(float(c) for c in self.det)

    def forward(self, x: Any, generator: Any = None) -> tuple[Any, int]:
        t = torch
        in_levels, out_levels, to_code = self.fl
        from_code, scale, phase_var = self.fs
        s_x = x.abs().amax(dim=1)
        safe = t.where(s_x == 0, t.ones_like(s_x), s_x)
        x_n = t.round(x * (in_levels / safe)[:, None]).div_(in_levels)
        u = x_n @ self.tw_t
        v = u
        if self.noise:
            x_sq = x_n * x_n
            s2 = x_sq @ self.tw2_t
            q = x_sq @ self.tcol_sq
            var = (self.trow_sq * q[:, None] - s2).clamp_(min=0).mul_(phase_var)
            c0, c1, c2 = self.fdet
            var.add_(u.abs() * c1 + u * u * c2 + c0).sqrt_()
            v = u + var.mul_(t.randn(u.shape, generator=generator))
        codes = t.round(v * to_code)
        clipped = int(t.count_nonzero(codes.abs() >= out_levels))
        codes.clamp_(-out_levels, out_levels)
        y = codes.mul_(from_code).mul_(s_x[:, None]).mul_(scale)
        return y, clipped
