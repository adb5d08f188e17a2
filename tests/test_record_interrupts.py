"""Ctrl-C and SIGKILL during recorded runs (docs/records.md §3): nothing flushed is lost.

The subprocess trials send the signal at random moments (seeded, bounded) to the API,
``lumina-hal run`` (script and plan) and ``lumina-hal sweep temperature``.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import lumina_hal
from lumina_hal import load_run, record_run

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

TRIALS = 20
EXIT_WAIT_S = 3.0  # "within a second or two", with margin for a loaded CI machine

API_SCRIPT = """
import sys, numpy as np, lumina_hal
with lumina_hal.open_device("mock://?rows=8&cols=8&seed=1") as chip:
    with lumina_hal.record_run(sys.argv[1], chip, meta={"trial": True}) as run:
        run.load_weights(np.eye(8))
        for i in range(1_000_000):
            run.matmul(np.full((2, 8), (i % 1000) / 1000, dtype=np.float32), label=f"c{i}")
            run.log_row("t", i=i)
            print(i, flush=True)  # printed only once the call is on disk
"""

RUN_SCRIPT = """
import numpy as np

def main(run):
    run.load_weights(np.eye(8))
    for i in range(1_000_000):
        run.matmul(np.full((2, 8), (i % 1000) / 1000, dtype=np.float32), label=f"c{i}")
