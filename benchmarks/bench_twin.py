"""The twin's forward pass against honest baselines, measured side by side in one run.

    python benchmarks/bench_twin.py            # full run (~3 min on 2 cores)
    python benchmarks/bench_twin.py --quick    # smoke run, small sizes (< 30 s)

Contenders in each (size, batch) cell, timed interleaved (benchmarks/README.md):

- ``twin``: ``chip.matmul(X, out=buf)`` through the public API, preset typical (noise on);
- ``twin quiet``: the same chip model with ``noise=false`` (converters only);
- ``numpy``/``torch``: the same model written in float32 numpy / PyTorch with every
  weight-only array built once (pipelines.py);
- ``bare``: ``np.matmul(X, Wt, out=buf)`` in float32, ``Wt`` contiguous, built once;
- the **floor** parts: the kernel's own input DAC (``lk_quantize_inputs``), output ADC
  (``lk_adc``) and normals (``lk_normals``) of the cell, each alone, one thread.

The floors are what twin/bare and quiet/bare would be if the twin's product ran exactly as
fast as the bare float32 matmul and the work docs/physics.md adds to it (the converters;
with noise, also the normals) were split perfectly over the threads:
floor = (bare + parts / threads) / bare. A goal below its floor needs a product faster than
the BLAS's, faster converters and normals than the kernel's own, or cheaper physics; not a
better-tuned product loop. (Where the BLAS itself is slow, e.g. tiny products split over
threads, a twin can beat its floor.)

Every contender runs with the same thread count (BLAS through threadpoolctl,
``torch.set_num_threads``, the twin's ``threads=``). OpenBLAS chooses its own kernels: if
OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is set, the script removes both from its own
environment and re-executes itself. Prints the CPU, its ISA flags, the kernel's SIMD path,
the BLAS and its kernel, then one line per goal of issue 12: met or missed, and the numbers.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import os
import platform
import sys
import time
import timeit
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import lumina_hal
from lumina_hal.metrics import reference_workload
from lumina_hal.twin import reference

HERE = Path(__file__).resolve().parent
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
ISA_FLAGS = (
    "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
    "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
)  # fmt: skip


def _load_sibling(name: str) -> ModuleType:
    """Import benchmarks/<name>.py whether this file runs as a script or is imported by path."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load benchmarks/{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


pipelines = _load_sibling("pipelines")

TWIN, QUIET, NUMPY, TORCH, BARE = "twin", "twin_quiet", "numpy", "torch", "bare"
DAC, ADC, NORMALS = "dac", "adc", "normals"  # the floor parts (not printed as columns)
FLOOR_PARTS = (DAC, ADC, NORMALS)
CONTENDERS = (TWIN, QUIET, NUMPY, TORCH, BARE)
HEADINGS = {
    TWIN: "twin µs",
    QUIET: "quiet µs",
    NUMPY: "numpy µs",
    TORCH: "torch µs",
    BARE: "bare µs",
}
RATIOS = {  # ratio name -> (numerator, denominator)
    "twin/bare": (TWIN, BARE),
    "quiet/bare": (QUIET, BARE),
    "numpy/twin": (NUMPY, TWIN),
    "torch/twin": (TORCH, TWIN),
}
FLOORS = {  # floor name -> (ratio it bounds, parts the physics adds to the bare product)
    "floor on": ("twin/bare", (DAC, ADC, NORMALS)),
    "floor off": ("quiet/bare", (DAC, ADC)),
}
FULL_SIZES = (64, 256, 1024, 4096)
FULL_BATCHES = (1, 32, 256)
QUICK_SIZES = (64, 256)
QUICK_BATCHES = (1, 32)
PRESET = "typical"


@dataclass(frozen=True)
class BenchConfig:
    """How to measure: engine, threads (the same everywhere), seed, time budget per cell."""

    engine: str = "native"
    threads: int = 2
    seed: int = 1
    cell_seconds: float = 0.25  # measuring time per contender per cell (after warm-up)
    repeats: int = 7  # blocks per contender; the best block's mean is reported
    settle_s: float = 0.05  # idle before each block: other pools' spinning threads sleep
    use_torch: bool = True


@dataclass(frozen=True)
class Goal:
    """One goal of issue 12 on a ratio (or a time) of the run."""

    name: str
    op: str  # "<=" or ">="
    value: float
    unit: str = "x"

    def met(self, measured: float) -> bool:
        return measured <= self.value if self.op == "<=" else measured >= self.value


