"""Each driver's exact command strings against recorded exchanges (docs/instruments.md §4)."""

from __future__ import annotations

import math

import pytest
from pyvisa.constants import StatusCode
from pyvisa.errors import VisaIOError

from lumina_hal.bench.roles import LaserLimits, TecLimits
from lumina_hal.drivers.instruments.keysight_8164b import Keysight8164B
from lumina_hal.drivers.instruments.santec_tsl570 import SantecTsl570
from lumina_hal.drivers.instruments.thorlabs_pm100d import ThorlabsPm100d, parse_sensor
from lumina_hal.drivers.instruments.thorlabs_ted4015 import PidSettings, ThorlabsTed4015
from lumina_hal.errors import (
    DeviceClosedError,
    InputError,
    InstrumentError,
    LinkError,
    OverRangeError,
    SafetyLimitError,
)
from lumina_hal.testing.expected_protocol import (
    ExpectedProtocolError,
    ExpectedProtocolResource,
    expected_protocol,
)

SANTEC_OK = '0,"No error"'
THORLABS_OK = '+0,"No error"'


def checked(command: str, ok: str) -> list[tuple[str, str | None]]:
    """A write followed by the error-queue read that every set triggers."""
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
    ("*IDN?", "Agilent Technologies,8164B,DE41B00123,V5.25(72637)"),
    ("SYST:ERR?", THORLABS_OK),
    *checked("SOUR0:POW:UNIT 0", THORLABS_OK),
    ("SOUR0:WAV? MIN", "+1.46000000E-006"),
    ("SOUR0:WAV? MAX", "+1.64000000E-006"),
    ("SOUR0:POW? MIN", "-1.00000000E+001"),
    ("SOUR0:POW? MAX", "+1.00000000E+001"),
]


def pm100d_open(sensor: str = "S155C,220426071,26-APR-2022,1,18,289") -> list:
    opening = [
        ("*IDN?", "Thorlabs,PM100D,P0009368,2.4.0"),
        ("SYST:ERR?", THORLABS_OK),
        *checked("SENS:POW:UNIT W", THORLABS_OK),
        ("SYST:SENS:IDN?", sensor),
    ]
    if sensor != "no sensor":
        opening += [("SENS:CORR:WAV? MIN", "8.000000E+02"), ("SENS:CORR:WAV? MAX", "1.700000E+03")]
    return opening


TED_OPEN = [
    ("*IDN?", "THORLABS,TED4015,M00324477,1.2.3/2.0.1/1.0.0"),
    ("SYST:ERR?", THORLABS_OK),
    *checked("UNIT:TEMP CEL", THORLABS_OK),
    ("SOUR:TEMP? MIN", "-4.500000E+01"),
    ("SOUR:TEMP? MAX", "1.450000E+02"),
    ("SOUR:CURR:LIM? MIN", "0.000000E+00"),
    ("SOUR:CURR:LIM? MAX", "1.500000E+01"),
]


# --- the expected-protocol helper itself can fail --------------------------------------------


def test_helper_fails_on_a_different_command():
    resource = ExpectedProtocolResource([(":POW:STAT 1", None)])
    with pytest.raises(ExpectedProtocolError, match="expected ':POW:STAT 1'"):
        resource.write(":POW:STAT 0")


def test_helper_fails_on_commands_never_sent():
    with pytest.raises(ExpectedProtocolError, match="never sent"):  # noqa: SIM117
        with expected_protocol(SantecTsl570, [*SANTEC_OPEN, (":WAV?", "+1.55E-006")]):
            pass


def test_helper_fails_on_query_instead_of_write():
    resource = ExpectedProtocolResource([("*RST", None)])
    with pytest.raises(ExpectedProtocolError, match="expects a write"):
        resource.query("*RST")


# --- Santec TSL-570 --------------------------------------------------------------------------


