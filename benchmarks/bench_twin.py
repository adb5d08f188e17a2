"""Benchmark of the digital twin's forward pass against numpy, PyTorch and a bare matmul.

    python benchmarks/bench_twin.py            # full run (~2 min on 2 cores)
    python benchmarks/bench_twin.py --quick    # smoke run, small sizes (< 20 s)

Contenders, measured interleaved in each (size, batch) cell with per-weight phase noise on
(preset typical): the twin through the Python API (``chip.matmul(X, out=buf)``), the numpy
reference pipeline (``reference.forward``), the same pipeline in PyTorch on the CPU
(torch_pipeline.py) and a bare float32 ``X @ W.T``. Prints per-call times, ratios and the
performance targets next to them; never fails on a missed target. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import importlib.util
import json
import math
import os
import platform
import re
import sys
import time
import timeit
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import lumina_hal
from lumina_hal.metrics import reference_workload
from lumina_hal.twin import reference
from lumina_hal.twin.config import THREADS_ENV, default_threads

HERE = Path(__file__).resolve().parent


def _load_sibling(name: str) -> ModuleType:
    """Import benchmarks/<name>.py whether this file runs as a script or is imported by path."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


torch_pipeline = _load_sibling("torch_pipeline")

TWIN, NUMPY_REF, TORCH_REF, BARE = "twin", "numpy_ref", "torch_ref", "bare_numpy"
CONTENDERS = (TWIN, NUMPY_REF, TORCH_REF, BARE)
SLOW = (NUMPY_REF, TORCH_REF)  # may be cut short at huge sizes; the twin and bare never are
RATIOS = {  # ratio name -> (numerator, denominator)
    f"{NUMPY_REF}/{TWIN}": (NUMPY_REF, TWIN),
    f"{TORCH_REF}/{TWIN}": (TORCH_REF, TWIN),
    f"{TWIN}/{BARE}": (TWIN, BARE),
}
RATIO_HEADINGS = {
    f"{NUMPY_REF}/{TWIN}": "ref/twin",
    f"{TORCH_REF}/{TWIN}": "torch/twin",
    f"{TWIN}/{BARE}": "twin/bare",
}
FULL_SIZES = ((64, 64), (256, 256), (1024, 1024), (4096, 4096))
FULL_BATCHES = (1, 32, 256)
QUICK_SIZES = ((64, 64), (256, 256))
QUICK_BATCHES = (1, 32)
PRESET = "typical"
LATENCY_TARGET_US = 5.0
THREAD_SPEEDUP_TARGET = 1.7
MEMORY_BATCH = 32


@dataclass(frozen=True)
class BenchConfig:
    """How to measure: twin engine and threads, seeds, time budget per contender and cell."""

    engine: str = "native"
    threads: int | None = None  # None: $LUMINA_NUM_THREADS or all CPUs (the twin's default)
    seed: int = 1
    cell_seconds: float = 0.2  # measuring time per contender per cell (after warm-up)
    repeats: int = 7  # blocks per contender; the best block's mean is reported
    slow_call_limit_s: float = 5.0  # a slower numpy/torch call is timed once, not repeated
    settle_s: float = 0.1  # idle time before each block: other pools' spinning threads sleep
    use_torch: bool = True


@dataclass(frozen=True)
class Target:
    """A performance goal on one ratio (or time) of one cell."""

    metric: str
    op: str  # ">=" or "<="
    value: float

    def text(self) -> str:
        return f"{self.op} {self.value:g}"


def cell_targets(rows: int, cols: int, batch: int) -> list[Target]:
    """The targets that apply to a (rows x cols, batch) cell of the main table."""
    out: list[Target] = []
    if (rows, cols) == (1024, 1024) and batch in (1, 32):
        speedup = 6.0 if batch == 1 else 4.0
        out += [Target(f"{NUMPY_REF}/{TWIN}", ">=", speedup)]
        out += [Target(f"{TORCH_REF}/{TWIN}", ">=", speedup)]
    if batch >= 32:
        out.append(Target(f"{TWIN}/{BARE}", "<=", 1.3))
    if (rows, cols) == (4096, 4096) and batch == 1:
        out.append(Target(f"{TWIN}/{BARE}", "<=", 1.2))
    return out


