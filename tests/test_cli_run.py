"""``lumina-hal run`` (scripts and plans) and ``lumina-hal sweep temperature``."""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import lumina_hal
from lumina_hal.cli import main
from lumina_hal.twin.device import MockDevice

DEVICE = "mock://?rows=8&cols=8&seed=1"

GOOD_SCRIPT = """
import numpy as np
from lumina_hal.metrics import snr_db

if __name__ == "__main__":
    raise SystemExit("the contract says this block does not run")

def main(run):
    rows, cols = run.device.info.rows, run.device.info.cols
    W = np.random.default_rng(0).uniform(-1, 1, (rows, cols))
    run.load_weights(W)
    for i in run.progress(range(2), desc="batches"):
        X = np.random.default_rng(i).uniform(-1, 1, (4, cols)).astype(np.float32)
        Y = run.matmul(X, label=f"batch{i}")
        run.log_row("accuracy", batch=i, snr_db=snr_db(Y, X @ W.T))
    return {"batches": 2, "rows": rows}
"""

FAILING_SCRIPT = """
import numpy as np

def main(run):
    run.load_weights(np.eye(8))
    run.matmul(np.ones((1, 8), dtype=np.float32), label="before")
    return 1 / 0
"""


class TrackedTwin(MockDevice):
    """A twin that remembers its instances, to check the CLI closes the device."""

    instances: ClassVar[list[TrackedTwin]] = []

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        TrackedTwin.instances.append(self)


@pytest.fixture
def tracked_uri():
    TrackedTwin.instances.clear()
    lumina_hal.register_driver("trackedtwin", TrackedTwin)
    yield "trackedtwin://?rows=8&cols=8"
    lumina_hal.unregister_driver("trackedtwin")


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_script_run_is_recorded_with_its_source(tmp_path, capsys):
    script = write(tmp_path / "job.py", GOOD_SCRIPT)
    record = tmp_path / "job.h5"
    code, out, err = run_cli(
        capsys, "run", script, "--device", DEVICE, "--record", record, "--json", "--no-progress"
    )
    assert code == 0, err
    assert err == ""  # --no-progress
    report = json.loads(out)
    assert report["result"] == {"batches": 2, "rows": 8}
    assert (report["calls"], report["uri"]) == (2, DEVICE)
    rec = lumina_hal.load_run(record)
    assert rec.status == "complete" and rec.seed == 1
    assert [c.label for c in rec.calls] == ["batch0", "batch1"]
    assert rec.script["source"] == script.read_text()
    assert rec.script["sha256"] == hashlib.sha256(script.read_bytes()).hexdigest()
    assert rec.script["result"] == {"batches": 2, "rows": 8}
    assert rec.results["accuracy"]["batch"].tolist() == [0, 1]
    assert np.all(rec.results["accuracy"]["snr_db"] > 30)


def test_failing_script_is_reported_recorded_and_device_closed(tmp_path, capsys, tracked_uri):
    script = write(tmp_path / "bad.py", FAILING_SCRIPT)
    record = tmp_path / "bad.h5"
    code, _, err = run_cli(capsys, "run", script, "--device", tracked_uri, "--record", record)
    assert code == 2
    assert "Traceback" in err and "1 / 0" in err  # the script's own traceback
    assert "main(run) failed: ZeroDivisionError: division by zero" in err
    assert "marked incomplete" in err
    (device,) = TrackedTwin.instances
    assert not device.is_open
    rec = lumina_hal.load_run(record)
    assert rec.status == "incomplete" and "ZeroDivisionError" in rec.error
    assert [c.label for c in rec.calls] == ["before"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def main(run):\n    return (\n", "line 2: syntax error"),
        ("x = 1\n", "defines no main\\(run\\) function"),
        ("main = 3\n", "defines no main\\(run\\) function"),
        ("import not_a_module_xyz\ndef main(run): pass\n", "top level failed: ModuleNotFound"),
    ],
)
def test_broken_scripts_fail_before_any_device_or_record(
    tmp_path, capsys, tracked_uri, source, message
):
    script = write(tmp_path / "broken.py", source)
    record = tmp_path / "broken.h5"
    code, _, err = run_cli(capsys, "run", script, "--device", tracked_uri, "--record", record)
    assert code == 2
    assert re.search(message, err), err
    assert TrackedTwin.instances == [] and not record.exists()


def test_run_without_record_writes_a_timestamped_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "job.py", GOOD_SCRIPT)
    code, _, err = run_cli(capsys, "run", "job.py", "--device", DEVICE)
    assert code == 0, err
    (record,) = tmp_path.glob("job-*.lhrun")
    assert lumina_hal.load_run(record).complete


def test_cli_refuses_to_overwrite_a_record(tmp_path, capsys):
    script = write(tmp_path / "job.py", GOOD_SCRIPT)
    record = tmp_path / "job.h5"
    record.write_bytes(b"precious")
    code, _, err = run_cli(capsys, "run", script, "--device", DEVICE, "--record", record)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert record.read_bytes() == b"precious"
    args = ("run", script, "--device", DEVICE, "--record", record, "--overwrite")
    assert run_cli(capsys, *args)[0] == 0
    assert lumina_hal.load_run(record).complete


