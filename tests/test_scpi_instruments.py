"""The three instrument models against the reference notes and docs/instrument-sim.md."""

from __future__ import annotations

import math
import statistics

import pytest

from lumina_hal.sim.scpi.instruments import (
    MODELS,
    S130C,
    SantecTsl570,
    ThorlabsPm100d,
    ThorlabsTed4015,
)

C = 299_792_458.0


def drain(instrument) -> list[int]:  # type: ignore[no-untyped-def]
    """All queued error codes, oldest first."""
    codes = []
    while (code := int(instrument.process("SYST:ERR?").split(",")[0])) != 0:
        codes.append(code)
    return codes


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_registry_names_and_terminations() -> None:
    assert sorted(MODELS) == [
        "keysight-8164b", "santec-tsl570", "thorlabs-pm100d", "thorlabs-ted4015"
    ]
    assert (SantecTsl570.read_termination, SantecTsl570.write_termination) == ("\r", "\r")
    assert ThorlabsPm100d.read_termination == ThorlabsPm100d.write_termination == "\n"
    assert ThorlabsTed4015.read_termination == ThorlabsTed4015.write_termination == "\n"


# -- Santec TSL-570 ----------------------------------------------------------------------------


@pytest.fixture
def tsl() -> SantecTsl570:
    return SantecTsl570()


def test_tsl_identity(tsl: SantecTsl570) -> None:
    assert tsl.process("*IDN?") == "SANTEC,TSL-570,00001,0026.0026.0011"
    assert SantecTsl570(serial="22050001").process("*IDN?").split(",")[2] == "22050001"
    assert tsl.process(":SYST:ERR?") == '0,"No error"'


@pytest.mark.parametrize(
    "setting", [":WAV 1560nm", ":WAV 1.56E-6", ":WAVelength 1.5600000000e-06", ":wav 1.56UM"]
)
def test_tsl_wavelength_scpi_mode_metres(tsl: SantecTsl570, setting: str) -> None:
    tsl.process(setting)
    assert tsl.process(":WAV?") == "+1.56000000E-006"
    assert tsl.wavelength_nm == pytest.approx(1560.0)
    assert drain(tsl) == []


def test_tsl_wavelength_limits_and_out_of_range(tsl: SantecTsl570) -> None:
    assert tsl.process(":WAV? MIN;:WAV? MAX") == "+1.48000000E-006;+1.64000000E-006"
    tsl.process(":WAV 1550")  # nanometres in SCPI mode mean 1550 m
    tsl.process(":WAV 1640.1nm")
    tsl.process(":WAV 1550xm")
    assert drain(tsl) == [-222, -222, -131]
    assert tsl.wavelength_nm == 1550.0


def test_tsl_wavelength_step_is_a_tenth_of_a_picometre(tsl: SantecTsl570) -> None:
    tsl.process(":SYST:COMM:COD 0")
    tsl.process(":WAV 1550.12346")
    assert tsl.process(":WAV?") == "1550.1235"


def test_tsl_legacy_mode_nm_and_plain_decimals(tsl: SantecTsl570) -> None:
    tsl.process(":SYST:COMM:COD 0")
    assert tsl.process(":SYST:COMM:COD?;:WAV?;:POW:STAT?") == "0;1550.0000;0"
    tsl.process(":WAV 1560")
    assert tsl.process(":WAV?;:WAV? MIN") == "1560.0000;1480.0000"
    tsl.process(":SYST:COMM:COD 1")
    assert tsl.process(":SYST:COMM:COD?;:WAV?;:POW:STAT?") == "+1;+1.56000000E-006;+0"