def twin_uri(rows: int, cols: int, engine: str, seed: int, threads: int | None) -> str:
    uri = f"mock://?rows={rows}&cols={cols}&preset={PRESET}&seed={seed}&kernel={engine}"
    return uri if threads is None else f"{uri}&threads={threads}"


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
    """Per-call seconds of each contender: min over ``cfg.repeats`` blocks, interleaved.

    Each contender is warmed up, then calibrated to a block of ~cell_seconds / repeats; the
    blocks of the contenders alternate (in a rotating order) so that machine noise hits them
    alike. Each block starts after ``settle_s`` idle: BLAS and OpenMP worker threads spin for
    a while after a call, and would otherwise steal the cores from the next contender.
    Returns (seconds per call or None, notes).
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
        first = timer.timeit(1)  # warm-up: lazy initialization, first-touch of buffers
        if name in SLOW and first > cfg.slow_call_limit_s:
            best[name] = timer.timeit(1)
            notes[name] = f"1 call only (> {cfg.slow_call_limit_s:g} s per call)"
            continue
        number, elapsed = 1, first
        while elapsed < min(block, 0.005) and number < 10**6:  # calibrate: ~5 ms of calls
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


# ---- one array size: device, programmed weights, pipelines, inputs -----------------------


class SizeSetup:
    """Everything the contenders need at one size, built once (outside any timing)."""

    def __init__(
        self, rows: int, cols: int, max_batch: int, cfg: BenchConfig, twin_only: bool = False
    ) -> None:
        self.rows, self.cols, self.cfg = rows, cols, cfg
        workload = reference_workload(rows, cols, max(max_batch, MEMORY_BATCH), seed=cfg.seed)
        self.weights = workload.weights
        self.inputs = workload.inputs  # float32, C-contiguous
        self.chip = lumina_hal.open_device(twin_uri(rows, cols, cfg.engine, cfg.seed, cfg.threads))
        try:
            self.chip.load_weights(self.weights)
            self.physics = self.chip.physics  # type: ignore[attr-defined]
            # the baselines get the same programmed array (same physics, same serial)
            self.programmed: reference.ProgrammedArray | None = (
                None if twin_only else self._program()
            )
        except BaseException:
            self.chip.close()
            raise
        self.weights_t = np.ascontiguousarray(self.weights.T, dtype=np.float32)  # (c, r)
        self.torch_pipe: Any = None
        if self.programmed is not None and cfg.use_torch and torch_pipeline.available():
            self.torch_pipe = torch_pipeline.TorchPipeline(self.programmed, self.physics)

    def _program(self) -> reference.ProgrammedArray:
        return reference.program(self.weights, self.physics, self.chip.info.serial)

    def close(self) -> None:
        self.chip.close()

    def x(self, batch: int) -> np.ndarray:
        return np.ascontiguousarray(self.inputs[:batch])

    def twin(self, batch: int) -> Contender:
        """The twin through the public API, writing into a preallocated output."""
        return Contender(
            "matmul(x, out=out)",
            {"matmul": self.chip.matmul, "x": self.x(batch), "out": self._buffer(batch)},
        )

    def contenders(self, batch: int) -> dict[str, Contender]:
        """All four contenders on the same inputs (the baselines need twin_only=False)."""
        assert self.programmed is not None, "built with twin_only=True"
        x = self.x(batch)
        out = {
            TWIN: self.twin(batch),
            NUMPY_REF: Contender(
                "forward(x, programmed, p, rng)",
                {
                    "forward": reference.forward,
                    "x": x,
                    "programmed": self.programmed,
                    "p": self.physics,
                    "rng": np.random.default_rng(self.cfg.seed),
                },
            ),
            BARE: Contender(
                "matmul(x, wt, out=out)",
                {"matmul": np.matmul, "x": x, "wt": self.weights_t, "out": self._buffer(batch)},
            ),
        }
        if self.torch_pipe is None:
            reason = torch_pipeline.UNAVAILABLE if self.cfg.use_torch else "n/a (--no-torch)"
            out[TORCH_REF] = Contender(unavailable=reason)
        else:
            torch = torch_pipeline.torch
            out[TORCH_REF] = Contender(
                "forward(x, g)",
                {
                    "forward": self.torch_pipe.forward,
                    "x": torch.from_numpy(x),
                    "g": torch.Generator().manual_seed(self.cfg.seed),
                },
            )
        return {name: out[name] for name in CONTENDERS}

    def _buffer(self, batch: int) -> np.ndarray:
        return np.zeros((batch, self.rows), dtype=np.float32)


@contextmanager
def size_setup(
    rows: int, cols: int, max_batch: int, cfg: BenchConfig, twin_only: bool = False
) -> Iterator[SizeSetup]:
    setup = SizeSetup(rows, cols, max_batch, cfg, twin_only)
    try:
        yield setup
    finally:
        setup.close()
        gc.collect()


def ratios_of(us: dict[str, float | None]) -> dict[str, float | None]:
    """Every ratio of RATIOS whose two times were measured."""
    out: dict[str, float | None] = {}
    for name, (num, den) in RATIOS.items():
        a, b = us.get(num), us.get(den)
        out[name] = a / b if a is not None and b is not None and b > 0 else None
    return out


def measure_cell(setup: SizeSetup, batch: int) -> dict[str, Any]:
    """Time all contenders at one batch size: per-call µs, notes, ratios and targets."""
    gc.collect()
    seconds, notes = time_interleaved(setup.contenders(batch), setup.cfg)
    us = {name: None if s is None else s * 1e6 for name, s in seconds.items()}
    return {
        "rows": setup.rows,
        "cols": setup.cols,
        "batch": batch,
        "us": us,
        "notes": notes,
        "ratios": ratios_of(us),
        "targets": [asdict(t) for t in cell_targets(setup.rows, setup.cols, batch)],
    }


def run_cells(
    sizes: Sequence[tuple[int, int]], batches: Sequence[int], cfg: BenchConfig
) -> list[dict[str, Any]]:
    """The main table: every (size, batch) cell, each with all contenders measured."""
    cells = []
    for rows, cols in sizes:
        with size_setup(rows, cols, max(batches), cfg) as setup:
            cells += [measure_cell(setup, batch) for batch in batches]
    return cells


# ---- extra rows: latency, thread scaling, memory ----------------------------------------


def measure_latency(cfg: BenchConfig, rows: int = 64, cols: int = 64) -> dict[str, Any]:
    """µs per call of the twin at batch 1 through the Python API (X of shape (1, cols))."""
    with size_setup(rows, cols, 1, cfg, twin_only=True) as setup:
        latency_cfg = BenchConfig(**{**asdict(cfg), "cell_seconds": max(cfg.cell_seconds, 0.5)})
        seconds, _ = time_interleaved({TWIN: setup.twin(1)}, latency_cfg)
    per_call = seconds[TWIN]
    assert per_call is not None
    return {"rows": rows, "cols": cols, "batch": 1, "us": per_call * 1e6}


def measure_threads(cfg: BenchConfig, size: int, batch: int = 256) -> dict[str, Any]:
    """The twin at size x size, one batch, opened with threads=1 and threads=2, interleaved."""
    contenders: dict[str, Contender] = {}
    setups = []
    try:
        for n in (1, 2):
            threads_cfg = BenchConfig(**{**asdict(cfg), "threads": n})
            setup = SizeSetup(size, size, batch, threads_cfg, twin_only=True)
            setups.append(setup)
            contenders[f"threads={n}"] = setup.twin(batch)
        seconds, _ = time_interleaved(contenders, cfg)
    finally:
        for setup in setups:
            setup.close()
    us = {name: s * 1e6 for name, s in seconds.items() if s is not None}
    return {
        "rows": size,
        "cols": size,
        "batch": batch,
        "us": us,
        "speedup": us["threads=1"] / us["threads=2"],
    }


_STATUS_RE = re.compile(r"^(VmRSS|VmHWM):\s+(\d+)\s+kB", re.M)


def _vm_status() -> dict[str, int] | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return {k: int(v) * 1024 for k, v in _STATUS_RE.findall(f.read())}
    except OSError:
        return None


def _trim_heap() -> None:
    """Return free heap pages to the OS (glibc), so that reusing them shows in the RSS."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL(None).malloc_trim(0)


