"""The PyPI ``ThorlabsPM100`` driver (clade/ThorlabsPM100, VISA-wrapper metaclass) against our
PM100D simulator over loopback TCP, call by call.

Every public call of the driver (each attribute get, each set, each method) is listed in one of
four tables; a test checks that the tables cover exactly what the installed driver offers:

- ``GETS`` / ``SETS`` / ``METHODS``: calls that apply to a PM100D with a photodiode head. Each
  must leave the error queue empty and return (or set) what the model holds.
- ``OTHER_SENSORS``: calls for thermal, pyroelectric or energy heads. The simulator answers
  them like the instrument with a photodiode attached: -221 "Settings conflict".
- ``DRIVER_BUGS``: calls whose SCPI the driver builds wrongly; the simulator answers them as
  the manual's syntax makes a real PM100D answer, and the correct syntax is checked to work.

docs/instruments.md ("ThorlabsPM100 (PyPI) against the simulator"). CI installs the ``peers``
extra.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("ThorlabsPM100")
pytest.importorskip("pyvisa")

import pyvisa
from ThorlabsPM100 import ThorlabsPM100

from lumina_hal.sim.scpi.pm100d import (
    BEAM_MM,
    FREQUENCY_RANGE_HZ,
    LOSS_DB,
    OPER_DATA_READY,
    RESPONSE_A_W,
    ThorlabsPm100d,
)
from lumina_hal.sim.scpi.server import ScpiTcpServer

Model = ThorlabsPm100d


def driver_calls() -> set[str]:
    """Every public call of the installed driver: ``path (get)``, ``path (set)``, ``path()``."""
    calls: set[str] = set()

    def walk(group: Any, prefix: str) -> None:
        for name in group._subgroups:
            walk(getattr(group, name), f"{prefix}{name}.")
        for name in group._property_list:
            member = group.__dict__[name]
            path = prefix + name
            if not isinstance(member, property):
                calls.add(f"{path}()")
                continue
            settable_only = member.fget.__name__ == "<lambda>"  # the metaclass's set-only form
            if not settable_only:
                calls.add(f"{path} (get)")
            if member.fset is not None:
                calls.add(f"{path} (set)")

    walk(ThorlabsPM100, "")
    return calls


def _ranges(m: Model) -> tuple[float, ...]:
    return m._ranges()


#: Reads, with the value the model holds (read under its lock after the call).
GETS: dict[str, Callable[[Model], Any]] = {
    "calibration.string": lambda m: f'"{m.sensor.calibration}"',
    "system.sensor.idn": lambda m: m.sensor.idn(False),
    "system.version": lambda m: 1999.0,
    "system.error.next": lambda m: '+0,"No error"',
    "system.beeper.state": lambda m: int(m.beeper_on),
    "system.lfrequency": lambda m: m.line_frequency_hz,
    "system.date": lambda m: "{},{},{}".format(*m.date),
    "system.time": lambda m: "{},{},{}".format(*m.time_of_day),
    "display.brightness": lambda m: m.display_brightness,
    "display.contrast": lambda m: m.display_contrast,
    "read": lambda m: m.last_measurement_w,
    "fetch": lambda m: m.last_measurement_w,
    "getconfigure": lambda m: m.configuration,
    "input.pdiode.filter.lpass.state": lambda m: int(m.low_bandwidth),
    "sense.average.count": lambda m: m.average_count,
    "sense.correction.wavelength": lambda m: m.wavelength_nm,
    "sense.correction.minimum_wavelength": lambda m: m.sensor.wavelength_min_nm,
    "sense.correction.maximum_wavelength": lambda m: m.sensor.wavelength_max_nm,
    "sense.correction.beamdiameter": lambda m: m.beam_diameter_mm,
    "sense.correction.minimum_beamdiameter": lambda m: BEAM_MM.minimum,
    "sense.correction.maximum_beamdiameter": lambda m: BEAM_MM.maximum,
    "sense.correction.default_beamdiameter": lambda m: BEAM_MM.default,
    "sense.correction.loss.input.magnitude": lambda m: m.attenuation_db,
    "sense.correction.loss.input.minimum_magnitude": lambda m: LOSS_DB.minimum,
    "sense.correction.loss.input.maximum_magnitude": lambda m: LOSS_DB.maximum,
    "sense.correction.loss.input.default_magnitude": lambda m: LOSS_DB.default,
    "sense.correction.power.pdiode.response": lambda m: m.responsivity_a_w,
    "sense.correction.power.pdiode.minimum_response": lambda m: RESPONSE_A_W.minimum,
    "sense.correction.power.pdiode.maximum_response": lambda m: RESPONSE_A_W.maximum,
    "sense.correction.power.pdiode.default_response": lambda m: RESPONSE_A_W.default,
    "sense.correction.collect.zero.magnitude": lambda m: m.zero_w,
    "sense.correction.collect.zero.state": lambda m: 0,
    "sense.power.dc.unit": lambda m: "DBM" if m.unit_dbm else "W",
    "sense.power.dc.range.auto": lambda m: int(m.auto_range),
    "sense.power.dc.range.upper": lambda m: m.active_range_w,
    "sense.power.dc.range.minimum_upper": lambda m: _ranges(m)[0],
    "sense.power.dc.range.maximum_upper": lambda m: _ranges(m)[-1],
    "sense.power.dc.reference.state": lambda m: int(m.power_delta),
    "sense.power.dc.default_reference": lambda m: 0.0,
    "sense.power.dc.minimum_reference": lambda m: -_ranges(m)[-1],
    "sense.power.dc.maximum_reference": lambda m: _ranges(m)[-1],
    "sense.current.dc.range.auto": lambda m: int(m.auto_range),
    "sense.current.dc.range.upper": lambda m: m.active_range_w * m.responsivity_a_w,
    "sense.current.dc.range.minimum_upper": lambda m: _ranges(m)[0] * m.responsivity_a_w,
    "sense.current.dc.range.maximum_upper": lambda m: _ranges(m)[-1] * m.responsivity_a_w,
    "sense.current.dc.reference.state": lambda m: int(m.current_delta),
    "sense.current.dc.default_reference": lambda m: 0.0,
    "sense.current.dc.minimum_reference": lambda m: -1.0,
    "sense.current.dc.maximum_reference": lambda m: 1.0,
    "sense.frequency.range.lower": lambda m: FREQUENCY_RANGE_HZ[0],
    "sense.frequency.range.upper": lambda m: FREQUENCY_RANGE_HZ[1],
    **{
        f"status.{reg}.{field}": (lambda m, reg=reg, field=field: getattr(_reg(m, reg), field))
        for reg in ("operation", "questionable", "measurement", "auxillary")
        for field in ("condition", "enable", "ptransition", "ntransition")
    },
    # the bits latched before the call (the conditions the test sets below); reading clears
    "status.operation.event": lambda m: 0,
    "status.questionable.event": lambda m: 0,
    "status.measurement.event": lambda m: 4 if m.measurement.event == 0 else -1,
    "status.auxillary.event": lambda m: 2 if m.auxiliary.event == 0 else -1,
}


def _reg(m: Model, name: str) -> Any:
    return getattr(m, "auxiliary" if name == "auxillary" else name)


#: Sets: the value sent, and where the model keeps it (attribute, value held).
SETS: dict[str, tuple[Any, str, Any]] = {
    "system.beeper.state": (0, "beeper_on", False),
    "system.lfrequency": (60, "line_frequency_hz", 60.0),
    "display.brightness": (0.8, "display_brightness", 0.8),
    "display.contrast": (0.3, "display_contrast", 0.3),
    "input.adapter.type": ("PHOTodiode", "adapter_type", "PHOT"),
    "input.pdiode.filter.lpass.state": (1, "low_bandwidth", True),
    "sense.average.count": (20, "average_count", 20),
    "sense.correction.wavelength": (1310, "wavelength_nm", 1310.0),
    "sense.correction.beamdiameter": (5.0, "beam_diameter_mm", 5.0),
    "sense.correction.loss.input.magnitude": (3.0, "attenuation_db", 3.0),
    "sense.correction.power.pdiode.response": (0.9, "responsivity_a_w", 0.9),
    "sense.power.dc.unit": ("DBM", "unit_dbm", True),
    "sense.power.dc.range.auto": (0, "auto_range", False),
    "sense.power.dc.range.upper": (1e-3, "range_w", 1e-3),
    "sense.power.dc.reference.state": (1, "power_delta", True),
    "sense.current.dc.range.auto": (0, "auto_range", False),
    "sense.current.dc.range.upper": (1e-4, "range_w", 1e-4),  # response 1 A/W: 100 µW
    "sense.current.dc.reference.state": (1, "current_delta", True),
    **{
        f"status.{reg}.{field}": (512, f"{_attr}.{field}", 512)
        for reg, _attr in (("operation", "operation"), ("questionable", "questionable"),
                           ("measurement", "measurement"), ("auxillary", "auxiliary"))
        for field in ("enable", "ptransition", "ntransition")
    },
}  # fmt: skip

#: Methods, with what the model shows afterwards.
METHODS: dict[str, Callable[[Model], bool]] = {
    "abort": lambda m: True,
    "initiate.immediate": lambda m: m.last_measurement_w is not None
    and bool(m.operation.condition & OPER_DATA_READY),
    "system.beeper.immediate": lambda m: True,
    "sense.correction.collect.zero.initiate": lambda m: m.zero_w == pytest.approx(m.dark_power_w),
    "sense.correction.collect.zero.abort": lambda m: True,
    **{
        f"configure.scalar.{name}": (lambda m, q=q: m.configuration == q
                                     and m.last_measurement_w is None)
        for name, q in (("power", "POW"), ("current.dc", "CURR"), ("pdensity", "PDEN"),
                        ("frequency", "FREQ"))
    },
    **{
        f"measure.scalar.{name}": (lambda m, q=q: m.configuration == q
                                   and m.last_measurement_w is not None)
        for name, q in (("power", "POW"), ("current.dc", "CURR"), ("pdensity", "PDEN"),
                        ("frequency", "FREQ"))
    },
}  # fmt: skip

_THERMAL = "thermal heads only (voltage of the thermopile)"
_PYRO = "pyroelectric (energy) heads only"
_NO_TEMP = "heads with a temperature sensor only (sensor flag 256; the S155C has none)"
_PRESENCE = "thermal heads' presence resistor [sim: refused for photodiodes]"
#: Calls for other sensor types: the driver's command and the simulator's answer (error code).
OTHER_SENSORS: dict[str, tuple[str, int]] = {
    **{f"{verb}.scalar.{name}()": (reason, -221)
       for verb in ("configure", "measure")
       for name, reason in (("voltage.dc", _THERMAL), ("energy", _PYRO), ("edensity", _PYRO),
                            ("temperature", _NO_TEMP), ("resistance", _PRESENCE))},
    **{f"sense.voltage.dc.{name} ({op})": (_THERMAL, -221)
       for name, ops in (("range.auto", "gs"), ("range.upper", "gs"), ("reference", "gs"),
                         ("range.minimum_upper", "g"), ("range.maximum_upper", "g"),
                         ("default_reference", "g"), ("minimum_reference", "g"),
                         ("maximum_reference", "g"))
       for op in (("get", "set") if ops == "gs" else ("get",))},
    "sense.voltage.dc.state (get)": (_THERMAL + "; and no VOLT:STAT node (VOLT:REF:STAT)", -113),
    "sense.voltage.dc.state (set)": (_THERMAL + "; and no VOLT:STAT node (VOLT:REF:STAT)", -113),
    **{f"sense.energy.{name} ({op})": (_PYRO, -221)
       for name, ops in (("range.upper", "gs"), ("reference.state", "gs"),
                         ("range.minimum_upper", "g"), ("range.maximum_upper", "g"),
                         ("default_reference", "g"), ("minimum_reference", "g"),
                         ("maximum_reference", "g"))
       for op in (("get", "set") if ops == "gs" else ("get",))},
    "sense.energy.reference.value (get)": (_PYRO + "; and no :VALue node", -113),
    "sense.energy.reference.value (set)": (_PYRO + "; and no :VALue node", -113),
    **{f"sense.peakdetector.{name} ({op})": ("energy mode of pyroelectric heads only", -221)
       for name, ops in (("threshold", "gs"), ("default_threshold", "g"),
                         ("minimum_threshold", "g"), ("maximum_threshold", "g"))
       for op in (("get", "set") if ops == "gs" else ("get",))},
    **{f"sense.correction.energy.pyro.{name} ({op})": (_PYRO, -221)
       for name, ops in (("response", "gs"), ("default_response", "g"),
                         ("minimum_response", "g"), ("maximum_response", "g"))
       for op in (("get", "set") if ops == "gs" else ("get",))},
    **{f"input.thermopile.accelerator.{name} ({op})": ("thermopile heads only", -221)
       for name, ops in (("state", "gs"), ("tau", "gs"), ("default_tau", "g"),
                         ("minimum_tau", "g"), ("maximum_tau", "g"))
       for op in (("get", "set") if ops == "gs" else ("get",))},
}  # fmt: skip

_NO_VALUE_NODE = (
    "the driver sends ':Reference:value', a node the manual does not have (the value is "
    "'<root>:REFerence <value>', read with 'REFerence?'): -113 Undefined header"
)
_TRIPLE = (
    "the driver's single <numeric> argument cannot carry 'y,m,d' / 'h,m,s' (a tuple raises "
    "'too much arguments', a string ValueError): one number is sent, -109 Missing parameter"
)
#: Calls the driver builds wrongly: reason, the simulator's answer to what it sends, and the
#: manual's syntax, checked to work.
DRIVER_BUGS: dict[str, tuple[str, int, str]] = {
    "sense.power.dc.reference.value (get)": (_NO_VALUE_NODE, -113, "SENS:POW:REF?"),
    "sense.power.dc.reference.value (set)": (_NO_VALUE_NODE, -113, "SENS:POW:REF 1E-6"),
    "sense.current.dc.reference.value (get)": (_NO_VALUE_NODE, -113, "SENS:CURR:REF?"),
    "sense.current.dc.reference.value (set)": (_NO_VALUE_NODE, -113, "SENS:CURR:REF 1E-6"),
    "status.questionable.preset()": (
        "SCPI's preset is STATus:PRESet (all registers); there is no QUES:PRES: -113",
        -113, "STAT:PRES",
    ),
    "system.date (set)": (_TRIPLE, -109, "SYST:DATE 2026,12,2"),
    "system.time (set)": (_TRIPLE, -109, "SYST:TIME 12,30,5"),
}


def _covered() -> set[str]:
    return (
        {f"{p} (get)" for p in GETS} | {f"{p} (set)" for p in SETS} | {f"{p}()" for p in METHODS}
        | set(OTHER_SENSORS) | set(DRIVER_BUGS)
    )


def test_the_tables_cover_every_public_call_of_the_installed_driver():
    calls = driver_calls()
    assert len(calls) > 150
    assert _covered() == calls, (sorted(calls - _covered()), sorted(_covered() - calls))
    assert not set(OTHER_SENSORS) & set(DRIVER_BUGS)


@pytest.fixture
def pm() -> Iterator[tuple[Any, Model]]:
    model = ThorlabsPm100d()
    with ScpiTcpServer(model) as server:
        rm = pyvisa.ResourceManager("@py")
        inst = rm.open_resource(
            server.resource, read_termination="\n", write_termination="\n", timeout=2000
        )
        try:
            yield ThorlabsPM100(inst=inst), model
        finally:
            inst.close()


def _member(driver: Any, path: str) -> tuple[Any, str]:
    *groups, name = path.split(".")
    for group in groups:
        driver = getattr(driver, group)
    return driver, name


def _no_errors(driver: Any, model: Model, call: str) -> None:
    driver._inst.query("*OPC?")  # a write's errors are queued before this answers
    with model.lock:
        assert len(model.engine.errors) == 0, f"{call}: {model.process('SYST:ERR?')}"


@pytest.mark.parametrize("path", sorted(GETS))
def test_every_applicable_read_returns_what_the_model_holds(pm, path):
    driver, model = pm
    with model.lock:
        model.input_power_w = 2.5e-5
        model.measurement.condition = 4  # bits a register read must show (no bits modelled)
        model.auxiliary.condition = 2
    if path == "fetch":
        driver.initiate.immediate()  # FETC? without INIT is -230, as on the instrument
    group, name = _member(driver, path)
    value = getattr(group, name)
    _no_errors(driver, model, path)
    with model.lock:
        expected = GETS[path](model)
    if isinstance(expected, float) and not isinstance(value, str):
        assert value == pytest.approx(expected, rel=1e-6, abs=1e-15), path
    else:
        assert value == expected, path


def test_readings_follow_the_configuration_and_the_delta_mode(pm):
    driver, model = pm
    with model.lock:
        model.input_power_w = 1e-4
        total_w = 1e-4 + model.dark_power_w
    assert driver.read == pytest.approx(total_w, rel=1e-6)
    driver.sense.correction.power.pdiode.response = 0.5
    driver.configure.scalar.current.dc()
    assert driver.getconfigure == "CURR"
    assert driver.read == pytest.approx(0.5 * total_w, rel=1e-6)  # A = W × A/W
    driver.sense.correction.beamdiameter = 2.0
    driver.measure.scalar.pdensity()
    assert driver.fetch == pytest.approx(total_w / (math.pi * 0.1**2), rel=1e-6)  # W/cm²
    driver.configure.scalar.power()
    driver._inst.write("SENS:POW:REF 1E-5")  # the manual's syntax (the driver's is -113)
    driver.sense.power.dc.reference.state = 1
    assert driver.read == pytest.approx(total_w - 1e-5, rel=1e-6)
    _no_errors(driver, model, "configure/measure/delta")


@pytest.mark.parametrize("path", sorted(SETS))
def test_every_applicable_setting_reaches_the_model_and_reads_back(pm, path):
    driver, model = pm
    value, attribute, held = SETS[path]
    group, name = _member(driver, path)
    setattr(group, name, value)
    _no_errors(driver, model, path)
    with model.lock:
        target = model
        *owners, last = attribute.split(".")
        for owner in owners:
            target = getattr(target, owner)
        assert getattr(target, last) == pytest.approx(held) if isinstance(held, float) else (
            getattr(target, last) == held
        ), path
    if path in GETS:  # settable and readable: the driver reads back what the model holds
        read = getattr(group, name)
        with model.lock:
            expected = GETS[path](model)
        assert read == (pytest.approx(expected) if isinstance(expected, float) else expected)
        if not isinstance(value, str):
            assert read == pytest.approx(value), path


@pytest.mark.parametrize("path", sorted(METHODS))
def test_every_applicable_method_acts_on_the_model(pm, path):
    driver, model = pm
    with model.lock:
        model.input_power_w = 1e-6
    group, name = _member(driver, path)
    getattr(group, name)()
    _no_errors(driver, model, path)
    with model.lock:
        assert METHODS[path](model), path


class Recorder:
    """A VISA stand-in that records what the driver sends (nothing reaches an instrument)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def write(self, command: str) -> None:
        self.sent.append(command)

    def query(self, command: str) -> str:
        self.sent.append(command)
        return "0"


