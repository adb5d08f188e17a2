"""mock://'s fused per-call path (twin/fast_call.py): it is taken for the common call, gives
bit-identical results and counters to the general path, and every check still happens."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import lumina_hal
from lumina_hal.errors import DeviceClosedError, InputError

URI = "mock://?rows=16&cols=16&seed=7&threads=1&kernel=native"


def open_pair(rng, rows=12, cols=16):
    """Two identical twins with the same weights (same seed, same call index)."""
    w = rng.uniform(-1, 1, size=(rows, cols))
    chips = [lumina_hal.open_device(URI) for _ in range(2)]
    for chip in chips:
        chip.load_weights(w)
    return chips


def general_path_only(chip, monkeypatch):
    """Record every call that reaches PhotonicDevice's general path."""
    calls = []
    general = chip._matmul_checked

    def recorded(x, out):
        calls.append(x)
        return general(x, out)

    monkeypatch.setattr(chip, "_matmul_checked", recorded)
    return calls


def test_the_common_calls_take_the_fast_path_and_match_the_general_one(rng, monkeypatch):
    fast, slow = open_pair(rng)
    general = general_path_only(fast, monkeypatch)
    x1 = rng.uniform(-1, 1, size=16).astype(np.float32)
    xb = rng.uniform(-1, 1, size=(5, 16)).astype(np.float32)
    out1, outb = np.empty(12, np.float32), np.empty((5, 12), np.float32)
    results = [fast.matmul(x1), fast.matmul(xb), fast.matmul(x1, out=out1)]
    results.append(fast.matmul(xb, out=outb))
    assert general == []  # all four went the fast path
    assert results[2] is out1 and results[3] is outb
    # float64 inputs of the same values go the general path (converted): same bits
    expected = [slow.matmul(x1.astype(np.float64)), slow.matmul(xb.astype(np.float64))]
    expected += [slow.matmul(x1.astype(np.float64)), slow.matmul(xb.astype(np.float64))]
    for got, want in zip(results, expected, strict=True):
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    assert fast.telemetry().counters == slow.telemetry().counters


def test_shape_dtype_and_out_errors_reach_the_contracts_messages(rng):
    chip = open_pair(rng)[0]
    x = np.ones(16, np.float32)
    with pytest.raises(InputError, match="has 15 columns"):
        chip.matmul(np.ones(15, np.float32))
    with pytest.raises(InputError, match=r"expected shape \(16,\) or \(batch, 16\)"):
        chip.matmul(np.ones((1, 1, 16), np.float32))
    with pytest.raises(InputError, match=r"out has shape \(16,\), expected \(12,\)"):
        chip.matmul(x, out=np.empty(16, np.float32))
    with pytest.raises(InputError, match=r"out has shape \(12,\), expected \(1, 12\)"):
        chip.matmul(x.reshape(1, 16), out=np.empty(12, np.float32))
    with pytest.raises(InputError, match="must be float32"):
        chip.matmul(x, out=np.empty(12, np.float64))
    with pytest.raises(InputError, match="numpy array"):
        chip.matmul(x, out=[0.0] * 12)
    with pytest.raises(InputError, match="writeable C-contiguous"):
        chip.matmul(x, out=np.empty(24, np.float32)[::2])
    read_only = np.empty(12, np.float32)
    read_only.flags.writeable = False
    with pytest.raises(InputError, match="writeable C-contiguous"):
        chip.matmul(x, out=read_only)
    assert chip.telemetry().counters["matmul_calls"] == 0  # nothing ran


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_is_refused_by_the_kernel_on_the_fast_path(rng, monkeypatch, bad):
    chip = open_pair(rng)[0]
    general = general_path_only(chip, monkeypatch)
    x = np.ones((3, 16), np.float32)
    x[2, 5] = bad
    index = chip.chip.call_index
    with pytest.raises(InputError, match="NaN or Inf"):
        chip.matmul(x, out=np.empty((3, 12), np.float32))
    with pytest.raises(InputError, match="NaN or Inf"):
        chip.matmul(x[2])
    assert general == []  # refused on the fast path itself
    assert chip.chip.call_index == index and chip.telemetry().counters["matmul_calls"] == 0