def test_santec_open_sets_scpi_mode_and_reads_ranges():
    with expected_protocol(SantecTsl570, SANTEC_OPEN) as laser:
        assert laser.identity.model == "TSL-570"
        assert laser.wavelength_range_nm == pytest.approx((1480.0, 1640.0))
        assert laser.power_range_dbm == (-15.0, 13.0)


def test_santec_wavelength_is_written_in_metres_and_read_back_in_nm():
    exchanges = [
        *SANTEC_OPEN,
        *checked(":WAV 1.55012340E-06", SANTEC_OK),
        (":WAV?", "+1.55012340E-006"),
    ]
    with expected_protocol(SantecTsl570, exchanges) as laser:
        laser.wavelength_nm = 1550.1234
        assert laser.wavelength_nm == pytest.approx(1550.1234, abs=1e-6)


def test_santec_power_output_and_monitor():
    exchanges = [
        *SANTEC_OPEN,
        *checked(":POW 5.25", SANTEC_OK),
        (":POW?", "+5.25000000E+000"),  # on(): the setpoint is checked against the limit first
        (":POW:ATT:AUT?", "+1"),  # then the emitted power: automatic power control ...
        (":POW?", "+5.25000000E+000"),  # ... emits the setpoint
        (":SYST:LOCK?", "+0"),  # the interlock is closed: the laser may emit
        *checked(":POW:STAT 1", SANTEC_OK),
        (":POW:STAT?", "+1"),
        (":POW:ACT?", "+5.24000000E+000"),
    ]
    limits = LaserLimits(max_power_dbm=10.0)
    with expected_protocol(SantecTsl570, exchanges, limits=limits) as laser:
        laser.power_dbm = 5.25
        laser.on()
        assert laser.output is True
        assert laser.monitor_power_dbm() == pytest.approx(5.24)


def test_santec_power_w_is_converted_to_dbm():
    # 2 mW = 10*log10(2) dBm = 3.0103 dBm -> written with two decimals
    exchanges = [*SANTEC_OPEN, *checked(":POW 3.01", SANTEC_OK), (":POW?", "+3.01000000E+000")]
    with expected_protocol(SantecTsl570, exchanges) as laser:
        laser.power_w = 2e-3
        assert laser.power_w == pytest.approx(1e-3 * 10 ** 0.301)


def test_soft_limit_refuses_before_anything_is_sent():
    # The recording ends after opening: any write would fail the test.
    limits = LaserLimits(max_power_dbm=10.0, min_wavelength_nm=1500, max_wavelength_nm=1600)
    with expected_protocol(SantecTsl570, SANTEC_OPEN, limits=limits) as laser:
        with pytest.raises(SafetyLimitError, match="above the soft limit 10 dBm"):
            laser.power_dbm = 10.5
        with pytest.raises(SafetyLimitError, match="below the soft limit 1500 nm"):
            laser.wavelength_nm = 1499.0
        with pytest.raises(InputError, match="finite"):
            laser.power_dbm = math.nan


def test_output_on_refused_when_setpoint_left_above_limit():
    exchanges = [*SANTEC_OPEN, (":POW?", "+1.20000000E+001")]
    limits = LaserLimits(max_power_dbm=10.0)
    with (
        expected_protocol(SantecTsl570, exchanges, limits=limits) as laser,
        pytest.raises(SafetyLimitError, match="switch output on: the current power_dbm = 12 dBm"),
    ):
        laser.on()


def test_instrument_range_refuses_before_anything_is_sent():
    with expected_protocol(SantecTsl570, SANTEC_OPEN) as laser:
        with pytest.raises(InputError, match="outside the range of this santec-tsl570"):
            laser.wavelength_nm = 1700.0
        with pytest.raises(InputError, match="outside the range"):
            laser.power_dbm = 14.0


