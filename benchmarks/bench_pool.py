"""Device pools measured side by side (docs/scale-out.md section 5).

1. Overhead: one device alone vs a one-chip local pool around it (goal: pool <= 1.05x), on
   the twin (64 x 64 at batch 1 and 256, 256 x 256 at 256), the emulator without a link and
   a board with a real RUN time, every call of the device and of the pool alternated.
2. Scale-out on emulated boards (fpga+sim:// with a board's timing: RUN latency and a
   12 Mbaud link): throughput of N = 1, 2, 4, 8 chips, local threads and Ray actors
   (goal: N chips >= 0.85 N x one chip), beside the seed's pattern, a multiprocessing pool
   that reships the weights with every call.
3. A model larger than one chip's array, tiled over the pool, against the single big twin
   (SNR against float64, and the tiling plan's predicted cost, docs/tiling.md).

Run: ``python benchmarks/bench_pool.py [--quick] [--no-ray] [--run-latency-s 0.002]
[--boards fpga+sim|mock] [--sections 1,2,2b,3]``; ``--boards mock`` measures scale-out on
twins with the same board timing (lumina_hal.board_timing) instead of the emulator.
It reports; it never fails on a number.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
from bench_twin import _cpu_model, simd_path

import lumina_hal
from lumina_hal.metrics import snr_db

BAUDRATE = 12_000_000  # an FT232H-class USB UART
ROWS = COLS = 64
#: Vectors per RUN frame for a 64 x 64 array (PHL1 payload 8192 B, 16 B of header each way).
VECTORS_PER_FRAME = 31


def board_uri(seed: int, latency_s: float, boards: str = "fpga+sim") -> str:
    """An emulated board (``fpga+sim``) or a twin (``mock``, one kernel thread) with a real
    board's timing."""
    threads = "&threads=1" if boards == "mock" else ""
    return (
        f"{boards}://?rows={ROWS}&cols={COLS}&preset=typical&seed={seed}"
        f"&run_latency_s={latency_s}&baudrate={BAUDRATE}{threads}"
    )


