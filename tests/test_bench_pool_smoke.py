"""Smoke test of benchmarks/bench_pool.py: its measuring functions run and report sane values.

No timing assertions (speed goals live in the benchmark's printed ratios).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


def _bench_pool():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCH_DIR))  # bench_pool imports bench_twin by name
    try:
        spec = importlib.util.spec_from_file_location("bench_pool", BENCH_DIR / "bench_pool.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH_DIR))


def test_bench_pool_measures_throughput_overhead_and_tiled_snr() -> None:
    bench = _bench_pool()
    rate = bench.throughput("local", 2, 0.0, 1, 8)
    assert math.isfinite(rate) and rate > 0
    rate = bench.throughput("local", 2, 0.0001, 1, 8, boards="mock")  # twins, board timing
    assert math.isfinite(rate) and rate > 0
    rows = bench.overhead(1)
    assert len(rows) == 5 and all(row.count("|") == 9 for row in rows)
    tiled = bench.tiled_model("local")
    snrs = [float(line.split("|")[4]) for line in tiled]
    assert len(tiled) == 2 and snrs[0] > 45 and snrs[1] > 38  # typical, harsh presets
