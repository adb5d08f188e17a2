"""Cost of recording a call: bare ``matmul`` vs ``record_run`` (v2 frames) vs the v1 HDF5 way.

Prints the CPU model and ISA, then microseconds per call and ratios, measured side by side
(interleaved rounds, same device, same inputs, one thread). Usage:
    python benchmarks/bench_records.py [--calls 500] [--size 64] [--batch 32] [--rounds 5]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

import lumina_hal
from lumina_hal.runs.record_export import _array  # the v1 dataset writer (gzip + shuffle)


def cpu() -> tuple[str, str]:
    """CPU model and the SIMD extensions that matter here (detected, not assumed)."""
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    return model, " ".join(isa) or "none of avx2/avx512/amx"


def per_call_us(step: Callable[[int], None], calls: int) -> float:
    t0 = time.perf_counter()
    for i in range(calls):
        step(i)
    return (time.perf_counter() - t0) / calls * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    model, isa = cpu()
    print(f"cpu      {model}\nisa      {isa}")
    print(
        f"workload {args.size}x{args.size}, batch {args.batch}, {args.calls} calls x {args.rounds}"
    )
    uri = f"mock://?rows={args.size}&cols={args.size}&seed=1&threads=1"
    x = np.random.default_rng(0).uniform(-1, 1, (args.batch, args.size)).astype(np.float32)
    best = {"bare": np.inf, "v2 frames": np.inf, "v1 hdf5": np.inf}
    with lumina_hal.open_device(uri) as chip, tempfile.TemporaryDirectory() as tmp:
        chip.load_weights(np.eye(args.size))
        for r in range(args.rounds):
            best["bare"] = min(best["bare"], per_call_us(lambda i: chip.matmul(x), args.calls))
            with lumina_hal.record_run(Path(tmp) / f"r{r}.lhrun", chip) as run:
                us = per_call_us(lambda i: run.matmul(x, label=str(i)), args.calls)
                best["v2 frames"] = min(best["v2 frames"], us)
            with h5py.File(Path(tmp) / f"r{r}.h5", "w") as h5:
                calls = h5.create_group("calls")

                def v1_step(i: int, h5: h5py.File = h5, calls: h5py.Group = calls) -> None:
                    y = chip.matmul(x)
                    group = calls.create_group(f"{i:06d}")
                    _array(group, "inputs", x)
                    _array(group, "outputs", y)
                    group.attrs.update({"label": str(i), "telemetry_json": "{}"})
                    h5.flush()

                best["v1 hdf5"] = min(best["v1 hdf5"], per_call_us(v1_step, args.calls))
    for name, us in best.items():
        print(f"{name:10s} {us:9.1f} us/call   x{us / best['bare']:.2f} of bare")
    print(f"v1/v2 ratio {best['v1 hdf5'] / best['v2 frames']:.2f} (above 1: v2 records faster)")


if __name__ == "__main__":
    main()
