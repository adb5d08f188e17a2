"""Run records (docs/records.md): round trip, interruption, overwrite refusal, bad paths."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
import textwrap
import zlib
from typing import Any

import h5py
import numpy as np
import pytest

import lumina_hal
from lumina_hal import load_run, record_run
from lumina_hal.errors import (
    ConfigurationError,
    DeviceClosedError,
    InputError,
    RecordDamagedError,
    RecordError,
)

URI = "mock://?rows=16&cols=16&preset=harsh&seed=3"


class FakeBench:
    """Stands in for the instrument bench: settings that can change during a run."""

    def __init__(self) -> None:
        self.settings: dict[str, Any] = {"laser": {"power_dbm": 3.0, "on": True}, "tec_c": 25.0}

    def snapshot(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.settings))


@pytest.fixture
def chip():
    with lumina_hal.open_device(URI) as device:
        yield device


def test_round_trip_returns_everything_written(tmp_path, chip, rng):
    path = tmp_path / "run.h5"
    bench = FakeBench()
    meta = {"operator": "ana", "note": "round trip", "tags": [1, 2]}
    info = chip.info.to_dict()
    weights = rng.uniform(-1, 1, size=(16, 16))
    inputs = [
        rng.uniform(-1, 1, size=(5, 16)).astype(np.float32),
        rng.uniform(-1, 1, size=(16,)).astype(np.float32),
        rng.uniform(-1, 1, size=(3, 16)).astype(np.float32),
    ]
    with record_run(path, chip, bench=bench, meta=meta) as run:
        weights_id = run.load_weights(weights)
        outputs = [run.matmul(inputs[0], label="first"), run.matmul(inputs[1], label="single")]
        bench.settings["tec_c"] = 60.0
        chip.set_temperature(60.0)
        run.snapshot_bench("hot")
        outputs.append(run.matmul(inputs[2], label="hot"))
        for i in range(3):
            run.log_row("stats", units={"snr_db": "dB"}, index=i, snr_db=40.0 + i / 3)

    rec = load_run(path)
    assert (rec.status, rec.error, rec.complete, rec.format_version) == ("complete", "", True, 2)
    assert rec.meta == meta
    assert rec.device == info
    assert (rec.uri, rec.scheme) == (URI, "mock")
    assert rec.uri_params == {"rows": "16", "cols": "16", "preset": "harsh", "seed": "3"}
    assert (rec.seed, rec.preset) == (3, "harsh")
    assert rec.params["rows"] == 16 and rec.params["noise"] is True  # in force (from the preset)
    assert rec.environment["lumina_hal_version"] == lumina_hal.__version__
    assert rec.environment["numpy_version"] == np.__version__
    assert rec.environment["python_version"] == ".".join(map(str, sys.version_info[:3]))

    assert [s.label for s in rec.bench_snapshots] == ["start", "hot", "end"]
    assert [s.after_call for s in rec.bench_snapshots] == [0, 2, 3]
    assert rec.bench == {"laser": {"power_dbm": 3.0, "on": True}, "tec_c": 25.0}
    assert rec.bench_snapshots[-1].data["tec_c"] == 60.0

    (w,) = rec.weights
    np.testing.assert_array_equal(w.matrix, weights)
    assert w.weights_id == weights_id == chip.weights_id
    assert w.sha256 == hashlib.sha256(weights.astype("<f8").tobytes()).hexdigest()

    assert [c.label for c in rec.calls] == ["first", "single", "hot"]
    vectors = np.cumsum([len(np.atleast_2d(x)) for x in inputs])
    for call, x, y, total in zip(rec.calls, inputs, outputs, vectors, strict=True):
        assert call.inputs.dtype == np.float32 and call.outputs.dtype == np.float32
        np.testing.assert_array_equal(call.inputs, x)
        np.testing.assert_array_equal(call.outputs, y)
        assert (call.weights_index, call.weights_id) == (0, weights_id)
        assert call.telemetry["counters"]["vectors"] == total
        assert call.telemetry["weights_id"] == weights_id
        assert rec.started_at_s <= call.start_s <= call.end_s <= rec.ended_at_s
        assert call.duration_s >= 0
    np.testing.assert_array_equal(rec.telemetry_series("temperature_c"), [85.0, 85.0, 60.0])

    np.testing.assert_array_equal(rec.results["stats"]["index"], [0, 1, 2])
    assert rec.results["stats"]["index"].dtype == np.int64
    np.testing.assert_array_equal(rec.results["stats"]["snr_db"], [40.0, 40 + 1 / 3, 40 + 2 / 3])
    assert rec.result_units["stats"] == {"index": "", "snr_db": "dB"}


def read_frames_per_spec(path):
    """An independent reader of docs/records.md §2 (struct + zlib only): [(seq, fields, arrays)]."""
    data = path.read_bytes()
    assert data[:8] == b"LHRUN\r\n\x1a"
    assert struct.unpack_from("<HH", data, 8) == (2, 0)
    assert struct.unpack_from("<I", data, 12)[0] == zlib.crc32(data[:12])
    pos, frames = 16, []
    while pos < len(data):
        sync, seq, length, head_crc, payload_crc = struct.unpack_from("<4sQQII", data, pos)
        assert sync == b"LHFR" and head_crc == zlib.crc32(data[pos : pos + 20])
        payload = data[pos + 28 : pos + 28 + length]
        assert len(payload) == length and payload_crc == zlib.crc32(payload)
        (n_json,) = struct.unpack_from("<I", payload, 0)
        fields = json.loads(payload[4 : 4 + n_json].decode("utf-8"))
        arrays, at = {}, 4 + n_json
        for spec in fields.pop("arrays", []):
            count = int(np.prod(spec["shape"], dtype=np.int64))
            nbytes = count * np.dtype(spec["dtype"]).itemsize
            arrays[spec["name"]] = np.frombuffer(
                payload[at : at + nbytes], dtype=spec["dtype"]
            ).reshape(spec["shape"])
            at += nbytes
        assert at == length
        frames.append((seq, fields, arrays))
        pos += 28 + length
    return frames


def test_file_follows_the_documented_layout(tmp_path, chip):
    path = tmp_path / "run.lhrun"
    x = np.ones((2, 16), dtype=np.float32)
    with record_run(path, chip) as run:
        run.load_weights(np.eye(16))
        y = run.matmul(x, label="a")
        run.log_row("t", units={"v": "V"}, i=1, v=0.5)
    frames = read_frames_per_spec(path)
    assert [seq for seq, _, _ in frames] == list(range(len(frames)))
    kinds = [f["kind"] for _, f, _ in frames]
    assert kinds == ["start", "weights", "call", "table", "row", "end"]
    start = frames[0][1]
    assert start["format"] == "lumina-hal-run" and start["device"]["preset"] == "harsh"
    assert start["device"]["seed"] == 3 and start["bench_present"] is False
    assert "snapshot" in start["device"]  # the slot for the device's own snapshot()
    _, weights, warrays = frames[1]
    np.testing.assert_array_equal(warrays["matrix"], np.eye(16))
    assert weights["weights_id"] == chip.weights_id and warrays["matrix"].dtype == "<f8"
    _, call, carrays = frames[2]
    assert (call["index"], call["label"], call["weights_index"]) == (0, "a", 0)
    np.testing.assert_array_equal(carrays["inputs"], x)
    np.testing.assert_array_equal(carrays["outputs"], y)
    assert frames[3][1]["columns"] == [
        {"name": "i", "dtype": "int64", "unit": ""},
        {"name": "v", "dtype": "float64", "unit": "V"},
    ]
    assert frames[4][1]["values"] == [1, 0.5]
    assert frames[5][1]["status"] == "complete"


def test_version_1_hdf5_records_are_still_read(tmp_path, chip, rng):
    from lumina_hal.runs.record_export import export_hdf5

    path = tmp_path / "run.lhrun"
    with record_run(path, chip, bench=FakeBench(), meta={"m": 1}) as run:
        run.attach("script", {"path": "x.py", "result_json": "[1, 2]"}, texts={"source": "s"})
        run.load_weights(rng.uniform(-1, 1, (16, 16)))
        run.matmul(rng.uniform(-1, 1, (3, 16)).astype(np.float32), label="a")
        run.log_row("t", i=1, v=0.5)
    rec = load_run(path)
    export_hdf5(rec, tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5", "r") as h5:  # plain HDF5 for generic tools
        assert h5.attrs["format_version"] == 1 and h5["calls/000000/inputs"].shape == (3, 16)
    old = load_run(tmp_path / "run.h5")
    assert old.format_version == 1
    for name in ("status", "meta", "device", "uri", "params", "seed", "preset", "script"):
        assert getattr(old, name) == getattr(rec, name), name
    np.testing.assert_array_equal(old.calls[0].outputs, rec.calls[0].outputs)
    np.testing.assert_array_equal(old.weights[0].matrix, rec.weights[0].matrix)
    assert old.results["t"]["v"].tolist() == [0.5]
    assert [s.data for s in old.bench_snapshots] == [s.data for s in rec.bench_snapshots]
    with pytest.raises(ConfigurationError, match="already exists"):
        export_hdf5(rec, tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5", "r+") as h5:
        del h5["device"]
    with pytest.raises(RecordDamagedError, match=r"version-1 .*damaged"):
        load_run(tmp_path / "run.h5")


@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_interrupted_run_is_readable_and_marked_incomplete(tmp_path, chip, exc_type):
    path = tmp_path / "run.h5"
    x = np.linspace(-1, 1, 32, dtype=np.float32).reshape(2, 16)
    with pytest.raises(exc_type), record_run(path, chip) as run:
        run.load_weights(np.eye(16))
        y = run.matmul(x, label="kept")
        raise exc_type("boom")
    rec = load_run(path)
    assert (rec.status, rec.complete) == ("incomplete", False)
    assert rec.error == f"{exc_type.__name__}: boom"
    assert [c.label for c in rec.calls] == ["kept"]
    np.testing.assert_array_equal(rec.calls[0].outputs, y)
    assert np.isfinite(rec.ended_at_s)


def test_killed_writer_leaves_flushed_calls_readable(tmp_path):
    path = tmp_path / "killed.h5"
    script = textwrap.dedent(
        f"""
        import os, numpy as np, lumina_hal
        with lumina_hal.open_device("mock://?rows=8&cols=8") as chip:
            with lumina_hal.record_run({str(path)!r}, chip) as run:
                run.load_weights(np.eye(8))
                for i in range(3):
                    run.matmul(np.full((2, 8), i, dtype=np.float32), label=f"c{{i}}")
                os._exit(7)  # no close, no status update
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == 7, proc.stderr
    rec = load_run(path)
    assert rec.status == "running" and np.isnan(rec.ended_at_s) and rec.damage == ()
    assert [c.label for c in rec.calls] == ["c0", "c1", "c2"]
    np.testing.assert_array_equal(rec.calls[2].inputs, np.full((2, 8), 2, dtype=np.float32))