def _median_s(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


#: Section 1's cases: (URI, batch, calls per repeat). The twin and the emulator without a
#: link show the pool's own Python cost; the timed board is the use a pool is built for.
OVERHEAD_CASES = (
    ("mock://?rows=64&cols=64&preset=typical&seed=1&threads=1", 1, 4000),
    ("mock://?rows=64&cols=64&preset=typical&seed=1&threads=1", 256, 1000),
    ("mock://?rows=256&cols=256&preset=typical&seed=1&threads=1", 256, 600),
    ("fpga+sim://?rows=64&cols=64&preset=typical&seed=1", 31, 300),
    (board_uri(1, 0.002), 31, 30),
)


def _alternated_ns(fns: Sequence[Callable[[], object]], calls: int) -> list[list[int]]:
    """Per-call times of each of ``fns``, called in turn (the order rotated every round),
    so that all see the same machine state, call for call."""
    clock = time.perf_counter_ns
    times: list[list[int]] = [[] for _ in fns]
    order = list(range(len(fns)))
    for i in range(calls):
        for j in order[i % len(fns) :] + order[: i % len(fns)]:
            start = clock()
            fns[j]()
            times[j].append(clock() - start)
    return times


def overhead(repeats: int) -> list[str]:
    """One device vs a one-chip local pool around the same kind of device, call by call;
    a second device alone is the control (two identical devices differ by memory placement
    and cache sharing: what the benchmark can resolve)."""
    rng = np.random.default_rng(0)
    lines = []
    for uri, batch, calls in OVERHEAD_CASES:
        n = int(uri.split("rows=")[1].split("&")[0])
        w = rng.uniform(-1, 1, (n, n))
        x = rng.uniform(-1, 1, (batch, n)).astype(np.float32)
        with (
            lumina_hal.open_device(uri) as device,
            lumina_hal.open_device(uri) as control,
            lumina_hal.open_pool([uri]) as pool,
        ):
            chips = (device, pool, control)
            for chip in chips:
                chip.load_weights(w)
            fns = [functools.partial(chip.matmul, x) for chip in chips]
            _alternated_ns(fns, max(3, calls // 10))  # warm all
            dev_ns: list[int] = []
            pool_ns: list[int] = []
            control_ns: list[int] = []
            for _ in range(max(1, repeats // 3)):
                d_part, p_part, c_part = _alternated_ns(fns, calls)
                dev_ns += d_part
                pool_ns += p_part
                control_ns += c_part
        d, p, c = (statistics.median(t) / 1e3 for t in (dev_ns, pool_ns, control_ns))
        # The 10th percentile: calls that no other process interrupted (a loaded machine
        # only ever adds time), the pool's own cost with the least noise.
        d10, p10 = (statistics.quantiles(t, n=10)[0] / 1e3 for t in (dev_ns, pool_ns))
        board = " (2 ms RUN, 12 Mbaud)" if "run_latency_s" in uri else ""
        lines.append(
            f"| {uri.split('?')[0]}{n}x{n}{board} | {batch} | {d:.2f} | {p:.2f} | "
            f"{p - d:.2f} | {p / d:.3f} | {p10 / d10:.3f} | {c / d:.3f} |"
        )
    return lines


def throughput(
    backend: str, n_chips: int, latency_s: float, calls: int, frames: int, boards: str = "fpga+sim"
) -> float:
    """Vectors per second of a pool of ``n_chips`` boards on a batch of ``frames`` RUN frames."""
    rng = np.random.default_rng(1)
    w = rng.uniform(-1, 1, (ROWS, COLS))
    x = rng.uniform(-1, 1, (frames * VECTORS_PER_FRAME, COLS)).astype(np.float32)
    devices = [board_uri(i + 1, latency_s, boards) for i in range(n_chips)]
    with lumina_hal.open_pool(devices, backend=backend) as pool:
        pool.load_weights(w)
        pool.matmul(x)  # warm
        elapsed = _median_s(lambda: pool.matmul(x), calls)
    return x.shape[0] / elapsed


_SEED_DEVICE: dict[str, object] = {}


def _seed_task(args: tuple[str, np.ndarray, np.ndarray]) -> np.ndarray:
    """The seed's MultiProcessExecutor task: weights arrive with every call and are loaded."""
    uri, w, x = args
    device = _SEED_DEVICE.get(uri)
    if device is None:
        device = _SEED_DEVICE[uri] = lumina_hal.open_device(uri)
    device.load_weights(w)  # type: ignore[attr-defined]
    return device.matmul(x)  # type: ignore[attr-defined]


def seed_pattern_throughput(
    n_chips: int, latency_s: float, calls: int, frames: int, boards: str = "fpga+sim"
) -> float:
    rng = np.random.default_rng(1)
    w = rng.uniform(-1, 1, (ROWS, COLS))
    x = rng.uniform(-1, 1, (frames * VECTORS_PER_FRAME, COLS)).astype(np.float32)
    shards = np.array_split(x, n_chips)
    devices = [board_uri(i + 1, latency_s, boards) for i in range(n_chips)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(n_chips) as procs:
        tasks = list(zip(devices, [w] * n_chips, shards, strict=True))
        procs.map(_seed_task, tasks, chunksize=1)  # warm: processes up, devices open
        elapsed = _median_s(lambda: procs.map(_seed_task, tasks, chunksize=1), calls)
    return x.shape[0] / elapsed


def twins_without_link(calls: int) -> list[str]:
    """256 x 256 twins, batch 256, no link: where the seed measured 0.1x of one process."""
    rng = np.random.default_rng(3)
    w = rng.uniform(-1, 1, (256, 256))
    x = rng.uniform(-1, 1, (256, 256)).astype(np.float32)
    uris = [f"mock://?rows=256&cols=256&preset=typical&seed={i + 1}&threads=1" for i in range(2)]
    with lumina_hal.open_device(uris[0]) as device:
        device.load_weights(w)
        one = _median_s(lambda: device.matmul(x), calls)
    with lumina_hal.open_pool(uris) as pool:
        pool.load_weights(w)
        pooled = _median_s(lambda: pool.matmul(x), calls)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as procs:
        tasks = list(zip(uris, [w] * 2, np.array_split(x, 2), strict=True))
        procs.map(_seed_task, tasks, chunksize=1)
        seed = _median_s(lambda: procs.map(_seed_task, tasks, chunksize=1), calls)
    return [
        f"| one twin, in process | 1 | {one * 1e3:.2f} | 1.00 |",
        f"| pool, local, 2 twins | 2 | {pooled * 1e3:.2f} | {one / pooled:.2f} |",
        f"| seed: process pool, weights per call | 2 | {seed * 1e3:.2f} | {one / seed:.2f} |",
    ]


def tiled_model(backend: str) -> list[str]:
    """A 128 x 192 layer over eight 64 x 64 chips vs one 128 x 192 twin."""
    rng = np.random.default_rng(2)
    w = rng.uniform(-1, 1, (128, 192))
    x = rng.uniform(-1, 1, (256, 192)).astype(np.float32)
    ideal = x.astype(np.float64) @ w.T
    lines = []
    for preset in ("typical", "harsh"):
        chips = [f"mock://?rows=64&cols=64&preset={preset}&seed={i + 1}" for i in range(8)]
        with lumina_hal.open_pool(chips, backend=backend) as pool:
            start = time.perf_counter()
            pool.load_weights(w)
            program_s = time.perf_counter() - start
            pool_snr = snr_db(pool.matmul(x), ideal)
            product_s = _median_s(lambda: pool.matmul(x), 5)
            plan = pool.tile_plan
        with lumina_hal.open_device(f"mock://?rows=128&cols=192&preset={preset}&seed=1") as big:
            big.load_weights(w)
            big_snr = snr_db(big.matmul(x), ideal)
        lines.append(
            f"| {preset} | {backend} | {plan.n_tiles} tiles, {plan.loads_per_product} reloads | "
            f"{pool_snr:.2f} | {big_snr:.2f} | {plan.snr_cost_db:.2f} | "
            f"{program_s * 1e3:.1f} | {product_s * 1e3:.2f} |"
        )
    return lines


def start_ray() -> bool:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only
    try:
        import ray
    except ImportError:
        print("ray is not installed (pip install 'lumina-hal[ray]'): Ray rows skipped")
        return False
    ray.init(num_cpus=2, resources={"lumina_chip": 8}, include_dashboard=False, log_to_driver=False)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--no-ray", action="store_true", help="local backend only")
    parser.add_argument("--run-latency-s", type=float, default=0.002)
    parser.add_argument(
        "--frames", type=int, default=64, help="RUN frames per batch (a multiple of 8)"
    )
    parser.add_argument(
        "--boards",
        choices=("fpga+sim", "mock"),
        default="fpga+sim",
        help="scale-out on the FPGA emulator or on twins, both with a board's timing",
    )
    parser.add_argument(
        "--sections", default="1,2,2b,3", help="comma-separated sections to run (1,2,2b,3)"
    )
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    repeats = 3 if args.quick else 9
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        usable = os.cpu_count() or 1
    print(f"CPU: {_cpu_model()}; {usable} usable core(s); twin SIMD path: {simd_path()}")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    if "1" in sections:
        print(
            "\n## 1. Overhead of a one-chip local pool (median µs per matmul, device and pool "
            "called in turn; goal pool / device <= 1.05; p10 ratio: that of the 10th "
            "percentiles, calls no other process interrupted; control: a second device "
            "alone, what two identical devices differ by)\n"
        )
        print(
            "| device | batch | device µs | pool µs | added µs | pool / device | p10 ratio | "
            "control / device |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for line in overhead(repeats):
            print(line)
        print("load average after section 1: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    backends = ["local"] + ([] if args.no_ray or not start_ray() else ["ray"])
    latency = args.run_latency_s
    calls = 3 if args.quick else 7
    if "2" in sections:
        kind = "emulated boards" if args.boards == "fpga+sim" else "twins with board timing"
        print(
            f"\n## 2. Scale-out: {kind} ({args.boards}), RUN {latency * 1e3:g} ms, "
            f"{BAUDRATE / 1e6:g} Mbaud, batch {args.frames * VECTORS_PER_FRAME} "
            f"({args.frames} RUN frames)\n"
        )
        print("| setup | chips | vectors/s | x one chip | goal |")
        print("|---|---|---|---|---|")
        one_chip: dict[str, float] = {}
        for backend in backends:
            one = one_chip[backend] = throughput(
                backend, 1, latency, calls, args.frames, args.boards
            )
            for n in (1, 2, 4, 8):
                rate = (
                    one
                    if n == 1
                    else throughput(backend, n, latency, calls, args.frames, args.boards)
                )
                print(
                    f"| pool, {backend} | {n} | {rate:.0f} | {rate / one:.2f} | >= {0.85 * n:.2f} |"
                )
        for n in (1, 4):
            rate = seed_pattern_throughput(n, latency, calls, args.frames, args.boards)
            print(
                f"| seed: process pool, weights per call | {n} | {rate:.0f} | "
                f"{rate / one_chip['local']:.2f} (of local) | - |"
            )

    if "2b" in sections:
        print("\n## 2b. Twins without a link (256 x 256, batch 256): throughput vs one twin\n")
        print("| setup | chips | ms per call | x one twin |")
        print("|---|---|---|---|")
        for line in twins_without_link(calls):
            print(line)

    if "3" in sections:
        print("\n## 3. A 128 x 192 layer tiled over eight 64 x 64 chips vs one 128 x 192 twin\n")
        print(
            "| preset | backend | tiles | pool SNR dB | big twin SNR dB | predicted cost dB | "
            "programming ms | product ms (batch 256) |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for backend in backends:
            for line in tiled_model(backend):
                print(line)


if __name__ == "__main__":
    main()