def test_error_queue_entry_raises_with_code_text_and_command(caplog):
    exchanges = [
        *SANTEC_OPEN,
        (":POW 5.00", None),
        (":SYST:ERR?", '-222,"Data out of range"'),
        (":SYST:ERR?", '-113,"Undefined header"'),
        (":SYST:ERR?", SANTEC_OK),
    ]
    with expected_protocol(SantecTsl570, exchanges) as laser:
        with pytest.raises(InstrumentError) as info:
            laser.power_dbm = 5.0
        assert (info.value.code, info.value.text, info.value.command) == (
            -222, "Data out of range", ":POW 5.00"
        )
    assert "-113" in caplog.text  # the second entry is logged, not lost


def test_error_queue_drain_is_bounded():
    exchanges = [*SANTEC_OPEN, (":POW:STAT 0", None)] + [
        (":SYST:ERR?", '-350,"Queue overflow"')
    ] * 32
    with (
        expected_protocol(SantecTsl570, exchanges) as laser,
        pytest.raises(InstrumentError, match="-350"),
    ):
        laser.off()


def test_timeout_is_a_link_error_and_the_instrument_stays_usable():
    exchanges = [
        *SANTEC_OPEN,
        (":WAV?", VisaIOError(StatusCode.error_timeout)),
        (":WAV?", "+1.55000000E-006"),
    ]
    with expected_protocol(SantecTsl570, exchanges) as laser:
        with pytest.raises(LinkError, match="no reply to ':WAV\\?' within 2 s"):
            _ = laser.wavelength_nm
        assert laser.wavelength_nm == pytest.approx(1550.0)


def test_lost_connection_closes_the_instrument_clearly():
    exchanges = [*SANTEC_OPEN, (":WAV?", VisaIOError(StatusCode.error_connection_lost))]
    with expected_protocol(SantecTsl570, exchanges) as laser:
        with pytest.raises(LinkError, match="connection lost"):
            _ = laser.wavelength_nm
        assert not laser.is_open
        with pytest.raises(DeviceClosedError):
            _ = laser.wavelength_nm


def test_unparseable_reply_names_command_and_reply():
    exchanges = [*SANTEC_OPEN, (":WAV?", "garbage"), (":SYST:ERR?", SANTEC_OK)]
    with (
        expected_protocol(SantecTsl570, exchanges) as laser,
        pytest.raises(InstrumentError, match="reply 'garbage' to ':WAV\\?'"),
    ):
        _ = laser.wavelength_nm


def test_close_switches_the_laser_off():
    exchanges = [*SANTEC_OPEN, *checked(":POW:STAT 0", SANTEC_OK)]
    with expected_protocol(SantecTsl570, exchanges, safe_on_close=True) as laser:
        assert laser.is_open
    assert not laser.is_open


def test_wrong_model_is_refused_at_open():
    exchanges = [("*IDN?", "Thorlabs,PM100D,P0009368,2.4.0")]
    with pytest.raises(InstrumentError, match="not a santec-tsl570"):  # noqa: SIM117
        with expected_protocol(SantecTsl570, exchanges):
            pass


# --- Keysight 8164B --------------------------------------------------------------------------


def test_keysight_sets_nm_with_suffix_and_reads_metres():
    exchanges = [
        *KEYSIGHT_OPEN,
        *checked("SOUR0:WAV 1550.5000NM", THORLABS_OK),
        ("SOUR0:WAV?", "+1.55050000E-006"),
        *checked("SOUR0:POW -3.000DBM", THORLABS_OK),
        ("LOCK?", "+0"),  # a locked laser is refused before anything is sent
        *checked("SOUR0:POW:STAT 1", THORLABS_OK),  # no limits: no interlock read
    ]
    with expected_protocol(Keysight8164B, exchanges) as laser:
        laser.wavelength_nm = 1550.5
        assert laser.wavelength_nm == pytest.approx(1550.5)
        laser.power_dbm = -3.0
        laser.on()