def test_existing_file_is_refused_unless_overwrite(tmp_path, chip):
    path = tmp_path / "run.h5"
    with record_run(path, chip, meta={"take": 1}) as run:
        run.load_weights(np.eye(16))
    refused = pytest.raises(ConfigurationError, match=r"already exists.*overwrite")
    with refused, record_run(path, chip, meta={"take": 2}):
        pass
    assert load_run(path).meta == {"take": 1}  # untouched
    with record_run(path, chip, meta={"take": 3}, overwrite=True):
        pass
    rec = load_run(path)
    assert rec.meta == {"take": 3} and rec.weights == []


def test_bad_output_paths_name_the_problem(tmp_path, chip):
    missing = pytest.raises(ConfigurationError, match=r"directory .*does not exist")
    with missing, record_run(tmp_path / "nowhere" / "run.h5", chip):
        pass
    with pytest.raises(ConfigurationError, match="is a directory"), record_run(tmp_path, chip):
        pass


def test_load_run_rejects_what_is_not_a_record(tmp_path, chip):
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_run(tmp_path / "missing.h5")
    text = tmp_path / "notes.h5"
    text.write_text("not a record at all")
    with pytest.raises(RecordError, match="not a lumina-hal run record"):
        load_run(text)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as h5:
        h5["x"] = np.arange(3)
    with pytest.raises(RecordError, match="not a lumina-hal run record"):
        load_run(foreign)
    empty = tmp_path / "empty.lhrun"
    empty.write_bytes(b"")
    with pytest.raises(RecordDamagedError, match="empty"):
        load_run(empty)
    future = tmp_path / "future.lhrun"
    with record_run(future, chip):
        pass
    data = bytearray(future.read_bytes())
    data[8:10] = struct.pack("<H", 99)
    data[12:16] = struct.pack("<I", zlib.crc32(bytes(data[:12])))
    future.write_bytes(bytes(data))
    with pytest.raises(RecordError, match="format version 99"):
        load_run(future)