def _rss_peak_rise(fn: Callable[[], Any]) -> int | None:
    """Rise of the resident-set high-water mark during fn() (Linux; sees C mallocs too)."""
    gc.collect()
    _trim_heap()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        return None
    before = _vm_status()
    result = fn()
    after = _vm_status()
    del result
    if not before or not after or "VmHWM" not in after:
        return None
    return max(0, after["VmHWM"] - before["VmRSS"])


def _traced_peak(fn: Callable[[], np.ndarray]) -> tuple[int, int]:
    """(peak extra traced bytes during fn(), bytes of its result); numpy buffers are traced."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        y = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - base, int(y.nbytes)


def measure_memory(setup: SizeSetup, batch: int = MEMORY_BATCH) -> dict[str, Any]:
    """Peak memory of one forward pass (no out=): the twin and the numpy reference."""
    x = setup.x(batch)
    rng = np.random.default_rng(setup.cfg.seed)
    programmed = setup.programmed
    assert programmed is not None
    runs: dict[str, Callable[[], np.ndarray]] = {
        TWIN: lambda: setup.chip.matmul(x),
        NUMPY_REF: lambda: reference.forward(x, programmed, setup.physics, rng)[0],
    }
    out: dict[str, Any] = {
        "rows": setup.rows,
        "cols": setup.cols,
        "batch": batch,
        "output_bytes": batch * setup.rows * 4,
        "weights_f32_bytes": setup.rows * setup.cols * 4,
    }
    for name, fn in runs.items():
        fn()  # warm-up
        peak, output = _traced_peak(fn)
        gc.collect()
        out[name] = {
            "traced_peak_bytes": peak,
            "scratch_bytes": peak - output,
            "rss_peak_rise_bytes": _rss_peak_rise(fn),
        }
    return out


# ---- machine description -----------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas() -> str:
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]  # type: ignore[func-returns-value]
        blas = deps["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy: no dict mode
        return "unknown"


def _load_average() -> float | None:
    """1-minute load average when the run starts (other work on the machine adds noise)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):  # pragma: no cover - non-Unix
        return None


