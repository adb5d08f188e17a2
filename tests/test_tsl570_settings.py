"""TSL-570 settings beyond the role: frequency, fine tuning, attenuation/APC, shutter, interlock,
power unit — the simulator against the manual's syntax (docs/instrument-sim.md), the driver's exact
strings and its safety gate (docs/instruments.md §4), and the driver on the simulator over TCP."""

from __future__ import annotations

import math

import pytest

import lumina_hal
from lumina_hal.bench.limits import LaserLimits
from lumina_hal.drivers.instruments.santec_tsl570 import SantecTsl570
from lumina_hal.errors import InputError, SafetyLimitError
from lumina_hal.sim.scpi.server import ScpiTcpServer
from lumina_hal.sim.scpi.tsl570 import SantecTsl570 as SimTsl570
from lumina_hal.testing.expected_protocol import expected_protocol

C = 299_792_458.0
OK = (":SYST:ERR?", '0,"No error"')
OPEN = [
    ("*IDN?", "SANTEC,TSL-570,00001,0026.0026.0011"), OK,
    (":SYST:COMM:COD 1", None), OK,
    (":POW:UNIT 0", None), OK,
    (":WAV? MIN", "+1.48000000E-006"), (":WAV? MAX", "+1.64000000E-006"),
    (":POW? MIN", "-1.50000000E+001"), (":POW? MAX", "+1.30000000E+001"),
]  # fmt: skip


def drain(model: SimTsl570) -> list[int]:
    codes = []
    while (code := int(model.process(":SYST:ERR?").split(",")[0])) != 0:
        codes.append(code)
    return codes


# -- the simulator ---------------------------------------------------------------------------


def test_sim_fine_tuning_range_format_and_effect() -> None:
    model = SimTsl570()
    model.process(":WAV 1550nm;:WAV:FIN 12.346")
    assert model.process(":WAV:FIN?") == "+1.23500000E+001"  # 0.01 steps, NR3 in SCPI mode
    assert model.process(":WAV:FIN? MIN;:WAV:FIN? MAX") == "-1.00000000E+002;+1.00000000E+002"
    assert model.emitted_wavelength_nm == pytest.approx(1550.0 + 12.35 * 1e-4)
    assert model.process(":WAV?") == "+1.55000000E-006"  # the setpoint does not move
    model.process(":WAV:FIN 100.01")
    model.process(":WAV:FIN -100.01")
    assert drain(model) == [-222, -222]
    model.process(":WAVelength:FINetuning:DISable")
    assert float(model.process(":WAV:FIN?")) == 0.0
    assert model.emitted_wavelength_nm == 1550.0
    model.process(":WAV:FIN -50;:WAV 1560nm")  # a new wavelength ends fine tuning
    assert float(model.process(":WAV:FIN?")) == 0.0
    model.process(":SYST:COMM:COD 0;:WAV:FIN -7.5")
    assert model.process(":WAV:FIN?") == "-7.50"  # Legacy: plain decimals


def test_sim_interlock_refuses_output_with_an_execution_error() -> None:
    model = SimTsl570()
    model.interlock_locked = True
    model.process(":POW:STAT 1")
    assert drain(model) == [-221]
    assert model.process(":POW:STAT?;:SYST:LOCK?") == "+0;+1"
    model.interlock_locked = False
    model.process(":POW:STAT 1")
    assert model.process(":POW:STAT?") == "+1" and drain(model) == []


def test_sim_frequency_in_hz_and_thz_and_its_range() -> None:
    model = SimTsl570()
    model.process(":FREQ 193.5THZ")
    assert model.wavelength_nm == pytest.approx(C / 193.5e12 * 1e9, abs=1e-4)
    assert float(model.process(":FREQ?")) == pytest.approx(193.5e12, abs=10e6)
    assert float(model.process(":FREQ? MIN")) == pytest.approx(C / 1640e-9, abs=1e6)  # NR3: 1 MHz
    model.process(":FREQ 250THZ")
    assert drain(model) == [-222]
    model.process(":SYST:COMM:COD 0;:FREQ 190")  # Legacy: THz
    assert model.process(":FREQ?") == "190.00000"


def test_sim_attenuation_and_apc_set_the_emitted_power() -> None:
    model = SimTsl570()
    model.process(":POW 2;:POW:STAT 1;:POW:ATT 5")
    assert model.emitted_power_dbm == 2.0  # APC holds the setpoint
    model.process(":POW:ATT:AUT 0")
    assert model.emitted_power_dbm == pytest.approx(13.0 - 5.0)  # full power minus attenuation
    model.process(":POW:ATT 30.01;:POW:ATT -1")
    assert drain(model) == [-222, -222]
    model.process(":POW:UNIT 1")
    assert float(model.process(":POW:ACT?")) == pytest.approx(10 ** 0.8)  # mW


# -- the driver's strings and gate ------------------------------------------------------------


