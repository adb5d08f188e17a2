"""A one-chip local pool's fast path (docs/scale-out.md section 2, "One chip"): the call goes
straight to the chip, and every guarantee of the general path holds: the device's own result
bit for bit, the multi-chip path's result for the same seed, the noise-stream position kept
through failures and retries, the device's validation, timeouts on the chip's thread."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import lumina_hal
from lumina_hal.device import PhotonicDevice
from lumina_hal.errors import DeviceClosedError, DeviceError, InputError, LinkError, LuminaError
from lumina_hal.params import Param
from lumina_hal.pool import DevicePool, open_pool
from lumina_hal.pool.handle import LocalHandle
from lumina_hal.pool.proxy import ChipProxy
from lumina_hal.registry import register_driver, unregister_driver
from lumina_hal.testing.conformance import CHECKS
from lumina_hal.testing.selftest import run_selftest
from lumina_hal.twin.device import MockDevice
from lumina_hal.uri import DeviceURI

RNG = np.random.default_rng(11)
W = RNG.uniform(-1, 1, (16, 24))
X = RNG.uniform(-1, 1, (37, 24)).astype(np.float32)


def uri(seed: int = 1, scheme: str = "mock") -> str:
    return f"{scheme}://?rows=16&cols=24&preset=typical&seed={seed}"


def reference(seed: int, positions_and_inputs: list[tuple[int, Any]]) -> list[np.ndarray]:
    """Each input run on a freshly opened twin at the given noise-stream position."""
    with lumina_hal.open_device(uri(seed)) as device:
        device.load_weights(W)
        results = []
        for position, x in positions_and_inputs:
            device.seek_call_index(position)
            results.append(device.matmul(x))
        return results


def _refuse_shards(self: ChipProxy, x: np.ndarray, out: np.ndarray) -> None:
    raise AssertionError("the general path was taken")


@pytest.fixture
def no_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any call that takes the pool's general path (the shard's run) fails."""
    monkeypatch.setattr(ChipProxy, "run_shard", _refuse_shards)


def test_fast_path_is_the_device_alone_bit_for_bit(no_general_path: None) -> None:
    out = np.empty((37, 16), dtype=np.float32)
    inputs: list[Any] = [X, X[0], X[:3], X.astype(np.float64), X[5:9].tolist()]
    with lumina_hal.open_device(uri()) as device, open_pool([uri()]) as pool:
        assert device.load_weights(W) == pool.load_weights(W)
        for x in inputs:
            got, expected = pool.matmul(x), device.matmul(x)
            assert got.shape == expected.shape and got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected)
        assert pool.matmul(X, out=out) is out
        np.testing.assert_array_equal(out, device.matmul(X))
        assert pool.chips[0].next_call == len(inputs) + 1
        counters = pool.telemetry().counters
    assert counters["matmul_calls"] == counters["shards"] == len(inputs) + 1
    assert counters["chip0_matmul_calls"] == len(inputs) + 1


def test_fast_path_equals_the_multi_chip_path_for_the_same_seeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ChipProxy, "run_shard", _refuse_shards)
    with open_pool([uri(1)]) as one, open_pool([uri(2)]) as other:
        one.load_weights(W)
        other.load_weights(W)
        halves = [np.concatenate([one.matmul(X[:18]), other.matmul(X[18:])]) for _ in range(3)]
    monkeypatch.undo()  # the general path: two chips, one shard each
    with open_pool([uri(1), uri(2)]) as pool:
        pool.load_weights(W)
        whole = [pool.matmul(X) for _ in range(3)]
    for h, w in zip(halves, whole, strict=True):
        np.testing.assert_array_equal(h, w)