def simd_path() -> str:
    """The native kernel's ISA path, or why it is not known."""
    try:
        from lumina_hal.twin import kernel

        return str(kernel.isa_name())
    except Exception as exc:
        return f"n/a (native kernel not available: {type(exc).__name__})"


def machine_info(cfg: BenchConfig) -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        usable = os.cpu_count() or 1
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cpus": usable,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": _blas(),
        "torch": torch_pipeline.version() or torch_pipeline.UNAVAILABLE,
        "torch_threads": torch_pipeline.num_threads(),
        "lumina_hal": lumina_hal.__version__,
        "engine": cfg.engine,
        THREADS_ENV: os.environ.get(THREADS_ENV),
        "twin_threads": cfg.threads if cfg.threads is not None else default_threads(),
        "simd": simd_path(),
        "preset": PRESET,
        "load_average": _load_average(),
    }


def check_engine(cfg: BenchConfig) -> str | None:
    """None when the twin runs with cfg.engine, else the error text."""
    try:
        with lumina_hal.open_device(twin_uri(4, 4, cfg.engine, cfg.seed, cfg.threads)) as chip:
            chip.load_weights(np.eye(4))
            chip.matmul(np.ones((2, 4), dtype=np.float32))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


# ---- printing ----------------------------------------------------------------------------

_HEADINGS = {TWIN: "twin", NUMPY_REF: "numpy ref", TORCH_REF: "torch ref", BARE: "bare X@Wt"}


def _fmt_us(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.1f}" if v >= 100 else f"{v:.2f}"


def _fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _fmt_bytes(v: int | None) -> str:
    if v is None:
        return "n/a"
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if abs(v) >= scale:
            return f"{v / scale:.1f} {unit}"
    return f"{v} B"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def format_header(machine: dict[str, Any], cfg: BenchConfig) -> str:
    env = machine[THREADS_ENV]
    return "\n".join(
        [
            "Lumina HAL twin benchmark",
            f"  machine : {machine['cpu']}, {machine['cores']} cores "
            f"({machine['usable_cpus']} usable), Python {machine['python']}",
            f"  numpy   : {machine['numpy']} (BLAS: {machine['blas']})",
            f"  torch   : {machine['torch']}"
            + (f" ({machine['torch_threads']} threads)" if machine["torch_threads"] else ""),
            f"  twin    : engine={cfg.engine}, threads={machine['twin_threads']} "
            f"({THREADS_ENV}={env if env is not None else 'unset'}), SIMD {machine['simd']}, "
            f"preset {PRESET} (phase noise on)",
            f"  timing  : per call, min over {cfg.repeats} interleaved blocks, "
            f"~{cfg.cell_seconds:g} s per contender per cell; load average at start "
            f"{machine['load_average']}",
        ]
    )


