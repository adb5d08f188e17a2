"""The NAT example and benchmark, and the TinyLlama example (docs/torch.md sections 5-6)."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(path.parent))
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def nat(monkeypatch):
    pytest.importorskip("sklearn")
    return _load("nat_digits", ROOT / "examples" / "nat_digits.py", monkeypatch)


@pytest.fixture
def bench_nat(monkeypatch, nat):
    return _load("bench_nat", ROOT / "benchmarks" / "bench_nat.py", monkeypatch)


@pytest.fixture
def tinyllama(monkeypatch):
    pytest.importorskip("transformers")
    return _load("tinyllama", ROOT / "examples" / "tinyllama.py", monkeypatch)


def test_nat_example_reports_every_accuracy(nat):
    torch.set_num_threads(1)
    result = nat.run(epochs=8, hidden=32, repeats=1, recipe=nat.Recipe(epochs=2))
    assert result["float"] > 0.85
    for key in ("plain_CHIP-A", "plain_CHIP-B", "nat_noise_model", "nat_CHIP-A", "nat_CHIP-B"):
        assert 0.0 <= result[key] <= 1.0
    assert result["plain_CHIP-B"] < result["float"] - 0.1  # the harsh chip costs accuracy
    lost = result["float"] - result["plain_CHIP-B"]
    recovered = (result["nat_CHIP-B"] - result["plain_CHIP-B"]) / lost
    assert result["recovered_fraction_CHIP-B"] == pytest.approx(recovered)


def test_plain_ops_baseline_is_the_same_chip_model(bench_nat, nat):
    """The benchmark's plain-ops layer and the NoiseModel give the same SNR on the same chip."""
    from lumina_hal.metrics import snr_db
    from lumina_hal.torch import LuminaLinear

    torch.manual_seed(0)
    uri = nat.HARSH.format(seed=1, serial="CHIP-A")
    linear = torch.nn.Linear(64, 128)
    x = torch.rand(400, 64)
    ideal = linear(x).detach().numpy()
    model = LuminaLinear.from_linear(linear, chip=uri, mode="noise_model")
    plain = bench_nat.plain_ops_model(torch.nn.Sequential(linear), uri)
    with torch.no_grad():
        a, b = snr_db(model(x).numpy(), ideal), snr_db(plain(x).numpy(), ideal)
    assert abs(a - b) < 1.5, (a, b)


def test_nat_benchmark_times_every_contender(bench_nat):
    times = bench_nat.step_times(hidden=16, rounds=1, n=2, with_compile=False)
    assert set(times) == {"float", "noise_model", "noise_model_exact", "plain_ops"}
    assert all(np.isfinite(t) and t > 0 for t in times.values())


def test_tiny_llama_runs_on_the_fpga_emulator_through_phl1(tinyllama):
    result = tinyllama.run(
        layers=1, presets=("typical",), uri="fpga+sim://?rows=64&cols=64&preset={preset}&seed=1",
        tokens=6, tiny=True,
    )  # fmt: skip
    r = result["presets"]["typical"]
    assert r["linear_layers"] == 7 + 1 and r["programs"] == 8
    assert r["logits_snr_db"] > 25 and r["program_s"] > 0


def test_tiny_llama_presets_order_by_snr_on_the_twin(tinyllama):
    result = tinyllama.run(
        layers=2, uri="mock://?rows=64&cols=64&preset={preset}&seed=1", tokens=8, tiny=True,
        placement="shared",
    )  # fmt: skip
    snr = {k: v["logits_snr_db"] for k, v in result["presets"].items()}
    assert snr["ideal"] > 60 and snr["ideal"] > snr["typical"] > snr["harsh"] > 15


@pytest.mark.slow
def test_tinyllama_sized_two_layers_on_the_twin(tinyllama):
    t0 = time.perf_counter()
    result = tinyllama.run(layers=2, presets=("typical",), tokens=8)
    r = result["presets"]["typical"]
    assert result["parameters"] > 200e6 and r["linear_layers"] == 15
    assert r["logits_snr_db"] > 20 and r["top1_agreement"] >= 0.5
    assert r["programs"] == 15  # the second forward re-programs nothing
    assert time.perf_counter() - t0 > 0
