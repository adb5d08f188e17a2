"""The Keysight 8164B SCPI model against docs/instrument-sim.md ("Keysight 8164B") and the
8163A/B/8164A/B programming guide's syntax; and the lab's PyMeasure driver against it."""

from __future__ import annotations

import math
import struct

import pytest

from lumina_hal.sim.scpi.keysight8164b import Keysight8164B
from lumina_hal.sim.scpi.params import format_nr3


def drain(instrument: Keysight8164B) -> list[int]:
    codes = []
    while (code := int(instrument.process("SYST:ERR?").split(",")[0])) != 0:
        codes.append(code)
    return codes


@pytest.fixture
def mainframe() -> Keysight8164B:
    return Keysight8164B()


def test_identity_terminations_and_number_forms(mainframe: Keysight8164B) -> None:
    assert mainframe.process("*IDN?") == "Keysight Technologies,8164B,MY48100000,V5.25(72637)"
    assert Keysight8164B.read_termination == Keysight8164B.write_termination == "\n"
    assert mainframe.process("SYST:ERR?") == '+0,"No error"'
    assert mainframe.process("SOUR0:POW:STAT?;UNIT?") == "+0;+0"  # signed integers
    assert mainframe.process("SOUR0:WAV?") == "+1.55000000E-006"  # NR3, metres
    assert Keysight8164B(vendor="Agilent Technologies").process("*IDN?").startswith("Agilent")


def test_wavelength_set_in_any_unit_reads_back_in_metres(mainframe: Keysight8164B) -> None:
    for text, nm in [("1560NM", 1560.0), ("1.5612UM", 1561.2), ("1.55E-6", 1550.0),
                     ("1550123.4PM", 1550.1234), ("1561.25nm", 1561.25)]:  # fmt: skip
        mainframe.process(f"SOUR0:WAV {text}")
        assert float(mainframe.process("SOUR0:WAV?")) == pytest.approx(nm * 1e-9, rel=1e-12)
    assert mainframe.process("SOUR0:WAV? MIN;WAV? MAX") == "+1.46000000E-006;+1.64000000E-006"
    mainframe.process("SOUR0:WAV 1700NM")
    mainframe.process("SOUR0:WAV 1550HZ")
    assert drain(mainframe) == [-222, -131]
    assert mainframe.wavelength_nm == pytest.approx(1561.25)


def test_slot_addressing(mainframe: Keysight8164B) -> None:
    """Slot 0 is the laser, slot 2 the sensor; no suffix addresses the module; other slots -113."""
    mainframe.process("SOURce0:CHANnel1:WAVelength 1555NM")
    assert mainframe.process("SOUR:WAV?;:SOUR0:CHAN1:WAV?") == "+1.55500000E-006;+1.55500000E-006"
    mainframe.process("SENS2:CHAN1:POW:WAV 1310NM")
    assert mainframe.process("SENS:POW:WAV?") == format_nr3(1310e-9)
    assert mainframe.process("SLOT0:IDN?").split(",")[1] == "81600B"
    assert mainframe.process("SLOT2:IDN?").split(",")[1] == "81634B"
    for wrong in ("SOUR1:WAV?", "SOUR0:CHAN2:WAV?", "SENS1:POW:WAV?", "SLOT1:IDN?",
                  "FETC0:POW?"):  # fmt: skip
        assert mainframe.process(wrong) is None
    assert drain(mainframe) == [-113] * 5


def test_power_setpoint_is_not_the_actual_power(mainframe: Keysight8164B) -> None:
    mainframe.process("SOUR0:POW 5DBM")
    assert float(mainframe.process("SOUR0:POW?")) == 5.0  # the setpoint, output off
    assert float(mainframe.process("SOUR0:POW:ACT?")) == -100.0  # nothing emitted
    mainframe.process("SOUR0:POW:STAT 1")
    assert float(mainframe.process("SOUR0:POW:ACT?")) == 5.0
    mainframe.process("SOUR0:WAV 1640NM")  # the band edge: the laser gives less
    available = 10.0 - 0.002 * (1640.0 - 1550.0) ** 2
    assert float(mainframe.process("SOUR0:POW:ACT?")) == pytest.approx(available)
    assert float(mainframe.process("SOUR0:POW?")) == 5.0