def format_cells(cells: Sequence[dict[str, Any]], engine: str) -> str:
    headers = ["size", "batch"]
    headers += [f"{_HEADINGS[c]} µs" + (f" [{engine}]" if c == TWIN else "") for c in CONTENDERS]
    headers += [RATIO_HEADINGS[name] for name in RATIOS] + ["targets"]
    rows = []
    for cell in cells:
        us, ratios = cell["us"], cell["ratios"]
        row = [f"{cell['rows']}x{cell['cols']}", str(cell["batch"])]
        row += [cell["notes"][c] if us[c] is None else _fmt_us(us[c]) for c in CONTENDERS]
        row += [_fmt_ratio(ratios[name]) for name in RATIOS]
        row.append(
            ", ".join(
                f"{RATIO_HEADINGS[t['metric']]} {t['op']} {t['value']:g}" for t in cell["targets"]
            )
        )
        rows.append(row)
    notes = [
        f"  {cell['rows']}x{cell['cols']} batch {cell['batch']}, {_HEADINGS[c]}: {text}"
        for cell in cells
        for c, text in cell["notes"].items()
        if cell["us"][c] is not None  # the others show their note in the table
    ]
    return _table(headers, rows) + ("\nnotes:\n" + "\n".join(notes) if notes else "")


def format_memory(memory: Sequence[dict[str, Any]]) -> str:
    headers = ["size", "batch", "output", "W_eff f32"]
    headers += ["twin peak", "twin scratch", "twin RSS rise"]
    headers += ["ref peak", "ref scratch", "ref RSS rise"]
    rows = []
    for m in memory:
        row = [f"{m['rows']}x{m['cols']}", str(m["batch"])]
        row += [_fmt_bytes(m["output_bytes"]), _fmt_bytes(m["weights_f32_bytes"])]
        for name in (TWIN, NUMPY_REF):
            r = m[name]
            row += [_fmt_bytes(r["traced_peak_bytes"]), _fmt_bytes(r["scratch_bytes"])]
            row.append(_fmt_bytes(r["rss_peak_rise_bytes"]))
        rows.append(row)
    return _table(headers, rows)