def test_tsl_frequency_sets_the_wavelength(tsl: SantecTsl570) -> None:
    tsl.process(":WAV:FREQ 193.1THZ")
    assert tsl.wavelength_nm == pytest.approx(C / 193.1e12 * 1e9)
    assert float(tsl.process(":FREQ?")) == pytest.approx(193.1e12, abs=5e6)
    assert float(tsl.process(":FREQ? MIN")) == pytest.approx(C / 1640e-9, rel=1e-8)
    tsl.process(":SYST:COMM:COD 0")
    assert tsl.process(":WAV:FREQ?") == "193.10000"  # THz in Legacy mode
    tsl.process(":FREQ 250")
    assert drain(tsl) == [-222]


def test_tsl_power_range_step_and_units(tsl: SantecTsl570) -> None:
    assert tsl.process(":POW? MIN;:POW? MAX") == "-1.50000000E+001;+1.30000000E+001"
    tsl.process(":POW 5.123")
    assert tsl.power_dbm == pytest.approx(5.12)
    tsl.process(":POW 13.01")
    tsl.process(":POW -15.01")
    assert drain(tsl) == [-222, -222]
    tsl.process(":POW:UNIT 1;:POW 1")  # mW mode
    assert tsl.power_dbm == pytest.approx(0.0)
    assert tsl.process(":POW:UNIT?;:POW?") == "+1;+1.00000000E+000"
    assert float(tsl.process(":POW? MIN")) == pytest.approx(10 ** (-1.5))
    tsl.process(":POW:UNIT 2")
    assert drain(tsl) == [-224]


def test_tsl_actual_power_follows_output_shutter_interlock(tsl: SantecTsl570) -> None:
    tsl.process(":POW 3")
    assert tsl.emitted_power_dbm is None
    assert float(tsl.process(":POW:ACT?")) == -60.0  # dark monitor floor
    tsl.process(":POW:STAT 1")
    assert float(tsl.process(":POW:ACT?")) == 3.0
    assert tsl.process(":POW?") == "+3.00000000E+000"  # setpoint, asymmetric with :POW:ACT?
    tsl.process(":POW:SHUT 1")  # inverted: 1 = closed
    assert tsl.shutter_closed and tsl.emitted_power_dbm is None
    assert tsl.process(":POW:SHUT?") == "+1"
    tsl.process(":POW:SHUT 0")
    tsl.interlock_locked = True
    assert tsl.process(":SYST:LOCK?") == "+1"
    assert tsl.emitted_power_dbm is None
    tsl.interlock_locked = False
    tsl.process(":POW:ATT:AUT 0;:POW:ATT 3.5")  # manual: full power minus attenuation
    assert tsl.emitted_power_dbm == pytest.approx(13.0 - 3.5)
    assert tsl.process(":POW:ATT?;:POW:ATT? MAX") == "+3.50000000E+000;+3.00000000E+001"


def test_tsl_monitor_noise_is_seeded(tsl: SantecTsl570) -> None:
    a, b = (SantecTsl570(monitor_noise_db=0.05, seed=7) for _ in range(2))
    for laser in (a, b):
        laser.process(":POW:STAT 1")
    readings_a = [float(a.process(":POW:ACT?")) for _ in range(50)]
    readings_b = [float(b.process(":POW:ACT?")) for _ in range(50)]
    assert readings_a == readings_b
    assert 0.02 < statistics.stdev(readings_a) < 0.1


def test_tsl_rst_restores_defaults_keeps_queue_and_mode(tsl: SantecTsl570) -> None:
    tsl.process(":WAV 1600nm;:POW 7;:POW:STAT 1;:POW:UNIT 1;:POW:SHUT 1;:BOGUS")
    tsl.process(":SYST:COMM:COD 0")
    tsl.process("*RST")
    assert (tsl.wavelength_nm, tsl.power_dbm, tsl.output_on) == (1550.0, 0.0, False)
    assert (tsl.power_unit_mw, tsl.shutter_closed, tsl.scpi_mode) == (False, False, False)
    assert drain(tsl) == [-113]


# -- Thorlabs PM100D ---------------------------------------------------------------------------