def _sent_by(call: str) -> list[str]:
    recorder = Recorder()
    driver = ThorlabsPM100(inst=recorder)
    path = call.split(" ")[0].removesuffix("()")
    group, name = _member(driver, path)
    if call.endswith("()"):
        getattr(group, name)()
    elif call.endswith("(get)"):
        getattr(group, name)
    else:
        value = {"system.date (set)": 2026, "system.time (set)": 12}.get(call, 1)
        setattr(group, name, value)
    return recorder.sent


@pytest.mark.parametrize("call", sorted(OTHER_SENSORS))
def test_calls_for_other_sensor_types_are_answered_like_the_instrument(call):
    _, code = OTHER_SENSORS[call]
    model = ThorlabsPm100d()
    for command in _sent_by(call):
        model.process(command)
        assert model.process("SYST:ERR?").startswith(f"{code},"), (call, command)


@pytest.mark.parametrize("call", sorted(DRIVER_BUGS))
def test_driver_bugs_are_the_drivers_and_the_manual_syntax_works(call):
    _, code, manual = DRIVER_BUGS[call]
    model = ThorlabsPm100d()
    (command,) = _sent_by(call)
    model.process(command)
    assert model.process("SYST:ERR?").startswith(f"{code},"), (call, command)
    model.process(manual)
    assert model.process("SYST:ERR?") == '+0,"No error"', manual
