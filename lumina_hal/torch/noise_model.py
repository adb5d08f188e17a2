"""The twin's chip model re-expressed in torch ops, tiled like the chip, for training (NAT).

docs/torch.md section 3 specifies it. Every constant and derived quantity comes from
lumina_hal.twin.physics (and reference/codes for converters and fabrication draws); only the
elementwise steps of docs/physics.md are written again here, as tensor operations.

Forward: the chip's output for a (possibly tiled) layer: heater DAC, fabrication scatter,
crosstalk, drift, per-tile input DAC, per-output phase and detector noise, ADC, scales.
Gradient: the model writes the output as ``y = x~ @ W~.T + e`` where ``x~`` are the inputs after
the input DAC, ``W~(W)`` the effective weights in float units with the static phase errors
``δ`` of this forward held fixed, and ``e`` the readout error (noise, ADC rounding and
clipping) of this forward. Its gradient is the exact derivative of that expression at the
drawn errors: through ``W~`` exactly (``cos``/``sqrt`` of the heater law), through every
rounding as the identity (straight-through), with the per-tile scales held fixed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lumina_hal.codes import levels
from lumina_hal.twin import physics, reference
from lumina_hal.twin.physics import PhysicsParams

_EPS = 1e-12


@dataclass(frozen=True)
class ChipGeometry:
    """Array (tile) shape and the serial whose fabrication draws to use (None: fresh ones)."""

    rows: int
    cols: int
    serial: str | None = None


def _shift_sum(n: int) -> torch.Tensor:
    """(n, n) matrix S with S[i, i±1] = 1: S @ a sums each element's two neighbours."""
    ones = torch.ones(n - 1)
    return torch.diag(ones, 1) + torch.diag(ones, -1)


class _Blocks:
    """Padding of an (M, N) layer to (Rb·R, K·C) tiles, and per-tile constants."""

    def __init__(self, out_features: int, in_features: int, p: PhysicsParams, g: ChipGeometry):
        self.R, self.C = min(g.rows, out_features), min(g.cols, in_features)
        self.M, self.N = out_features, in_features
        self.Rb, self.K = math.ceil(self.M / self.R), math.ceil(self.N / self.C)
        rows_in = [min(self.R, self.M - b * self.R) for b in range(self.Rb)]
        cols_in = [min(self.C, self.N - k * self.C) for k in range(self.K)]
        row_env, col_env, _ = physics.envelopes(p, self.R, self.C, g.rows, g.cols)
        amin = np.array(
            [[physics.envelopes(p, r, c, g.rows, g.cols)[2] for c in cols_in] for r in rows_in]
        )
        det = [
            [physics.detector_noise(p, c, amin[i, k]) for k, c in enumerate(cols_in)]
            for i, r in enumerate(rows_in)
        ]

        # per (output, col block): detector coefficients; per col block: ADC full scale
        def per_output(name: str) -> torch.Tensor:
            table = torch.tensor([[getattr(d, name) for d in row] for row in det])
            return table.repeat_interleave(self.R, dim=0)[None].float()

        self.c0, self.c1, self.c2 = per_output("c0"), per_output("c1"), per_output("c2")
        self.full_scale = torch.tensor([reference.full_scale(p, c) for c in cols_in]).view(1, 1, -1)
        self.row_env = torch.tensor(row_env, dtype=torch.float32)
        self.col_env = torch.tensor(col_env, dtype=torch.float32)
        self.row_sq = (self.row_env**2).repeat(self.Rb).view(1, -1, 1)
        self.col_sq = self.col_env**2
        mask = torch.zeros(self.Rb * self.R, self.K * self.C)
        mask[: self.M, : self.N] = 1.0
        self.mask = mask.view(self.Rb, self.R, self.K, self.C)

    def pad_weights(self, w: torch.Tensor) -> torch.Tensor:
        padded = F.pad(w, (0, self.K * self.C - self.N, 0, self.Rb * self.R - self.M))
        return padded.view(self.Rb, self.R, self.K, self.C)

    def pad_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, self.K * self.C - self.N)).view(x.shape[0], self.K, self.C)