def test_driver_sends_the_manual_strings_for_each_setting() -> None:
    exchanges = [
        *OPEN,
        (":FREQ 1.93500000E+14", None), OK,
        (":FREQ?", "+1.93500000E+014"),
        (":WAV?", "+1.54932846E-006"), (":WAV:FIN -12.50", None), OK,  # setpoint, then offset
        (":WAV?", "+1.54932846E-006"), (":WAV:FIN:DIS", None), OK,
        (":WAV:UNIT 1", None), OK,
        (":POW:UNIT 1", None), OK,
        (":POW 2.0000E+00", None), OK,  # 3.01 dBm, sent in mW
        (":POW?", "+2.00000000E+000"),
        (":POW:ACT?", "+1.00000000E+000"),
        (":SYST:LOCK?", "+1"),
    ]  # fmt: skip
    with expected_protocol(SantecTsl570, exchanges) as laser:
        laser.frequency_thz = 193.5
        assert laser.frequency_thz == pytest.approx(193.5, abs=1e-9)
        laser.fine_tuning = -12.5
        laser.disable_fine_tuning()
        laser.display_unit = "THz"
        laser.power_unit = "mW"
        laser.power_dbm = 10 * math.log10(2.0)
        assert laser.power_dbm == pytest.approx(3.0103, abs=1e-4)
        assert laser.monitor_power_dbm() == pytest.approx(0.0)
        assert laser.interlock_open is True


def test_frequency_is_gated_by_the_wavelength_window() -> None:
    limits = LaserLimits(min_wavelength_nm=1540.0, max_wavelength_nm=1560.0)
    exchanges = [*OPEN, (":WAV?", "+1.55000000E-006")]  # the setpoint a fine tuning moves
    with expected_protocol(SantecTsl570, exchanges, limits=limits) as laser:
        with pytest.raises(SafetyLimitError, match="wavelength_nm"):
            laser.frequency_thz = 190.0  # 1577.8 nm: outside the window, nothing sent
        with pytest.raises(SafetyLimitError):
            laser._frequency_nm = 1600.0  # the private path too
        with pytest.raises(InputError):
            laser.fine_tuning = 100.5  # outside the manual's range
        with pytest.raises(InputError):
            laser.power_unit = "W"


def test_attenuation_and_manual_mode_cannot_exceed_the_power_limit() -> None:
    limits = LaserLimits(max_power_dbm=10.0)
    exchanges = [
        *OPEN,
        (":POW:ATT 3.00", None), OK,  # 13 - 3 = 10 dBm: at the limit
        (":POW:ATT?", "+2.00000000E+000"),  # left at 2 dB by another client
    ]
    with expected_protocol(SantecTsl570, exchanges, limits=limits) as laser:
        with pytest.raises(SafetyLimitError, match="attenuated_power_dbm"):
            laser.attenuation_db = 2.0  # would emit 11 dBm in manual mode
        laser.attenuation_db = 3.0
        with pytest.raises(SafetyLimitError, match="cannot switch manual_attenuation on"):
            laser.auto_power_control = False  # reads :POW:ATT? = 2 dB -> 11 dBm: refused
        with pytest.raises(InputError):
            laser._attenuation_db = 20.0  # no private way around the gate


def test_rounding_of_the_attenuation_is_checked_as_sent() -> None:
    # 2.993 dB emits 10.007 dBm, inside a 10.008 dBm limit; the 0.01 dB step sends 2.99 dB,
    # which would emit 10.01 dBm: refused, nothing sent.
    limits = LaserLimits(max_power_dbm=10.008)
    with (
        expected_protocol(SantecTsl570, OPEN, limits=limits) as laser,
        pytest.raises(SafetyLimitError, match="as sent"),
    ):
        laser.attenuation_db = 2.993


def test_opening_the_shutter_is_interlocked_like_the_output() -> None:
    limits = LaserLimits(max_power_dbm=10.0)
    exchanges = [
        *OPEN,
        (":POW?", "+1.20000000E+001"),  # the setpoint is above the limit
    ]
    with (
        expected_protocol(SantecTsl570, exchanges, limits=limits) as laser,
        pytest.raises(SafetyLimitError, match="cannot switch shutter_open on"),
    ):
        laser.shutter_open = True


def test_manual_mode_emitting_too_much_blocks_the_output() -> None:
    limits = LaserLimits(max_power_dbm=10.0)
    exchanges = [
        *OPEN,
        (":POW?", "+0.00000000E+000"),  # the setpoint is fine ...
        (":POW:ATT:AUT?", "+0"),  # ... but manual mode ...
        (":POW:ATT?", "+0.00000000E+000"),  # ... at 0 dB emits the full 13 dBm
    ]
    with (
        expected_protocol(SantecTsl570, exchanges, limits=limits) as laser,
        pytest.raises(SafetyLimitError, match="emitted_power_dbm"),
    ):
        laser.on()


# -- the driver on the simulator --------------------------------------------------------------