def test_keysight_setpoint_actual_power_and_lock():
    """``SOUR0:POW?`` is the setpoint, ``SOUR0:POW:ACT?`` the emitted power; LOCK 1|0,<pin>;
    a locked laser is refused before anything is sent (8163A/B/8164A/B programming guide)."""
    exchanges = [
        *KEYSIGHT_OPEN,
        ("SOUR0:POW?", "+5.00000000E+000"),
        ("SOUR0:POW:ACT?", "-6.20000000E+000"),
        *checked("LOCK 1,1234", THORLABS_OK),
        ("LOCK?", "+1"),
        ("LOCK?", "+1"),
        *checked("LOCK 0,4321", THORLABS_OK),
        ("LOCK?", "+0"),
        *checked("SOUR0:POW:STAT 1", THORLABS_OK),
    ]
    with expected_protocol(Keysight8164B, exchanges) as laser:
        assert laser.power_dbm == pytest.approx(5.0)
        assert laser.actual_power_dbm() == pytest.approx(-6.2)
        laser.lock_laser()
        assert laser.locked
        with pytest.raises(InstrumentError, match="locked"):
            laser.on()
        with pytest.raises(InputError, match="PIN"):
            laser.unlock_laser("12a4")
        laser.unlock_laser("4321")
        laser.on()


# --- Thorlabs PM100D -------------------------------------------------------------------------


def test_pm100d_reads_watts_and_converts_to_dbm():
    reading = [("SENS:AVER?", "1"), ("MEAS:POW?", "2.500000E-04")]  # count, then the reading
    exchanges = [*pm100d_open(), *reading, *reading]
    with expected_protocol(ThorlabsPm100d, exchanges) as meter:
        assert meter.read_power_w() == pytest.approx(2.5e-4)
        assert meter.read_power_dbm() == pytest.approx(-6.0206, abs=1e-4)  # 10*log10(0.25)


@pytest.mark.parametrize("reply", ["9.900000E+37", "INF", "INFINITY", "NAN", "-9.9E37"])
def test_pm100d_over_range_readings_raise(reply):
    exchanges = [*pm100d_open(), ("SENS:AVER?", "1"), ("MEAS:POW?", reply)]
    with (
        expected_protocol(ThorlabsPm100d, exchanges) as meter,
        pytest.raises(OverRangeError, match="over range"),
    ):
        meter.read_power_w()


def test_pm100d_settings_strings():
    exchanges = [
        *pm100d_open(),
        *checked("SENS:CORR:WAV 1310", THORLABS_OK),  # integer nm on input
        ("SENS:CORR:WAV?", "1.310000E+03"),
        *checked("SENS:POW:RANG:AUTO 0", THORLABS_OK),
        *checked("SENS:POW:RANG 1.000000E-04", THORLABS_OK),
        ("SENS:POW:RANG?", "1.000000E-04"),
        *checked("SENS:AVER 100", THORLABS_OK),
        ("SENS:AVER?", "100"),
        ("SENS:POW:RANG:AUTO?", "0"),
    ]
    with expected_protocol(ThorlabsPm100d, exchanges) as meter:
        meter.wavelength_nm = 1310.4
        assert meter.wavelength_nm == 1310.0
        meter.auto_range = False
        meter.range_w = 1e-4
        assert meter.range_w == pytest.approx(1e-4)
        meter.averages = 100
        assert meter.averages == 100
        assert meter.auto_range is False
        with pytest.raises(InputError, match="integer >= 1"):
            meter.averages = 0
        with pytest.raises(InputError, match="integer in \\[1, 10000\\]"):
            meter.averages = 20000
        with pytest.raises(InputError, match="outside the range"):
            meter.wavelength_nm = 633


def test_pm100d_without_sensor_refuses_to_measure():
    with expected_protocol(ThorlabsPm100d, pm100d_open("no sensor")) as meter:
        assert meter.sensor is None
        with pytest.raises(InstrumentError, match="no sensor attached"):
            meter.read_power_w()


