"""Device pools with the local backend (docs/scale-out.md), checked against independent devices.

The reference for a replicated pool is each shard run on its own freshly opened device with the
same URI (what the spec says a pool computes); for a tiled pool, the ideal product and the
single big twin's SNR.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lumina_hal
from lumina_hal.device import DeviceInfo, PhotonicDevice, Telemetry
from lumina_hal.errors import ConfigurationError, InputError, LinkError, LuminaError
from lumina_hal.metrics import snr_db
from lumina_hal.params import Param
from lumina_hal.pool import ChipWorker, DevicePool, open_pool, weights_key
from lumina_hal.pool.handle import LocalHandle
from lumina_hal.registry import register_driver, unregister_driver
from lumina_hal.sim.fpga.timing import BoardTiming
from lumina_hal.testing.conformance import CHECKS
from lumina_hal.testing.selftest import run_selftest
from lumina_hal.uri import DeviceURI

RNG = np.random.default_rng(7)
W = RNG.uniform(-1, 1, (16, 24))
X = RNG.uniform(-1, 1, (37, 24)).astype(np.float32)


def uris(n: int, scheme: str = "mock", extra: str = "") -> list[str]:
    return [f"{scheme}://?rows=16&cols=24&preset=typical&seed={i + 1}{extra}" for i in range(n)]


def shard_reference(devices: list[str], w: np.ndarray, xs: list[np.ndarray]) -> list[np.ndarray]:
    """Each call's shards run on their own devices, opened afresh: what a pool must return."""
    n_chips = len(devices)
    opened = [lumina_hal.open_device(u) for u in devices]
    try:
        for d in opened:
            d.load_weights(w)
        results = []
        for x in xs:
            n = min(n_chips, x.shape[0])
            bounds = [i * x.shape[0] // n for i in range(n + 1)]  # docs/scale-out.md 2
            parts = [opened[i].matmul(x[bounds[i] : bounds[i + 1]]) for i in range(n)]
            results.append(np.concatenate(parts))
        return results
    finally:
        for d in opened:
            d.close()


@pytest.mark.parametrize("scheme", ["mock", "fpga+sim"])
def test_replicated_pool_is_its_shards_on_independent_chips(scheme: str) -> None:
    devices = uris(3, scheme)
    xs = [X, X[:2], X[5:30]]
    expected = shard_reference(devices, W, xs)
    with open_pool(devices) as pool:
        weights_id = pool.load_weights(W)
        got = [pool.matmul(x) for x in xs]
        counters = pool.telemetry().counters
    assert pool.weights_id is None  # closed
    assert weights_id.startswith("16x24-")
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)
    loads = [v for k, v in counters.items() if k.endswith("weight_loads") and k.startswith("chip")]
    assert loads in ([1, 1, 1], [])  # fpga+sim reports no load counter; the twin one each


def test_one_chip_pool_is_the_device_itself() -> None:
    (uri,) = uris(1)
    with lumina_hal.open_device(uri) as device, open_pool([uri]) as pool:
        assert device.load_weights(W) == pool.load_weights(W)
        for x in (X, X[0], X[:3]):
            np.testing.assert_array_equal(pool.matmul(x), device.matmul(x))
        assert pool.chip_shape == (device.info.rows, device.info.cols)
        assert "pool/" in pool.info.model and pool.info.rows >= 1 << 24


def test_device_objects_stay_open_and_their_stream_continues() -> None:
    (uri,) = uris(1)
    with lumina_hal.open_device(uri) as device, lumina_hal.open_device(uri) as twin:
        for d in (device, twin):
            d.load_weights(W)
            d.matmul(X)  # call 0 used before the pool takes the chip
        with open_pool([device]) as pool:
            pool.load_weights(W)
            np.testing.assert_array_equal(pool.matmul(X), twin.matmul(X))
        assert device.is_open


