"""Bench files, soft limits from them, and the safe states on every way out (docs §5–6)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lumina_hal
from lumina_hal.bench import load_bench_config, parse_bench_config
from lumina_hal.errors import ConfigurationError, SafetyLimitError

LASER = "visa://TCPIP0::127.0.0.1::5000::SOCKET?model=santec-tsl570&backend=@sim"
METER = "visa://USB0::0x1313::0x8078::P0009368::INSTR?model=thorlabs-pm100d&backend=@sim"
TEC = "visa://USB0::0x1313::0x8048::M00324477::INSTR?model=thorlabs-ted4015&backend=@sim"


def _state() -> tuple[bool, float, bool]:
    """(laser output, TEC setpoint °C, TEC output) as the simulated instruments hold them."""
    with lumina_hal.open_instrument(LASER) as laser, lumina_hal.open_instrument(TEC) as tec:
        laser.safe_on_close = tec.safe_on_close = False
        return laser.output, tec.setpoint_c, tec.output


def _heat_up(bench: lumina_hal.Bench) -> None:
    bench.laser.power_dbm = 5.0
    bench.laser.on()
    bench.tec.on()
    bench.tec.setpoint_c = 60.0
    assert _state() == (True, 60.0, True)


def test_simulated_bench_opens_every_part_with_its_limits(lumina_sim_visa):
    with lumina_hal.open_bench() as bench:
        assert bench.chip is not None and bench.chip.info.rows == 32
        assert isinstance(bench.laser, lumina_hal.Laser)
        assert isinstance(bench.power_meter, lumina_hal.PowerMeter)
        assert isinstance(bench.tec, lumina_hal.TemperatureController)
        assert bench.laser.limits.max_power_dbm == 10.0
        assert bench.tec.limits.safe_setpoint_c == 25.0
        with pytest.raises(SafetyLimitError, match=r"bench.toml \[laser\]"):
            bench.laser.power_dbm = 11.0
        with pytest.raises(SafetyLimitError, match="above the soft limit 85"):
            bench.tec.setpoint_c = 90.0
        snap = bench.snapshot()
        assert set(snap) == {"bench_file", "chip", "laser", "tec", "power_meter"}
        assert snap["laser"]["limits"]["max_power_dbm"] == 10.0


def test_normal_exit_makes_the_bench_safe(lumina_sim_visa):
    with lumina_hal.open_bench() as bench:
        _heat_up(bench)
    laser_on, setpoint, tec_on = _state()
    assert not laser_on
    assert setpoint == pytest.approx(25.0) and tec_on  # safe_state = "setpoint" holds 25 °C


@pytest.mark.parametrize("error", [RuntimeError("script failed"), KeyboardInterrupt()])
def test_exception_or_ctrl_c_inside_with_makes_the_bench_safe(lumina_sim_visa, error):
    with pytest.raises(type(error)), lumina_hal.open_bench() as bench:
        _heat_up(bench)
        raise error
    assert _state() == (False, 25.0, True)


def test_tec_safe_state_off(lumina_sim_visa, tmp_path):
    text = (lumina_hal.bench.load_bench_config().path).read_text()
    text = text.replace('safe_state = "setpoint"', 'safe_state = "off"')
    bench_file = tmp_path / "bench.toml"
    bench_file.write_text(text)
    with lumina_hal.open_bench(bench_file) as bench:
        _heat_up(bench)
    assert _state() == (False, 60.0, False)


def test_failed_open_leaves_already_opened_parts_safe(lumina_sim_visa, tmp_path):
    with lumina_hal.open_instrument(LASER) as laser:
        laser.safe_on_close = False
        laser.on()
    bench_file = tmp_path / "bench.toml"
    bench_file.write_text(f'[laser]\nuri = "{LASER}"\n[tec]\nuri = "{METER}"\n')
    with pytest.raises(ConfigurationError, match=r"\[tec\].*is a power_meter, not a tec"):
        lumina_hal.open_bench(bench_file)
    assert _state()[0] is False


def test_relative_sim_definitions_resolve_against_the_bench_file(lumina_sim_visa, tmp_path):
    from lumina_hal.drivers.instruments.visa_backends import packaged_sim_definitions

    shutil.copy(packaged_sim_definitions(), tmp_path / "mine.yaml")
    uri = METER.replace("backend=@sim", "backend=mine.yaml@sim")
    (tmp_path / "bench.toml").write_text(f'[power_meter]\nuri = "{uri}"\n')
    with lumina_hal.open_bench(tmp_path / "bench.toml") as bench:
        assert str(tmp_path / "mine.yaml") in bench.power_meter.uri
        assert bench.power_meter.read_power_w() > 0


def test_environment_overrides_uris(lumina_sim_visa):
    config = load_bench_config(environ={"LUMINA_CHIP": "mock://?rows=4&cols=4"})
    assert config.uris["chip"] == "mock://?rows=4&cols=4"
    config = load_bench_config(environ={"LUMINA_DEVICE": "mock://?rows=8&cols=8"})
    assert config.uris["chip"] == "mock://?rows=8&cols=8"
    config = load_bench_config(environ={"LUMINA_TEC": TEC + "&timeout=5"})
    assert config.uris["tec"].endswith("timeout=5")


def test_bench_path_from_environment(tmp_path):
    (tmp_path / "b.toml").write_text('[chip]\nuri = "mock://?rows=4&cols=4"\n')
    config = load_bench_config(environ={"LUMINA_BENCH": str(tmp_path / "b.toml")})
    assert config.uris == {"chip": "mock://?rows=4&cols=4"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"lazer": {"uri": "x"}}, "unknown section \\[lazer\\] \\(did you mean 'laser'\\?\\)"),
        ({"tec": {"uri": "x", "max_stepc": 1}}, "'max_stepc'.*did you mean 'max_step_c'"),
        ({"tec": {"max_c": 50}}, "'uri' is missing"),
        ({"tec": {"uri": "x", "min_c": 50, "max_c": 20}}, "minimum 50 is above maximum 20"),
        ({"tec": {"uri": "x", "safe_state": "setpoint"}}, "needs safe_setpoint_c"),
        (
            {"tec": {"uri": "x", "max_c": 40, "safe_state": "setpoint", "safe_setpoint_c": 45}},
            "safe_setpoint_c 45 °C is outside the limits",
        ),
        ({"tec": {"uri": "x", "safe_state": "cold"}}, "'off' or 'setpoint'"),
        ({"tec": {"uri": "x", "max_step_c": 0}}, "max_step_c must be > 0"),
        ({"laser": {"uri": "x", "safe_state": "on"}}, "can only be 'off'"),
        ({"laser": {"uri": "x", "max_power_dbm": "10"}}, "must be a number"),
        ({"chip": {"uri": 5}}, "must be a string"),
        ({}, "names no chip and no instrument"),
    ],
)
def test_bad_bench_files_name_the_problem(data, message):
    with pytest.raises(ConfigurationError, match=message):
        parse_bench_config(data, Path("b.toml"), environ={})


def test_unreadable_bench_files(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_bench_config(tmp_path / "none.toml", environ={})
    (tmp_path / "bad.toml").write_text("[laser\nuri=")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_bench_config(tmp_path / "bad.toml", environ={})


_SCRIPT = textwrap.dedent(
    """
    import logging, sys, time
    import lumina_hal
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    with lumina_hal.open_bench() as bench:
        bench.laser.on()
        bench.tec.on()
        bench.tec.setpoint_c = 60.0
        print("ready", flush=True)
        time.sleep(60)
    """
)


@pytest.mark.parametrize(
    ("signum", "returncode"),
    [(signal.SIGINT, -signal.SIGINT), (signal.SIGTERM, 128 + signal.SIGTERM)],
)
def test_signals_make_a_running_script_leave_the_bench_safe(signum, returncode):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUMINA_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == returncode, stderr
    assert "laser output off (safe state)" in stderr
    assert "TEC at safe setpoint 25.00" in stderr
    assert stderr.index("laser output off") < stderr.index("TEC at safe setpoint")
