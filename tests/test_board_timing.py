"""A real board's time (lumina_hal.board_timing, docs/scale-out.md §4) on the emulator and the twin.

No wall clock: the model's waits go to a fake ``time`` whose ``sleep`` records its argument.
The twin's modelled bytes are checked against an independent reference, the bytes the FPGA
emulator actually moves through the real driver for the same call.
"""

from __future__ import annotations

import types
from collections.abc import Iterator

import numpy as np
import pytest

from lumina_hal import board_timing, open_device, open_pool
from lumina_hal.errors import ConfigurationError

BAUD = 12_000_000


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Every wait the board model takes, in order, instead of sleeping."""
    recorded: list[float] = []
    fake = types.SimpleNamespace(sleep=recorded.append, perf_counter=lambda: 0.0)
    monkeypatch.setattr(board_timing, "time", fake)
    yield recorded


def _data(batch: int, rows: int = 64, cols: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.uniform(-1, 1, (rows, cols)), rng.uniform(-1, 1, (batch, cols)).astype(np.float32)


@pytest.mark.parametrize(("batch", "rows", "cols"), [(100, 64, 64), (5, 16, 40), (70, 40, 24)])
def test_the_twins_link_time_matches_the_bytes_the_emulator_moves(sleeps, batch, rows, cols):
    w, x = _data(batch, rows, cols)
    waited = {}
    for uri in (f"mock://?seed=1&baudrate={BAUD}", f"fpga+sim://?seed=1&baudrate={BAUD}"):
        with open_device(f"{uri}&rows={rows}&cols={cols}") as device:
            device.load_weights(w)
            sleeps.clear()
            device.matmul(x)
            waited[uri.split(":")[0]] = sum(sleeps)
    # the twin counts COBS's worst case; the emulator's frames hold zero bytes (< 0.5 % less)
    assert waited["fpga+sim"] > 0
    assert waited["fpga+sim"] <= waited["mock"] * (1 + 1e-12) <= 1.005 * waited["fpga+sim"]


@pytest.mark.parametrize(("rows", "cols"), [(64, 64), (5, 3), (100, 90)])
def test_the_twins_upload_time_matches_the_bytes_the_emulator_moves(sleeps, rows, cols):
    w, _ = _data(1, rows, cols)
    waited = {}
    for uri in (f"mock://?seed=1&baudrate={BAUD}", f"fpga+sim://?seed=1&baudrate={BAUD}"):
        with open_device(f"{uri}&rows={rows}&cols={cols}") as device:
            sleeps.clear()
            device.load_weights(w)
            waited[uri.split(":")[0]] = sum(sleeps)
    assert waited["fpga+sim"] > 0
    assert waited["fpga+sim"] <= waited["mock"] * (1 + 1e-12) <= 1.005 * waited["fpga+sim"]


def test_the_twin_waits_the_run_latency_per_run_and_accounts_it(sleeps):
    w, x = _data(100)  # 64x64: 31 vectors per RUN frame, so 4 RUNs
    plain = open_device("mock://?seed=3").open()
    timed = open_device("mock://?seed=3&run_latency_s=0.002").open()
    try:
        assert "board_time_us" not in plain.telemetry().counters
        for device in (plain, timed):
            device.load_weights(w)
        assert sleeps == []  # no baud rate: uploads take no time, RUNs their latency
        y_plain, y_timed = plain.matmul(x), timed.matmul(x)
        assert np.array_equal(y_plain, y_timed)  # timing changes no result
        assert sleeps == [pytest.approx(4 * 0.002)]
        timed.matmul(x[:31], out=np.empty((31, 64), np.float32))  # the fast path: one RUN
        assert sleeps[1] == pytest.approx(0.002)
        assert timed.telemetry().counters["board_time_us"] == 10_000
        timed.reset()
        assert timed.telemetry().counters["board_time_us"] == 0
    finally:
        plain.close()
        timed.close()


def test_wire_time_is_ten_bits_per_byte_at_the_baud_rate():
    timing = board_timing.BoardTiming(baudrate=1_000_000, run_latency_s=0.5)
    assert timing.wire_s(1000) == pytest.approx(0.01)
    assert timing.exchange_s(600, 400, 2) == pytest.approx(1.01)
    assert board_timing.BoardTiming().run_s(100, 64, 64) == 0.0
    request, reply, runs = board_timing.run_wire_bytes(31, 64, 64)  # exactly one full frame
    assert runs == 1 and request == reply + 12  # RUN request head 20 bytes, reply head 8


@pytest.mark.parametrize(
    "query", ["baudrate=-1", "baudrate=30000000", "run_latency_s=-0.1", "run_latency_s=x"]
)
def test_timing_parameters_out_of_range_are_refused(query):
    with pytest.raises(ConfigurationError):
        open_device(f"mock://?{query}")
    with pytest.raises(ConfigurationError):
        open_device(f"fpga+sim://?{query}")


def test_a_pool_of_timed_twins_waits_once_per_chip_shard(sleeps):
    w, x = _data(62)
    boards = [f"mock://?seed={i}&run_latency_s=0.002&baudrate={BAUD}" for i in (1, 2)]
    timing = board_timing.BoardTiming(BAUD, 0.002)
    with open_pool(boards) as pool:
        pool.load_weights(w)  # each chip programmed once
        assert sleeps == [pytest.approx(timing.upload_s(64, 64))] * 2
        sleeps.clear()
        pool.matmul(x)  # 31 vectors per chip: one RUN frame each
        counters = pool.telemetry().counters
    one = timing.run_s(31, 64, 64)
    assert sleeps == [pytest.approx(one)] * 2
    total_us = round((one + timing.upload_s(64, 64)) * 1e6)
    assert counters["chip0_board_time_us"] == counters["chip1_board_time_us"] == total_us
