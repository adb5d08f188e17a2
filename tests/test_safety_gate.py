"""The safety gate pinned case by case (docs/safety.md): bypasses, bad limits, huge ramps,
open_instrument(limits=...), limits read-only after open.

"Nothing was sent" is proved with recorded exchanges that end right after the instrument's
open: any further write fails the test with ExpectedProtocolError.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction

import pytest

import lumina_hal
from lumina_hal.bench import load_bench_config, parse_bench_config
from lumina_hal.bench.limits import MAX_RAMP_POINTS, LaserLimits, NoLimits, TecLimits
from lumina_hal.bench.safety import ramp_points
from lumina_hal.drivers.instruments.keysight_8164b import Keysight8164B
from lumina_hal.drivers.instruments.santec_tsl570 import SantecTsl570
from lumina_hal.drivers.instruments.scpi import ScpiInstrument, ScpiProperty, control
from lumina_hal.drivers.instruments.thorlabs_pm100d import ThorlabsPm100d
from lumina_hal.drivers.instruments.thorlabs_ted4015 import ThorlabsTed4015
from lumina_hal.drivers.instruments.visa import MODELS
from lumina_hal.errors import ConfigurationError, InputError, LuminaError, SafetyLimitError
from lumina_hal.testing.expected_protocol import ExpectedProtocolError, expected_protocol

OK = '+0,"No error"'
SANTEC_OK = '0,"No error"'


def checked(command: str, ok: str = OK) -> list[tuple[str, str | None]]:
    query = ":SYST:ERR?" if ok == SANTEC_OK else "SYST:ERR?"
    return [(command, None), (query, ok)]


SANTEC_OPEN = [
    ("*IDN?", "SANTEC,TSL-570,21070001,0026.0026.0011"),
    (":SYST:ERR?", SANTEC_OK),
    *checked(":SYST:COMM:COD 1", SANTEC_OK),
    *checked(":POW:UNIT 0", SANTEC_OK),
    (":WAV? MIN", "+1.48000000E-006"),
    (":WAV? MAX", "+1.64000000E-006"),
    (":POW? MIN", "-1.50000000E+001"),
    (":POW? MAX", "+1.30000000E+001"),
]
KEYSIGHT_OPEN = [
    ("*IDN?", "Keysight Technologies,8164B,DE41B00123,V5.25(72637)"),
    ("SYST:ERR?", OK),
    *checked("SOUR0:POW:UNIT 0"),
    ("SOUR0:WAV? MIN", "+1.46000000E-006"),
    ("SOUR0:WAV? MAX", "+1.64000000E-006"),
    ("SOUR0:POW? MIN", "-1.00000000E+001"),
    ("SOUR0:POW? MAX", "+1.00000000E+001"),
]
TED_OPEN = [
    ("*IDN?", "THORLABS,TED4015,M00324477,1.2.3/2.0.1/1.0.0"),
    ("SYST:ERR?", OK),
    *checked("UNIT:TEMP CEL"),
    ("SOUR:TEMP? MIN", "-4.500000E+01"),
    ("SOUR:TEMP? MAX", "1.450000E+02"),
    ("SOUR:CURR:LIM? MIN", "0.000000E+00"),
    ("SOUR:CURR:LIM? MAX", "1.500000E+01"),
]
LASER_LIMITS = LaserLimits(max_power_dbm=10.0, min_wavelength_nm=1500, max_wavelength_nm=1600)
TEC_LIMITS = TecLimits(min_c=15, max_c=60, max_step_c=5.0)
SIM_LASER = "visa://TCPIP0::127.0.0.1::5000::SOCKET?model=santec-tsl570&backend=@sim"
SIM_TEC = "visa://USB0::0x1313::0x8048::M00324477::INSTR?model=thorlabs-ted4015&backend=@sim"

# --- the old public SCPI attributes are gone -------------------------------------------------

OLD_PUBLIC = {
    SantecTsl570: ("wavelength_m", "power_setpoint_dbm", "output_enabled", "power_monitor_dbm"),
    Keysight8164B: ("wavelength_m", "wavelength_setpoint_nm", "power_setpoint_dbm",
                    "output_enabled"),
    ThorlabsTed4015: ("setpoint", "measured_temperature_c", "output_enabled"),
    ThorlabsPm100d: ("correction_wavelength_nm", "auto_range_enabled", "range_upper_w",
                     "average_count", "power_reading_w", "sensor_idn"),
}  # fmt: skip


@pytest.mark.parametrize("driver", list(OLD_PUBLIC), ids=lambda d: d.__name__)
def test_old_public_scpi_attributes_no_longer_exist(driver):
    for name in (*OLD_PUBLIC[driver], "write", "query", "query_parsed"):
        assert not hasattr(driver, name), f"{driver.__name__}.{name} is still public"


def test_every_installed_model_keeps_its_settable_scpi_attributes_private():
    for name in MODELS.names():
        driver = MODELS.get(name)
        settable = [
            attr for klass in driver.__mro__ for attr, value in vars(klass).items()
            if isinstance(value, ScpiProperty) and value.set_command is not None
        ]  # fmt: skip
        assert settable, f"{name}: no settings found (the walk is broken)"
        public = [attr for attr in settable if not attr.startswith("_")]
        assert not public, f"{name}: public settable SCPI attributes {public}"


def test_a_public_settable_attribute_is_refused_when_the_driver_is_defined():
    # Python 3.11 wraps an error from __set_name__ in a RuntimeError; 3.12+ raises it as is.
    with pytest.raises((ConfigurationError, RuntimeError)) as info:

        class Leaky(ScpiInstrument):
            power_dbm = control(":POW?", ":POW {:.2f}", "a public setting")
    error = info.value.__cause__ or info.value
    assert isinstance(error, ConfigurationError)
    assert "Leaky.power_dbm: a settable SCPI attribute must be private" in str(error)


# --- every remaining path above the limit: SafetyLimitError, nothing sent ---------------------

LASER_PATHS = {
    "role power_dbm": lambda laser: setattr(laser, "power_dbm", 10.5),
    "role power_w": lambda laser: setattr(laser, "power_w", 0.0125),  # 10.97 dBm
    "role wavelength_nm": lambda laser: setattr(laser, "wavelength_nm", 1600.5),
    "private _power_dbm": lambda laser: setattr(laser, "_power_dbm", 12.0),
    "private _wavelength_nm": lambda laser: setattr(laser, "_wavelength_nm", 1499.0),
    "hook _set_power_dbm": lambda laser: laser._set_power_dbm(12.0),
    "hook _set_wavelength_nm": lambda laser: laser._set_wavelength_nm(1610.0),
}


@pytest.mark.parametrize("path", list(LASER_PATHS))
def test_santec_every_path_above_the_limit_sends_nothing(path):
    with (
        expected_protocol(SantecTsl570, SANTEC_OPEN, limits=LASER_LIMITS) as laser,
        pytest.raises(SafetyLimitError, match=r"soft limit .* nothing was sent"),
    ):
        LASER_PATHS[path](laser)


@pytest.mark.parametrize(
    "path",
    [
        lambda laser: setattr(laser, "_wavelength_setpoint_nm", 1650.0),
        lambda laser: setattr(laser, "_power_dbm", 10.5),
        lambda laser: setattr(laser, "wavelength_nm", 1499.0),
    ],
    ids=["private _wavelength_setpoint_nm", "private _power_dbm", "role wavelength_nm"],
)
def test_keysight_every_path_above_the_limit_sends_nothing(path):
    with (
        expected_protocol(Keysight8164B, KEYSIGHT_OPEN, limits=LASER_LIMITS) as laser,
        pytest.raises(SafetyLimitError),
    ):
        path(laser)


@pytest.mark.parametrize(
    "path",
    [
        lambda laser: laser.on(),
        lambda laser: setattr(laser, "output", True),
        lambda laser: setattr(laser, "_output", True),
        lambda laser: laser._set_output(True),
    ],
    ids=["on()", "output", "private _output", "hook _set_output"],
)
def test_output_on_is_refused_while_the_setpoint_is_above_the_limit(path):
    # The only exchange after the open is the interlock's read of the setpoint.
    exchanges = [*SANTEC_OPEN, (":POW?", "+1.20000000E+001")]
    with (
        expected_protocol(SantecTsl570, exchanges, limits=LaserLimits(max_power_dbm=10.0)) as laser,
        pytest.raises(SafetyLimitError, match="cannot switch output on"),
    ):
        path(laser)


def test_rounding_for_the_wire_cannot_carry_a_value_past_the_limit():
    # 9.996 dBm is inside a 9.996 dBm limit, but the TSL-570 takes two decimals: ":POW 10.00".
    limits = LaserLimits(max_power_dbm=9.996, max_wavelength_nm=1550.000001)
    with (
        expected_protocol(SantecTsl570, SANTEC_OPEN, limits=limits) as laser,
        pytest.raises(SafetyLimitError, match=r"power_dbm as sent .* = 10 dBm is above"),
    ):
        laser.power_dbm = 9.996
    exchanges = [*SANTEC_OPEN, *checked(":POW 9.99", SANTEC_OK)]
    with expected_protocol(SantecTsl570, exchanges, limits=limits) as laser:
        laser.power_dbm = 9.994  # rounds down: sent


@pytest.mark.parametrize(
    "path",
    [
        lambda laser: laser._write(":POW 12.00"),
        lambda laser: laser._write(":POW:STAT 1"),
        lambda laser: laser._query(":POW 12.00"),
        lambda laser: laser._query(":POW?;:POW 12"),
        lambda laser: laser._query_parsed(":POW:STAT 1;:POW:STAT?"),
    ],
    ids=["_write power", "_write output", "_query set", "_query compound", "_query_parsed"],
)
def test_even_the_raw_private_io_cannot_carry_a_setting(path):
    with (
        expected_protocol(SantecTsl570, SANTEC_OPEN, limits=LASER_LIMITS) as laser,
        pytest.raises(SafetyLimitError, match="nothing was sent"),
    ):
        path(laser)


def test_output_off_is_never_refused():
    exchanges = [*SANTEC_OPEN, *checked(":POW:STAT 0", SANTEC_OK)]
    with expected_protocol(SantecTsl570, exchanges, limits=LASER_LIMITS) as laser:
        laser._output = False


TEC_PATHS = {
    "role setpoint_c": lambda tec: setattr(tec, "setpoint_c", 61.0),
    "ramp_to": lambda tec: tec.ramp_to(14.0),
    "private _setpoint_c": lambda tec: setattr(tec, "_setpoint_c", 90.0),
    "hook _set_setpoint_c": lambda tec: tec._set_setpoint_c(100.0),
}


@pytest.mark.parametrize("path", list(TEC_PATHS))
def test_ted_every_path_outside_the_limits_sends_nothing(path):
    with (
        expected_protocol(ThorlabsTed4015, TED_OPEN, limits=TEC_LIMITS) as tec,
        pytest.raises(SafetyLimitError, match="soft limit"),
    ):
        TEC_PATHS[path](tec)


def test_tec_output_on_is_refused_while_the_setpoint_is_outside_the_limits():
    exchanges = [*TED_OPEN, ("SOUR:TEMP?", "1.000000E+02")]
    with (
        expected_protocol(ThorlabsTed4015, exchanges, limits=TEC_LIMITS) as tec,
        pytest.raises(SafetyLimitError, match="setpoint_c = 100"),
    ):
        tec.on()


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "5", b"5", None, True, [5.0],
                                   Fraction(10**400), object()])  # fmt: skip
def test_bad_values_are_input_errors_and_send_nothing(value):
    with expected_protocol(SantecTsl570, SANTEC_OPEN, limits=LASER_LIMITS) as laser:
        for name in ("power_dbm", "wavelength_nm", "_power_dbm", "_wavelength_nm"):
            with pytest.raises(InputError):
                setattr(laser, name, value)


def test_the_expected_protocol_helper_would_catch_a_write():
    """The pinning above can fail: a write the recording does not hold is an error."""
    with (
        pytest.raises(ExpectedProtocolError, match="after the end of the recorded exchange"),
        expected_protocol(SantecTsl570, SANTEC_OPEN, limits=LASER_LIMITS) as laser,
    ):
        laser.power_dbm = 5.0


# --- limits: NaN, inf, strings, order; huge ramps ---------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("max_power_dbm = nan", r"\[laser\]: max_power_dbm must be finite, got nan"),
        ("max_power_dbm = inf", r"\[laser\]: max_power_dbm must be finite, got inf"),
        ("max_power_dbm = -inf", "must be finite"),
        ('max_power_dbm = "10"', r"max_power_dbm must be a number, got '10'"),
        ("max_power_dbm = true", "max_power_dbm must be a number, got True"),
        ("max_power_dbm = [10]", "must be a number"),
        ("min_wavelength_nm = 1600\nmax_wavelength_nm = 1500", "minimum 1600 is above maximum"),
    ],
)
def test_bench_file_laser_limits_are_validated(tmp_path, line, message):
    bench = tmp_path / "bench.toml"
    bench.write_text(f'[laser]\nuri = "{SIM_LASER}"\n{line}\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message) as info:
        load_bench_config(bench, environ={})
    assert str(bench) in str(info.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "min_c = 15\nmax_c = 85\nmax_step_c = 1e-300",
            r"max_step_c = 1e-300 °C would ramp 15\.\.85 °C in 7e\+301 steps",
        ),
        ("min_c = 0\nmax_c = 100\nmax_step_c = 0.005", "more than 10000"),
        ("max_step_c = 0", "max_step_c must be > 0"),
        ("max_step_c = -1.0", "max_step_c must be > 0"),
        ("max_step_c = nan", "max_step_c must be finite"),
        ("step_interval_s = -0.5", r"step_interval_s must be in \[0, 3600\] s, got -0.5"),
        ("max_current_a = -1.0", r"max_current_a must be >= 0 A, got -1.0"),
        ('max_current_a = "2"', "max_current_a must be a number"),
        ("step_interval_s = inf", "step_interval_s must be finite"),
        ('step_interval_s = "1"', "step_interval_s must be a number"),
        ("min_c = 90\nmax_c = 10", "temperature minimum 90 is above maximum 10"),
        ('safe_state = "setpoint"', "needs safe_setpoint_c"),
        ('safe_state = "setpoint"\nsafe_setpoint_c = nan', "safe_setpoint_c must be finite"),
        ('safe_state = "warm"', "safe_state must be 'off' or 'setpoint'"),
        ("min_c = false", "min_c must be a number, got False"),
    ],
)
def test_bench_file_tec_limits_are_validated(tmp_path, body, message):
    bench = tmp_path / "bench.toml"
    bench.write_text(f'[tec]\nuri = "{SIM_TEC}"\n{body}\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message) as info:
        load_bench_config(bench, environ={})
    assert f"{bench} [tec]" in str(info.value)


def test_a_ramp_of_1e300_steps_is_refused_up_front_and_sends_nothing():
    # No min/max: the bench file cannot count the steps, so the ramp itself must.
    exchanges = [*TED_OPEN, ("SOUR:TEMP?", "2.500000E+01")]
    start = time.perf_counter()
    with (
        expected_protocol(ThorlabsTed4015, exchanges, limits=TecLimits(max_step_c=1e-300)) as tec,
        pytest.raises(SafetyLimitError, match="more than 10000; nothing was sent"),
    ):
        tec.setpoint_c = 30.0
    assert time.perf_counter() - start < 1.0


def test_a_ramp_whose_last_point_rounds_past_the_limit_is_refused_whole():
    # 1 -> 1.2969 °C in 0.25 °C steps: 1.25 is fine, but 1.2969 is written "1.297" > max_c.
    exchanges = [*TED_OPEN, ("SOUR:TEMP?", "1.000000E+00")]
    limits = TecLimits(min_c=0.0, max_c=1.2969, max_step_c=0.25)
    with (
        expected_protocol(ThorlabsTed4015, exchanges, limits=limits) as tec,
        pytest.raises(SafetyLimitError, match=r"setpoint_c as sent .* = 1\.297"),
    ):
        tec.setpoint_c = 1.2969


def test_ramp_points_count_is_checked_before_any_list_is_built():
    assert len(ramp_points(0.0, 1.0, 1.0 / MAX_RAMP_POINTS)) == MAX_RAMP_POINTS
    with pytest.raises(SafetyLimitError):
        ramp_points(0.0, 1.0, 1.0 / (MAX_RAMP_POINTS + 1))
    with pytest.raises(SafetyLimitError):
        ramp_points(-1e308, 1e308, 5e-324)


# --- open_instrument(limits=...) and limits read-only after open ------------------------------


def test_open_instrument_takes_limits_as_an_object_or_a_dict(lumina_sim_visa):
    with lumina_hal.open_instrument(SIM_LASER, limits={"max_power_dbm": 3.0}) as laser:
        assert laser.limits == LaserLimits(
            max_power_dbm=3.0, source=f"open_instrument({SIM_LASER!r}, limits=...)"
        )
        laser.power_dbm = 3.0
        with pytest.raises(SafetyLimitError, match="above the soft limit 3 dBm"):
            laser.power_dbm = 3.5
        with pytest.raises(SafetyLimitError):
            laser._power_dbm = 3.5
        assert laser.power_dbm == 3.0
    with (
        lumina_hal.open_instrument(SIM_TEC, limits=TEC_LIMITS) as tec,
        pytest.raises(SafetyLimitError, match="below the soft limit 15"),
    ):
        tec.setpoint_c = 10.0


@pytest.mark.parametrize(
    ("uri", "limits", "message"),
    [
        (SIM_LASER, {"max_power": 3.0}, "unknown limit 'max_power'"),
        (SIM_LASER, {"max_power_dbm": math.nan}, "max_power_dbm must be finite"),
        (SIM_LASER, TEC_LIMITS, "is a laser, not a tec"),
        (SIM_TEC, LASER_LIMITS, "is a tec, not a laser"),
        (SIM_LASER, [("max_power_dbm", 3.0)], "not a"),
        (SIM_LASER, "max_power_dbm=3", "not a"),
    ],
)
def test_open_instrument_refuses_wrong_limits_before_opening(lumina_sim_visa, uri, limits, message):
    with pytest.raises(ConfigurationError, match=message):
        lumina_hal.open_instrument(uri, limits=limits)


def test_limits_are_read_only_after_open(lumina_sim_visa):
    laser = lumina_hal.open_instrument(SIM_LASER, limits=LASER_LIMITS)
    try:
        with pytest.raises(SafetyLimitError, match="fixed when the instrument is opened"):
            laser.limits = LaserLimits(max_power_dbm=13.0)
        with pytest.raises(SafetyLimitError, match="read-only"):
            laser.limits.max_power_dbm = 13.0  # type: ignore[misc]
        with pytest.raises(SafetyLimitError, match="read-only"):
            del laser.limits.max_power_dbm  # type: ignore[misc]
        assert laser.limits is LASER_LIMITS and LASER_LIMITS.max_power_dbm == 10.0
    finally:
        laser.close()
    with pytest.raises(SafetyLimitError, match="fixed"):
        laser.limits = NoLimits()  # nor after close: a reopen keeps the limits it had


def test_bench_file_limits_are_fixed_at_open_and_gate_private_writes(lumina_sim_visa):
    with lumina_hal.open_bench() as bench:
        with pytest.raises(SafetyLimitError, match=r"bench.toml \[laser\]"):
            bench.laser._power_dbm = 12.0
        with pytest.raises(SafetyLimitError, match="fixed"):
            bench.laser.limits = LaserLimits()
        with pytest.raises(SafetyLimitError, match=r"bench.toml \[tec\]"):
            bench.tec._setpoint_c = 90.0
        assert bench.laser.power_dbm != 12.0


def test_parse_bench_config_rejects_non_table_limits():
    with pytest.raises(ConfigurationError, match="must be a table"):
        parse_bench_config({"laser": 5}, None, {})


def test_errors_are_lumina_errors():
    for error in (ConfigurationError, InputError, SafetyLimitError, ExpectedProtocolError):
        assert issubclass(error, LuminaError)


# --- exit paths of a standalone instrument (a bench has its own tests in test_bench.py) ------

_FORGOTTEN = """
import logging, signal, sys, time
import lumina_hal
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
laser = lumina_hal.open_instrument(
    "visa://TCPIP0::127.0.0.1::5000::SOCKET?model=santec-tsl570&backend=@sim",
    limits={"max_power_dbm": 10.0},
)
laser.power_dbm = 5.0
laser.on()
how = sys.argv[1]
if how == "with-sigterm":
    with lumina_hal.open_instrument(
        "visa://USB0::0x1313::0x8048::M00324477::INSTR?model=thorlabs-ted4015&backend=@sim"
    ) as tec:
        tec.on()
        print("ready", flush=True)
        time.sleep(60)