"""

PLAN = """
uri = "mock://?rows=4&cols=4&seed=1"
[workload]
batch = 1
batches = 200000
"""


def lumina_hal_exe() -> str:
    exe = Path(sys.executable).with_name("lumina-hal")
    return str(exe) if exe.exists() else shutil.which("lumina-hal") or "lumina-hal"


def command(mode: str, tmp: Path, record: Path) -> list[str]:
    if mode == "api":
        (tmp / "api.py").write_text(textwrap.dedent(API_SCRIPT))
        return [sys.executable, str(tmp / "api.py"), str(record)]
    cli = [lumina_hal_exe()]
    if mode == "script":
        (tmp / "job.py").write_text(textwrap.dedent(RUN_SCRIPT))
        return [*cli, "run", str(tmp / "job.py"), "--device", "mock://?rows=8&cols=8",
                "--record", str(record), "--no-progress"]  # fmt: skip
    if mode == "plan":
        (tmp / "plan.toml").write_text(textwrap.dedent(PLAN))
        return [*cli, "run", str(tmp / "plan.toml"), "--record", str(record), "--no-progress"]
    return [*cli, "sweep", "temperature", "--device", "mock://?rows=4&cols=4", "--start", "20",
            "--stop", "85", "--step", "0.01", "--batch", "256", "--png", str(tmp / "s.png"),
            "--record", str(record), "--no-progress"]  # fmt: skip


def check_calls(rec, mode: str) -> None:
    """Calls are numbered 0..n-1 with nothing altered (the API trial's inputs are known)."""
    assert [c.index for c in rec.calls] == list(range(len(rec.calls)))
    if mode in ("api", "script"):
        for call in rec.calls:
            expected = np.full((2, 8), (call.index % 1000) / 1000, dtype=np.float32)
            np.testing.assert_array_equal(call.inputs, expected)
            assert call.outputs.shape == (2, 8) and np.isfinite(call.outputs).all()
            assert call.label == f"c{call.index}"


def signal_trial(mode: str, tmp: Path, sig: signal.Signals, delay_s: float):
    record = tmp / "run.lhrun"
    proc = subprocess.Popen(
        command(mode, tmp, record), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp
    )
    time.sleep(delay_s)
    sent = time.monotonic()
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{mode}: still running 30 s after {sig.name} at {delay_s:.2f} s: {err!r}")
    elapsed = time.monotonic() - sent
    printed = len(out.split())
    return proc.returncode, elapsed, printed, err.decode(errors="replace"), record


@pytest.mark.slow
def test_first_ctrl_c_always_stops_a_recorded_run_cleanly(tmp_path):
    rng = random.Random(20261201)
    modes = ("api", "script", "plan", "sweep")
    stopped_with_calls = 0
    for trial in range(TRIALS):
        mode = modes[trial % len(modes)]
        tmp = tmp_path / f"t{trial}"
        tmp.mkdir()
        delay_s = rng.uniform(0.1, 2.0)
        code, elapsed, printed, err, record = signal_trial(mode, tmp, signal.SIGINT, delay_s)
        where = f"trial {trial} ({mode}, SIGINT at {delay_s:.2f} s)"
        assert code in (130, -signal.SIGINT), f"{where}: exit {code}: {err}"
        assert elapsed < EXIT_WAIT_S, f"{where}: took {elapsed:.2f} s to stop: {err}"
        assert not list(tmp.glob(".*.tmp")) or not record.exists(), where
        if not record.exists():
            continue  # interrupted before the record was created
        rec = load_run(record)  # never damaged: no recover needed
        assert rec.damage == (), f"{where}: {rec.damage}"
        if mode == "sweep" and rec.status == "complete":  # Ctrl-C landed in the plotting
            assert len(rec.calls) == 6501, where
            continue
        assert rec.status == "incomplete", f"{where}: {rec.status}"
        assert rec.error.startswith("KeyboardInterrupt"), where
        assert len(rec.calls) >= printed, f"{where}: {printed} calls returned, on disk fewer"
        check_calls(rec, mode)
        stopped_with_calls += bool(rec.calls)
    assert stopped_with_calls >= TRIALS // 2  # the trials really interrupted running loops


@pytest.mark.slow
def test_sigkill_at_any_moment_leaves_every_flushed_call_readable(tmp_path):
    rng = random.Random(42)
    killed_with_calls = 0
    for trial in range(TRIALS):
        tmp = tmp_path / f"k{trial}"
        tmp.mkdir()
        delay_s = rng.uniform(0.05, 2.0)
        code, _elapsed, printed, err, record = signal_trial("api", tmp, signal.SIGKILL, delay_s)
        where = f"trial {trial} (SIGKILL at {delay_s:.2f} s)"
        assert code == -signal.SIGKILL, f"{where}: exit {code}: {err}"
        if not record.exists():
            assert printed == 0, where
            continue
        rec = load_run(record)  # a torn tail is tolerated, anything else would raise
        assert all(d.startswith("torn tail") for d in rec.damage), f"{where}: {rec.damage}"
        assert rec.status == "running" and rec.meta == {"trial": True}, where
        assert len(rec.calls) >= printed, f"{where}: {printed} calls returned, on disk fewer"
        assert len(rec.results.get("t", {}).get("i", [])) >= printed - 1, where
        check_calls(rec, "api")
        killed_with_calls += bool(rec.calls)
    assert killed_with_calls >= TRIALS // 2


class Swallower:
    """Raises the Ctrl-C inside a finalizer, where Python discards it (as h5py's did)."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)


def test_ctrl_c_swallowed_in_a_finalizer_still_ends_the_run(tmp_path, monkeypatch):
    ignored: list[type] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: ignored.append(u.exc_type))
    obj = Swallower()
    del obj  # without a run, Python reports "Exception ignored" and carries on
    assert ignored == [KeyboardInterrupt]
    path = tmp_path / "run.lhrun"
    with (
        lumina_hal.open_device("mock://?rows=4&cols=4") as chip,
        pytest.raises(KeyboardInterrupt),
        record_run(path, chip) as run,
    ):
        run.load_weights(np.eye(4))
        run.matmul(np.ones(4, dtype=np.float32), label="before")
        obj = Swallower()
        del obj  # discarded here...
        run.matmul(np.ones(4, dtype=np.float32), label="never")  # ...raised here
    rec = load_run(path)
    assert [c.label for c in rec.calls] == ["before"]
    assert rec.status == "incomplete" and rec.error.startswith("KeyboardInterrupt")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handed back


def test_ctrl_c_during_a_frame_write_is_deferred_until_the_frame_is_whole(tmp_path, monkeypatch):
    from lumina_hal.runs import record_writer

    real_write = record_writer._write_all

    def write_then_interrupt(fd: int, parts: list) -> None:
        monkeypatch.setattr(record_writer, "_write_all", real_write)  # once
        data = b"".join(parts)
        real_write(fd, [data[: len(data) // 2]])
        signal.raise_signal(signal.SIGINT)  # lands mid-frame
        real_write(fd, [data[len(data) // 2 :]])

    path = tmp_path / "run.lhrun"
    with (
        lumina_hal.open_device("mock://?rows=4&cols=4") as chip,
        pytest.raises(KeyboardInterrupt),
        record_run(path, chip) as run,
    ):
        run.load_weights(np.eye(4))
        monkeypatch.setattr(record_writer, "_write_all", write_then_interrupt)
        run.matmul(np.ones(4, dtype=np.float32), label="whole")
        pytest.fail("the Ctrl-C must end the run at the end of the frame")
    rec = load_run(path)
    assert rec.damage == () and [c.label for c in rec.calls] == ["whole"]
    assert rec.status == "incomplete"


def test_a_failed_write_is_cut_back_to_the_last_whole_frame(tmp_path, monkeypatch):
    from lumina_hal.runs import record_writer

    real_write = record_writer._write_all

    def half_then_disk_full(fd: int, parts: list) -> None:
        data = b"".join(parts)
        real_write(fd, [data[: len(data) // 2]])
        raise OSError(28, "No space left on device")

    path = tmp_path / "run.lhrun"
    with lumina_hal.open_device("mock://?rows=4&cols=4") as chip, record_run(path, chip) as run:
        run.load_weights(np.eye(4))
        run.matmul(np.ones(4, dtype=np.float32), label="kept")
        monkeypatch.setattr(record_writer, "_write_all", half_then_disk_full)
        with pytest.raises(OSError, match="No space"):
            run.matmul(np.ones(4, dtype=np.float32), label="lost")
        monkeypatch.setattr(record_writer, "_write_all", real_write)
        run.matmul(np.ones(4, dtype=np.float32), label="after")
    rec = load_run(path)
    assert rec.damage == () and rec.status == "complete"
    assert [c.label for c in rec.calls] == ["kept", "after"]
    assert [c.index for c in rec.calls] == [0, 1]


def test_ctrl_c_while_the_file_is_created_ends_the_run_at_once(tmp_path, monkeypatch):
    from lumina_hal.runs import record_writer

    real_publish = record_writer._publish

    def publish_interrupted(tmp: Path, target: Path, overwrite: bool) -> None:
        signal.raise_signal(signal.SIGINT)  # between writing the file and naming it
        real_publish(tmp, target, overwrite)

    monkeypatch.setattr(record_writer, "_publish", publish_interrupted)
    path = tmp_path / "run.lhrun"
    with (
        lumina_hal.open_device("mock://?rows=4&cols=4") as chip,
        pytest.raises(KeyboardInterrupt),
        record_run(path, chip),
    ):
        pytest.fail("the block must not run after a Ctrl-C during creation")
    rec = load_run(path)
    assert rec.status == "incomplete" and rec.error.startswith("KeyboardInterrupt")
    assert rec.damage == () and not list(tmp_path.glob(".*.tmp"))


def test_a_host_applications_own_sigint_handler_is_left_alone(tmp_path):
    seen: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        with (
            lumina_hal.open_device("mock://?rows=4&cols=4") as chip,
            record_run(tmp_path / "run.lhrun", chip) as run,
        ):
            run.load_weights(np.eye(4))
            signal.raise_signal(signal.SIGINT)
            run.matmul(np.ones(4, dtype=np.float32))
        assert seen == [signal.SIGINT] and load_run(tmp_path / "run.lhrun").complete
    finally:
        signal.signal(signal.SIGINT, previous)
