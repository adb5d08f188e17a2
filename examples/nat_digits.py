"""Noise-aware training (NAT) on the sklearn digits: float, plain on a harsh chip, NAT on chips.

1. Train a small MLP (64 -> 256 -> 10, ReLU, pixels in [0, 1]) in float32.
2. Deploy it on a harsh twin (4-bit converters, 10 % fabrication scatter, 0.3 rad phase noise)
   with serial CHIP-A: the accuracy drops.
3. Fine-tune it with NAT: every linear layer in ``noise_model`` mode (the twin's physics in
   torch, fabrication drawn afresh at every refresh of the static errors, so the model never
   sees a serial), Adam with a cosine learning-rate decay, and every weight matrix clipped to
   ``±clip`` standard deviations after each step (so that outliers do not set the per-tile
   weight scale: the 4-bit converters then resolve the bulk of the weights).
4. Measure on CHIP-A and on CHIP-B, a chip it never saw (another serial).

Run: ``python examples/nat_digits.py [--seeds 0,1,2] [--nat-epochs 40] [--clip 2] [--signed]``
(``--signed``: pixels in [-1, 1] and tanh, which use both halves of the symmetric converters;
``--clip 0``: no clipping; ``--nat-mode ideal``: the same recipe without the noise model,
the ablation of docs/torch.md section 5). docs/torch.md section 5 has the numbers.
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from lumina_hal.torch import replace_linear_layers

HARSH = (
    "mock://?rows=64&cols=64&preset=harsh&weight_bits=4&input_bits=4&output_bits=4"
    "&fab_sigma=0.1&phase_noise_rad=0.3&seed={seed}&serial={serial}"
)


@dataclass
class Digits:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load(seed: int = 0, signed: bool = False) -> Digits:
    """sklearn's 8x8 digits (shipped with scikit-learn), pixels scaled to [-1, 1] (``signed``:
    a symmetric input DAC then uses all its codes) or [0, 1]."""
    data = load_digits()
    x = (data.data / 8.0 - 1.0 if signed else data.data / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, data.target, test_size=0.25, random_state=seed, stratify=data.target
    )
    as_t = torch.from_numpy
    return Digits(as_t(x_tr), as_t(y_tr).long(), as_t(x_te), as_t(y_te).long())


def mlp(hidden: int = 256, signed: bool = False) -> nn.Sequential:
    """64 -> hidden -> 10; tanh (signed, uses the whole input DAC of the next layer) or ReLU."""
    return nn.Sequential(
        nn.Linear(64, hidden), nn.Tanh() if signed else nn.ReLU(), nn.Linear(hidden, 10)
    )


def clip_weights_(model: nn.Module, sigmas: float) -> None:
    """Clamp every weight matrix to ±``sigmas`` of its own standard deviation (in place)."""
    with torch.no_grad():
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.dim() == 2:
                bound = sigmas * float(weight.std())
                weight.clamp_(-bound, bound)


def train(
    model: nn.Module,
    d: Digits,
    epochs: int,
    lr: float,
    seed: int,
    clip: float = 0.0,
    cosine: bool = False,
) -> None:
    """Adam on cross-entropy, batch 32, shuffled by ``seed``; ``cosine``: the learning rate
    decays to 0 along a half cosine; ``clip`` > 0: clip_weights_ after every step."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(d.x_train) // 32)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if cosine else None
    if clip > 0:
        clip_weights_(model, clip)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(d.x_train), generator=gen)
        for i in range(0, len(order), 32):
            idx = order[i : i + 32]
            opt.zero_grad()
            nn.functional.cross_entropy(model(d.x_train[idx]), d.y_train[idx]).backward()
            opt.step()
            if schedule is not None:
                schedule.step()
            if clip > 0:
                clip_weights_(model, clip)


def accuracy(model: nn.Module, d: Digits, repeats: int = 1) -> float:
    """Test accuracy (mean over ``repeats`` passes: the chip's noise differs every call)."""
    model.eval()
    with torch.inference_mode():
        hits = [
            (model(d.x_test).argmax(1) == d.y_test).float().mean().item() for _ in range(repeats)
        ]
    return float(np.mean(hits))


