"""The PM100D simulator's commands added for the ThorlabsPM100 driver, pinned in the manual's
syntax (PM100D manual §6.4 / Thorlabs PMxxx SCPI reference: short and long forms, optional
nodes, MIN|MAX|DEF, error answers). docs/instrument-sim.md, "PM100D: the full tree"."""

from __future__ import annotations

import math

import pytest

from lumina_hal.sim.scpi.pm100d import ThorlabsPm100d

OK = '+0,"No error"'


def _run(model: ThorlabsPm100d, exchanges: list[tuple[str, str | None]]) -> None:
    for command, reply in exchanges:
        assert model.process(command) == reply, command
        assert model.process("SYST:ERR?") == OK, command


def test_photodiode_response_delta_mode_and_current_range():
    pm = ThorlabsPm100d()
    _run(pm, [
        ("SENS:CORR:POW:PDIO:RESP 0.5", None), ("CORR:POW?", "5.000000E-01"),
        ("SENSE:CORRECTION:POWER:PDIODE:RESPONSE? DEF", "1.000000E+00"),
        ("POW:REF 2E-6", None), ("POW:REF?", "2.000000E-06"), ("POW:REF:STAT ON", None),
        ("POW:REF:STAT?", "1"), ("SENS1:POW:DC:REF? MAX", "1.000000E-01"),
        ("CURR:REF 1E-7", None), ("CURR:DC:REF:STAT 1", None), ("CURR:REF?", "1.000000E-07"),
        ("CURR:RANG:AUTO 0", None), ("POW:RANG:AUTO?", "0"),
        ("CURR:RANG 5E-6", None), ("POW:RANG?", "1.000000E-05"),  # 5 µA / 0.5 A/W → 10 µW
        ("CURR:RANG?", "5.000000E-06"), ("CURR:DC:RANG:UPP? MIN", "5.000000E-09"),
        ("FREQ:RANG?", "1.000000E+05"), ("SENS:FREQ:RANG:LOW?", "0.000000E+00"),
        ("CORR:COLL:ZERO:ABOR", None), ("INP:PDIO:FILT:LPAS:STAT 1", None), ("INP:FILT?", "1"),
    ])  # fmt: skip
    assert (pm.power_delta, pm.current_delta, pm.responsivity_a_w) == (True, True, 0.5)


def test_configurations_measure_what_they_name():
    pm = ThorlabsPm100d(dark_power_w=0.0)
    pm.input_power_w = 1e-3
    _run(pm, [("CONF:CURR", None), ("CONF?", "CURR"), ("CONF:SCAL:PDEN", None),
              ("CONF?", "PDEN"), ("CONF:POW", None), ("CONF?", "POW")])
    assert float(pm.process("MEAS:CURR?")) == pytest.approx(1e-3)  # 1 A/W
    assert pm.process("CONF?") == "CURR"  # MEAS:<q>? is CONF:<q>;READ?
    pm.beam_diameter_mm = 1.0
    assert float(pm.process("MEAS:PDEN?")) == pytest.approx(1e-3 / (math.pi * 0.05**2))
    assert float(pm.process("MEAS:FREQ?")) == 0.0  # CW light
    assert float(pm.process("MEAS:POW?")) == pytest.approx(1e-3)


def test_system_display_calibration_and_status_registers():
    pm = ThorlabsPm100d()
    _run(pm, [
        ("CAL:STR?", '"05-JUN-2023"'), ("SYST:VERS?", "1999.0"),
        ("SYST:BEEP:STAT OFF", None), ("SYST:BEEP:STAT?", "0"), ("SYST:BEEP", None),
        ("SYST:LFR 60", None), ("SYST:LFR?", "60"),
        ("SYST:DATE 2026,12,2", None), ("SYST:DATE?", "2026,12,2"),
        ("SYST:TIME 12,30,5", None), ("SYST:TIME?", "12,30,5"),
        ("DISP:BRIG 0.25", None), ("DISP:BRIG?", "2.500000E-01"),
        ("DISP:CONT 0.75", None), ("DISP:CONT?", "7.500000E-01"),
        ("INP:ADAP PHOT", None), ("INP:ADAP:TYPE?", "PHOT"),
        ("STAT:MEAS:ENAB 8", None), ("STAT:AUX:PTR 4", None), ("STAT:QUES:NTR 16", None),
        ("STAT:MEAS:ENAB?", "8"), ("STAT:PRES", None), ("STAT:MEAS:ENAB?", "0"),
        ("STAT:AUX:PTR?", "32767"), ("STAT:QUES:NTR?", "0"), ("STAT:AUX:COND?", "0"),
    ])  # fmt: skip


@pytest.mark.parametrize(("command", "code"), [
    ("SYST:LFR 55", -224), ("SYST:DATE 2026", -109), ("DISP:BRIG 2", -222),
    ("INP:ADAP:TYPE LASER", -224), ("MEAS:ENER?", -221), ("CONF:TEMP", -221),
    ("MEAS:VOLT?", -221), ("SENS:ENER:RANG?", -221), ("INP:THER:ACC:TAU?", -221),
    ("SENS:CORR:ENER:PYRO:RESP?", -221), ("SENS:PEAK:THR 50", -221),
    ("SENS:POW:REF:VAL?", -113), ("STAT:QUES:PRES", -113), ("CORR:POW:PDIO:RESP 1E6", -222),
])  # fmt: skip
def test_refusals_answer_like_the_instrument(command, code):
    pm = ThorlabsPm100d()
    pm.process(command)
    assert pm.process("SYST:ERR?").startswith(f"{code},"), command