def test_tiled_pool_matches_the_big_twin_within_the_documented_snr() -> None:
    rng = np.random.default_rng(3)
    w = rng.uniform(-1, 1, (30, 44))  # 2 x 2 tiles of at most 16 x 24
    x = rng.uniform(-1, 1, (64, 44)).astype(np.float32)
    ideal = x.astype(np.float64) @ w.T
    with open_pool(uris(4)) as pool:
        pool.load_weights(w)
        assert pool.tiled
        y1, y2 = pool.matmul(x), pool.matmul(x[0])
        with pytest.raises(InputError):  # the device contract: 1-D or 2-D inputs
            pool.matmul(x.reshape(4, 16, 44))
        plan = pool.tile_plan
        counters = pool.telemetry().counters
    assert y1.shape == (64, 30) and y2.shape == (30,)
    assert plan.n_tiles == 4 and plan.loads_per_product == 0
    assert [counters[f"chip{i}_weight_loads"] for i in range(4)] == [1, 1, 1, 1]  # resident
    with lumina_hal.open_device("mock://?rows=30&cols=44&preset=typical&seed=1") as big:
        big.load_weights(w)
        big_snr = snr_db(big.matmul(x), ideal)
    pool_snr = snr_db(y1, ideal)
    # docs/tiling.md: predicted = whole-readout SNR - snr_cost_db; measured within +-0.4 dB
    assert pool_snr >= big_snr - plan.snr_cost_db - 1.0, (pool_snr, big_snr)
    # A load back to a matrix that fits leaves tiling.
    with open_pool(uris(2)) as pool:
        pool.load_weights(w)
        pool.load_weights(W)
        assert not pool.tiled


def test_worker_run_is_idempotent_and_reprograms_a_chip_that_lost_its_weights() -> None:
    (uri,) = uris(1)
    worker = ChipWorker.open(lambda: lumina_hal.open_device(uri))
    key = weights_key(W)
    worker.load(key, W)
    first = [worker.run(key, i, X) for i in range(3)]
    np.testing.assert_array_equal(worker.run(key, 1, X), first[1])  # a retried call
    worker.device.reset()  # the chip lost everything (a reboot, a restarted actor)
    with pytest.raises(InputError):
        worker.run(key, 2, X)  # no weights to re-program from
    np.testing.assert_array_equal(worker.run(key, 2, X, W), first[2])
    np.testing.assert_array_equal(worker.run(key, 0, X, lambda: W), first[0])
    worker.close()


def test_emulator_rebooting_during_uploads_changes_no_result() -> None:
    clean = uris(2, "fpga+sim")
    faulty = uris(2, "fpga+sim", "&fault_reboot=0.5&fault_seed=11")
    expected = shard_reference(clean, W, [X, X])
    with open_pool(faulty) as pool:
        pool.load_weights(W)
        got = [pool.matmul(X), pool.matmul(X)]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)


class _HangingTwin(PhotonicDevice):
    """A chip whose runs never come back until released (a hung board)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self._twin = lumina_hal.build_device("mock://?rows=16&cols=24&seed=1")

    def _open(self) -> None:
        self._twin.open()

    def _close(self) -> None:
        self._twin.close()

    def _info(self) -> DeviceInfo:
        return self._twin.info

    def _load_weights(self, weights: np.ndarray) -> str:
        return self._twin.load_weights(weights)

    def _matmul(self, x: np.ndarray, out: np.ndarray) -> None:
        self.release.wait(60)
        out[...] = self._twin.matmul(x)

    def _telemetry(self) -> Telemetry:
        return self._twin.telemetry()

    def _read_call_index(self) -> int:
        return self._twin.call_index

    def _seek_call_index(self, call_index: int) -> None:
        self._twin.seek_call_index(call_index)

    def _reset(self) -> None:
        self._twin.reset()


def test_hung_local_chip_times_out_and_is_reported() -> None:
    hanging = _HangingTwin()
    pool = open_pool([uris(1)[0], hanging], timeout_s=0.5)
    try:
        pool.load_weights(W)
        start = time.monotonic()
        with pytest.raises(LinkError, match=r"did not answer within 0\.5 s"):
            pool.matmul(X)
        assert time.monotonic() - start < 5
        with pytest.raises(LinkError, match="hung"):  # at once, not another wait
            pool.matmul(X)
        assert pool.chips[0].matmul(X).shape == (37, 16)  # the other chip still works
    finally:
        hanging.release.set()
        pool.close()


class _SubmittingHandle(LocalHandle):
    """A local chip with the Ray handle's two-phase runs; ``fail_next`` fails one finish."""

    fail_next = False

    def submit_run(self, key: str, call_index: int, x: np.ndarray) -> tuple[Any, ...]:
        return key, call_index, x

    def finish_run(self, pending: tuple[Any, ...], out: np.ndarray) -> None:
        if self.fail_next:
            self.fail_next = False
            raise LinkError("the chip dropped its link")
        self.run(*pending, out)