def test_power_units_and_limits(mainframe: Keysight8164B) -> None:
    mainframe.process("SOUR0:POW:UNIT W")
    assert mainframe.process("SOUR0:POW:UNIT?") == "+1"
    mainframe.process("SOUR0:POW 2MW")  # a suffix in the other unit
    assert float(mainframe.process("SOUR0:POW?")) == pytest.approx(2e-3, rel=1e-3)
    mainframe.process("SOUR0:POW 0.001")  # a bare number in the unit of POW:UNIT (W)
    assert mainframe.power_dbm == pytest.approx(0.0)
    mainframe.process("SOUR0:POW:UNIT 0;:SOUR0:POW -3000MDBM")
    assert mainframe.power_dbm == pytest.approx(-3.0)
    assert mainframe.process("SOUR0:POW? MIN;POW? MAX;POW? DEF") == (
        "-1.00000000E+001;+1.00000000E+001;+0.00000000E+000"  # DEF = (min + max) / 2
    )
    for bad in ("SOUR0:POW 11", "SOUR0:POW 0W", "SOUR0:POW 3V", "SOUR0:POW:UNIT 2"):
        mainframe.process(bad)
    assert drain(mainframe) == [-222, -222, -131, -224]


def test_lock_refuses_output_until_unlocked_with_the_pin(mainframe: Keysight8164B) -> None:
    mainframe.process("SOUR0:POW:STAT 1")
    mainframe.process("LOCK 1,1234")
    assert mainframe.process("LOCK?;:SOUR0:POW:STAT?") == "+1;+0"  # locking switches it off
    mainframe.process("SOUR0:POW:STAT 1")
    mainframe.process("LOCK 0,4321")  # the wrong PIN
    assert drain(mainframe) == [-221, -224]
    assert mainframe.process("SOUR0:POW:STAT?") == "+0"
    mainframe.process("*RST")  # a mainframe setting: *RST keeps the lock
    assert mainframe.process("LOCK?") == "+1"
    mainframe.process("LOCK 0,1234;:SOUR0:POW:STAT 1")
    assert mainframe.process("LOCK?;:SOUR0:POW:STAT?") == "+0;+1"
    mainframe.process("LOCK 1")
    assert drain(mainframe) == [-109]


def test_sensor_reads_its_input_in_its_unit_and_takes_its_averaging_time(
    mainframe: Keysight8164B,
) -> None:
    mainframe.input_power_w = 2.5e-4
    assert float(mainframe.process("READ2:CHAN1:POW?")) == pytest.approx(2.5e-4)
    mainframe.process("SENS2:POW:UNIT 0")
    assert float(mainframe.process("FETC2:POW?")) == pytest.approx(10 * math.log10(0.25))
    mainframe.process("SENS2:POW:ATIM 20MS")
    _, wait_s = mainframe.process_timed("READ2:POW?")
    assert wait_s == pytest.approx(0.02)
    mainframe.process("SENS2:POW:ATIM 20")
    assert drain(mainframe) == [-222]


def test_triggers_are_stored_in_short_form(mainframe: Keysight8164B) -> None:
    mainframe.process("TRIG0:OUTP STFinished;INP SWStart")
    assert mainframe.process("TRIG0:OUTP?;INP?") == "STF;SWS"
    mainframe.process("TRIG0:OUTP BOGUS")
    assert drain(mainframe) == [-224]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _block_float64(reply: str) -> list[float]:
    digits = int(reply[1])
    length = int(reply[2 : 2 + digits])
    payload = reply[2 + digits :].encode("latin-1")
    assert len(payload) == length
    return list(struct.unpack(f"<{length // 8}d", payload))