def test_driver_on_the_simulator_settings_round_trip() -> None:
    model = SimTsl570()
    model.time_scale = 0.0
    with ScpiTcpServer(model) as server, lumina_hal.open_instrument(
        f"visa://{server.resource}?model=santec-tsl570&backend=@py",
        limits={"max_power_dbm": 10.0, "min_wavelength_nm": 1500.0, "max_wavelength_nm": 1600.0},
    ) as laser:
        laser.frequency_thz = 194.0
        assert laser.wavelength_nm == pytest.approx(C / 194e12 * 1e9, abs=1e-4)
        assert laser.frequency_thz == pytest.approx(194.0, abs=1e-5)
        laser.fine_tuning = 25.0
        assert laser.fine_tuning == 25.0
        laser.disable_fine_tuning()
        assert laser.fine_tuning == 0.0
        laser.power_unit = "mW"
        laser.power_dbm = 3.0
        assert model.power_dbm == pytest.approx(3.0, abs=0.01)
        assert laser.power_dbm == pytest.approx(3.0, abs=0.01)
        laser.on()
        assert laser.monitor_power_dbm() == pytest.approx(3.0, abs=0.01)
        laser.attenuation_db = 4.0
        laser.auto_power_control = False
        assert model.emitted_power_dbm == pytest.approx(9.0)
        laser.shutter_open = False
        assert model.shutter_closed and model.emitted_power_dbm is None
        laser.shutter_open = True
        laser.off()
        model.interlock_locked = True
        assert laser.interlock_open
        with pytest.raises(SafetyLimitError, match="interlock"):
            laser.on()
        assert not model.output_on
        model.interlock_locked = False
        snapshot = laser.snapshot()["settings"]
        assert snapshot["power_unit"] == "mW" and snapshot["auto_power_control"] is False
        assert snapshot["attenuation_db"] == 4.0 and snapshot["shutter_open"] is True
        laser.power_unit = "dBm"
        assert laser.power_dbm == pytest.approx(3.0, abs=0.01)



def test_a_power_in_the_other_unit_cannot_be_sent() -> None:
    # A dBm number sent while the laser is in mW (or the reverse) would set another power:
    # "5.00" in mW mode is 7 dBm. The private attribute of the other unit refuses it.
    exchanges = [*OPEN, (":POW:UNIT 1", None), OK]
    with expected_protocol(SantecTsl570, exchanges) as laser:
        laser.power_unit = "mW"
        with pytest.raises(InputError, match="power unit is mW"):
            laser._power_dbm = 5.0


# -- fine tuning bounded by the wavelength window (docs/safety.md, "tuned_wavelength_nm") -----


def test_fine_tuning_cannot_carry_the_light_outside_the_wavelength_window() -> None:
    """The gated quantity is the resulting wavelength, setpoint + offset; the simulator's
    emitted wavelength (its own scale, ±100 units = ±10 pm) is the independent check."""
    model = SimTsl570()
    model.time_scale = 0.0
    window = {"min_wavelength_nm": 1500.0, "max_wavelength_nm": 1600.0}
    with ScpiTcpServer(model) as server, lumina_hal.open_instrument(
        f"visa://{server.resource}?model=santec-tsl570&backend=@py", limits=window
    ) as laser:
        for setpoint_nm, outside, inside in [(1599.995, 100.0, 40.0), (1500.005, -100.0, -40.0)]:
            laser.wavelength_nm = setpoint_nm
            with pytest.raises(SafetyLimitError, match="tuned_wavelength_nm"):
                laser.fine_tuning = outside  # 5 pm beyond the window: nothing sent
            assert model.fine_tuning == 0.0
            laser.fine_tuning = inside
            assert model.fine_tuning == inside
            emitted_nm = model.emitted_wavelength_nm
            assert 1500.0 <= emitted_nm <= 1600.0
            assert emitted_nm == pytest.approx(setpoint_nm + inside * 1e-4, abs=1e-9)
            laser.disable_fine_tuning()
            assert model.emitted_wavelength_nm == pytest.approx(setpoint_nm, abs=1e-9)
        with pytest.raises(InputError, match="read-only"):
            laser._fine_tuning = 100.0  # no private path around the gate
        assert model.fine_tuning == 0.0


def test_fine_tuning_is_checked_again_as_sent() -> None:
    # 99.9951 gives 1599.99999951 nm, inside a window ending at 1599.9999996 nm; the wire
    # carries 0.01 steps, "100.00" = 1600.0 nm, outside: refused, nothing sent.
    limits = LaserLimits(min_wavelength_nm=1500.0, max_wavelength_nm=1599.9999996)
    exchanges = [*OPEN, (":WAV?", "+1.59999000E-006"), (":WAV?", "+1.59999000E-006"),
                 (":WAV:FIN 99.99", None), OK]  # fmt: skip
    with expected_protocol(SantecTsl570, exchanges, limits=limits) as laser:
        with pytest.raises(SafetyLimitError, match="as sent"):
            laser.fine_tuning = 99.9951
        laser.fine_tuning = 99.994  # 1599.9999994 nm, sent as 99.99: inside