@pytest.fixture
def pm() -> ThorlabsPm100d:
    return ThorlabsPm100d()


def test_pm_identity_and_sensor_forms() -> None:
    assert ThorlabsPm100d().process("*IDN?") == "Thorlabs,PM100D,P0009368,2.4.0"
    pm = ThorlabsPm100d(sensor=S130C)
    assert pm.process("SYST:SENS:IDN?") == "S130C,210921324,21-SEP-2021,1,3,33"
    assert pm.process("SYST:SENSOR:IDN?") == "S130C,210921324,21-SEP-2021,1,3,33"
    quoted = ThorlabsPm100d(sensor=S130C, quoted_sensor_idn=True).process("SYST:SENS:IDN?")
    assert quoted == '"S130C","210921324","21-SEP-2021",1,3,33'
    assert ThorlabsPm100d().process("SYST:SENS:IDN?").startswith("S155C,")


def test_pm_no_sensor() -> None:
    pm = ThorlabsPm100d(sensor=None)
    assert pm.process("SYST:SENS:IDN?") == "no sensor"
    assert pm.process("MEAS:POW?") is None
    pm.process("SENS:CORR:WAV 1550")
    assert drain(pm) == [-241, -241]


def test_pm_no_error_form_is_configurable(pm: ThorlabsPm100d) -> None:
    assert pm.process("SYST:ERR?") == '+0,"No error"'
    assert ThorlabsPm100d(plus_zero_no_error=False).process("SYST:ERR?") == '0,"No error"'


def test_pm_wavelength_integer_in_float_out_sensor_limits(pm: ThorlabsPm100d) -> None:
    pm.process("SENSE:CORR:WAV 1500")  # the exact string pymeasure sends
    assert pm.process("SENSE:CORR:WAV?") == "1.500000E+03"
    assert float(pm.process("SENS:CORR:WAV? MIN")) == 800.0
    assert float(pm.process("SENS:CORR:WAV? MAX")) == 1700.0
    pm.process("CORR:WAV 1310.5nm")
    assert pm.wavelength_nm == 1310.5
    pm.process("SENS:CORR:WAV 700")
    pm.process("SENS:CORR:WAV DEF")
    assert drain(pm) == [-222, -224]
    s130 = ThorlabsPm100d(sensor=S130C)
    assert s130.process("SENS:CORR:WAV? MIN;WAV? MAX") == "4.000000E+02;1.100000E+03"


def test_pm_reading_in_watts_and_dbm(pm: ThorlabsPm100d) -> None:
    assert float(pm.process("MEAS:POW?")) == pytest.approx(1e-10)  # dark reading, no light
    pm.input_power_w = 1.234e-4
    expected_w = 1.234e-4 + 1e-10
    assert float(pm.process("MEAS:POW?")) == pytest.approx(expected_w, rel=1e-6)
    pm.process("SENS:POW:UNIT DBM")
    assert pm.process("SENS:POW:UNIT?") == "DBM"
    expected_dbm = 10 * math.log10(expected_w / 1e-3)
    assert float(pm.process("MEAS?")) == pytest.approx(expected_dbm, abs=1e-5)
    assert float(pm.process("READ?")) == pytest.approx(expected_dbm, abs=1e-5)


def test_pm_over_range_is_9_9e37(pm: ThorlabsPm100d) -> None:
    pm.input_power_w = 1e-3
    pm.process("SENS:POW:RANG 1e-5")
    assert pm.process("SENS:POW:RANG:AUTO?") == "0"
    assert pm.process("MEAS:POW?") == "9.900000E+37"
    pm.process("SENS:POW:UNIT DBM")
    assert float(pm.process("MEAS:POW?")) == 9.9e37
    pm.process("SENS:POW:RANG:AUTO ON;:SENS:POW:UNIT W")
    pm.input_power_w = 0.2  # above the top (100 mW) range even in auto
    assert float(pm.process("MEAS:POW?")) == 9.9e37