class NoSnapshot:
    pass


class BadSnapshot:
    def snapshot(self) -> dict[str, Any]:
        return {"when": object()}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bench": NoSnapshot()}, "snapshot\\(\\) -> dict method"),
        ({"bench": BadSnapshot()}, "bench.snapshot\\(\\) must be JSON-serializable"),
        ({"meta": {"array": np.zeros(2)}}, "meta must be JSON-serializable"),
    ],
)
def test_bad_bench_or_meta_is_refused_before_a_file_exists(tmp_path, chip, kwargs, message):
    path = tmp_path / "run.h5"
    with pytest.raises(ConfigurationError, match=message), record_run(path, chip, **kwargs):
        pass
    assert not path.exists()


def test_closed_device_is_refused_before_a_file_exists(tmp_path):
    device = lumina_hal.build_device("mock://?rows=4&cols=4")
    with pytest.raises(DeviceClosedError), record_run(tmp_path / "run.h5", device):
        pass
    assert not (tmp_path / "run.h5").exists()


def test_rejected_call_is_not_recorded_and_run_goes_on(tmp_path, chip):
    path = tmp_path / "run.h5"
    with record_run(path, chip) as run:
        run.load_weights(np.eye(16))
        bad = np.ones((1, 16), dtype=np.float32)
        bad[0, 3] = np.nan
        with pytest.raises(InputError, match="NaN"):
            run.matmul(bad)
        run.matmul(np.ones((1, 16), dtype=np.float32), label="good")
    assert [c.label for c in load_run(path).calls] == ["good"]


