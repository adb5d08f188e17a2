"""The twin's chip model re-expressed in torch ops, tiled like the chip, for training (NAT).

docs/torch.md section 3 specifies it. Every constant and derived quantity comes from
lumina_hal.twin.physics (and reference/codes for converters and fabrication draws); only the
elementwise steps of docs/physics.md are written again here, as tensor operations.

Forward: the chip's output for a (possibly tiled) layer: heater DAC, fabrication scatter,
crosstalk, drift, per-tile input DAC, per-output phase and detector noise, ADC, scales.
Gradient: the model writes the output as ``y = x~ @ W~.T + e`` where ``x~`` are the inputs after
the input DAC, ``W~(W)`` the effective weights in float units with the static phase errors
``δ`` held fixed, and ``e`` the readout error (noise, ADC rounding and clipping) of this
forward. The static part is refreshed every ``refresh_every`` calls; in between, ``W~`` is its
first-order expansion ``W~(W0) + G(W0) (W - W0)`` around the weights ``W0`` of the last
refresh (exact at a refresh). The gradient is the exact derivative of that expression at the
drawn errors: ``G`` elementwise for the weights, through every rounding as the identity
(straight-through), with the per-tile scales held fixed. A custom autograd Function computes
the forward without building a graph and the backward as two matmuls (docs/torch.md §3)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from lumina_hal.codes import levels
from lumina_hal.errors import ConfigurationError
from lumina_hal.twin import physics, reference
from lumina_hal.twin.physics import PhysicsParams

_EPS = 1e-12
_TINY = 1e-30  # guards an all-zero input vector (its codes are 0 anyway)


@dataclass(frozen=True)
class ChipGeometry:
    """Array (tile) shape and the serial whose fabrication draws to use (None: fresh ones)."""

    rows: int
    cols: int
    serial: str | None = None


def _neighbour_sum(a: torch.Tensor, dim: int) -> torch.Tensor:
    """a[i-1] + a[i+1] along ``dim`` (cells beyond the edge contribute 0)."""
    out = torch.zeros_like(a)
    n = a.shape[dim]
    out.narrow(dim, 1, n - 1).add_(a.narrow(dim, 0, n - 1))
    out.narrow(dim, 0, n - 1).add_(a.narrow(dim, 1, n - 1))
    return out


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


@dataclass
class Linearization:
    """The static part of one refresh: ``W~ = slope ⊙ W + offset`` (M, N) and what the
    per-call side needs, in the (K, batch, M_pad) layout of ``chip_output``.

    ``scale`` (Rb, 1, K, 1): the per-tile weight scales ``s_w``. ``to_adc`` (K, 1, M_pad):
    ``levels_y / (FS s_w levels_x)``, from the product of input codes and ``W~`` to ADC units;
    ``from_adc``: ``FS s_w / levels_y``, from ADC codes back to float units (times ``s_x``).
    ``variance``: (K, C, M_pad) such that ``x_codes² @ variance`` is the phase-noise variance
    in ADC units² (``σφ²/4 (R² q - s2)`` with ``W_eff`` of the refresh), and ``c0``, ``c1``
    (K, 1, M_pad) the detector coefficients in ADC units (``c2`` is unit-free).
    """

    slope: torch.Tensor
    offset: torch.Tensor
    scale: torch.Tensor
    to_adc: torch.Tensor
    from_adc: torch.Tensor
    variance: torch.Tensor | None
    c0: torch.Tensor
    c1: torch.Tensor


class _NoisyProduct(torch.autograd.Function):
    """y = chip output + b; dy/dx~ = W~, dy/dW = (gᵀ x~) ⊙ G (docs/torch.md section 3)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        model: NoiseModel,
        lin: Linearization,
    ) -> torch.Tensor:
        w_tilde = torch.addcmul(lin.offset, lin.slope, weight)
        y, x_q = model.chip_output(x, w_tilde, lin, bias)
        ctx.save_for_backward(x_q, w_tilde, lin.slope)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x_q, w_tilde, slope = ctx.saved_tensors
        grad_x = grad @ w_tilde if ctx.needs_input_grad[0] else None
        grad_w = (grad.T @ x_q).mul_(slope) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(0) if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None