def test_pm_range_picks_the_best_fitting_decade(pm: ThorlabsPm100d) -> None:
    assert pm.process("SENS:POW:RANG? MIN;RANG? MAX") == "1.000000E-08;1.000000E-01"
    pm.process("SENS:POW:RANG 5e-4")
    assert pm.process("SENS:POW:RANG?;RANG:AUTO?") == "1.000000E-03;0"
    pm.process("SENS:POW:RANG:UPP 2mW")
    assert float(pm.process("SENS:POW:RANG:UPP?")) == 1e-2
    pm.process("SENS:POW:RANG 1")
    pm.process("SENS:POW:RANG -1")
    assert drain(pm) == [-222, -222]
    pm.process("SENS:POW:RANG:AUTO 1")
    pm.input_power_w = 3e-6
    assert float(pm.process("SENS:POW:RANG?")) == 1e-5
    pm.process("SENS:POW:RANG:AUTO 0")  # switching auto off keeps the range in use
    pm.input_power_w = 3e-3
    assert float(pm.process("SENS:POW:RANG?")) == 1e-5


def test_pm_averaging_reduces_seeded_noise() -> None:
    def spread(count: int) -> float:
        pm = ThorlabsPm100d(noise_w=1e-6, seed=3)
        pm.input_power_w = 1e-4
        pm.process(f"SENS:AVER:COUN {count}")
        return statistics.stdev(float(pm.process("MEAS?")) for _ in range(2000))

    assert spread(1) == pytest.approx(1e-6, rel=0.1)
    assert spread(100) == pytest.approx(1e-7, rel=0.1)
    assert ThorlabsPm100d(noise_w=1e-6, seed=3).process("AVER 300;AVER?") == "300"


def test_pm_fetch_needs_a_measurement(pm: ThorlabsPm100d) -> None:
    assert pm.process("FETC?") is None
    pm.input_power_w = 1e-3
    assert pm.process("CONF:POW;:INIT;:FETC?") == "1.000000E-03"
    pm.input_power_w = 2e-3
    assert pm.process("FETC?") == "1.000000E-03"  # the reading INIT took
    assert pm.process("CONF?") == "POW"
    pm.process("CONF:POW")
    assert pm.process("FETC?") is None
    assert drain(pm) == [-230, -230]


def test_pm_rst_restores_defaults_keeps_queue(pm: ThorlabsPm100d) -> None:
    pm.process("SENS:CORR:WAV 1310;:SENS:POW:UNIT DBM;:SENS:POW:RANG 1e-6;:SENS:AVER 10;:BOGUS")
    pm.process("*RST")
    assert (pm.wavelength_nm, pm.unit_dbm, pm.auto_range, pm.average_count) == (
        1550.0,
        False,
        True,
        1,
    )
    assert drain(pm) == [-113]


# -- Thorlabs TED4015 ----------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ted(clock: FakeClock) -> ThorlabsTed4015:
    return ThorlabsTed4015(clock=clock, tau_s=4.0, ambient_c=22.0)


def test_ted_identity_and_error_forms(ted: ThorlabsTed4015) -> None:
    assert ted.process("*IDN?") == "THORLABS,TED4015,M00324477,1.2.3/2.0.1/1.0.0"
    assert ted.process("SYST:ERR?") == '+0,"No error"'
    for _ in range(11):
        ted.process("BOGUS")
    replies = [ted.process("SYST:ERR:NEXT?") for _ in range(11)]
    assert replies[8] == '-113,"Undefined header"'
    assert replies[9] == '-350,"Error queue overflow"'
    assert replies[10] == '+0,"No error"'


