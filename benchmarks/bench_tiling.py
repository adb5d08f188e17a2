"""Tiling costs measured side by side (docs/tiling.md section 6).

1. SNR of a 64 x 1024 product against float64, read out whole, in digital tiles of several
   widths, and with analog accumulation (the twin's AccumulatingTwin), beside the plan's
   prediction, at the typical and harsh presets.
2. Time per product of a matrix four times the array on each side: one device re-programming
   its tiles every product, one device per tile (resident, threads), and numpy's X @ W.T.

Run: ``python benchmarks/bench_tiling.py [--quick]``. It reports; it never fails on a number.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from bench_twin import _cpu_model, reexec_without_openblas_overrides, simd_path

import lumina_hal
from lumina_hal.metrics import snr_db
from lumina_hal.tiling import TiledDevice
from lumina_hal.twin.accumulating import AccumulatingTwin

PRESET_SNR_DB = {"typical": 51.87, "harsh": 43.63}  # docs/physics.md section 6


def _workload(rows: int, cols: int, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (rows, cols)), rng.uniform(-1, 1, (batch, cols)).astype(np.float32)


def snr_rows(preset: str, cols: int, widths: list[int], banks: list[int]) -> list[str]:
    w, x = _workload(64, cols, 256)
    ideal = x.astype(np.float64) @ w.T
    lines = []
    for width in widths:
        uri = f"mock://?rows=64&cols={width}&preset={preset}&seed=1"
        with TiledDevice(uri) as tiled:
            tiled.load_weights(w)
            got = snr_db(tiled.matmul(x), ideal)
            plan = tiled.plan
        predicted = plan.predicted_snr_db(PRESET_SNR_DB[preset])
        lines.append(
            f"| {preset} | digital | 64x{width} | {plan.readouts_per_output} | "
            f"{got:.2f} | {predicted:.2f} |"
        )
    for bank in banks:
        twin = AccumulatingTwin(banks=bank, rows=64, cols=64, preset=preset, seed=1)
        with TiledDevice(twin) as tiled:
            tiled.load_weights(w)
            got = snr_db(tiled.matmul(x), ideal)
            plan = tiled.plan
        predicted = plan.predicted_snr_db(PRESET_SNR_DB[preset])
        mode = f"analog x{plan.analog_group}" if plan.analog else "digital"
        lines.append(
            f"| {preset} | {mode} | 64x64 | {plan.readouts_per_output} | {got:.2f} | "
            f"{predicted:.2f} |"
        )
    return lines


def best_of(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _timed_row(
    label: str, tiled: TiledDevice, w: np.ndarray, x: np.ndarray, repeats: int
) -> tuple[str, float]:
    t0 = time.perf_counter()
    tiled.load_weights(w)
    program_s = time.perf_counter() - t0
    plan = tiled.plan
    product_s = best_of(lambda: tiled.matmul(x), repeats)
    row = (
        f"| {label} | {plan.n_tiles} | {plan.loads_per_product} | "
        f"{program_s * 1e3:.1f} | {product_s * 1e3:.2f} |"
    )
    return row, product_s


def timing_rows(array: int, batch: int, repeats: int) -> list[str]:
    size = 4 * array
    w, x = _workload(size, size, batch)
    uri = f"mock://?rows={array}&cols={array}&preset=typical&seed=1&threads=1"
    with TiledDevice(uri) as one:
        row_one, t_one = _timed_row("1 device, re-programmed", one, w, x, repeats)
    devices = [lumina_hal.open_device(uri) for _ in range(16)]
    with TiledDevice(devices) as many:
        row_many, t_many = _timed_row("16 devices, resident, threads", many, w, x, repeats)
    for device in devices:
        device.close()
    w32 = w.astype(np.float32)
    t_np = best_of(lambda: x @ w32.T, repeats)
    return [
        row_one,
        row_many,
        f"| numpy float32 X @ W.T | - | - | - | {t_np * 1e3:.3f} |",
        f"\nratios: resident/re-programmed {t_many / t_one:.3f}, "
        f"resident/numpy {t_many / t_np:.1f}x",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = parser.parse_args()
    print(f"CPU: {_cpu_model()}; twin SIMD path: {simd_path()}")
    cols = 256 if args.quick else 1024
    widths = [cols, cols // 4, 64, 16] if args.quick else [1024, 256, 64, 16]
    banks = [1, 4] if args.quick else [1, 4, 16]
    print("\n| preset | accumulation | array | readouts/output | SNR dB | predicted dB |")
    print("|---|---|---|---|---|---|")
    for preset in PRESET_SNR_DB:
        print("\n".join(snr_rows(preset, cols, widths, banks)))
    array, batch = (32, 16) if args.quick else (128, 64)
    print(f"\n{4 * array}x{4 * array} on {array}x{array} arrays, batch {batch}:")
    print("| setup | tiles | loads/product | programming ms | product ms |")
    print("|---|---|---|---|---|")
    print("\n".join(timing_rows(array, batch, 3 if args.quick else 7)))


if __name__ == "__main__":
    reexec_without_openblas_overrides()
    main()