class NoiseModel:
    """The chip model for one (out_features, in_features) layer (docs/torch.md section 3).

    ``physics``: the twin's parameters (a preset or a chip's). ``geometry``: the array shape
    that tiles the layer and the serial of the chip whose fabrication scatter and arm
    imbalance to reproduce, or None to draw fresh ones every forward (training for chips not
    yet seen). ``generator``: torch generator for the draws (None: torch's default).
    """

    def __init__(
        self,
        out_features: int,
        in_features: int,
        physics_params: PhysicsParams,
        geometry: ChipGeometry,
        generator: torch.Generator | None = None,
    ) -> None:
        self.p = physics_params
        self.geometry = geometry
        self.generator = generator
        self.blocks = _Blocks(out_features, in_features, physics_params, geometry)
        b = self.blocks
        self.dac_max = (1 << physics_params.weight_bits) - 1
        self.input_levels = float(levels(physics_params.input_bits))
        self.output_levels = float(levels(physics_params.output_bits))
        self.sigma_phi = physics.phase_noise_sigma_rad(physics_params)
        self.drift_per_um = physics.drift_phase_per_um(physics_params)
        k1 = physics_params.crosstalk
        k2 = k1 * physics.CROSSTALK_DIAGONAL_RATIO
        self.edge_rows, self.edge_cols = _shift_sum(b.R), _shift_sum(b.C)
        self.k1, self.k2 = k1, k2
        self.envelope = (b.row_env[:, None] * b.col_env[None, :]).view(1, b.R, 1, b.C)
        if geometry.serial is not None:
            key = reference.serial_key(geometry.serial)
            scatter = np.clip(reference.cell_normals(key, 0, b.R, b.C), -3.0, 3.0)
            self._scatter: torch.Tensor | None = torch.tensor(scatter, dtype=torch.float32)
            arm = reference.cell_normals(key, 1, b.R, b.C)
            self._arm: torch.Tensor | None = torch.tensor(arm, dtype=torch.float32)
        else:
            self._scatter = self._arm = None

    # ---- static part: effective weights ------------------------------------------------
    def _cell_draws(self, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.blocks
        if self._scatter is not None and self._arm is not None:
            return self._scatter.view(1, b.R, 1, b.C), self._arm.view(1, b.R, 1, b.C)
        z = torch.randn((2, *shape), generator=self.generator)
        return z[0].clamp_(-3.0, 3.0), z[1]

    def static_errors(self, w4: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """No-grad part of programming: (scale, cos δ/2, σ R C sin δ/2, W_eff normalized)."""
        p, b = self.p, self.blocks
        with torch.no_grad():
            w4 = w4.float()
            scale = w4.abs().amax(dim=(1, 3), keepdim=True).clamp_min(_EPS)  # 1. per tile
            w_n = w4 / scale
            t = (w_n.abs() / self.envelope).clamp_(0.0, 1.0)  # 2. loss compensation
            phi = 2.0 * torch.arccos(t)  # 3. target phase
            code = torch.round(torch.sqrt(phi / math.pi) * self.dac_max)  # 4. heater DAC
            phi_q = math.pi * (code / self.dac_max) ** 2
            scatter, arm = self._cell_draws(tuple(w4.shape))
            phi_f = phi_q * (1.0 + p.fab_sigma * scatter) * b.mask  # 5. fabrication
            if p.crosstalk:  # 6. crosstalk inside each tile (cells outside are unpowered)
                down = torch.einsum("ir,brkc->bikc", self.edge_rows, phi_f)  # rows i±1
                across = torch.einsum("brkc,cj->brkj", phi_f, self.edge_cols)  # cols j±1
                diagonal = torch.einsum("brkc,cj->brkj", down, self.edge_cols)
                phi_f = phi_f + self.k1 * (down + across) + self.k2 * diagonal
            phi_t = phi_f + self.drift_per_um * p.arm_imbalance_um * arm  # 7. drift
            delta = (phi_t - phi) * b.mask
            cos_half, sin_half = torch.cos(delta / 2.0), torch.sin(delta / 2.0)
            sign = torch.where(w4 < 0, -1.0, 1.0)
            side = sign * self.envelope * sin_half  # σ R C sin(δ/2)
            w_eff = (w_n * cos_half - side * torch.sqrt((1.0 - t * t).clamp_min(0.0))) * b.mask
        return scale, cos_half, side, w_eff

    def effective_weights(
        self, weight: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """W~ in float units (M_pad, N_pad) with gradient; W_eff normalized and the per-tile
        scales (Rb, 1, K, 1), both without."""
        b = self.blocks
        w4 = b.pad_weights(weight.float())
        scale, cos_half, side, w_eff = self.static_errors(w4)
        t = w4.abs() / (scale * self.envelope)
        root = torch.sqrt((1.0 - t * t).clamp_min(_EPS))
        w_tilde = (w4 * cos_half - scale * side * root) * b.mask  # 8. W_eff·s_w, exact in W
        return w_tilde.reshape(b.Rb * b.R, b.K * b.C), w_eff, scale

    # ---- per call ------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """x (batch, in_features) float32 -> (batch, out_features) as the chip computes it."""
        b, p = self.blocks, self.p
        w_tilde, w_eff, scale = self.effective_weights(weight)
        x = x.float()
        x3 = b.pad_inputs(x)
        with torch.no_grad():
            s_x = x3.abs().amax(dim=2, keepdim=True)  # 1. input DAC per tile and vector
            to_code = self.input_levels / torch.where(s_x > 0, s_x, torch.ones_like(s_x))
            x_n = torch.round(x3 * to_code) / self.input_levels
            x_q = x_n * s_x
            u = torch.einsum("bkc,mkc->bmk", x_n, w_eff.view(b.Rb * b.R, b.K, b.C))  # 2.
            v = u
            if p.noise:
                var = self._variance(x_n, w_eff, u)
                v = u + torch.sqrt(var) * torch.randn(u.shape, generator=self.generator)
            fs = b.full_scale
            codes = torch.clamp(
                torch.round(v * (self.output_levels / fs)), -self.output_levels, self.output_levels
            )  # 6. ADC
            err = codes * (fs / self.output_levels) - u  # readout error, normalized units
            tile_scale = s_x.view(-1, 1, 1, b.K) * scale.view(1, b.Rb, 1, b.K)  # 7.
            err = (err.view(-1, b.Rb, b.R, b.K) * tile_scale).sum(dim=3)
            err = err.reshape(x.shape[0], b.Rb * b.R)
        x_tilde = (x3 + (x_q - x3).detach()).reshape(x.shape[0], b.K * b.C)
        y = x_tilde @ w_tilde.T + err  # 7. float units
        return y[:, : b.M]

    def _variance(self, x_n: torch.Tensor, w_eff: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Phase-noise plus detector variance per (vector, output, tile), normalized units²."""
        b = self.blocks
        x2 = x_n * x_n
        var = torch.zeros_like(u)
        if self.sigma_phi > 0:
            s2 = torch.einsum("bkc,mkc->bmk", x2, (w_eff * w_eff).view(b.Rb * b.R, b.K, b.C))
            q = x2 @ b.col_sq  # (batch, K)
            var = (self.sigma_phi**2 / 4.0) * (b.row_sq * q[:, None, :] - s2).clamp_min(0.0)
        return var + b.c0 + b.c1 * u.abs() + b.c2 * u * u