# ---- timing ----------------------------------------------------------------------------


@dataclass
class Contender:
    """One timed statement (run by timeit in ``namespace``) or why it is not run."""

    stmt: str = "pass"
    namespace: dict[str, Any] = field(default_factory=dict)
    unavailable: str | None = None


def time_interleaved(
    contenders: dict[str, Contender], cfg: BenchConfig
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Per-call seconds of each contender: min over ``cfg.repeats`` interleaved blocks.

    Each contender is warmed up and calibrated to blocks of ~cell_seconds / repeats; the
    blocks alternate in a rotating order so machine noise hits all alike, each after
    ``settle_s`` idle (BLAS and OpenMP workers spin after a call and would steal the cores).
    """
    timers: dict[str, timeit.Timer] = {}
    numbers: dict[str, int] = {}
    best: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    block = cfg.cell_seconds / cfg.repeats
    for name, c in contenders.items():
        best[name] = None
        if c.unavailable is not None:
            notes[name] = c.unavailable
            continue
        timer = timeit.Timer(c.stmt, globals=c.namespace)
        number, elapsed = 1, timer.timeit(1)
        while elapsed < min(block, 0.005) and number < 10**6:
            number = min(10**6, max(2 * number, math.ceil(0.005 * number / max(elapsed, 1e-9))))
            elapsed = timer.timeit(number)
        timers[name] = timer
        numbers[name] = max(1, math.ceil(block / (elapsed / number)))
    names = list(timers)
    for r in range(cfg.repeats if names else 0):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            time.sleep(cfg.settle_s)
            per_call = timers[name].timeit(numbers[name]) / numbers[name]
            previous = best[name]
            best[name] = per_call if previous is None else min(previous, per_call)
    return best, notes


# ---- one size: devices, pipelines, inputs ------------------------------------------------


def twin_uri(size: int, cfg: BenchConfig, *, noise: bool = True, threads: int | None = None) -> str:
    uri = f"mock://?rows={size}&cols={size}&preset={PRESET}&seed={cfg.seed}&kernel={cfg.engine}"
    uri += f"&threads={threads if threads is not None else cfg.threads}"
    return uri if noise else uri + "&noise=false"


class SizeSetup:
    """Everything the contenders need at one size, built once, outside any timing."""

    def __init__(self, size: int, max_batch: int, cfg: BenchConfig) -> None:
        self.size, self.cfg = size, cfg
        workload = reference_workload(size, size, max_batch, seed=cfg.seed)
        self.weights, self.inputs = workload.weights, workload.inputs
        self.chips = {}
        try:
            for name, noise in ((TWIN, True), (QUIET, False)):
                chip = lumina_hal.open_device(twin_uri(size, cfg, noise=noise))
                self.chips[name] = chip
                chip.load_weights(self.weights)
            p = self.chips[TWIN].physics  # type: ignore[attr-defined]
            programmed = reference.program(self.weights, p, self.chips[TWIN].info.serial)
        except BaseException:
            self.close()
            raise
        self.numpy_pipe = pipelines.NumpyPipeline(programmed, p)
        self.torch_pipe: Any = None
        if cfg.use_torch and pipelines.torch_available():
            self.torch_pipe = pipelines.TorchPipeline(programmed, p)
        self.weights_t = np.ascontiguousarray(self.weights.T, dtype=np.float32)

    def close(self) -> None:
        for chip in self.chips.values():
            chip.close()

    def x(self, batch: int) -> np.ndarray:
        return np.ascontiguousarray(self.inputs[:batch])

    def buffer(self, batch: int) -> np.ndarray:
        return np.zeros((batch, self.size), dtype=np.float32)

    def twin(self, name: str, batch: int) -> Contender:
        ns = {"matmul": self.chips[name].matmul, "x": self.x(batch), "out": self.buffer(batch)}
        return Contender("matmul(x, out=out)", ns)

    def contenders(self, batch: int) -> dict[str, Contender]:
        x = self.x(batch)
        out = {
            TWIN: self.twin(TWIN, batch),
            QUIET: self.twin(QUIET, batch),
            NUMPY: Contender(
                "forward(x, rng)",
                {
                    "forward": self.numpy_pipe.forward,
                    "x": x,
                    "rng": np.random.default_rng(self.cfg.seed),
                },
            ),
            BARE: Contender(
                "matmul(x, wt, out=out)",
                {"matmul": np.matmul, "x": x, "wt": self.weights_t, "out": self.buffer(batch)},
            ),
        }
        out.update(self.floor_parts(batch))
        if self.torch_pipe is None:
            why = pipelines.TORCH_UNAVAILABLE if self.cfg.use_torch else "n/a (--no-torch)"
            out[TORCH] = Contender(unavailable=why)
        else:
            torch = pipelines.torch
            out[TORCH] = Contender(
                "forward(x, g)",
                {
                    "forward": self.torch_pipe.forward,
                    "x": torch.from_numpy(x),
                    "g": torch.Generator().manual_seed(self.cfg.seed),
                },
            )
        return {name: out[name] for name in (*CONTENDERS, *FLOOR_PARTS)}

    def floor_parts(self, batch: int) -> dict[str, Contender]:
        """The kernel's DAC, ADC and normals of one call of this cell, each alone."""
        try:
            from lumina_hal._lumina_kernel import ffi, lib
            from lumina_hal.twin.kernel import _ptr  # the package's zero-copy pointer
        except ImportError as exc:
            why = f"n/a (native kernel: {exc})"
            return {name: Contender(unavailable=why) for name in FLOOR_PARTS}
        p = self.chips[TWIN].physics  # type: ignore[attr-defined]
        x, n_out = self.x(batch), batch * self.size
        u = x * np.float32(0.5)  # ADC input: any finite values of the cell's output count
        out = np.empty_like(x)
        return {
            DAC: Contender(
                "f(x, b, c, bits, xn, s)",
                {"f": lib.lk_quantize_inputs, "x": _ptr(x), "b": batch, "c": self.size,
                 "bits": int(p.input_bits), "xn": _ptr(out),
                 "s": _ptr(np.empty(batch, np.float32))},
            ),
            ADC: Contender(
                "f(u, n, bits, fs, codes, ffi.NULL)",
                {"f": lib.lk_adc, "u": _ptr(u), "n": n_out, "bits": int(p.output_bits),
                 "fs": 1.0, "codes": _ptr(out), "ffi": ffi},
            ),
            NORMALS: Contender(
                "f(seed, 0, 0, 0, n, z)",
                {"f": lib.lk_normals, "seed": self.cfg.seed, "n": n_out,
                 "z": _ptr(np.empty(n_out, np.float32))},
            ),
        }  # fmt: skip


@contextmanager
def size_setup(size: int, max_batch: int, cfg: BenchConfig) -> Iterator[SizeSetup]:
    setup = SizeSetup(size, max_batch, cfg)
    try:
        yield setup
    finally:
        setup.close()
        gc.collect()


def ratios_of(us: dict[str, float | None]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, (num, den) in RATIOS.items():
        a, b = us.get(num), us.get(den)
        out[name] = a / b if a is not None and b is not None and b > 0 else None
    return out


def floors_of(us: dict[str, float | None], threads: int) -> dict[str, float | None]:
    """twin/bare and quiet/bare with the product at the bare matmul's speed: (bare + physics
    parts / threads) / bare."""
    out: dict[str, float | None] = {}
    bare = us.get(BARE)
    for name, (_, parts) in FLOORS.items():
        times = [us.get(part) for part in parts]
        if bare is None or bare <= 0 or any(t is None for t in times):
            out[name] = None
        else:
            out[name] = (bare + sum(t for t in times if t is not None) / threads) / bare
    return out


def measure_cell(setup: SizeSetup, batch: int) -> dict[str, Any]:
    gc.collect()
    seconds, notes = time_interleaved(setup.contenders(batch), setup.cfg)
    us = {name: None if s is None else s * 1e6 for name, s in seconds.items()}
    return {
        "size": setup.size,
        "batch": batch,
        "us": us,
        "notes": notes,
        "ratios": ratios_of(us),
        "floors": floors_of(us, setup.cfg.threads),
    }


def run_cells(
    sizes: Sequence[int], batches: Sequence[int], cfg: BenchConfig
) -> list[dict[str, Any]]:
    """The main table: every (size, batch) cell, all contenders measured side by side."""
    cells = []
    for size in sizes:
        with size_setup(size, max(batches), cfg) as setup:
            for batch in batches:
                cells.append(measure_cell(setup, batch))
                print(f"  measured {size}x{size} batch {batch}", file=sys.stderr, flush=True)
    return cells


def measure_latency(cfg: BenchConfig, size: int = 64) -> dict[str, Any]:
    """µs per call of the twin at batch 1 through the Python API, and the bare matmul's."""
    with size_setup(size, 1, cfg) as setup:
        x1 = np.ascontiguousarray(setup.inputs[0])  # shape (cols,): one vector
        contenders = {
            TWIN: Contender(
                "matmul(x, out=out)",
                {"matmul": setup.chips[TWIN].matmul, "x": x1, "out": np.zeros(size, np.float32)},
            ),
            BARE: Contender(
                "matmul(wt_t, x, out=out)",
                {
                    "matmul": np.matmul,
                    "wt_t": np.ascontiguousarray(setup.weights, dtype=np.float32),
                    "x": x1,
                    "out": np.zeros(size, np.float32),
                },
            ),
        }
        lat_cfg = BenchConfig(**{**asdict(cfg), "cell_seconds": max(cfg.cell_seconds, 0.5)})
        seconds, _ = time_interleaved(contenders, lat_cfg)
    return {"size": size, "us": {k: (v or 0.0) * 1e6 for k, v in seconds.items()}}


def measure_threads(cfg: BenchConfig, size: int, batch: int = 256) -> dict[str, Any]:
    """The twin (noise on) opened with threads=1 and threads=2, interleaved."""
    x = reference_workload(size, size, batch, seed=cfg.seed)
    chips = []
    contenders = {}
    try:
        for n in (1, 2):
            chip = lumina_hal.open_device(twin_uri(size, cfg, threads=n))
            chips.append(chip)
            chip.load_weights(x.weights)
            contenders[f"threads={n}"] = Contender(
                "matmul(x, out=out)",
                {"matmul": chip.matmul, "x": x.inputs, "out": np.zeros((batch, size), np.float32)},
            )
        seconds, _ = time_interleaved(contenders, cfg)
    finally:
        for chip in chips:
            chip.close()
    us = {name: (s or 0.0) * 1e6 for name, s in seconds.items()}
    return {"size": size, "batch": batch, "us": us, "speedup": us["threads=1"] / us["threads=2"]}


# ---- machine description -----------------------------------------------------------------


def _cpuinfo() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    return model, [name for name in ISA_FLAGS if name in flags]


def _cpu_model() -> str:
    """The CPU model name (other benchmarks print it beside their results)."""
    return _cpuinfo()[0]


def _blas_info() -> list[str]:
    from threadpoolctl import threadpool_info

    out = []
    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            out.append(
                f"{lib.get('internal_api')} {lib.get('version')} kernel "
                f"{lib.get('architecture', '?')}, {lib.get('num_threads')} threads "
                f"({Path(str(lib.get('filepath'))).name})"
            )
    return out or ["none found by threadpoolctl"]


def simd_path() -> str:
    try:
        from lumina_hal.twin import kernel

        return str(kernel.isa_name())
    except Exception as exc:
        return f"n/a (native kernel not available: {type(exc).__name__})"


def machine_info(cfg: BenchConfig) -> dict[str, Any]:
    model, flags = _cpuinfo()
    torch = pipelines.torch
    return {
        "cpu": model,
        "isa_flags": flags,
        "usable_cpus": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": _blas_info(),
        "torch": pipelines.torch_version() or pipelines.TORCH_UNAVAILABLE,
        "torch_threads": None if torch is None else int(torch.get_num_threads()),
        "threads": cfg.threads,
        "simd": simd_path(),
        "openblas_env": {k: os.environ.get(k) for k in OPENBLAS_OVERRIDES},
        "load_average": round(os.getloadavg()[0], 2),
    }


def check_engine(cfg: BenchConfig) -> str | None:
    """None when the twin runs with cfg.engine, else the error text."""
    try:
        with lumina_hal.open_device(twin_uri(4, cfg)) as chip:
            chip.load_weights(np.eye(4))
            chip.matmul(np.ones((2, 4), dtype=np.float32))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


# ---- goals -------------------------------------------------------------------------------


def evaluate_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per goal of issue 12 that this run measured: the worst cell decides."""
    cells = results["cells"]

    def worst(name: str, ratio: str, op: str, value: float, pick: Any) -> dict[str, Any] | None:
        found = [(c["ratios"][ratio], c) for c in cells if pick(c) and c["ratios"][ratio]]
        if not found:
            return None
        measured, cell = (max if op == "<=" else min)(found, key=lambda item: item[0])
        goal = Goal(name, op, value)
        floor_name = next((f for f, (r, _) in FLOORS.items() if r == ratio), None)

        def floor_of(c: dict[str, Any]) -> float | None:
            return c.get("floors", {}).get(floor_name) if floor_name else None

        above = [c for _, c in found if (floor_of(c) or 0.0) > value] if op == "<=" else []
        return {
            "goal": f"{name} {op} {value:g}",
            "measured": measured,
            "where": f"{cell['size']}² batch {cell['batch']}",
            "met": goal.met(measured),
            "floor": floor_of(cell),  # the worst cell's floor
            "cells": len(found),
            "floor_above_goal": [f"{c['size']}² batch {c['batch']}" for c in above],
        }

    big = {256, 1024, 4096}
    out = [
        worst("twin/bare noise on, 256²-4096², batch>=32", "twin/bare", "<=", 1.25,
              lambda c: c["size"] in big and c["batch"] >= 32),
        worst("twin/bare, 64², batch>=32", "twin/bare", "<=", 1.5,
              lambda c: c["size"] == 64 and c["batch"] >= 32),
        worst("twin/bare noise off, 256²-4096², batch>=32", "quiet/bare", "<=", 1.05,
              lambda c: c["size"] in big and c["batch"] >= 32),
        worst("twin/bare, 4096² batch 1", "twin/bare", "<=", 1.1,
              lambda c: c["size"] == 4096 and c["batch"] == 1),
        worst("numpy pipeline/twin, 1024² batch 1 and 32", "numpy/twin", ">=", 2.0,
              lambda c: c["size"] == 1024 and c["batch"] in (1, 32)),
        worst("torch pipeline/twin, 1024² batch 1 and 32", "torch/twin", ">=", 2.0,
              lambda c: c["size"] == 1024 and c["batch"] in (1, 32)),
    ]  # fmt: skip
    lat = results["latency"]["us"][TWIN]
    out.append(
        {
            "goal": "64² batch-1 call via the Python API <= 2 µs",
            "measured": lat,
            "where": "chip.matmul(x, out=buf), x of shape (64,)",
            "met": lat <= 2.0,
        }
    )
    thr = results["threads"]
    out.append(
        {
            "goal": "2 threads / 1 thread, 1024² batch 256 >= 1.8",
            "measured": thr["speedup"],
            "where": f"{thr['size']}² batch {thr['batch']}",
            "met": thr["speedup"] >= 1.8,
        }
    )
    return [g for g in out if g is not None]


# ---- printing ----------------------------------------------------------------------------


def _fmt_us(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.1f}" if v >= 100 else f"{v:.2f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def format_header(m: dict[str, Any], cfg: BenchConfig) -> str:
    blas = "\n            ".join(m["blas"])
    return "\n".join(
        [
            "Lumina HAL twin benchmark (issue 12 baselines)",
            f"  cpu     : {m['cpu']}, {m['usable_cpus']} usable CPUs",
            f"  isa     : {' '.join(m['isa_flags']) or 'none of the listed'}",
            f"  kernel  : SIMD path {m['simd']}, engine {cfg.engine}",
            f"  blas    : {blas}",
            "  env     : " + ", ".join(f"{k}={v or 'unset'}" for k, v in m["openblas_env"].items()),
            f"  numpy {m['numpy']}, torch {m['torch']}, Python {m['python']}",
            f"  threads : {cfg.threads} everywhere (BLAS via threadpoolctl, torch "
            f"{m['torch_threads']}, twin threads={cfg.threads})",
            f"  timing  : min over {cfg.repeats} interleaved blocks, ~{cfg.cell_seconds:g} s "
            f"per contender per cell; load average at start {m['load_average']}",
        ]
    )


def format_cells(cells: Sequence[dict[str, Any]]) -> str:
    headers = ["size", "batch", *(HEADINGS[c] for c in CONTENDERS), *RATIOS, *FLOORS]
    rows = []
    for cell in cells:
        us = cell["us"]
        row = [f"{cell['size']}²", str(cell["batch"])]
        row += [cell["notes"].get(c, "-") if us[c] is None else _fmt_us(us[c]) for c in CONTENDERS]
        row += ["-" if v is None else f"{v:.2f}" for v in cell["ratios"].values()]
        row += ["-" if v is None else f"{v:.2f}" for v in cell["floors"].values()]
        rows.append(row)
    return _table(headers, rows)


def verdict(goal: dict[str, Any]) -> str:
    """met, or MISSED with the number of the goal's cells whose floor is above the goal
    (there even a product at the BLAS's speed plus the physics' own work misses)."""
    if goal["met"]:
        return "met"
    above = goal.get("floor_above_goal") or []
    if above:
        return f"MISSED (floor above goal in {len(above)} of {goal['cells']} cells)"
    return "MISSED"


def format_goals(goals: Sequence[dict[str, Any]]) -> str:
    rows = [
        [
            g["goal"],
            f"{g['measured']:.2f}",
            "-" if g.get("floor") is None else f"{g['floor']:.2f}",
            verdict(g),
            g["where"],
        ]
        for g in goals
    ]
    return _table(["goal (issue 12)", "measured", "floor", "verdict", "worst cell"], rows)


# ---- command line ------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only: a smoke run")
    ap.add_argument("--sizes", type=_ints, help="square array sizes, e.g. 64,256,1024")
    ap.add_argument("--batches", type=_ints, help="batch sizes, e.g. 1,32,256")
    ap.add_argument("--engine", choices=("native", "reference"), default="native")
    ap.add_argument("--threads", type=int, help="threads for every contender (default: all)")
    ap.add_argument("--thread-size", type=int, help="size of the thread-scaling row")
    ap.add_argument("--cell-seconds", type=float, help="timing budget per contender per cell")
    ap.add_argument("--no-torch", action="store_true", help="leave out the PyTorch pipeline")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    return ap


def reexec_without_openblas_overrides() -> None:
    """Let OpenBLAS pick its own kernels: drop both overrides and restart this process.

    Some machines export OPENBLAS_CORETYPE=Haswell (and an L2 size): on an AVX-512 CPU
    that forces the AVX2 SGEMM, a baseline no user on that machine would choose. Every
    benchmark that compares with BLAS calls this first."""
    if any(k in os.environ for k in OPENBLAS_OVERRIDES):
        env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_OVERRIDES}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def set_threads(n: int) -> Any:
    """The same thread count for BLAS (threadpoolctl) and torch; returns the limiter."""
    from threadpoolctl import threadpool_limits

    limiter = threadpool_limits(limits=n, user_api="blas")
    if pipelines.torch is not None:
        pipelines.torch.set_num_threads(n)
    return limiter


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        print("error: the benchmark needs threadpoolctl (pip install .[bench])", file=sys.stderr)
        return 2
    sizes = args.sizes or list(QUICK_SIZES if args.quick else FULL_SIZES)
    batches = args.batches or list(QUICK_BATCHES if args.quick else FULL_BATCHES)
    threads = args.threads or len(os.sched_getaffinity(0))
    cfg = BenchConfig(
        engine=args.engine,
        threads=threads,
        cell_seconds=args.cell_seconds or (0.1 if args.quick else 0.25),
        repeats=5 if args.quick else 7,
        use_torch=not args.no_torch,
    )
    set_threads(threads)
    problem = check_engine(cfg)
    if problem is not None:
        print(f"error: the twin does not run with kernel={cfg.engine}: {problem}", file=sys.stderr)
        return 2
    machine = machine_info(cfg)
    print(format_header(machine, cfg), flush=True)
    results: dict[str, Any] = {"machine": machine, "config": asdict(cfg)}
    results["cells"] = run_cells(sizes, batches, cfg)
    results["latency"] = measure_latency(cfg)
    results["threads"] = measure_threads(cfg, args.thread_size or (256 if args.quick else 1024))
    results["goals"] = evaluate_goals(results)

    print("\nPer-call µs. twin/bare, quiet/bare: the twin's time over the bare float32 matmul's")
    print("(noise on / off); numpy/twin, torch/twin: the pipelines' time over the twin's;")
    print("floor on / off: (bare + the kernel's DAC, ADC [and normals] alone / threads) / bare,")
    print("twin/bare (quiet/bare) with the product as fast as the bare matmul")
    print(format_cells(results["cells"]))
    lat, thr = results["latency"], results["threads"]
    print(
        f"\nLatency 64² batch 1: twin {lat['us'][TWIN]:.2f} µs per call through the API, "
        f"bare np.matmul(W, x) {lat['us'][BARE]:.2f} µs"
    )
    print(
        f"Threads {thr['size']}² batch {thr['batch']}: 1 thread {_fmt_us(thr['us']['threads=1'])}"
        f" µs, 2 threads {_fmt_us(thr['us']['threads=2'])} µs, speedup {thr['speedup']:.2f}"
    )
    print("\nGoals (the worst measured cell decides; RESULTS.md explains each miss)")
    print(format_goals(results["goals"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
        print(f"\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    reexec_without_openblas_overrides()
    sys.exit(main())