def test_unknown_target_kind(tmp_path, capsys):
    target = write(tmp_path / "job.txt", "hello")
    code, _, err = run_cli(capsys, "run", target)
    assert code == 2 and "expected a Python script (.py) or a TOML plan (.toml)" in err


PLAN = """
uri = "mock://?rows=8&cols=8&preset=typical&seed=4"
record = "from-plan.h5"
temperatures_c = [25.0, 85.0]

[workload]
rows = 6
seed = 3
batch = 16
batches = 2
"""


def test_plan_runs_batches_at_each_temperature(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = write(tmp_path / "plan.toml", PLAN)
    code, out, err = run_cli(capsys, "run", plan, "--json", "--no-progress")
    assert code == 0, err
    report = json.loads(out)
    assert report["workload"] == {"rows": 6, "cols": 8, "batch": 16, "batches": 2, "seed": 3}
    rec = lumina_hal.load_run(tmp_path / "from-plan.h5")
    assert rec.plan["plan"]["workload"]["batch"] == 16
    assert [c.label for c in rec.calls] == [
        "T=25C/batch0",
        "T=25C/batch1",
        "T=85C/batch0",
        "T=85C/batch1",
    ]
    work = lumina_hal.metrics.reference_workload(6, 8, 32, 3)
    np.testing.assert_array_equal(rec.weights[0].matrix, work.weights)
    np.testing.assert_array_equal(rec.calls[3].inputs, work.inputs[16:])
    table = rec.results["plan"]
    assert table["setpoint_c"].tolist() == [25.0, 25.0, 85.0, 85.0]
    assert table["temperature_c"].tolist() == [25.0, 25.0, 85.0, 85.0]
    assert table["batch_index"].tolist() == [0, 1, 0, 1]
    assert [r["snr_db"] for r in report["rows"]] == table["snr_db"].tolist()


def test_plan_without_temperatures_leaves_the_temperature(tmp_path, capsys):
    plan = write(tmp_path / "plan.toml", "[workload]\nbatch = 4\nbatches = 2\n")
    record = tmp_path / "plan.h5"
    code, out, err = run_cli(capsys, "run", plan, "--device", DEVICE, "--record", record)
    assert code == 0, err
    assert "batch" in out and "SNR_dB" in out
    rec = lumina_hal.load_run(record)
    assert [c.label for c in rec.calls] == ["batch0", "batch1"]
    assert np.isnan(rec.results["plan"]["setpoint_c"]).all()
    assert rec.results["plan"]["temperature_c"].tolist() == [45.0, 45.0]  # typical preset


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("temperature = [25]\n", "unknown parameter 'temperature' \\(did you mean 'temper"),
        ("[workload]\nbatch = 0\n", "'batch' \\(from plan\\): 0 is out of range"),
        ("[workload]\nbatch = 'many'\n", "'batch' \\(from plan\\): 'many' is not valid"),
        ("[workload]\nbatchez = 2\n", "unknown parameter 'batchez' \\(did you mean 'batches'"),
        ("temperatures_c = ['hot']\n", "'temperatures_c' holds 'hot'"),
        ("temperatures_c = []\n", "'temperatures_c' must be a non-empty list"),
        ("uri = 5\n", "'uri' must be a non-empty string"),
        ("workload = 3\n", "'workload' must be a table"),
        ("uri = 'mock://\n", "is not valid TOML"),
        ("[workload]\nrows = 99\n", "\\[workload\\] 99x8 does not fit the 8x8 array"),
    ],
)
def test_plan_errors_name_the_problem(tmp_path, capsys, text, message):
    plan = write(tmp_path / "plan.toml", text)
    record = tmp_path / "plan.h5"
    code, _, err = run_cli(capsys, "run", plan, "--device", DEVICE, "--record", record)
    assert code == 2
    assert re.search(message, err), err
    assert not record.exists()


def test_sweep_command_plots_and_records(tmp_path, capsys):
    png, record = tmp_path / "snr.png", tmp_path / "sweep.h5"
    args = ["sweep", "temperature", "--device", "mock://?rows=8&cols=8&preset=typical"]
    args += ["--start", 20, "--stop", 80, "--step", 30, "--batch", 16, "--png", png]
    code, out, err = run_cli(capsys, *args, "--record", record, "--json", "--no-progress")
    assert code == 0, err
    report = json.loads(out)
    assert report["points"]["setpoints_c"] == [20.0, 50.0, 80.0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    rec = lumina_hal.load_run(record)
    assert rec.results["temperature_sweep"]["snr_db"].tolist() == report["points"]["snr_db"]
    assert rec.meta == {"command": "sweep temperature"}
    code, out, _ = run_cli(capsys, *args)  # table output, no record
    assert code == 0 and "SNR_dB" in out and "80" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--step", "0", "--png", "{tmp}/a.png"], "must not be 0"),
        (["--png", "{tmp}/missing/a.png"], "does not exist"),
        (["--png", "{tmp}/a.png", "--device", "mock://?rows=4&cols=4&temperature_c=200"], "200"),
    ],
)
def test_sweep_errors_exit_2_before_recording(tmp_path, capsys, extra, message):
    record = tmp_path / "sweep.h5"
    argv = ["sweep", "temperature", "--record", record]
    argv += [e.replace("{tmp}", str(tmp_path)) for e in extra]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and message in err
    assert not record.exists()