def test_closed_or_reset_devices_refuse_and_never_reach_the_kernel(rng):
    chip = open_pair(rng)[0]
    x = np.ones(16, np.float32)
    chip.matmul(x)
    chip.reset()
    with pytest.raises(InputError, match="no weights are loaded"):
        chip.matmul(x, out=np.empty(12, np.float32))
    chip.load_weights(np.eye(16))
    chip.close()
    for out in (None, np.empty(16, np.float32)):
        with pytest.raises(DeviceClosedError):
            chip.matmul(x, out=out)


def test_misaligned_and_overlapping_buffers_are_copied_not_refused(rng):
    fast, slow = open_pair(rng, rows=16)
    x = rng.uniform(-1, 1, size=16).astype(np.float32)
    raw = bytearray(4 * 16 + 1)
    misaligned = np.frombuffer(raw, dtype=np.float32, count=16, offset=1)
    misaligned[:] = x
    assert not misaligned.flags.aligned
    np.testing.assert_array_equal(fast.matmul(misaligned), slow.matmul(x))
    out = np.frombuffer(bytearray(4 * 16 + 1), dtype=np.float32, count=16, offset=1)
    assert fast.matmul(x, out=out) is out
    np.testing.assert_array_equal(out, slow.matmul(x))
    same = x.copy()
    assert fast.matmul(same, out=same) is same  # out overlaps x: x is read first
    np.testing.assert_array_equal(same, slow.matmul(x))


def test_the_fast_path_follows_temperature_and_a_chip_reprogrammed_directly(rng, monkeypatch):
    fast, slow = open_pair(rng)
    x = rng.uniform(-1, 1, size=(2, 16)).astype(np.float32)
    for chip in (fast, slow):
        chip.set_temperature(31.5)
    general = general_path_only(fast, monkeypatch)
    np.testing.assert_array_equal(fast.matmul(x), slow.matmul(x.astype(np.float64)))
    assert general == []
    fast.chip.set_environment(temperature_c=40.0)  # behind the device's back
    slow.chip.set_environment(temperature_c=40.0)
    np.testing.assert_array_equal(fast.matmul(x), slow.matmul(x.astype(np.float64)))
    assert len(general) == 1  # the stale fast path declined once, then was rebuilt
    np.testing.assert_array_equal(fast.matmul(x), slow.matmul(x.astype(np.float64)))
    assert len(general) == 1


def test_a_subclass_with_its_own_matmul_sees_every_call(rng):
    class Negating(type(open_pair(rng)[0])):
        def _matmul(self, x, out):
            super()._matmul(x, out)
            np.negative(out, out=out)

    plain = open_pair(rng)[0]
    chip = Negating(rows=16, cols=16, seed=7, threads=1, kernel="native").open()
    chip.load_weights(np.eye(16))
    plain.load_weights(np.eye(16))
    x = np.linspace(-1, 1, 16, dtype=np.float32)
    np.testing.assert_array_equal(chip.matmul(x, out=np.empty(16, np.float32)), -plain.matmul(x))


def test_concurrent_fast_calls_keep_every_call_and_counter(rng):
    fast, slow = open_pair(rng)
    x = rng.uniform(-1, 1, size=16).astype(np.float32)
    per_thread, threads = 200, 4

    def work():
        out = np.empty(12, np.float32)
        for _ in range(per_thread):
            fast.matmul(x, out=out)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    n = per_thread * threads
    assert fast.chip.call_index == n
    assert fast.telemetry().counters["matmul_calls"] == n
    assert fast.telemetry().counters["vectors"] == n
    slow.chip.call_index = n  # the next call of both draws the same noise
    np.testing.assert_array_equal(fast.matmul(x), slow.matmul(x.astype(np.float64)))


def test_board_timing_counts_fast_calls_as_the_general_path_does(rng, monkeypatch):
    uri = URI + "&run_latency_s=0.0001"
    fast, slow = (lumina_hal.open_device(uri) for _ in range(2))
    for chip in (fast, slow):
        chip.load_weights(rng.uniform(-1, 1, size=(12, 16)))
    general = general_path_only(fast, monkeypatch)
    x = np.ones((3, 16), np.float32)
    fast.matmul(x, out=np.empty((3, 12), np.float32))
    fast.matmul(x[0])
    slow.matmul(x.astype(np.float64))
    slow.matmul(x[0].astype(np.float64))
    assert general == []
    board = fast.telemetry().counters["board_time_us"]
    assert board > 0 and board == slow.telemetry().counters["board_time_us"]