def test_sensor_idn_both_formats():
    old = parse_sensor("S130C,210921324,21-SEP-2021,1,3,33")
    new = parse_sensor('"S120C","16060232","2-JUN-2021",1,18,2147484069')
    assert (old.name, old.serial, old.type, old.subtype, old.flags) == (
        "S130C", "210921324", 1, 3, 33
    )
    assert (new.name, new.calibration_date, new.flags) == ("S120C", "2-JUN-2021", 2147484069)
    assert parse_sensor("no sensor") is None
    with pytest.raises(ValueError, match="6 fields"):
        parse_sensor("S130C,1")


# --- Thorlabs TED4015 ------------------------------------------------------------------------


def test_ted_ramps_in_steps_with_a_pause_between_writes():
    exchanges = [
        *TED_OPEN,
        ("SOUR:TEMP?", "2.500000E+01"),
        *checked("SOUR:TEMP 30.000", THORLABS_OK),
        *checked("SOUR:TEMP 35.000", THORLABS_OK),
        *checked("SOUR:TEMP 37.500", THORLABS_OK),
        ("MEAS:TEMP?", "2.612000E+01"),
    ]
    limits = TecLimits(min_c=15, max_c=60, max_step_c=5.0, step_interval_s=2.0)
    with expected_protocol(ThorlabsTed4015, exchanges, limits=limits) as tec:
        sleeps: list[float] = []
        tec.sleep = sleeps.append
        tec.setpoint_c = 37.5
        assert sleeps == [2.0, 2.0]
        assert tec.temperature_c == pytest.approx(26.12)


def test_ted_pid_current_limit_window_and_autotune_strings():
    """Series 4000 reference: SOUR:TEMP:LCON:GAIN|INT|DER|PER, SOUR:TEMP:ATUN:INIT|CANC and
    ATUN:STAT? (state,phase,loop), SOUR:CURR:LIM, the window, STAT:MEAS:COND?, MEAS:CURR|VOLT?."""
    exchanges = [
        *TED_OPEN,
        *checked("SOUR:TEMP:LCON:GAIN 2.5", THORLABS_OK),
        *checked("SOUR:TEMP:LCON:INT 0.25", THORLABS_OK),
        *checked("SOUR:TEMP:LCON:DER 0", THORLABS_OK),
        *checked("SOUR:TEMP:LCON:PER 4", THORLABS_OK),
        ("SOUR:TEMP:LCON:GAIN?", "2.500000E+00"),
        ("SOUR:TEMP:LCON:INT?", "2.500000E-01"),
        ("SOUR:TEMP:LCON:DER?", "0.000000E+00"),
        ("SOUR:TEMP:LCON:PER?", "4.000000E+00"),
        *checked("SOUR:CURR:LIM 2.0000", THORLABS_OK),
        ("SOUR:CURR:LIM?", "2.000000E+00"),
        *checked("SOUR:TEMP:ATUN:INIT", THORLABS_OK),
        ("SOUR:TEMP:ATUN:STAT?", "1,0,0"),
        *checked("SOUR:TEMP:ATUN:CANC", THORLABS_OK),
        *checked("SOUR:TEMP:PROT:WIND 0.5000", THORLABS_OK),
        *checked("SOUR:TEMP:PROT:DEL 2.000", THORLABS_OK),
        *checked("SOUR:TEMP:PROT 1", THORLABS_OK),
        ("STAT:MEAS:COND?", "512"),
        ("MEAS:CURR?", "1.250000E+00"),
        ("MEAS:VOLT?", "1.250000E+00"),
        ("MEAS:RES?", "1.000000E+04"),
    ]
    with expected_protocol(ThorlabsTed4015, exchanges) as tec:
        tec.configure_pid(2.5, 0.25, 0.0, period_s=4.0)
        assert tec.pid == PidSettings(2.5, 0.25, 0.0, 4.0)
        tec.current_limit_a = 2.0
        assert tec.current_limit_a == 2.0
        tec.start_autotune()
        assert tec.autotune_state() == "running"
        tec.cancel_autotune()
        tec.configure_window(0.5, 2.0, protection=True)
        condition = tec.condition
        assert condition["window_failure"] and not condition["tec_open"]
        assert (tec.tec_current_a, tec.tec_voltage_v) == (1.25, 1.25)
        assert tec.sensor_resistance_ohm == 1e4