def test_a_single_vector_on_many_chips_is_one_shard_on_chip_0(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ChipProxy, "run_shard", _refuse_shards)
    singles = [X[0], X[1:2], X[2]]
    with open_pool([uri(1), uri(2), uri(3)]) as pool:
        pool.load_weights(W)
        got = [pool.matmul(x) for x in singles]
        assert [chip.next_call for chip in pool.chips] == [3, 0, 0]
        with pytest.raises(AssertionError, match="general path"):
            pool.matmul(X[:2])  # two shards: the general path
        monkeypatch.undo()
        whole = pool.matmul(X)
    for g, e in zip(got, reference(1, list(enumerate(singles))), strict=True):
        np.testing.assert_array_equal(g, e)
    expected = [
        reference(1, [(3, X[:12])])[0],  # docs/scale-out.md 2: rows floor(i B / n) ...
        reference(2, [(0, X[12:24])])[0],
        reference(3, [(0, X[24:])])[0],
    ]
    np.testing.assert_array_equal(whole, np.concatenate(expected))


def test_an_empty_batch_reaches_no_chip() -> None:
    with open_pool([uri()]) as pool:
        pool.load_weights(W)
        assert pool.matmul(X[:0]).shape == (0, 16)
        assert pool.chips[0].next_call == 0
        np.testing.assert_array_equal(pool.matmul(X), reference(1, [(0, X)])[0])


def test_fast_path_validates_as_the_device_does(no_general_path: None) -> None:
    bad = X.copy()
    bad[3, 2] = np.inf
    with open_pool([uri()]) as pool:
        with pytest.raises(InputError, match="no weights"):
            pool.matmul(X)
        pool.load_weights(W)
        for x, out in (
            (bad, None),
            (X[:, :5], None),
            (X, np.empty((37, 15), dtype=np.float32)),
            (X, np.empty((37, 16), dtype=np.float64)),
        ):
            with pytest.raises(InputError):
                pool.matmul(x, out)
        assert pool.chips[0].next_call == 0  # nothing ran
        with pytest.raises(InputError):  # 3-D: the general path's refusal, no chip reached
            pool.matmul(X.reshape(1, 37, 24))
        np.testing.assert_array_equal(pool.matmul(X), reference(1, [(0, X)])[0])
    with pytest.raises(DeviceClosedError):
        pool.matmul(X)


class _FlakyTwin(MockDevice):
    """A twin whose next ``failures`` calls fail after their noise was drawn (the stream has
    moved on, as a board's RUN that lost its reply)."""

    failures = 0
    error: type[LuminaError] = LinkError

    def _matmul(self, x: np.ndarray, out: np.ndarray) -> None:
        super()._matmul(x, out)
        if type(self).failures:
            type(self).failures -= 1
            raise type(self).error("the link dropped the reply")


@pytest.fixture
def flaky() -> Iterator[type[_FlakyTwin]]:
    register_driver("flaky", _FlakyTwin)
    try:
        yield _FlakyTwin
    finally:
        _FlakyTwin.failures = 0
        _FlakyTwin.error = LinkError
        unregister_driver("flaky")


def test_a_failure_mid_call_keeps_the_position_and_the_pool(
    flaky: type[_FlakyTwin], no_general_path: None
) -> None:
    expected = reference(1, [(0, X), (1, X[:4]), (2, X), (3, X[0]), (4, X)])
    with open_pool([uri(1, "flaky")]) as pool:
        pool.load_weights(W)
        np.testing.assert_array_equal(pool.matmul(X), expected[0])
        flaky.failures = 1  # the chip re-programs and runs the call again at its position
        np.testing.assert_array_equal(pool.matmul(X[:4]), expected[1])
        assert pool.chips[0].next_call == 2
        flaky.failures = 2  # the second attempt fails too: the error reaches the caller
        with pytest.raises(LinkError, match="dropped"):
            pool.matmul(X)
        assert pool.chips[0].next_call == 2  # unchanged: the retry repeats the position
        assert pool.telemetry().counters["matmul_calls"] == 2
        np.testing.assert_array_equal(pool.matmul(X), expected[2])
        np.testing.assert_array_equal(pool.matmul(X[0]), expected[3])
        flaky.failures, flaky.error = 1, DeviceError  # not a link's: no retry, same class
        with pytest.raises(DeviceError, match="dropped"):
            pool.matmul(X)
        assert pool.chips[0].next_call == 4
        np.testing.assert_array_equal(pool.matmul(X), expected[4])
        pool.chips[0].seek_call_index(1)  # a caller's retry of call 1 repeats it
        np.testing.assert_array_equal(pool.matmul(X[:4]), expected[1])


