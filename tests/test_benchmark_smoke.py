"""Smoke tests of benchmarks/bench_twin.py: result structure and like-for-like pipelines.

No timing assertions: the times only have to be measured, finite and positive.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from lumina_hal.metrics import reference_workload
from lumina_hal.twin import reference
from lumina_hal.twin.physics import PRESETS

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


def _import_path(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bench = _import_path("bench_twin", BENCH_DIR / "bench_twin.py")
torch_pipeline = bench.torch_pipeline


def test_measuring_function_reports_every_contender_and_ratios_of_the_measured_times():
    cfg = bench.BenchConfig(engine="reference", cell_seconds=0.004, repeats=2, settle_s=0.0)
    cells = bench.run_cells([(8, 12)], [1, 3], cfg)

    assert [(c["rows"], c["cols"], c["batch"]) for c in cells] == [(8, 12, 1), (8, 12, 3)]
    for cell in cells:
        us = cell["us"]
        assert set(us) == set(bench.CONTENDERS)
        measured = {name: t for name, t in us.items() if t is not None}
        if torch_pipeline.available():
            assert set(measured) == set(bench.CONTENDERS)
        else:
            assert set(measured) == set(bench.CONTENDERS) - {bench.TORCH_REF}
            assert cell["notes"][bench.TORCH_REF] == "n/a (torch not installed)"
        assert all(math.isfinite(t) and t > 0 for t in measured.values())
        assert set(cell["ratios"]) == set(bench.RATIOS)
        for name, (num, den) in bench.RATIOS.items():
            if num in measured and den in measured:
                assert cell["ratios"][name] == measured[num] / measured[den]
                assert math.isfinite(cell["ratios"][name]) and cell["ratios"][name] > 0
            else:
                assert cell["ratios"][name] is None


def test_torch_pipeline_matches_the_numpy_reference():
    p = dataclasses.replace(PRESETS["typical"], noise=False)
    workload = reference_workload(rows=48, cols=70, batch=33, seed=3)
    x = workload.inputs.copy()
    x[5] = 0.0  # a zero vector takes the s_x = 0 branch
    programmed = reference.program(workload.weights, p, "TWIN-BENCH")
    expected, expected_clipped = reference.forward(x, programmed, p, None)

    if not torch_pipeline.available():
        assert torch_pipeline.UNAVAILABLE == "n/a (torch not installed)"
        cfg = bench.BenchConfig(engine="reference")
        with bench.size_setup(4, 4, 1, cfg) as setup:
            assert setup.contenders(1)[bench.TORCH_REF].unavailable == torch_pipeline.UNAVAILABLE
        return

    torch = torch_pipeline.torch
    y, clipped = torch_pipeline.TorchPipeline(programmed, p).forward(torch.from_numpy(x))
    got = y.numpy()
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert clipped == expected_clipped
    lsb = reference.full_scale(p, 70) / reference.levels(p.output_bits) * programmed.scale
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * lsb)

    # With noise on, both pipelines draw from the same output law (same variance per output).
    noisy = dataclasses.replace(PRESETS["harsh"], bandwidth_hz=5e9)  # noise well above the LSB
    programmed = reference.program(workload.weights, noisy, "TWIN-BENCH")
    batch = np.repeat(workload.inputs[:1], 20_000, axis=0)
    ref_y, _ = reference.forward(batch, programmed, noisy, np.random.default_rng(1))
    torch_y, _ = torch_pipeline.TorchPipeline(programmed, noisy).forward(torch.from_numpy(batch))
    np.testing.assert_allclose(torch_y.numpy().var(axis=0), ref_y.var(axis=0), rtol=0.1)


def test_without_torch_the_column_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    no_torch = _import_path("torch_pipeline_without_torch", BENCH_DIR / "torch_pipeline.py")
    monkeypatch.delitem(sys.modules, "torch_pipeline_without_torch")
    assert not no_torch.available() and no_torch.version() is None
    monkeypatch.setattr(bench, "torch_pipeline", no_torch)
    cfg = bench.BenchConfig(engine="reference", cell_seconds=0.002, repeats=1, settle_s=0.0)
    (cell,) = bench.run_cells([(4, 4)], [2], cfg)
    assert cell["us"][bench.TORCH_REF] is None
    assert cell["notes"][bench.TORCH_REF] == "n/a (torch not installed)"
    assert cell["ratios"][f"{bench.TORCH_REF}/{bench.TWIN}"] is None
