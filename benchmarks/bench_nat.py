"""Noise-aware training: accuracies and step times, measured side by side (docs/torch.md §5).

Accuracies: examples/nat_digits.py (float, plain on a harsh chip, NAT on the chip trained for
and on another serial). Step times, batch 32, the digits MLP, Adam, one thread everywhere:

- ``float``: nn.Linear, no noise (the honest best: float32, eager; torch.compile is slower
  at this size, measured below);
- ``noise_model``: LuminaLinear in ``noise_model`` mode (lumina_hal.torch.NoiseModel) as the
  NAT recipe runs it (static errors refreshed every 16 steps); ``noise_model_exact``: refreshed
  at every step;
- ``plain_ops``: the same chip model written directly in torch ops, as docs/physics.md
  defines it: one phase draw per cell and vector, autograd through every step (rounding
  straight-through), a Python loop over tiles.

Run: ``python benchmarks/bench_nat.py [--quick]``. It reports; it never fails on a number.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from bench_twin import _cpu_model, reexec_without_openblas_overrides
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import nat_digits

from lumina_hal.codes import levels
from lumina_hal.torch import chip_model, replace_linear_layers
from lumina_hal.twin import physics as twin_physics
from lumina_hal.twin import reference
from lumina_hal.twin.physics import PhysicsParams


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


class PlainOpsNoisyLinear(nn.Module):
    """The chip model of docs/physics.md written plainly in torch ops (the baseline)."""

    def __init__(self, linear: nn.Linear, p: PhysicsParams, rows: int, cols: int) -> None:
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias
        self.p, self.rows, self.cols = p, rows, cols

    def _tile(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        p = self.p
        r, c = w.shape
        row_env, col_env, a_min = twin_physics.envelopes(p, r, c, self.rows, self.cols)
        env = torch.tensor(row_env[:, None] * col_env[None, :], dtype=torch.float32)
        lx, ly = levels(p.input_bits), levels(p.output_bits)
        s_x = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
        x_n = _ste_round(x * (lx / s_x)) / lx
        s_w = w.abs().amax().detach().clamp_min(1e-12)
        w_n = w / s_w
        t = (w_n.abs() / env).clamp(0.0, 1.0 - 1e-7)
        phi = 2.0 * torch.arccos(t)
        dac = (1 << p.weight_bits) - 1
        phi_q = math.pi * (_ste_round(torch.sqrt(phi / math.pi) * dac) / dac) ** 2
        phi_f = phi_q * (1.0 + p.fab_sigma * torch.randn(r, c).clamp(-3, 3))
        k1, k2 = p.crosstalk, p.crosstalk * twin_physics.CROSSTALK_DIAGONAL_RATIO
        stencil = torch.tensor([[k2, k1, k2], [k1, 1.0, k1], [k2, k1, k2]]).view(1, 1, 3, 3)
        phi_x = nn.functional.conv2d(phi_f.view(1, 1, r, c), stencil, padding=1).view(r, c)
        drift = twin_physics.drift_phase_per_um(p) * p.arm_imbalance_um * torch.randn(r, c)
        sigma = twin_physics.phase_noise_sigma_rad(p)
        noisy = phi_x + drift + sigma * torch.randn(x.shape[0], r, c)  # per cell, per vector
        w_eff = torch.sign(w_n) * env * torch.cos(noisy / 2.0)
        u = torch.einsum("bc,brc->br", x_n, w_eff)
        det = twin_physics.detector_noise(p, c, a_min)
        var = det.c0 + det.c1 * u.abs() + det.c2 * u * u
        v = u + torch.sqrt(var) * torch.randn_like(u)
        fs = reference.full_scale(p, c)
        codes = _ste_round(v * (ly / fs)).clamp(-ly, ly)
        return codes * (fs / ly) * s_x * s_w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_f, in_f = self.weight.shape
        cols = []
        for c0 in range(0, in_f, self.cols):
            rows = [
                self._tile(
                    x[:, c0 : c0 + self.cols], self.weight[r0 : r0 + self.rows, c0 : c0 + self.cols]
                )
                for r0 in range(0, out_f, self.rows)
            ]
            cols.append(torch.cat(rows, dim=1))
        y = torch.stack(cols).sum(0)
        return y if self.bias is None else y + self.bias


def plain_ops_model(model: nn.Sequential, uri: str) -> nn.Sequential:
    p, geometry = chip_model(uri)
    layers = [
        PlainOpsNoisyLinear(m, p, geometry.rows, geometry.cols) if isinstance(m, nn.Linear) else m
        for m in model
    ]
    return nn.Sequential(*layers)


def step_function(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def time_interleaved(steps: dict[str, Callable[[], None]], rounds: int, n: int) -> dict[str, float]:
    """Median CPU seconds per step (process time: one thread, so time other jobs take from
    this process is not counted); contenders alternate so machine load hits all alike."""
    for fn in steps.values():
        for _ in range(10):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            t0 = time.process_time()
            for _ in range(n):
                fn()
            samples[name].append((time.process_time() - t0) / n)
    return {k: statistics.median(v) for k, v in samples.items()}


def step_times(hidden: int, rounds: int, n: int, with_compile: bool) -> dict[str, float]:
    torch.manual_seed(0)
    uri = nat_digits.HARSH.format(seed=1, serial="CHIP-A")
    x, y = torch.rand(32, 64), torch.randint(0, 10, (32,))
    base = nat_digits.mlp(hidden)
    float_model = nat_digits.mlp(hidden)
    float_model.load_state_dict(base.state_dict())
    refresh = nat_digits.Recipe.refresh_every
    nat_model, _ = replace_linear_layers(
        nat_digits.mlp(hidden), chip=uri, mode="noise_model", noise_refresh_every=refresh
    )
    exact_model, _ = replace_linear_layers(nat_digits.mlp(hidden), chip=uri, mode="noise_model")
    steps = {
        "float": step_function(float_model, x, y),
        "noise_model": step_function(nat_model, x, y),
        "noise_model_exact": step_function(exact_model, x, y),
        "plain_ops": step_function(plain_ops_model(nat_digits.mlp(hidden), uri), x, y),
    }
    if with_compile:
        steps["float_compiled"] = step_function(torch.compile(nat_digits.mlp(hidden)), x, y)
    return time_interleaved(steps, rounds, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and timing rounds")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled float row")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"CPU: {_cpu_model()}; torch {torch.__version__}, 1 thread everywhere")
    seeds = [0] if args.quick else [0, 1, 2, 3, 4]
    recipe = nat_digits.Recipe(epochs=5) if args.quick else nat_digits.Recipe()
    acc = nat_digits.run_seeds(
        seeds, epochs=10 if args.quick else 60, hidden=args.hidden, recipe=recipe
    )
    print(f"\naccuracy (digits test set, MLP 64-{args.hidden}-10 ReLU, harsh chip), {recipe},")
    print(f"mean ± std over seeds {seeds}:")
    for key, (mean, std) in acc.items():
        print(f"  {key:28s} {mean:.3f} ± {std:.3f}")
    times = step_times(
        args.hidden, 3 if args.quick else 7, 20 if args.quick else 100, not args.no_compile
    )
    print("\nstep CPU time, batch 32 (forward, backward, Adam), median of interleaved rounds:")
    for name, seconds in times.items():
        print(f"  {name:18s} {seconds * 1e6:9.1f} us")
    print(
        f"\nratios: plain_ops / noise_model = {times['plain_ops'] / times['noise_model']:.2f} "
        f"(goal >= 2), noise_model / float = {times['noise_model'] / times['float']:.2f} "
        f"(goal <= 1.5), noise_model_exact / float = "
        f"{times['noise_model_exact'] / times['float']:.2f}"
    )


if __name__ == "__main__":
    reexec_without_openblas_overrides()
    main()