print("ready", flush=True)
if how == "exception":
    raise RuntimeError("the script failed")
if how == "exit":
    sys.exit(3)
"""


@pytest.mark.parametrize(
    ("how", "returncode"), [("end", 0), ("exception", 1), ("exit", 3), ("with-sigterm", 143)]
)
def test_an_instrument_left_open_is_made_safe_at_exit(how, returncode):
    import os
    import signal
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("LUMINA_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", _FORGOTTEN, how],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        if how == "with-sigterm":
            proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == returncode, stderr
    assert "laser still open at exit; applying its safe state" in stderr
    assert "laser output off (safe state)" in stderr
    if how == "with-sigterm":  # the with block closed the TEC before the laser was caught
        assert "TEC output off (safe state)" in stderr
        assert stderr.index("TEC output off") < stderr.index("laser still open at exit")


@pytest.mark.parametrize(
    "argv",
    [
        ["sweep", "bench", "--set", "laser.power_dbm", "--start", "9", "--stop", "12",
         "--step", "1", "--read", "power_meter.read_power_w"],
        ["sweep", "bench", "--set", "tec.setpoint_c", "--start", "80", "--stop", "90",
         "--step", "5", "--read", "tec.temperature_c"],
        ["bench", "sweep", "--start", "1550", "--stop", "1551", "--power-dbm", "12"],
    ],
    ids=["sweep bench laser.power_dbm", "sweep bench tec.setpoint_c", "bench sweep --power-dbm"],
)  # fmt: skip
def test_the_cli_reaches_the_gate_too(lumina_sim_visa, tmp_path, capsys, monkeypatch, argv):
    from lumina_hal.cli import main

    monkeypatch.delenv("LUMINA_BENCH", raising=False)
    assert main([*argv, "--png", str(tmp_path / "plot.png")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "above the soft limit" in err[0] and "bench.toml" in err[0], err