def test_ted_current_limit_soft_limit_and_interlock():
    """``max_current_a`` bounds the limit a driver sets, and a limit left above it (by *RST)
    keeps the output from switching on; the instrument's own 0–15 A range is checked too."""
    limits = TecLimits(max_current_a=3.0)
    exchanges = [*TED_OPEN, ("SOUR:CURR:LIM?", "1.000000E+01")]
    with expected_protocol(ThorlabsTed4015, exchanges, limits=limits) as tec:
        with pytest.raises(SafetyLimitError, match="current_limit_a = 4 A is above the soft"):
            tec.current_limit_a = 4.0
        with pytest.raises(SafetyLimitError, match="cannot switch output on"):
            tec.on()
    with (
        expected_protocol(ThorlabsTed4015, TED_OPEN) as tec,
        pytest.raises(InputError, match="outside the range of this thorlabs-ted4015"),
    ):
        tec.current_limit_a = 16.0
    with (
        expected_protocol(ThorlabsTed4015, TED_OPEN) as tec,
        pytest.raises(InputError, match="outside the range"),
    ):
        tec.configure_pid(-1.0, 0.1, 0.0)


def test_ted_soft_limit_refuses_before_anything_is_sent():
    with (
        expected_protocol(ThorlabsTed4015, TED_OPEN, limits=TecLimits(min_c=15, max_c=60)) as tec,
        pytest.raises(SafetyLimitError, match="above the soft limit 60"),
    ):
        tec.setpoint_c = 61
    with (
        expected_protocol(ThorlabsTed4015, TED_OPEN) as tec,
        pytest.raises(InputError, match="outside the range of this thorlabs-ted4015"),
    ):
        tec.setpoint_c = 150


def test_ted_safe_state_ramps_to_safe_setpoint_on_close():
    exchanges = [
        *TED_OPEN,
        ("SOUR:TEMP?", "4.000000E+01"),
        *checked("SOUR:TEMP 30.000", THORLABS_OK),
        *checked("SOUR:TEMP 25.000", THORLABS_OK),
    ]
    limits = TecLimits(max_step_c=10, safe_state="setpoint", safe_setpoint_c=25.0)
    with expected_protocol(ThorlabsTed4015, exchanges, safe_on_close=True, limits=limits) as tec:
        tec.sleep = lambda s: None


def test_ted_safe_state_off():
    exchanges = [*TED_OPEN, *checked("OUTP 0", THORLABS_OK)]
    limits = TecLimits(safe_state="off")
    with expected_protocol(ThorlabsTed4015, exchanges, safe_on_close=True, limits=limits):
        pass


def test_ted_interrupted_safe_ramp_switches_the_output_off():
    exchanges = [
        *TED_OPEN,
        ("SOUR:TEMP?", "6.000000E+01"),
        *checked("SOUR:TEMP 50.000", THORLABS_OK),
        *checked("OUTP 0", THORLABS_OK),
    ]

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    limits = TecLimits(max_step_c=10, safe_state="setpoint", safe_setpoint_c=25.0)
    with expected_protocol(ThorlabsTed4015, exchanges, limits=limits) as tec:
        tec.sleep = interrupted
        with pytest.raises(KeyboardInterrupt):
            tec.safe_shutdown()


def test_close_with_a_dead_link_does_not_raise_or_hang(caplog):
    exchanges = [*SANTEC_OPEN, (":POW:STAT 0", VisaIOError(StatusCode.error_timeout))]
    with expected_protocol(SantecTsl570, exchanges, safe_on_close=True) as laser:
        pass
    assert not laser.is_open
    assert "safe state on close failed" in caplog.text