def test_ted_setpoint_limits_suffixes_and_units(ted: ThorlabsTed4015) -> None:
    assert ted.process("SOUR:TEMP? MIN;TEMP? MAX;TEMP? DEF") == (
        "-4.500000E+01;1.450000E+02;2.500000E+01"
    )
    ted.process("SOUR:TEMP 25C")
    ted.process("SOUR1:TEMP:SPO 30")
    assert ted.setpoint_c == 30.0
    ted.process("SOUR:TEMP 300K")
    assert ted.setpoint_c == pytest.approx(26.85)
    ted.process("SOUR:TEMP 50F")
    assert ted.setpoint_c == pytest.approx(10.0)
    ted.process("UNIT:TEMP K")
    assert ted.process("UNIT:TEMP?") == "K"
    assert float(ted.process("SOUR:TEMP?")) == pytest.approx(283.15)
    assert float(ted.process("SOUR:TEMP? MAX")) == pytest.approx(145 + 273.15)
    ted.process("SOUR:TEMP 300")  # now kelvin
    assert ted.setpoint_c == pytest.approx(26.85)
    ted.process("UNIT:TEMP FAR")
    assert float(ted.process("SOUR:TEMP? MAX")) == pytest.approx(293.0)
    ted.process("SOUR:TEMP 294")
    ted.process("SOUR2:TEMP 20")
    ted.process("UNIT:TEMP RANKINE")
    assert drain(ted) == [-222, -113, -224]


def test_ted_output_forms_and_rst(ted: ThorlabsTed4015) -> None:
    for text, state in [("ON", "1"), ("OFF", "0"), ("1", "1"), ("0", "0")]:
        ted.process(f"OUTP {text}")
        assert ted.process("OUTP?") == state
    ted.process("OUTP ON;:SOUR:TEMP 60;:UNIT:TEMP K;:BOGUS")
    ted.process("*RST")
    assert (ted.output_on, ted.setpoint_c, ted.unit) == (False, 25.0, "CEL")
    assert drain(ted) == [-113]


def _first_order(t0_c: float, target_c: float, dt_s: float, tau_s: float) -> float:
    return target_c + (t0_c - target_c) * math.exp(-dt_s / tau_s)


def _reference_loop(
    t_c: float, setpoint_c: float, ambient_c: float, duration_s: float, *, tau_s: float,
    k: float, p: float, i: float, d: float, limit_a: float, dt_s: float = 1e-4,
) -> float:
    """An independent integration of the spec's ODE (docs/instrument-sim.md "Thermal model"):
    explicit Euler with a tiny step; the D term on the measurement solved with the plant."""
    s = 0.0
    for _ in range(round(duration_s / dt_s)):
        e = setpoint_c - t_c
        slope = (ambient_c - t_c + k * (p * e + s)) / (tau_s + k * d)
        current = p * e + s - d * slope
        if abs(current) > limit_a:
            current = math.copysign(limit_a, current)
            slope = (ambient_c - t_c + k * current) / tau_s
        else:
            s = max(-limit_a, min(limit_a, s + i * e * dt_s))
        t_c += slope * dt_s
    return t_c


def test_ted_output_off_relaxes_to_ambient_in_closed_form(
    ted: ThorlabsTed4015, clock: FakeClock
) -> None:
    assert float(ted.process("MEAS:TEMP?")) == 22.0  # starts at ambient
    ted.process("SOUR:TEMP 60;:OUTP ON")
    clock.now = 3.0
    at_3 = ted.temperature_c
    ted.process("OUTP OFF")  # drifts back to ambient
    clock.now = 11.0
    assert ted.temperature_c == pytest.approx(_first_order(at_3, 22.0, 8.0, 4.0), rel=1e-12)
    assert float(ted.process("MEAS:SCAL:TEMP?;:FETC:TEMP?;:READ?").split(";")[2]) == (
        pytest.approx(ted.temperature_c, abs=1e-5)
    )
    assert float(ted.process("MEAS:CURR?")) == 0.0


