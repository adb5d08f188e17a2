"""The TinyLlama-1.1B architecture on the chip: programming time, forward time, logits' SNR.

Builds the architecture offline from ``transformers.LlamaConfig`` (hidden 2048, intermediate
5632, 22 layers, 32 heads, 4 KV heads, vocab 32000) with random weights (nothing is
downloaded), swaps every linear layer including ``lm_head`` for a LuminaLinear, and runs one
forward per preset beside torch's float forward.

    python examples/tinyllama.py --layers 2                       # what CI runs
    python examples/tinyllama.py --layers 22 --placement shared   # the full model, < 24 GB
    python examples/tinyllama.py --tiny --uri "fpga+sim://?rows=64&cols=64&preset={preset}"

``--uri`` is formatted with ``{preset}``. ``--placement per-layer`` gives every layer its own
device opened from the URI (weights stay programmed: memory ~40 bytes per weight on the
twin); ``shared`` opens one device for all layers, which re-programs each layer's tiles at
every forward (memory of one tile). docs/torch.md section 6 has the numbers.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from typing import Any

import numpy as np
import torch
import transformers

import lumina_hal
from lumina_hal.metrics import snr_db
from lumina_hal.torch import replace_linear_layers

TINYLLAMA = {
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 22,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "vocab_size": 32000,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
TINY = {  # the same shape of model, small enough for the emulator over PHL1
    **TINYLLAMA,
    "hidden_size": 64,
    "intermediate_size": 176,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 500,
}
DEFAULT_URI = "mock://?rows=8192&cols=2048&preset={preset}&seed=1"


def build(layers: int, tiny: bool = False, seed: int = 0) -> transformers.LlamaForCausalLM:
    """The architecture with ``layers`` decoder layers and random weights, in eval mode."""
    config = transformers.LlamaConfig(
        **{**(TINY if tiny else TINYLLAMA), "num_hidden_layers": layers}
    )
    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(config).eval()


def _forward(model: torch.nn.Module, ids: torch.Tensor) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    with torch.inference_mode():
        logits = model(ids).logits
    return logits.float().numpy().copy(), time.perf_counter() - t0


def run(
    layers: int = 2,
    presets: tuple[str, ...] = ("ideal", "typical", "harsh"),
    uri: str = DEFAULT_URI,
    placement: str = "per-layer",
    tokens: int = 16,
    tiny: bool = False,
) -> dict[str, Any]:
    """Float forward, then per preset: swap, program (first forward), forward again."""
    model = build(layers, tiny)
    ids = torch.randint(
        0, model.config.vocab_size, (1, tokens), generator=torch.Generator().manual_seed(1)
    )
    reference, torch_s = _forward(model, ids)
    _, torch_s = _forward(model, ids)  # warm
    params = sum(p.numel() for p in model.parameters())
    result: dict[str, Any] = {
        "layers": layers,
        "parameters": params,
        "tokens": tokens,
        "torch_forward_s": torch_s,
        "presets": {},
    }
    for preset in presets:
        target = uri.format(preset=preset)
        shared = lumina_hal.open_device(target) if placement == "shared" else None
        chip: Any = shared if shared is not None else target  # one TiledDevice per layer
        model, replacement = replace_linear_layers(model, chip=chip)
        runners = [layer.chip_runner() for layer in replacement.layers.values()]
        logits, first_s = _forward(model, ids)
        program_s = sum(r.program_s for r in runners)
        if shared is None:  # weights resident: a second forward only runs
            _, forward_s = _forward(model, ids)
            passes = 2
        else:  # a shared device re-programs every forward: count the first one's runs only
            forward_s, passes = first_s - program_s, 1
        result["presets"][preset] = {
            "uri": target,
            "placement": placement,
            "linear_layers": len(runners),
            "program_s": program_s,
            "programs": sum(r.programs for r in runners),
            "first_forward_s": first_s,
            "forward_s": forward_s,
            "chip_run_s": sum(r.run_s for r in runners) / passes,
            "logits_snr_db": snr_db(logits, reference),
            "top1_agreement": float(np.mean(logits.argmax(-1) == reference.argmax(-1))),
        }
        replacement()
        if shared is not None:
            shared.close()
        gc.collect()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=22)
    parser.add_argument("--presets", default="ideal,typical,harsh")
    parser.add_argument("--uri", default=DEFAULT_URI, help="device URI, formatted with {preset}")
    parser.add_argument("--placement", choices=("per-layer", "shared"), default="per-layer")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--tiny", action="store_true", help="hidden 64: for the PHL1 emulator")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    presets = tuple(args.presets.split(","))
    result = run(args.layers, presets, args.uri, args.placement, args.tokens, args.tiny)
    print(
        f"{result['layers']} layers, {result['parameters'] / 1e6:.0f} M parameters, "
        f"{result['tokens']} tokens; torch forward {result['torch_forward_s'] * 1e3:.0f} ms"
    )
    print(
        "| preset | programming s | first forward s | forward s | chip runs s "
        "| logits SNR dB | top-1 agreement |"
    )
    print("|---|---|---|---|---|---|---|")
    for preset, r in result["presets"].items():
        cells = [
            f"{r['program_s']:.1f}",
            f"{r['first_forward_s']:.2f}",
            f"{r['forward_s']:.2f}",
            f"{r['chip_run_s']:.2f}",
            f"{r['logits_snr_db']:.1f}",
            f"{r['top1_agreement']:.2f}",
        ]
        print(f"| {preset} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
