"""Programming the twin at memory speed (issue 12): load_weights and set_temperature.

Measures, side by side in one run and per array size:
- ns per cell of ``load_weights`` (host codes + chip-side W_eff + weights id) and of
  ``set_temperature`` (chip-side W_eff at a new temperature), against a bare float32 copy of
  the matrix (``np.copyto``), the memory-speed baseline;
- the memory of a load: tracemalloc's peak during the first ``load_weights`` of a fresh twin
  and what stays allocated after it, both as multiples of the float32 matrix (numpy arrays are
  tracked; the kernel's per-thread scratch of a few rows is not), plus the process RSS growth.

Goals (issue 12): <= 10 ns/cell at 4096^2, load peak <= 3x, resident <= 2.5x. Each line says
met or missed. Prints the CPU model and ISA (detected) and the thread count used everywhere.

    python benchmarks/bench_program.py [--sizes 1024 4096] [--preset typical] [--repeats 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
import tracemalloc

import numpy as np

import lumina_hal
from lumina_hal.twin.config import default_threads
from lumina_hal.twin.kernel import isa_name, kernel_version

GOAL_NS_PER_CELL = 10.0
GOAL_PEAK_X = 3.0
GOAL_RESIDENT_X = 2.5


def cpu_model() -> tuple[str, str]:
    """(model name, SIMD extensions the CPU reports) from /proc/cpuinfo (Linux)."""
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                if model != "unknown" and flags:
                    break
    except OSError:
        pass
    wanted = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16"]
    return model, " ".join(f for f in wanted if f in flags) or "none detected"


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="utf-8") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def verdict(value: float, goal: float) -> str:
    return "met" if value <= goal else "MISSED"


def bench_size(n: int, preset: str, threads: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    weights = rng.uniform(-1.0, 1.0, size=(n, n))  # float64, and its float32 copy below
    w32 = weights.astype(np.float32)
    matrix_bytes = w32.nbytes
    cells = n * n
    uri = f"mock://?rows={n}&cols={n}&preset={preset}&threads={threads}&kernel=native"

    # memory: the first load of a fresh twin
    gc.collect()
    with lumina_hal.open_device(uri) as chip:
        rss0 = rss_bytes()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        chip.load_weights(weights)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss1 = rss_bytes()
        peak_x = (peak - base) / matrix_bytes
        resident_x = (current - base) / matrix_bytes

        # time: baseline copy, reloads, temperature changes (alternating so each one works)
        dst = np.empty_like(w32)
        copy_s = median_s(lambda: np.copyto(dst, w32), repeats)
        load_s = median_s(lambda: chip.load_weights(weights), repeats)
        load32_s = median_s(lambda: chip.load_weights(w32), repeats)
        temps = iter([40.0, 50.0] * repeats)
        temp_s = median_s(lambda: chip.set_temperature(next(temps)), repeats)

    copy_ns, load_ns, load32_ns, temp_ns = (
        t / cells * 1e9 for t in (copy_s, load_s, load32_s, temp_s)
    )
    print(f"\n{n}x{n} ({preset}), float32 matrix {matrix_bytes / 2**20:.0f} MiB")
    print(f"  float32 copy (baseline)  {copy_ns:7.2f} ns/cell")
    print(
        f"  load_weights             {load_ns:7.2f} ns/cell  {load_ns / copy_ns:6.1f}x copy  "
        f"goal <= {GOAL_NS_PER_CELL:g}: {verdict(load_ns, GOAL_NS_PER_CELL)}"
    )
    print(
        f"  load_weights, float32 in {load32_ns:7.2f} ns/cell  {load32_ns / copy_ns:6.1f}x copy  "
        f"goal <= {GOAL_NS_PER_CELL:g}: {verdict(load32_ns, GOAL_NS_PER_CELL)}"
    )
    print(
        f"  set_temperature          {temp_ns:7.2f} ns/cell  {temp_ns / copy_ns:6.1f}x copy  "
        f"goal <= {GOAL_NS_PER_CELL:g}: {verdict(temp_ns, GOAL_NS_PER_CELL)}"
    )
    print(
        f"  load peak                {peak_x:7.2f} x matrix   "
        f"goal <= {GOAL_PEAK_X:g}: {verdict(peak_x, GOAL_PEAK_X)}"
    )
    print(
        f"  resident after load      {resident_x:7.2f} x matrix   "
        f"goal <= {GOAL_RESIDENT_X:g}: {verdict(resident_x, GOAL_RESIDENT_X)}"
    )
    print(f"  RSS growth of the load   {(rss1 - rss0) / matrix_bytes:7.2f} x matrix")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--preset", default="typical")
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model, isa = cpu_model()
    print(f"CPU: {model}; ISA: {isa}; kernel v{kernel_version()} on {isa_name()}")
    print(f"threads: {args.threads} (the twin's; np.copyto is single-threaded memory traffic)")
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"1-minute load average at the start: {load1:.2f} (other work on these cores slows "
        "the threaded programming; run on an idle machine)"
    )
    for n in args.sizes:
        bench_size(n, args.preset, args.threads, args.repeats)


if __name__ == "__main__":
    main()