@pytest.mark.parametrize(
    ("p", "i", "d", "limit_a"),
    [(1.0, 0.1, 0.0, 10.0), (0.5, 0.05, 2.0, 10.0), (3.0, 0.5, 0.0, 1.5), (1.0, 0.0, 0.0, 15.0)],
)
def test_ted_pid_loop_matches_an_independent_integration(
    ted: ThorlabsTed4015, clock: FakeClock, p: float, i: float, d: float, limit_a: float
) -> None:
    ted.process(f"SOUR:TEMP:LCON:GAIN {p};INT {i};DER {d};:SOUR:CURR:LIM {limit_a}")
    ted.process("SOUR:TEMP 40;:OUTP ON")
    for now in (1.0, 4.0, 12.0, 30.0):
        clock.now = now
        reference = _reference_loop(
            22.0, 40.0, 22.0, now, tau_s=4.0, k=10.0, p=p, i=i, d=d, limit_a=limit_a
        )
        assert float(ted.process("MEAS:TEMP?")) == pytest.approx(reference, abs=0.02), now
    assert drain(ted) == []


def test_ted_gains_and_current_limit_decide_where_the_plate_settles(
    ted: ThorlabsTed4015, clock: FakeClock
) -> None:
    # P only: the steady error of a proportional loop, (T_set - T_amb) / (1 + K·P)
    ted.process("SOUR:TEMP:LCON:GAIN 2;INT 0;:SOUR:TEMP 42;:OUTP 1")
    clock.now = 200.0
    assert ted.temperature_c == pytest.approx(42.0 - 20.0 / (1 + 10.0 * 2), abs=1e-6)
    # with the integral share the error goes to zero
    ted.process("SOUR:TEMP:LCON:INT 0.5")
    clock.now = 400.0
    assert ted.temperature_c == pytest.approx(42.0, abs=1e-6)
    assert float(ted.process("MEAS:CURR?")) == pytest.approx(2.0, abs=1e-6)  # 20 K / 10 K/A
    assert float(ted.process("MEAS:VOLT?")) == pytest.approx(2.0, abs=1e-6)  # R = 1 ohm
    assert ted.process("STAT:MEAS:COND?") == "0"  # inside the window
    # a current limit below what the setpoint needs: the plate stops at T_amb + K·I_lim
    ted.process("SOUR:CURR:LIM 1.2")
    clock.now = 600.0
    assert ted.temperature_c == pytest.approx(22.0 + 10.0 * 1.2, abs=1e-6)
    assert float(ted.process("MEAS:CURR?")) == pytest.approx(1.2)
    assert int(ted.process("STAT:MEAS:COND?")) == 512  # window failure: 8 K off the setpoint


def test_ted_window_protection_switches_the_output_off_after_the_delay(
    ted: ThorlabsTed4015, clock: FakeClock
) -> None:
    ted.process("SOUR:TEMP:PROT:WIND 0.5;DEL 5;:SOUR:TEMP:PROT ON;:SOUR:CURR:LIM 0.5")
    ted.process("SOUR:TEMP 40;:OUTP ON")  # 18 K away and only 5 K of drive: never inside
    clock.now = 4.0
    assert ted.process("OUTP?;:SOUR:TEMP:PROT:TRIP?") == "1;0"
    clock.now = 6.0
    assert ted.process("OUTP?;:SOUR:TEMP:PROT:TRIP?;:STAT:MEAS:COND?") == "0;1;0"
    ted.process("OUTP ON")  # switching on again clears the trip
    assert ted.process("SOUR:TEMP:PROT:TRIP?") == "0"