def test_submitted_shards_equal_independent_chips_and_a_failure_loses_no_call() -> None:
    handles = [_SubmittingHandle(u, None) for u in uris(3)]
    pool = DevicePool(handles, "local").open()
    try:
        assert all(chip.submits for chip in pool.chips)
        pool.load_weights(W)
        first = pool.matmul(X)
        handles[1].fail_next = True
        with pytest.raises(LinkError, match="dropped"):
            pool.matmul(X)
        assert [chip.next_call for chip in pool.chips] == [2, 1, 2]  # chip 1 not advanced
        free: list[bool] = []

        def probe() -> None:  # another thread: the chips' locks were all released
            for chip in pool.chips:
                free.append(chip.lock.acquire(blocking=False))
                if free[-1]:
                    chip.lock.release()

        prober = threading.Thread(target=probe)
        prober.start()
        prober.join(10)
        assert free == [True] * 3
        for chip in pool.chips:
            chip.seek_call_index(1)  # the failed call again, on every chip
        again = pool.matmul(X)
    finally:
        pool.close()
    expected = shard_reference(uris(3), W, [X, X])
    np.testing.assert_array_equal(first, expected[0])
    np.testing.assert_array_equal(again, expected[1])


def test_errors_are_lumina_errors() -> None:
    with pytest.raises(ConfigurationError):
        open_pool([])
    with pytest.raises(ConfigurationError):
        open_pool(uris(1), backend="dask")
    with pytest.raises(ConfigurationError):
        open_pool(uris(1), timeout_s=0)
    with pytest.raises(ConfigurationError):
        open_pool([3.5])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError):
        open_pool(uris(1), resources={"lumina_chip": 1})
    with pytest.raises(ConfigurationError):
        open_pool(["nosuch://"])
    with open_pool(uris(2)) as pool:
        with pytest.raises(InputError):
            pool.matmul(X)  # nothing loaded
        pool.load_weights(W)
        bad = X.copy()
        bad[3, 2] = np.nan
        with pytest.raises(InputError):
            pool.matmul(bad)
        with pytest.raises(InputError):
            pool.matmul(X[:, :5])
        with pytest.raises(InputError):
            pool.load_weights([[1.0, 2.0], [3.0]])


@settings(max_examples=25, deadline=None)
@given(
    n_chips=st.integers(1, 4),
    batch=st.integers(0, 9),
    calls=st.integers(1, 3),
)
def test_any_pool_shape_equals_its_independent_shards(n_chips: int, batch: int, calls: int) -> None:
    devices = uris(n_chips)
    x = np.random.default_rng(batch).uniform(-1, 1, (batch, 24)).astype(np.float32)
    with open_pool(devices) as pool:
        pool.load_weights(W)
        got = [pool.matmul(x) for _ in range(calls)]
    if batch:
        expected = shard_reference(devices, W, [x] * calls)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(g, e)
    else:
        assert all(g.shape == (0, 16) for g in got)


@settings(max_examples=60, deadline=None)
@given(
    devices=st.one_of(
        st.lists(st.one_of(st.text(max_size=12), st.integers(), st.none()), max_size=3),
        st.text(max_size=12),
    ),
    backend=st.text(max_size=6),
    timeout_s=st.one_of(st.none(), st.floats(allow_nan=True)),
)
def test_fuzz_open_pool_fails_only_with_lumina_errors(
    devices: object, backend: str, timeout_s: float | None
) -> None:
    try:
        pool = open_pool(devices, backend=backend, timeout_s=timeout_s)  # type: ignore[arg-type]
    except LuminaError:
        return
    pool.close()