def test_sweep_settings_check_codes_and_refusals() -> None:
    mainframe = Keysight8164B(clock=FakeClock())
    mainframe.process("SOUR0:WAV:SWE:STAR 1560NM;STOP 1550NM")
    assert mainframe.process("SOUR0:WAV:SWE:CHEC?") == "368,End Wavelength <= Start Wavelength"
    mainframe.process("SOUR0:WAV:SWE 1")  # refused: the check fails
    assert mainframe.process("SOUR0:WAV:SWE?") == "+0"
    mainframe.process("SOUR0:WAV:SWE:STAR 1540NM;LLOG 1;MODE STEP")
    assert mainframe.process("SOUR0:WAV:SWE:CHEC?").startswith("376,")
    mainframe.process("SOUR0:WAV:SWE:MODE CONT")
    assert mainframe.process("SOUR0:WAV:SWE:CHEC?").startswith("375,")  # TRIG0:OUTP is DIS
    mainframe.process("TRIG0:OUTP STF")
    assert mainframe.process("SOUR0:WAV:SWE:CHEC?") == "0,OK"
    mainframe.process("SOUR0:WAV:SWE:SPE 300NM/S")
    mainframe.process("SOUR0:WAV:SWE:MODE FAST")
    assert drain(mainframe) == [-221, -222, -224]
    mainframe.process("SOUR0:WAV:SWE 1")
    mainframe.process("SOUR0:WAV:SWE:STAR 1545NM")  # settings are frozen while it runs
    mainframe.process("SOUR0:WAV 1555NM")
    assert drain(mainframe) == [-221, -221]


def test_continuous_sweep_moves_on_the_clock_and_logs_every_step() -> None:
    clock = FakeClock()
    mainframe = Keysight8164B(clock=clock)
    mainframe.process(
        "SOUR0:WAV:SWE:STAR 1550NM;STOP 1552NM;STEP 0.5NM;SPE 40NM/S;LLOG 1;:TRIG0:OUTP STF"
    )
    assert mainframe.process("SOUR0:WAV:SWE:EXP?") == "+5"
    mainframe.process("SOUR0:WAV:SWE 1")
    clock.now = 0.025  # 1 nm into a 2 nm, 50 ms sweep
    assert mainframe.emitted_wavelength_nm == pytest.approx(1551.0)
    assert mainframe.process("SOUR0:WAV:SWE?;:SOUR0:READ:POIN? LLOG") == "+1;+0"
    mainframe.process("SOUR0:WAV:SWE 2")  # pause
    clock.now = 10.0
    assert mainframe.process("SOUR0:WAV:SWE?") == "+2"
    assert mainframe.emitted_wavelength_nm == pytest.approx(1551.0)
    mainframe.process("SOUR0:WAV:SWE 1")  # resume: 25 ms left
    clock.now = 10.024
    assert mainframe.process("SOUR0:WAV:SWE?") == "+1"
    clock.now = 10.026
    assert mainframe.process("SOUR0:WAV:SWE?;:SOUR0:READ:POIN? LLOG") == "+0;+5"
    logged = _block_float64(mainframe.process("SOUR0:READ:DATA? LLOG"))
    assert logged == pytest.approx([1550e-9, 1550.5e-9, 1551e-9, 1551.5e-9, 1552e-9])
    assert mainframe.emitted_wavelength_nm == mainframe.wavelength_nm  # back to the setpoint


def test_two_way_stepped_and_manual_sweeps() -> None:
    clock = FakeClock()
    mainframe = Keysight8164B(clock=clock)
    mainframe.process("SOUR0:WAV:SWE:STAR 1550NM;STOP 1554NM;STEP 1NM;SPE 1NM/S;REP TWOW")
    mainframe.process("SOUR0:WAV:SWE 1")
    clock.now = 5.0  # one nm back from the stop
    assert mainframe.emitted_wavelength_nm == pytest.approx(1553.0)
    clock.now = 8.1
    assert mainframe.process("SOUR0:WAV:SWE?") == "+0"
    mainframe.process("SOUR0:WAV:SWE:REP ONEW;MODE STEP")
    mainframe.process("SOUR0:WAV:SWE 1")
    clock.now = 9.7  # 1.6 nm travelled: the stepped laser sits on the 1 nm step
    assert mainframe.emitted_wavelength_nm == pytest.approx(1551.0)
    mainframe.process("SOUR0:WAV:SWE 0;:SOUR0:WAV:SWE:MODE MAN;:SOUR0:WAV:SWE 1")
    mainframe.process("SOUR0:WAV:SWE:STEP:NEXT;NEXT;PREV")  # the path stays at ...:STEP
    assert mainframe.emitted_wavelength_nm == pytest.approx(1551.0)
    assert mainframe.process("SOUR0:WAV:SWE?") == "+1"  # a manual sweep runs until stopped
    assert drain(mainframe) == []
