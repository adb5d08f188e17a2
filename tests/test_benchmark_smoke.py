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
import pytest

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
pipelines = bench.pipelines


def test_measuring_function_reports_every_contender_and_ratios_of_the_measured_times():
    cfg = bench.BenchConfig(engine="reference", cell_seconds=0.004, repeats=2, settle_s=0.0)
    cells = bench.run_cells([8], [1, 3], cfg)

    assert [(c["size"], c["batch"]) for c in cells] == [(8, 1), (8, 3)]
    for cell in cells:
        us = cell["us"]
        assert set(us) == set(bench.CONTENDERS) | set(bench.FLOOR_PARTS)
        measured = {name: t for name, t in us.items() if t is not None}
        expected = set(us) - (set() if pipelines.torch_available() else {bench.TORCH})
        assert set(measured) == expected
        assert all(math.isfinite(t) and t > 0 for t in measured.values())
        for name, (num, den) in bench.RATIOS.items():
            if num in measured and den in measured:
                assert cell["ratios"][name] == measured[num] / measured[den]
            else:
                assert cell["ratios"][name] is None
        # floors: the bare product plus the physics' parts split over the threads
        parts = {"floor on": ("dac", "adc", "normals"), "floor off": ("dac", "adc")}
        for name, names in parts.items():
            expected_floor = (us["bare"] + sum(us[n] for n in names) / cfg.threads) / us["bare"]
            assert cell["floors"][name] == pytest.approx(expected_floor, rel=1e-12)
            assert cell["floors"][name] > 1.0


def test_goals_say_met_or_missed_from_the_worst_cell():
    def cell(size: int, batch: int, twin_bare: float) -> dict:
        ratios = {"twin/bare": twin_bare, "quiet/bare": 1.0, "numpy/twin": 3.0, "torch/twin": 1.5}
        return {"size": size, "batch": batch, "ratios": ratios}

    results = {
        "cells": [cell(256, 32, 1.2), cell(1024, 32, 1.4), cell(1024, 1, 0.9)],
        "latency": {"us": {"twin": 2.5}},
        "threads": {"size": 1024, "batch": 256, "speedup": 1.9},
    }
    goals = {g["goal"].split(" <=")[0].split(" >=")[0]: g for g in bench.evaluate_goals(results)}
    noise_on = goals["twin/bare noise on, 256²-4096², batch>=32"]
    assert noise_on["measured"] == 1.4 and not noise_on["met"]
    assert noise_on["where"] == "1024² batch 32"
    assert goals["numpy pipeline/twin, 1024² batch 1 and 32"]["met"]
    assert not goals["torch pipeline/twin, 1024² batch 1 and 32"]["met"]
    assert not goals["64² batch-1 call via the Python API"]["met"]
    assert goals["2 threads / 1 thread, 1024² batch 256"]["met"]


def test_a_miss_whose_floor_exceeds_the_goal_says_so():
    def cell(size: int, quiet_bare: float, floor_off: float) -> dict:
        ratios = {"twin/bare": 1.0, "quiet/bare": quiet_bare, "numpy/twin": 3.0, "torch/twin": 3.0}
        floors = {"floor on": 1.0, "floor off": floor_off}
        return {"size": size, "batch": 32, "ratios": ratios, "floors": floors}

    def noise_off(cells: list) -> dict:
        results = {
            "cells": cells,
            "latency": {"us": {"twin": 1.0}},
            "threads": {"size": 1024, "batch": 256, "speedup": 1.9},
        }
        return next(g for g in bench.evaluate_goals(results) if "noise off" in g["goal"])

    above = noise_off([cell(256, 1.10, 1.08), cell(1024, 1.02, 1.01)])
    assert above["floor"] == 1.08 and above["floor_above_goal"] == ["256² batch 32"]
    assert bench.verdict(above) == "MISSED (floor above goal in 1 of 2 cells)"
    below = noise_off([cell(256, 1.10, 1.02), cell(1024, 1.20, 1.08)])
    assert below["floor"] == 1.08 and below["where"] == "1024² batch 32"
    assert bench.verdict(below) == "MISSED (floor above goal in 1 of 2 cells)"
    reachable = noise_off([cell(256, 1.10, 1.02)])
    assert reachable["floor"] == 1.02 and bench.verdict(reachable) == "MISSED"
    met = noise_off([cell(256, 1.04, 1.02)])
    assert bench.verdict(met) == "met"


def _lsb(p, cols: int, programmed) -> float:
    return reference.full_scale(p, cols) / reference.levels(p.output_bits) * programmed.scale


def test_fair_pipelines_match_the_numpy_reference_with_noise_off():
    p = dataclasses.replace(PRESETS["typical"], noise=False)
    workload = reference_workload(rows=48, cols=70, batch=33, seed=3)
    x = workload.inputs.copy()
    x[5] = 0.0  # a zero vector takes the s_x = 0 branch
    programmed = reference.program(workload.weights, p, "TWIN-BENCH")
    expected, expected_clipped = reference.forward(x, programmed, p, None)
    got, clipped = pipelines.NumpyPipeline(programmed, p).forward(x, None)
    assert got.dtype == np.float32 and clipped == expected_clipped
    # float32 sums against the reference's float64 ones: at most one ADC step apart
    np.testing.assert_allclose(got, expected, rtol=0, atol=1.01 * _lsb(p, 70, programmed))
    if pipelines.torch_available():
        torch = pipelines.torch
        ty, tclipped = pipelines.TorchPipeline(programmed, p).forward(torch.from_numpy(x))
        assert tclipped == expected_clipped
        lsb = _lsb(p, 70, programmed)
        np.testing.assert_allclose(ty.numpy(), expected, rtol=0, atol=1.01 * lsb)


def test_fair_pipelines_draw_the_reference_noise_law():
    noisy = dataclasses.replace(PRESETS["harsh"], bandwidth_hz=5e9)  # noise well above the LSB
    workload = reference_workload(rows=16, cols=40, batch=1, seed=4)
    programmed = reference.program(workload.weights, noisy, "TWIN-BENCH")
    batch = np.repeat(workload.inputs[:1], 20_000, axis=0)
    ref_y, _ = reference.forward(batch, programmed, noisy, np.random.default_rng(1))
    np_y, _ = pipelines.NumpyPipeline(programmed, noisy).forward(batch, np.random.default_rng(2))
    np.testing.assert_allclose(np_y.var(axis=0), ref_y.var(axis=0), rtol=0.1)
    if pipelines.torch_available():
        torch = pipelines.torch
        ty, _ = pipelines.TorchPipeline(programmed, noisy).forward(torch.from_numpy(batch))
        np.testing.assert_allclose(ty.numpy().var(axis=0), ref_y.var(axis=0), rtol=0.1)


def test_without_torch_the_column_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    no_torch = _import_path("pipelines_without_torch", BENCH_DIR / "pipelines.py")
    monkeypatch.delitem(sys.modules, "pipelines_without_torch")
    assert not no_torch.torch_available() and no_torch.torch_version() is None
    monkeypatch.setattr(bench, "pipelines", no_torch)
    cfg = bench.BenchConfig(engine="reference", cell_seconds=0.002, repeats=1, settle_s=0.0)
    (cell,) = bench.run_cells([4], [2], cfg)
    assert cell["us"][bench.TORCH] is None
    assert cell["notes"][bench.TORCH] == "n/a (torch not installed)"
    assert cell["ratios"]["torch/twin"] is None