@settings(max_examples=100, deadline=None)
@given(
    baudrate=st.integers(0, 20_000_000),
    latency_s=st.floats(0, 60),
    req=st.integers(0, 100_000),
    rep=st.integers(0, 100_000),
    runs=st.integers(0, 4),
)
def test_board_timing_is_uart_wire_time_plus_run_latency(
    baudrate: int, latency_s: float, req: int, rep: int, runs: int
) -> None:
    timing = BoardTiming.from_params({"baudrate": str(baudrate), "run_latency_s": latency_s})
    wire = 0.0 if baudrate == 0 else (req + rep) * 10 / baudrate  # 8N1: 10 bits per byte
    assert timing.exchange_s(req, rep, runs) == pytest.approx(wire + runs * latency_s)


def test_emulated_board_takes_its_run_latency_and_wire_time() -> None:
    base = "fpga+sim://?rows=16&cols=24&seed=1"
    x = X[:4]
    with (
        lumina_hal.open_device(base) as fast,
        lumina_hal.open_device(base + "&run_latency_s=0.03&baudrate=115200") as slow,
    ):
        fast.load_weights(W)
        slow.load_weights(W)
        start = time.perf_counter()
        y = slow.matmul(x)
        elapsed = time.perf_counter() - start
        np.testing.assert_array_equal(y, fast.matmul(x))  # timing changes no result
    request = 4 * 24 * 4  # at least the codes: 4 vectors x 24 int32 each way-ish
    assert elapsed >= 0.03 + 10 * request / 115200


def test_a_pool_run_is_recorded_like_a_device_run(tmp_path) -> None:
    path = tmp_path / "pool.h5"
    with open_pool(uris(2)) as pool, lumina_hal.record_run(path, pool) as run:
        run.load_weights(W)
        y = run.matmul(X)
    record = lumina_hal.load_run(path)
    assert record.device["model"] == "pool/PTC-twinx2"
    assert record.device["serial"].count("+") == 1
    np.testing.assert_array_equal(record.calls[-1].outputs, y)
    np.testing.assert_array_equal(record.calls[-1].inputs, X)


class _PoolOfTwo(DevicePool):
    """``pooltest://?seed=N``: two 8 x 12 twins in a local pool, for the conformance suite."""

    uri_params = (Param("seed", int, 1, "seed of the first chip", minimum=0, maximum=1000),)

    @classmethod
    def from_uri(cls, uri: DeviceURI, **params: Any) -> PhotonicDevice:
        seed = params.get("seed", 1)
        chips = [f"mock://?rows=8&cols=12&preset=typical&seed={seed + i}" for i in range(2)]
        return cls([LocalHandle(c, None) for c in chips], "local")


@pytest.fixture
def pooltest_scheme() -> Iterator[None]:
    register_driver("pooltest", _PoolOfTwo)
    try:
        yield
    finally:
        unregister_driver("pooltest")


def test_a_pool_passes_the_device_conformance_suite(pooltest_scheme: None) -> None:
    report = run_selftest("pooltest://?seed=3")
    failures = [(c["name"], c["reason"]) for c in report["checks"] if c["status"] != "pass"]
    assert failures == [] and report["passed"] == len(CHECKS)


@settings(max_examples=80, deadline=None)
@given(
    data=st.one_of(
        hnp.arrays(
            dtype=st.sampled_from([np.float32, np.float64, np.int16, np.bool_, np.complex64]),
            shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=30),
        ),
        st.lists(st.one_of(st.floats(), st.text(max_size=2)), max_size=4),
    ),
    as_weights=st.booleans(),
)
def test_fuzz_pool_calls_fail_only_with_lumina_errors(data: Any, as_weights: bool) -> None:
    with open_pool(uris(2)) as pool:
        try:
            if as_weights:
                pool.load_weights(data)
            else:
                pool.load_weights(W)
                pool.matmul(data)
        except LuminaError:
            pass
