"""Tiling (docs/tiling.md): matrices larger than the array, on one device or several."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lumina_hal
from lumina_hal.errors import ConfigurationError, InputError, LuminaError
from lumina_hal.metrics import snr_db
from lumina_hal.tiling import DeviceSlot, TiledDevice, plan_tiles
from lumina_hal.twin.accumulating import AccumulatingTwin


def _workload(rows: int, cols: int, lead: tuple[int, ...], seed: int = 0):
    rng = np.random.default_rng(seed)
    w = rng.uniform(-1, 1, (rows, cols))
    x = rng.uniform(-1, 1, (*lead, cols)).astype(np.float32)
    return w, x, x.astype(np.float64) @ w.T


def test_layer_much_larger_than_the_array_matches_float_on_an_ideal_twin():
    w, x, ideal = _workload(300, 200, (4, 5))
    with TiledDevice("mock://?rows=64&cols=64&preset=ideal&seed=1") as tiled:
        tiled.load_weights(w)
        y = tiled.matmul(x)
    assert y.shape == (4, 5, 300) and y.dtype == np.float32
    assert snr_db(y, ideal) >= 60.0


def _deterministic(i: int = 0, **kw) -> lumina_hal.PhotonicDevice:
    return lumina_hal.open_device(
        "mock://?rows=32&cols=24&preset=typical&noise=false&kernel=reference", seed=i, **kw
    )


def test_tiled_product_equals_tiles_run_one_by_one_and_summed():
    """Independent reference: each tile on its own fresh device, summed in float64."""
    w, x, _ = _workload(70, 50, (9,))
    expected = np.zeros((9, 70))
    for r0 in range(0, 70, 32):
        for c0 in range(0, 50, 24):
            with _deterministic() as dev:
                dev.load_weights(w[r0 : r0 + 32, c0 : c0 + 24])
                expected[:, r0 : r0 + 32] += dev.matmul(x[:, c0 : c0 + 24])
    with TiledDevice(_deterministic(), accumulate="float64") as tiled:
        tiled.load_weights(w)
        y = tiled.matmul(x)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("assignment", ["round_robin", "balanced"])
def test_several_devices_give_the_single_device_result(assignment):
    w, x, _ = _workload(100, 90, (7,))
    with TiledDevice(_deterministic()) as one:
        one.load_weights(w)
        single = one.matmul(x)
    devices = [_deterministic() for _ in range(3)]
    with TiledDevice(devices, assignment=assignment) as many:
        many.load_weights(w)
        np.testing.assert_array_equal(many.matmul(x), single)
        assert set(t.device for t in many.plan.tiles) == {0, 1, 2}
    assert all(d.is_open for d in devices)  # opened by the caller, left open
    for d in devices:
        d.close()


def test_loads_and_runs_follow_the_plan_on_one_device():
    w, x, _ = _workload(100, 90, (3,))
    with TiledDevice(_deterministic()) as tiled:
        plan = tiled.plan_for(100, 90)
        assert (plan.row_blocks, plan.col_blocks, plan.n_tiles) == (4, 4, 16)
        assert plan.loads_per_product == 15 and plan.runs_per_product == 16
        tiled.load_weights(w)
        for _ in range(3):
            tiled.matmul(x)
        c = tiled.telemetry().counters
    assert c["tile_loads"] == plan.first_loads + 3 * plan.loads_per_product
    assert c["tile_runs"] == 3 * plan.runs_per_product == c["device_matmul_calls"]


def test_tiles_stay_resident_when_every_device_holds_one():
    w, x, _ = _workload(60, 40, (2,))
    devices = [_deterministic() for _ in range(4)]
    with TiledDevice(devices) as tiled:
        tiled.load_weights(w)
        assert tiled.plan.resident
        for _ in range(5):
            tiled.matmul(x)
        assert tiled.telemetry().counters["tile_loads"] == 4
    for d in devices:
        d.close()


def test_a_device_shared_by_two_tiled_matrices_is_reprogrammed_when_needed():
    device = _deterministic()
    w1, x, _ = _workload(40, 30, (5,), seed=1)
    w2, _, _ = _workload(40, 30, (5,), seed=2)
    a, b = TiledDevice(device).open(), TiledDevice(device).open()
    a.load_weights(w1)
    b.load_weights(w2)
    ya, yb = a.matmul(x), b.matmul(x)
    with TiledDevice(_deterministic()) as ref:
        ref.load_weights(w1)
        np.testing.assert_array_equal(ya, ref.matmul(x))
    assert snr_db(yb, x.astype(np.float64) @ w2.T) > 40
    a.close(), b.close(), device.close()


def test_accumulation_dtype_is_the_users_choice():
    w, x, _ = _workload(20, 100, (4,))
    for name, dtype in (("float32", np.float32), ("float64", np.float64)):
        with TiledDevice(_deterministic(), accumulate=name) as tiled:
            tiled.load_weights(w)
            assert tiled.matmul(x).dtype == dtype
    with pytest.raises(ConfigurationError):
        TiledDevice(_deterministic(), accumulate="float16")


def test_tiled_device_is_recorded_like_any_device(tmp_path):
    w, x, _ = _workload(50, 70, (3,))
    with TiledDevice("mock://?rows=16&cols=16&seed=3") as tiled:
        with lumina_hal.record_run(tmp_path / "run.h5", tiled) as run:
            run.load_weights(w)
            y = run.matmul(x)
        record = lumina_hal.load_run(tmp_path / "run.h5")
    np.testing.assert_array_equal(record.calls[0].outputs, y)


def test_bad_calls_raise_input_errors():
    with TiledDevice(_deterministic()) as tiled:
        with pytest.raises(InputError):
            tiled.matmul(np.ones(4))
        tiled.load_weights(np.ones((5, 6)))
        for bad in (np.ones(5), np.full(6, np.nan), np.array(["a"] * 6), np.ones((2, 3, 7))):
            with pytest.raises(InputError):
                tiled.matmul(bad)
        for bad_w in (np.ones(3), np.zeros((0, 4)), np.full((2, 2), np.inf)):
            with pytest.raises(InputError):
                tiled.load_weights(bad_w)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(-3, 300),
    st.integers(-3, 300),
    st.lists(st.tuples(st.integers(1, 70), st.integers(1, 70)), min_size=0, max_size=4),
    st.sampled_from(["round_robin", "balanced", "bogus"]),
    st.one_of(st.none(), st.integers(-2, 40)),
)
def test_plans_cover_the_matrix_exactly_once_or_refuse(rows, cols, shapes, assignment, cap):
    slots = [DeviceSlot(r, c) for r, c in shapes]
    try:
        plan = plan_tiles(rows, cols, slots, assignment=assignment, max_tile_cols=cap)
    except ConfigurationError:
        return
    covered = np.zeros((rows, cols), dtype=int)
    for tile in plan.tiles:
        covered[tile.row_start : tile.row_stop, tile.col_start : tile.col_stop] += 1
        assert tile.shape[0] <= min(s.rows for s in slots)
        assert tile.shape[1] <= min(s.cols for s in slots)
        assert 0 <= tile.device < len(slots)
    assert (covered == 1).all()
    assert plan.runs_per_product == plan.n_tiles == plan.first_loads
    assert abs(plan.snr_cost_db) < 1e-9  # sqrt_cols law: splitting costs nothing


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 3), st.integers(1, 6))
def test_any_shape_any_batch_runs_or_raises_lumina_error(rows, cols, lead_dims, batch):
    rng = np.random.default_rng(rows * 100 + cols)
    w = rng.normal(size=(rows, cols))
    x = rng.normal(size=(*([batch] * lead_dims), cols)).astype(np.float32)
    with TiledDevice(_deterministic()) as tiled:
        tiled.load_weights(w)
        try:
            y = tiled.matmul(x)
        except LuminaError:
            return
        assert y.shape == (*x.shape[:-1], rows)


def test_fixed_full_scale_law_charges_each_readout():
    slots = [DeviceSlot(64, 64)]
    plan = plan_tiles(64, 1024, slots, full_scale_law="fixed")
    assert plan.readouts_per_output == 16
    assert plan.snr_cost_db == pytest.approx(10 * np.log10(16))
    analog = plan_tiles(64, 1024, [DeviceSlot(64, 64, 4, True)], full_scale_law="fixed")
    assert analog.analog and analog.readouts_per_output == 4
    assert analog.snr_cost_db == pytest.approx(10 * np.log10(4))
    assert analog.runs_per_product == 4


# ---- analog accumulation (the twin's option) ----------------------------------------------


def test_one_accumulated_tile_equals_the_reference_twin_without_noise():
    w, x, _ = _workload(20, 30, (6,))
    params = dict(rows=32, cols=32, preset="typical", noise=False, kernel="reference", seed=2)
    with (
        AccumulatingTwin(banks=2, **params) as acc,
        lumina_hal.open_device("mock://", **params) as ref,
    ):
        wid = acc.load_weights(w)
        ref.load_weights(w)
        np.testing.assert_array_equal(acc.matmul_accumulate([wid], [x]), ref.matmul(x))


@pytest.mark.parametrize("preset", ["typical", "harsh"])
def test_analog_accumulation_matches_its_predicted_snr(preset):
    w, x, ideal = _workload(64, 512, (256,))
    results = {}
    for banks in (1, 8):
        twin = AccumulatingTwin(banks=banks, rows=64, cols=64, preset=preset, seed=1)
        with TiledDevice(twin) as tiled:
            tiled.load_weights(w)
            results[banks] = (snr_db(tiled.matmul(x), ideal), tiled.plan)
    single = {"typical": 51.87, "harsh": 43.63}[preset]
    for snr, plan in results.values():
        assert abs(snr - plan.predicted_snr_db(single)) < 1.0
    assert results[8][1].analog and results[8][1].readouts_per_output == 1
    assert not results[1][1].analog and results[1][1].readouts_per_output == 8


def test_accumulate_refuses_tiles_that_are_not_resident():
    with AccumulatingTwin(banks=1, rows=8, cols=8) as twin:
        first = twin.load_weights(np.ones((8, 8)))
        twin.load_weights(-np.ones((8, 8)))
        with pytest.raises(InputError):
            twin.matmul_accumulate([first], [np.ones((1, 8))])
        with pytest.raises(InputError):
            twin.matmul_accumulate([], [])
    with pytest.raises(ConfigurationError):
        AccumulatingTwin(banks=0)
    with pytest.raises(ConfigurationError):
        plan_tiles(8, 8, [DeviceSlot(4, 4)], analog=True)


def test_tiling_benchmark_reports_every_row(monkeypatch):
    import importlib.util
    import sys
    from pathlib import Path

    bench_dir = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(bench_dir))
    spec = importlib.util.spec_from_file_location("bench_tiling", bench_dir / "bench_tiling.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_tiling", module)
    spec.loader.exec_module(module)
    rows = module.snr_rows("typical", 128, [128, 32], [4])
    assert len(rows) == 3 and "analog x2" in rows[2]
    assert all(float(r.split("|")[5]) > 45 for r in rows)
    timing = module.timing_rows(8, 4, 1)
    assert "16 devices" in timing[1] and "ratios" in timing[-1]


class _TiledTypical8(TiledDevice):
    """A TiledDevice over an 8 x 8 twin, openable by URI (the conformance suite builds its own)."""

    @classmethod
    def from_uri(cls, uri, **params):
        return cls("mock://?rows=8&cols=8&preset=typical&seed=1")


@pytest.fixture
def tiled_uri():
    lumina_hal.register_driver("tiledtypical8", _TiledTypical8)
    yield "tiledtypical8://"
    lumina_hal.unregister_driver("tiledtypical8")


def test_tiled_device_passes_the_conformance_suite(tiled_uri):
    """Every check of docs/conformance.md on a 32 x 32 work shape tiled over an 8 x 8 array,
    except bad_input, whose one divergence (docs/tiling.md section 1) the next test pins."""
    from lumina_hal.testing.conformance import CHECKS

    for check in CHECKS:
        if check.name != "bad_input":
            check(tiled_uri)


def test_tiled_device_refuses_every_bad_call_of_the_suite_but_leading_dimensions(tiled_uri):
    from lumina_hal.testing.conformance.compute import _bad_calls

    with lumina_hal.open_device(tiled_uri) as device:
        device.load_weights(np.ones((32, 32)))
        calls = _bad_calls(device, 32, 32)
        assert device.matmul(np.ones((2, 2, 32))).shape == (2, 2, 32)  # the extension
        del calls["3-D input"]
        for what, call in calls.items():
            with pytest.raises(InputError):
                call()
            assert device.weights_shape == (32, 32), what