def test_log_row_checks_columns_and_values(tmp_path, chip):
    with record_run(tmp_path / "run.h5", chip) as run:
        run.log_row("t", a=1, b=2.5)
        with pytest.raises(InputError, match="lacks \\['b'\\] and adds \\['c'\\]"):
            run.log_row("t", a=2, c=1.0)
        with pytest.raises(InputError, match="expected a real number, got str"):
            run.log_row("t", a=2, b="x")
        with pytest.raises(InputError, match="holds integers"):
            run.log_row("t", a=2.5, b=1.0)
        with pytest.raises(InputError, match="table name"):
            run.log_row("a/b", a=1)
    assert load_run(tmp_path / "run.h5").results["t"]["a"].tolist() == [1]


def test_run_object_refuses_use_after_the_block(tmp_path, chip):
    with record_run(tmp_path / "run.h5", chip) as run:
        run.load_weights(np.eye(16))
    with pytest.raises(ConfigurationError, match="is closed"):
        run.matmul(np.ones(16, dtype=np.float32))


def test_progress_bar_only_when_enabled(tmp_path, chip, capsys):
    with record_run(tmp_path / "a.h5", chip) as run:
        assert list(run.progress(range(3), desc="quiet")) == [0, 1, 2]
    assert capsys.readouterr().err == ""
    with record_run(tmp_path / "b.h5", chip, progress=True) as run:
        assert list(run.progress(range(3), desc="loud")) == [0, 1, 2]
    err = capsys.readouterr().err
    assert "loud" in err and "3/3" in err


def test_cli_shows_progress_only_on_a_terminal(monkeypatch):
    from lumina_hal.progress import progress_wanted

    class Terminal:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.setattr(sys, "stderr", Terminal(True))
    assert progress_wanted() is True
    assert progress_wanted(no_progress=True) is False
    monkeypatch.setattr(sys, "stderr", Terminal(False))
    assert progress_wanted() is False