def test_a_shared_device_moved_behind_the_pool_is_moved_back(no_general_path: None) -> None:
    expected = reference(1, [(1, X), (2, X[:3]), (3, X)])
    with lumina_hal.open_device(uri()) as device:
        device.load_weights(W)
        device.matmul(X)  # call 0, before the pool takes the chip
        with open_pool([device]) as pool:
            pool.load_weights(W)
            np.testing.assert_array_equal(pool.matmul(X), expected[0])
            device.matmul(X)  # the caller uses its device: its stream moves on
            device.matmul(X)
            np.testing.assert_array_equal(pool.matmul(X[:3]), expected[1])
            device.seek_call_index(0)
            np.testing.assert_array_equal(pool.matmul(X), expected[2])


def test_reset_and_temperature_are_followed_by_the_fast_path(no_general_path: None) -> None:
    with lumina_hal.open_device(uri()) as device, open_pool([uri()]) as pool:
        for d in (device, pool):
            d.load_weights(W)
            d.matmul(X)
            d.set_temperature(31.0)
        np.testing.assert_array_equal(pool.matmul(X), device.matmul(X))
        for d in (device, pool):
            d.reset()
            d.load_weights(W)
        np.testing.assert_array_equal(pool.matmul(X[:2]), device.matmul(X[:2]))
        assert pool.chips[0].next_call == 1


def test_timeouts_keep_the_chip_thread_and_tiles_the_tiler(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: ChipProxy, x: Any, out: Any) -> np.ndarray:
        raise AssertionError("the fast path was taken")

    monkeypatch.setattr(ChipProxy, "run_direct", refuse)
    with open_pool([uri()], timeout_s=30.0) as pool:  # the hung-chip limit needs the thread
        pool.load_weights(W)
        np.testing.assert_array_equal(pool.matmul(X), reference(1, [(0, X)])[0])
    big = np.random.default_rng(4).uniform(-1, 1, (30, 40))
    with open_pool([uri()]) as pool:
        pool.load_weights(big)  # tiled over the one chip
        assert pool.tiled and pool.matmul(X[:, :8].repeat(5, axis=1)).shape == (37, 30)
        pool.load_weights(W)  # back to one chip: the fast path
        with pytest.raises(AssertionError, match="fast path"):
            pool.matmul(X)


class _PoolOfOne(DevicePool):
    """``pooltest1://?seed=N``: one 8 x 12 twin in a local pool (the fast path)."""

    uri_params = (Param("seed", int, 1, "seed of the chip", minimum=0, maximum=1000),)

    @classmethod
    def from_uri(cls, uri: DeviceURI, **params: Any) -> PhotonicDevice:
        chip = f"mock://?rows=8&cols=12&preset=typical&seed={params.get('seed', 1)}"
        return cls([LocalHandle(chip, None)], "local")


def test_a_one_chip_pool_passes_the_device_conformance_suite() -> None:
    register_driver("pooltest1", _PoolOfOne)
    try:
        report = run_selftest("pooltest1://?seed=3")
    finally:
        unregister_driver("pooltest1")
    failures = [(c["name"], c["reason"]) for c in report["checks"] if c["status"] != "pass"]
    assert failures == [] and report["passed"] == len(CHECKS)


def test_a_pool_of_physics_v2_twins_keeps_their_noise_positions() -> None:
    """v2 twins declare a noise position (docs/physics.md §7.6), so a pool of them gives the
    device's own results, and a shard repeated at its position repeats its bits."""
    v2 = "mock://?physics_model=v2&rows=16&cols=24&preset=typical&seed=3"
    with lumina_hal.open_device(v2) as device, open_pool([v2, v2]) as pool:
        device.load_weights(W)
        pool.load_weights(W)
        alone = [device.matmul(X[:1]) for _ in range(3)]
        pooled = [pool.matmul(X[:1]) for _ in range(3)]
        device.seek_call_index(1)
        again = device.matmul(X[:1])
    for a, b in zip(alone, pooled, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again, alone[1])
    assert not np.array_equal(alone[0], alone[1])  # the noise moves from call to call