class NoiseModel:
    """The chip model for one (out_features, in_features) layer (docs/torch.md section 3).

    ``physics``: the twin's parameters (a preset or a chip's). ``geometry``: the array shape
    that tiles the layer and the serial of the chip whose fabrication scatter and arm
    imbalance to reproduce, or None to draw fresh ones at every refresh (training for chips
    not yet seen). ``generator``: torch generator for the draws (None: torch's default).
    ``refresh_every``: calls between two derivations of the static errors (1: every call,
    exact; more: the first-order expansion in between, docs/torch.md section 3).
    """

    def __init__(
        self,
        out_features: int,
        in_features: int,
        physics_params: PhysicsParams,
        geometry: ChipGeometry,
        generator: torch.Generator | None = None,
        refresh_every: int = 1,
    ) -> None:
        if isinstance(refresh_every, bool) or not isinstance(refresh_every, int):
            raise ConfigurationError(f"refresh_every must be an int >= 1, got {refresh_every!r}")
        if refresh_every < 1:
            raise ConfigurationError(f"refresh_every must be an int >= 1, got {refresh_every!r}")
        self.p = physics_params
        self.geometry = geometry
        self.generator = generator
        self.refresh_every = refresh_every
        self.blocks = _Blocks(out_features, in_features, physics_params, geometry)
        b = self.blocks
        self.dac_max = (1 << physics_params.weight_bits) - 1
        self.input_levels = float(levels(physics_params.input_bits))
        self.output_levels = float(levels(physics_params.output_bits))
        self.sigma_phi = physics.phase_noise_sigma_rad(physics_params)
        self.drift_per_um = physics.drift_phase_per_um(physics_params)
        k1 = physics_params.crosstalk
        k2 = k1 * physics.CROSSTALK_DIAGONAL_RATIO
        self.k1, self.k2 = k1, k2
        self.envelope = (b.row_env[:, None] * b.col_env[None, :]).view(1, b.R, 1, b.C)
        # per-call constants in the (K, batch, M_pad) layout of chip_output
        self._fs_k = b.full_scale.view(b.K, 1, 1)
        self._adc_gain = self.output_levels / self._fs_k
        self._c = [c.permute(2, 0, 1).contiguous() for c in (b.c0, b.c1, b.c2)]  # (K, 1, M_pad)
        self._phase_var = self.sigma_phi**2 / 4.0
        if geometry.serial is not None:
            key = reference.serial_key(geometry.serial)
            scatter = np.clip(reference.cell_normals(key, 0, b.R, b.C), -3.0, 3.0)
            self._scatter: torch.Tensor | None = torch.tensor(scatter, dtype=torch.float32)
            arm = reference.cell_normals(key, 1, b.R, b.C)
            self._arm: torch.Tensor | None = torch.tensor(arm, dtype=torch.float32)
        else:
            self._scatter = self._arm = None
        self._lin: Linearization | None = None
        self._calls = 0

    # ---- static part: effective weights ------------------------------------------------
    def _cell_draws(self, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.blocks
        if self._scatter is not None and self._arm is not None:
            return self._scatter.view(1, b.R, 1, b.C), self._arm.view(1, b.R, 1, b.C)
        z = torch.randn((2, *shape), generator=self.generator)
        return z[0].clamp_(-3.0, 3.0), z[1]

    def _phase_errors(self, w4: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(scale, cos δ/2, sin δ/2, σ R C sin δ/2, W_eff normalized), all without gradient."""
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
                down = _neighbour_sum(phi_f, 1)  # rows i±1
                across = _neighbour_sum(phi_f, 3)  # cols j±1
                diagonal = _neighbour_sum(down, 3)
                phi_f = phi_f + self.k1 * (down + across) + self.k2 * diagonal
            phi_t = phi_f + self.drift_per_um * p.arm_imbalance_um * arm  # 7. drift
            delta = (phi_t - phi) * b.mask
            cos_half, sin_half = torch.cos(delta / 2.0), torch.sin(delta / 2.0)
            sign = torch.where(w4 < 0, -1.0, 1.0)
            side = sign * self.envelope * sin_half  # σ R C sin(δ/2)
            w_eff = (w_n * cos_half - side * torch.sqrt((1.0 - t * t).clamp_min(0.0))) * b.mask
        return scale, cos_half, sin_half, side, w_eff

    def static_errors(self, w4: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """No-grad part of programming: (scale, cos δ/2, σ R C sin δ/2, W_eff normalized)."""
        scale, cos_half, _, side, w_eff = self._phase_errors(w4)
        return scale, cos_half, side, w_eff

    def effective_weights(
        self, weight: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """W~ in float units (M_pad, N_pad) with gradient (autograd through the heater law);
        W_eff normalized and the per-tile scales (Rb, 1, K, 1), both without."""
        b = self.blocks
        w4 = b.pad_weights(weight.float())
        scale, cos_half, side, w_eff = self.static_errors(w4)
        t = w4.abs() / (scale * self.envelope)
        root = torch.sqrt((1.0 - t * t).clamp_min(_EPS))
        w_tilde = (w4 * cos_half - scale * side * root) * b.mask  # 8. W_eff·s_w, exact in W
        return w_tilde.reshape(b.Rb * b.R, b.K * b.C), w_eff, scale

    def linearize(self, weight: torch.Tensor) -> Linearization:
        """Draw the static errors for ``weight`` and expand ``W~`` to first order around it.

        ``slope = dW~/dW = cos(δ/2) + sin(δ/2) t / sqrt(1 - t²)`` (0 for the second term where
        ``t >= 1``, as the clamped square root gives), ``offset = W~(W) - slope ⊙ W``.
        """
        b = self.blocks
        with torch.no_grad():
            w4 = b.pad_weights(weight.detach().float())
            scale, cos_half, sin_half, side, w_eff = self._phase_errors(w4)
            t = w4.abs() / (scale * self.envelope)
            one_minus = 1.0 - t * t
            root = torch.sqrt(one_minus.clamp_min(_EPS))
            w_tilde = (w4 * cos_half - scale * side * root) * b.mask
            bend = torch.where(one_minus > _EPS, sin_half * t / root, 0.0)
            slope = (cos_half + bend) * b.mask
            offset = w_tilde - slope * w4

            def layer_view(a: torch.Tensor) -> torch.Tensor:
                return a.reshape(b.Rb * b.R, b.K * b.C)[: b.M, : b.N].contiguous()

            per_row = scale.view(b.Rb, b.K).repeat_interleave(b.R, dim=0).T.unsqueeze(1)
            to_adc = self._adc_gain / (per_row * self.input_levels)  # (K, 1, M_pad)
            variance = None
            if self.sigma_phi > 0:  # σφ²/4 Σ_c x_n² (σ² R² C² - W_eff²), in ADC units²
                env2 = (self.envelope * self.envelope).expand_as(w_eff)
                free = (env2 - w_eff * w_eff).clamp_min_(0.0) * b.mask
                free = free.reshape(b.Rb * b.R, b.K, b.C).permute(1, 2, 0)
                gain = self._adc_gain / self.input_levels
                variance = (free * (self._phase_var * gain * gain)).contiguous()
            return Linearization(
                slope=layer_view(slope),
                offset=layer_view(offset),
                scale=scale,
                to_adc=to_adc,
                from_adc=per_row * (self._fs_k / self.output_levels),
                variance=variance,
                c0=self._c[0] * self._adc_gain**2,
                c1=self._c[1] * self._adc_gain,
            )

    def refresh(self, weight: torch.Tensor) -> Linearization:
        """Derive the static errors now (fresh fabrication draws unless a serial is set)."""
        self._lin = self.linearize(weight)
        self._calls = 0
        return self._lin

    # ---- per call ------------------------------------------------------------------------
    def __call__(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (batch, in_features) -> (batch, out_features) as the chip computes it, + bias."""
        lin = self._lin
        if lin is None or self._calls >= self.refresh_every:
            lin = self.refresh(weight)
        self._calls += 1
        return cast(torch.Tensor, _NoisyProduct.apply(x.float(), weight.float(), bias, self, lin))

    def chip_output(
        self,
        x: torch.Tensor,
        w_tilde: torch.Tensor,
        lin: Linearization,
        bias: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(y, x~): the chip's output (+ ``bias``) for inputs x (batch, N) and weights W~ (M, N)
        in float units, and the inputs after the input DAC; no gradient (docs/physics.md).

        Works in ADC units (``z = u levels_y / FS``): detector variance ``c0 + c1|z| + c2 z²``,
        phase-noise variance from the refresh's ``W_eff``, one normal per (vector, output,
        tile), rounding and clipping, then ``codes FS s_w s_x / levels_y`` summed over tiles.
        """
        b = self.blocks
        batch = x.shape[0]
        pad_n, pad_m = b.K * b.C - b.N, b.Rb * b.R - b.M
        x3 = (F.pad(x, (0, pad_n)) if pad_n else x).view(batch, b.K, b.C).transpose(0, 1)
        s_x = x3.abs().amax(dim=2, keepdim=True)  # 1. input DAC per tile and vector (K, B, 1)
        x_codes = torch.round(x3 * (self.input_levels / s_x.clamp_min(_TINY)))  # (K, B, C)
        x_q = (x_codes * (s_x / self.input_levels)).transpose(0, 1).reshape(batch, -1)
        w = F.pad(w_tilde, (0, pad_n, 0, pad_m)) if pad_n or pad_m else w_tilde
        w3 = w.view(-1, b.K, b.C).permute(1, 2, 0)  # (K, C, M_pad)
        z = torch.bmm(x_codes, w3).mul_(lin.to_adc)  # 2. analog sums in ADC units (K, B, M_pad)
        if self.p.noise:
            a = z.abs()
            if lin.variance is not None:
                var = torch.baddbmm(lin.c0, x_codes * x_codes, lin.variance)
            else:
                var = lin.c0.expand_as(z).clone()
            var.addcmul_(a, torch.addcmul(lin.c1, a, self._c[2]))  # c0 + c1|z| + c2 z²
            z.addcmul_(var.sqrt_(), torch.randn(z.shape, generator=self.generator))
        codes = torch.round_(z).clamp_(-self.output_levels, self.output_levels)  # 6. ADC
        codes = codes.mul_(s_x)  # 7. float units, summed over column tiles, + bias
        if b.K == 1:
            y = torch.addcmul(bias, codes[0], lin.from_adc[0]) if bias is not None else None
            y = codes[0].mul_(lin.from_adc[0]) if y is None else y
        else:
            y = codes.mul_(lin.from_adc).sum(dim=0)
            y = y if bias is None else y.add_(F.pad(bias, (0, pad_m)) if pad_m else bias)
        return y[:, : b.M], x_q[:, : b.N]