def summarize_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target next to its measured value (no verdicts)."""
    out = []
    for cell in results["cells"]:
        for t in cell["targets"]:
            out.append(
                {
                    "what": f"{cell['rows']}x{cell['cols']} batch {cell['batch']}: "
                    f"{RATIO_HEADINGS[t['metric']]}",
                    "target": f"{t['op']} {t['value']:g}x",
                    "measured": cell["ratios"][t["metric"]],
                    "unit": "x",
                }
            )
    lat = results.get("latency")
    if lat:
        out.append(
            {
                "what": f"{lat['rows']}x{lat['cols']} batch 1: twin µs per call",
                "target": f"<= {LATENCY_TARGET_US:g} µs",
                "measured": lat["us"],
                "unit": "µs",
            }
        )
    thr = results.get("threads")
    if thr:
        out.append(
            {
                "what": f"{thr['rows']}x{thr['cols']} batch {thr['batch']}: "
                "twin threads=2 speedup over threads=1",
                "target": f">= {THREAD_SPEEDUP_TARGET:g}x",
                "measured": thr["speedup"],
                "unit": "x",
            }
        )
    return out


def format_targets(targets: Sequence[dict[str, Any]]) -> str:
    rows = []
    for t in targets:
        m = t["measured"]
        shown = "not measured" if m is None else f"{m:.2f}{' µs' if t['unit'] == 'µs' else 'x'}"
        rows.append([t["what"], t["target"], shown])
    return _table(["target", "goal", "measured"], rows)


# ---- command line ------------------------------------------------------------------------


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        dims = part.strip().lower().split("x")
        if len(dims) == 1:
            dims = dims * 2
        if len(dims) != 2:
            raise argparse.ArgumentTypeError(f"bad size {part!r}: expected N or RxC")
        sizes.append((int(dims[0]), int(dims[1])))
    return sizes


def _parse_ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only: a smoke run (< 20 s)")
    ap.add_argument("--sizes", type=_parse_sizes, help="array sizes, e.g. 64,256,1024 or 128x512")
    ap.add_argument("--batches", type=_parse_ints, help="batch sizes, e.g. 1,32,256")
    ap.add_argument(
        "--engine",
        choices=("native", "reference"),
        default="native",
        help="the twin's per-call engine (kernel= URI parameter); default native",
    )
    ap.add_argument("--threads", type=int, help=f"twin threads (default: ${THREADS_ENV} or all)")
    ap.add_argument("--mem-sizes", type=_parse_sizes, help="sizes of the peak-memory rows")
    ap.add_argument("--thread-size", type=int, help="size of the thread-scaling row")
    ap.add_argument("--cell-seconds", type=float, help="timing budget per contender per cell")
    ap.add_argument("--no-torch", action="store_true", help="leave out the PyTorch pipeline")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sizes = args.sizes or list(QUICK_SIZES if args.quick else FULL_SIZES)
    batches = args.batches or list(QUICK_BATCHES if args.quick else FULL_BATCHES)
    mem_sizes = args.mem_sizes or (
        [(64, 64), (256, 256)] if args.quick else [(1024, 1024), (4096, 4096)]
    )
    thread_size = args.thread_size or (256 if args.quick else 1024)
    cell_seconds = args.cell_seconds or (0.1 if args.quick else 0.2)
    cfg = BenchConfig(
        engine=args.engine,
        threads=args.threads,
        cell_seconds=cell_seconds,
        repeats=5 if args.quick else 7,
        settle_s=0.05 if args.quick else 0.1,
        use_torch=not args.no_torch,
    )
    problem = check_engine(cfg)
    if problem is not None:
        print(
            f"error: the twin does not run with kernel={cfg.engine}: {problem}\n"
            "(to exercise the benchmark without the native kernel: --engine reference)",
            file=sys.stderr,
        )
        return 2
    machine = machine_info(cfg)
    print(format_header(machine, cfg), flush=True)

    cells: list[dict[str, Any]] = []
    memory: list[dict[str, Any]] = []
    for rows, cols in sorted(set(sizes) | set(mem_sizes), key=lambda s: s[0] * s[1]):
        with size_setup(rows, cols, max(batches), cfg) as setup:
            if (rows, cols) in sizes:
                for batch in batches:
                    cells.append(measure_cell(setup, batch))
                    print(f"  measured {rows}x{cols} batch {batch}", file=sys.stderr, flush=True)
            if (rows, cols) in mem_sizes:
                memory.append(measure_memory(setup))
    cells.sort(key=lambda c: (sizes.index((c["rows"], c["cols"])), batches.index(c["batch"])))
    memory.sort(key=lambda m: mem_sizes.index((m["rows"], m["cols"])))
    results: dict[str, Any] = {"machine": machine, "config": asdict(cfg), "cells": cells}
    results["latency"] = measure_latency(cfg)
    results["threads"] = measure_threads(cfg, thread_size)
    results["memory"] = memory
    results["targets"] = summarize_targets(results)

    print(
        "\nPer-call time (µs) and ratios (ref/twin, torch/twin: twin speedup; twin/bare: "
        "twin time over bare float32 matmul)"
    )
    print(format_cells(cells, cfg.engine))
    lat, thr = results["latency"], results["threads"]
    print(
        f"\nLatency: twin {lat['rows']}x{lat['cols']} batch 1 via chip.matmul(x, out=buf): "
        f"{lat['us']:.2f} µs per call (target <= {LATENCY_TARGET_US:g} µs)"
    )
    print(
        f"Threads: twin {thr['rows']}x{thr['cols']} batch {thr['batch']}: threads=1 "
        f"{_fmt_us(thr['us']['threads=1'])} µs, threads=2 {_fmt_us(thr['us']['threads=2'])} µs, "
        f"speedup {thr['speedup']:.2f}x (target >= {THREAD_SPEEDUP_TARGET:g}x)"
    )
    if cfg.engine != "native":
        print("  (threads= only splits the native kernel's work; the reference engine ignores it)")
    print(
        f"\nPeak memory of one forward pass, batch {MEMORY_BATCH}, no out= "
        "(peak/scratch: tracemalloc, numpy buffers; scratch = peak - output; "
        "RSS rise: resident high-water mark, includes C allocations)"
    )
    print(format_memory(memory))
    print("\nTargets (measured values; no pass/fail)")
    print(format_targets(results["targets"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
        print(f"\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
