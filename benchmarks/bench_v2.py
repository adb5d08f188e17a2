"""Physics v2 per call: the C engine (native/lk_v2.c) against the numpy oracle (issue 15).

Times ``matmul`` of a ``typical`` v2 twin (AR(1) phase noise per cell, detector noise) on
``kernel=native`` and ``kernel=reference`` side by side, interleaved, at each size and batch,
and prints the median ms per call and the ratio reference / native. Also prints the CPU
model, its SIMD extensions, the ISA path the kernel selected, the threads and the load
average (numbers are noisy on a shared machine).

    python benchmarks/bench_v2.py [--sizes 64 256] [--batches 1 256] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_program import cpu_model  # a sibling script, not a package

from lumina_hal.twin.config import default_threads
from lumina_hal.twin.device_v2 import TwinV2Device
from lumina_hal.twin.kernel import isa_name, kernel_version


def time_pair(size: int, batch: int, repeats: int, threads: int) -> dict[str, float]:
    """Median ms per matmul of each engine, the two interleaved call by call."""
    rng = np.random.default_rng(0)
    w = rng.uniform(-1, 1, (size, size))
    x = rng.uniform(-1, 1, (batch, size)).astype(np.float32)
    devs = {
        k: TwinV2Device(rows=size, cols=size, seed=1, kernel=k, threads=threads)
        for k in ("native", "reference")
    }
    times: dict[str, list[float]] = {k: [] for k in devs}
    try:
        for dev in devs.values():
            dev.open()
            dev.load_weights(w)
            dev.matmul(x)  # warm-up
        for _ in range(repeats):
            for k, dev in devs.items():
                t0 = time.perf_counter()
                dev.matmul(x)
                times[k].append((time.perf_counter() - t0) * 1e3)
    finally:
        for dev in devs.values():
            dev.close()
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=default_threads())
    args = ap.parse_args()
    model, flags = cpu_model()
    print(f"CPU: {model} | SIMD: {flags} | kernel ISA: {isa_name()} | kernel v{kernel_version()}")
    print(f"threads: {args.threads} | load average: {os.getloadavg()[0]:.2f} | preset typical")
    print(f"{'size':>6} {'batch':>6} {'native ms':>11} {'reference ms':>13} {'ratio':>8}")
    for size in args.sizes:
        for batch in args.batches:
            t = time_pair(size, batch, args.repeats, args.threads)
            ratio = t["reference"] / t["native"]
            print(f"{size:>6} {batch:>6} {t['native']:>11.3f} {t['reference']:>13.3f} "
                  f"{ratio:>7.1f}x")  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
