"""Fuzz the record loaders (docs/records.md §3, §5): damaged files raise a LuminaError or,
with ``recover=True``, give back only data identical to what was written — never a raw
exception, never altered data. A truncated tail (a killed writer) is never an error."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lumina_hal
from lumina_hal import load_run, record_run
from lumina_hal.errors import LuminaError, RecordDamagedError
from lumina_hal.runs.record_frames import scan_frames
from lumina_hal.runs.record_load import RunRecord

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Bench:
    def __init__(self) -> None:
        self.n = 0

    def snapshot(self) -> dict:
        self.n += 1
        return {"tec_c": 25.0 + self.n, "laser": {"on": True}}


def _write_record(path: Path) -> None:
    rng = np.random.default_rng(7)
    with (
        lumina_hal.open_device("mock://?rows=8&cols=8&seed=2") as chip,
        record_run(path, chip, bench=Bench(), meta={"op": "fuzz", "n": [1, 2]}) as run,
    ):
        run.attach(
            "script", {"path": "f.py", "result_json": json.dumps({"ok": 1})}, {"source": "x"}
        )
        run.load_weights(rng.uniform(-1, 1, (8, 8)))
        for i in range(6):
            run.matmul(rng.uniform(-1, 1, (i + 1, 8)).astype(np.float32), label=f"c{i}")
            run.log_row("t", i=i, v=i / 7)
            if i == 2:
                run.snapshot_bench("mid")
                run.load_weights(rng.uniform(-1, 1, (8, 8)))


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> tuple[bytes, RunRecord]:
    path = tmp_path_factory.mktemp("fuzz") / "run.lhrun"
    _write_record(path)
    return path.read_bytes(), load_run(path)


@pytest.fixture
def damaged(tmp_path):
    path = tmp_path / "damaged.lhrun"

    def write(data: bytes) -> Path:
        path.write_bytes(data)
        return path

    return write


def _same(a, b) -> bool:
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        same = np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
        if not same:
            return False
    return True


def assert_only_original_data(rec: RunRecord, orig: RunRecord, *, prefix: bool) -> None:
    """Everything in ``rec`` was written: same metadata, calls/weights/rows a sub-list."""
    for name in ("meta", "environment", "device", "uri", "scheme", "uri_params", "params",
                 "seed", "preset", "started_at_s", "device_snapshot"):  # fmt: skip
        assert getattr(rec, name) == getattr(orig, name), name
    assert rec.status in (orig.status, "running")
    if rec.status == orig.status:
        assert (rec.error, rec.ended_at_s, rec.duration_s) == (
            orig.error, orig.ended_at_s, orig.duration_s
        )  # fmt: skip
    for part in ("calls", "weights"):
        got, want = getattr(rec, part), {x.index: x for x in getattr(orig, part)}
        assert all(_same(x, want[x.index]) for x in got), part
        indices = [x.index for x in got]
        assert indices == sorted(set(indices))
        if prefix:
            assert indices == list(range(len(indices))), part
    want_snaps = [(s.label, s.at_s, s.after_call, s.data) for s in orig.bench_snapshots]
    got_snaps = [(s.label, s.at_s, s.after_call, s.data) for s in rec.bench_snapshots]
    assert _subsequence(got_snaps, want_snaps, prefix)
    for table, columns in rec.results.items():
        assert rec.result_units[table] == orig.result_units[table]
        rows = list(zip(*(columns[c].tolist() for c in columns), strict=True))
        want = list(zip(*(orig.results[table][c].tolist() for c in columns), strict=True))
        assert _subsequence(rows, want, prefix), table
    for section in ("script", "plan", "sweep"):
        got_section, want_section = getattr(rec, section), getattr(orig, section)
        assert all(want_section[k] == v for k, v in got_section.items()), section


def _subsequence(got: list, want: list, prefix: bool) -> bool:
    if prefix:
        return got == want[: len(got)]
    it = iter(want)
    return all(any(g == w for w in it) for g in got)


def test_the_original_loads_intact(original):
    data, orig = original
    assert orig.damage == () and orig.status == "complete"
    assert len(orig.calls) == 6 and len(orig.weights) == 2
    assert [s.label for s in orig.bench_snapshots] == ["start", "mid", "end"]
    assert orig.script == {"path": "f.py", "result": {"ok": 1}, "source": "x"}
    assert len(scan_frames(data, recover=False).frames) > 15


@FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1, max_size=4)
)
def test_flipped_bytes_are_always_detected(original, damaged, flips):
    data, orig = original
    buf = bytearray(data)
    for offset, mask in flips:
        buf[offset % len(buf)] ^= mask
    if bytes(buf) == data:  # two flips cancelled out
        return
    path = damaged(bytes(buf))
    with pytest.raises(LuminaError):
        load_run(path)  # every byte is under a CRC-32
    try:
        rec = load_run(path, recover=True)
    except LuminaError:
        return
    assert rec.damage
    assert_only_original_data(rec, orig, prefix=False)


@FUZZ
@given(cut=st.integers(0, 10**9))
def test_a_truncated_tail_keeps_every_whole_frame(original, damaged, cut):
    data, orig = original
    cut %= len(data)
    frames = scan_frames(data, recover=False).frames
    start_end = frames[1].offset  # the start frame ends where frame 1 begins
    path = damaged(data[:cut])
    if cut < start_end:
        with pytest.raises(RecordDamagedError):
            load_run(path)
        return
    rec = load_run(path)  # a torn tail is what a killed writer leaves: never an error
    assert_only_original_data(rec, orig, prefix=True)
    whole = sum(1 for f in frames if f.offset + 28 <= cut and f.fields["kind"] == "call")
    assert len(rec.calls) >= whole - 1
    ends_on_a_frame = cut in {f.offset for f in frames}
    assert bool(rec.damage) != ends_on_a_frame or cut == len(data)


@FUZZ
@given(start=st.integers(0, 10**9), length=st.integers(1, 5000), fill=st.sampled_from([0, 0xFF]))
def test_zeroed_ranges_raise_or_recover_only_original_data(original, damaged, start, length, fill):
    data, orig = original
    start %= len(data)
    buf = bytearray(data)
    buf[start : start + length] = bytes([fill]) * len(buf[start : start + length])
    path = damaged(bytes(buf))
    if bytes(buf) == data:
        rec = load_run(path)
        assert_only_original_data(rec, orig, prefix=True)
        assert (len(rec.calls), rec.damage) == (len(orig.calls), ())
        return
    try:
        rec = load_run(path)
    except LuminaError:
        pass
    else:  # only a range reaching the end of the file can look like a torn tail
        assert start + length >= len(data) and rec.damage
        assert_only_original_data(rec, orig, prefix=True)
    try:
        rec = load_run(path, recover=True)
    except LuminaError:
        return
    assert_only_original_data(rec, orig, prefix=False)


@FUZZ
@given(at=st.integers(0, 10**9), junk=st.binary(min_size=1, max_size=64))
def test_inserted_garbage_is_skipped_by_recover(original, damaged, at, junk):
    data, orig = original
    at = 16 + at % (len(data) - 16)
    path = damaged(data[:at] + junk + data[at:])
    try:
        rec = load_run(path, recover=True)
    except LuminaError:
        return
    assert_only_original_data(rec, orig, prefix=False)
    if at > scan_frames(data, recover=False).frames[1].offset and junk[:1] != b"L":
        assert len(rec.calls) >= len(orig.calls) - 1  # resynchronised after the junk


@FUZZ
@given(blob=st.binary(max_size=400), with_magic=st.booleans())
def test_garbage_is_refused_with_a_lumina_error(damaged, blob, with_magic):
    head = b"LHRUN\r\n\x1a\x02\x00\x00\x00" if with_magic else b""
    path = damaged(head + blob)
    for recover in (False, True):
        with pytest.raises(LuminaError):
            load_run(path, recover=recover)


def test_damage_messages_name_the_frame_and_offset(original, damaged):
    data, orig = original
    frames = scan_frames(data, recover=False).frames
    victim = next(f for f in frames if f.fields["kind"] == "call" and f.fields["index"] == 3)
    buf = bytearray(data)
    buf[victim.offset + 40] ^= 0x01  # inside its payload
    path = damaged(bytes(buf))
    with pytest.raises(RecordDamagedError, match=rf"frame {victim.seq} at offset {victim.offset}: "
                       r"payload checksum mismatch.*recover=True"):  # fmt: skip
        load_run(path)
    rec = load_run(path, recover=True)
    assert [c.index for c in rec.calls] == [0, 1, 2, 4, 5]
    assert any(f"frames {victim.seq}-{victim.seq} lost" in d for d in rec.damage), rec.damage
    assert rec.status == "complete"
    assert_only_original_data(rec, orig, prefix=False)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1, max_size=8)
)
def test_version_1_hdf5_damage_is_a_lumina_error(original, tmp_path, flips):
    """v1 has no checksums: the promise there is a LuminaError, never a raw exception or a
    crash (libhdf5 can crash on damaged files, so v1 is read in a child process)."""
    from lumina_hal.runs.record_export import export_hdf5

    path = tmp_path / "v1.h5"
    if not path.exists():
        export_hdf5(original[1], path)
    clean = path.read_bytes()
    buf = bytearray(clean)
    for offset, mask in flips:
        buf[offset % len(buf)] ^= mask
    bad = tmp_path / "bad.h5"
    bad.write_bytes(bytes(buf))
    try:
        rec = load_run(bad)
    except LuminaError as exc:
        assert str(bad) in str(exc)  # the message names the file
    else:
        assert rec.format_version == 1  # undetected: v1 has no checksums (docs §5)
