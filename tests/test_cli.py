"""The lumina-hal command line."""

from __future__ import annotations

import json
import subprocess
import sys

from lumina_hal.cli import main


def test_demo_json_reports_error_and_snr_per_temperature(capsys):
    assert main(["demo", "--uri", "mock://?rows=16&cols=16", "--batch", "8", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["temperature_c"] for r in report["runs"]] == [25.0, 45.0, 85.0]
    for run in report["runs"]:
        assert 20.0 < run["snr_db"] < 80.0
        assert run["max_abs_error"] > 0
    assert report["device"]["rows"] == 16


def test_demo_table_is_human_readable(capsys):
    assert main(["demo", "--batch", "4", "--temperatures", "30"]) == 0
    out = capsys.readouterr().out
    assert "SNR_dB" in out and "30.0" in out and "mock://" in out


def test_info_and_drivers(capsys):
    assert main(["info", "mock://?rows=4&cols=2", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["info"]
    assert (info["rows"], info["cols"]) == (4, 2)
    assert main(["drivers", "--json"]) == 0
    drivers = json.loads(capsys.readouterr().out)
    names = [p["name"] for p in drivers["mock"]["params"]]
    assert {"rows", "cols", "seed", "preset", "temperature_c"} <= set(names)


def test_errors_exit_2_with_a_message(capsys):
    assert main(["info", "mock://?rowz=3"]) == 2
    assert "unknown parameter 'rowz'" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "lumina_hal", "info", "mock://?rows=3&cols=3", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["info"]["rows"] == 3


def test_bench_command_shows_every_part(capsys, lumina_sim_visa, monkeypatch):
    monkeypatch.delenv("LUMINA_BENCH", raising=False)
    assert main(["bench", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["laser"]["identity"]["model"] == "TSL-570"
    assert report["tec"]["limits"]["safe_setpoint_c"] == 25.0
    assert report["power_meter"]["settings"]["sensor"]["name"] == "S155C"
    assert main(["bench"]) == 0
    assert "[laser] visa://" in capsys.readouterr().out
    assert main(["bench", "/nonexistent/bench.toml"]) == 2
    assert "does not exist" in capsys.readouterr().err