def on_chip(model: nn.Module, serial: str, seed: int = 1) -> tuple[nn.Module, object]:
    """A copy of ``model`` whose linear layers run on a harsh twin with ``serial``."""
    return replace_linear_layers(copy.deepcopy(model), chip=HARSH.format(seed=seed, serial=serial))


@dataclass(frozen=True)
class Recipe:
    """The NAT fine-tuning recipe (docs/torch.md section 5)."""

    epochs: int = 40
    lr: float = 3e-3
    clip: float = 2.0
    cosine: bool = True
    refresh_every: int = 16
    mode: str = "noise_model"


def run(
    epochs: int = 60,
    seed: int = 0,
    repeats: int = 5,
    hidden: int = 256,
    signed: bool = False,
    recipe: Recipe = Recipe(),
) -> dict[str, float]:
    """Float, plain-on-chip and NAT accuracies for one seed (data split, init, shuffling)."""
    torch.manual_seed(seed)
    d = load(seed, signed)
    model = mlp(hidden, signed)
    train(model, d, epochs, 3e-3, seed)
    result = {"float": accuracy(model, d)}
    for serial in ("CHIP-A", "CHIP-B"):
        chip_model, replacement = on_chip(model, serial)
        result[f"plain_{serial}"] = accuracy(chip_model, d, repeats)
        replacement()
    nat_model, replacement = replace_linear_layers(
        copy.deepcopy(model),
        chip=HARSH.format(seed=seed, serial="CHIP-A"),
        mode=recipe.mode,
        noise_refresh_every=recipe.refresh_every,
    )
    train(nat_model, d, recipe.epochs, recipe.lr, seed + 1, recipe.clip, recipe.cosine)
    result["nat_noise_model"] = accuracy(nat_model, d, repeats)
    trained = replacement()  # plain nn.Linear again, with the NAT weights
    for serial in ("CHIP-A", "CHIP-B"):
        chip_model, chip_replacement = on_chip(trained, serial)
        result[f"nat_{serial}"] = accuracy(chip_model, d, repeats)
        chip_replacement()
    lost = result["float"] - result["plain_CHIP-B"]
    result["recovered_fraction_CHIP-B"] = (result["nat_CHIP-B"] - result["plain_CHIP-B"]) / lost
    return result


def run_seeds(seeds: list[int], **kwargs: Any) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation over ``seeds`` of every number ``run`` returns."""
    runs = [run(seed=seed, **kwargs) for seed in seeds]
    return {
        key: (float(np.mean([r[key] for r in runs])), float(np.std([r[key] for r in runs])))
        for key in runs[0]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60, help="float training epochs")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds")
    parser.add_argument("--nat-epochs", type=int, default=Recipe.epochs)
    parser.add_argument("--nat-lr", type=float, default=Recipe.lr)
    parser.add_argument("--clip", type=float, default=Recipe.clip, help="sigmas; 0: off")
    parser.add_argument("--no-cosine", action="store_true", help="constant learning rate")
    parser.add_argument("--refresh-every", type=int, default=Recipe.refresh_every)
    parser.add_argument("--nat-mode", default=Recipe.mode, choices=("noise_model", "ideal"))
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--signed", action="store_true", help="[-1, 1] inputs and tanh")
    args = parser.parse_args()
    torch.set_num_threads(1)
    recipe = Recipe(
        args.nat_epochs, args.nat_lr, args.clip, not args.no_cosine, args.refresh_every,
        args.nat_mode,
    )  # fmt: skip
    seeds = [int(s) for s in args.seeds.split(",")]
    result = run_seeds(
        seeds, epochs=args.epochs, hidden=args.hidden, signed=args.signed, recipe=recipe
    )
    print(f"{recipe}, seeds {seeds} (mean ± std)")
    for key, (mean, std) in result.items():
        print(f"{key:28s} {mean:.3f} ± {std:.3f}")


if __name__ == "__main__":
    main()