def test_ted_autotune_needs_the_output_and_sets_the_gains(
    ted: ThorlabsTed4015, clock: FakeClock
) -> None:
    assert ted.process("SOUR:TEMP:ATUN:STAT?") == "0,0,0"
    ted.process("SOUR:TEMP:ATUN:INIT")  # output off: refused
    assert drain(ted) == [-221]
    ted.process("OUTP ON;:SOUR:TEMP:ATUN")
    clock.now = 39.0  # 10 tau = 40 s
    assert ted.process("SOUR:TEMP:ATUN:STAT?") == "1,0,0"
    clock.now = 41.0
    assert ted.process("SOUR:TEMP:ATUN:STAT?") == "4,0,0"
    gains = [float(v) for v in ted.process("SOUR:TEMP:LCON:GAIN?;INT?;DER?;PER?").split(";")]
    assert gains == pytest.approx([0.5, 0.125, 0.0, 4.0])  # IMC: P = 5/K, I = P/tau
    ted.process("SOUR:TEMP:ATUN:INIT;:SOUR:TEMP:ATUN:CANC")
    assert ted.process("SOUR:TEMP:ATUN:STAT?") == "2,0,0"


def test_ted_new_settings_are_range_checked_like_the_manual(ted: ThorlabsTed4015) -> None:
    assert ted.process("SOUR:CURR:LIM? MIN;LIM? MAX;LIM? DEF") == (
        "0.000000E+00;1.500000E+01;1.000000E+01"
    )
    ted.process("SOUR:CURR:LIM 16")
    ted.process("SOUR:TEMP:LCON:GAIN -1")
    ted.process("SOUR:TEMP:LCON:PER 0")
    ted.process("SOUR:TEMP:PROT:WIND 0")
    ted.process("SOUR:CURR:LIM 1V")
    ted.process("SOUR2:CURR:LIM 1")
    assert drain(ted) == [-222, -222, -222, -222, -131, -113]
    ted.process("SOUR:CURR:LIM 1500MA;:SOUR:TEMP:LCON:GAIN 3;:SOUR:TEMP:PROT:WIND 2")
    ted.process("*RST")  # back to the defaults
    assert ted.process("SOUR:CURR:LIM?;:SOUR:TEMP:LCON:GAIN?;:SOUR:TEMP:PROT:WIND?") == (
        "1.000000E+01;1.000000E+00;1.000000E+00"
    )


def test_ted_sensor_resistance_follows_the_beta_model(ted: ThorlabsTed4015) -> None:
    r = float(ted.process("MEAS:RES?"))  # 22 degC
    expected = 10e3 * math.exp(3988.0 * (1 / (22.0 + 273.15) - 1 / (25.0 + 273.15)))
    assert r == pytest.approx(expected, rel=1e-6)


def test_ted_thermal_model_does_not_depend_on_how_often_it_is_read(clock: FakeClock) -> None:
    sampled, unsampled = (ThorlabsTed4015(clock=clock, tau_s=2.0) for _ in range(2))
    for ted in (sampled, unsampled):
        ted.process("SOUR:TEMP 80;:OUTP 1")
    for step in range(1, 101):
        clock.now = step * 0.05
        sampled.process("MEAS:TEMP?")
    assert sampled.temperature_c == pytest.approx(unsampled.temperature_c, abs=1e-6)


def test_ted_ambient_change_from_coupling_layer(ted: ThorlabsTed4015, clock: FakeClock) -> None:
    clock.now = 1.0
    ted.ambient_c = 30.0  # output off: the plate follows the new ambient from t = 1
    clock.now = 5.0
    assert ted.temperature_c == pytest.approx(_first_order(22.0, 30.0, 4.0, 4.0))


def test_ted_condition_bits_and_open_tec(ted: ThorlabsTed4015, clock: FakeClock) -> None:
    assert ted.process("STAT:MEAS:COND?") == "0"
    ted.fault_sensor = True
    ted.fault_temperature_protection = True
    assert ted.process("STAT:MEAS:COND?") == str(1024 + 256)
    ted.process("SOUR:TEMP 50;:OUTP ON")
    ted.tec_open = True
    clock.now = 100.0
    assert ted.temperature_c == pytest.approx(22.0)  # an open TEC cannot drive the plate
    assert int(ted.process("STAT:MEAS:COND?")) & 4096
