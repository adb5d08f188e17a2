"""Property-based fuzz of the bench side: bench files, limits, role setters, open_instrument.

Two properties (docs/safety.md): every failure is a LuminaError, and no write ever reaches the
instrument with a value outside the soft limits, whatever the value, the path or the order.
The instruments here are a recording fake that keeps the state the driver wrote.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lumina_hal
from lumina_hal.bench import load_bench_config, parse_bench_config
from lumina_hal.bench.limits import MAX_RAMP_POINTS, LaserLimits, TecLimits
from lumina_hal.drivers.instruments.santec_tsl570 import SantecTsl570
from lumina_hal.drivers.instruments.thorlabs_pm100d import ThorlabsPm100d
from lumina_hal.drivers.instruments.thorlabs_ted4015 import ThorlabsTed4015
from lumina_hal.errors import LuminaError, SafetyLimitError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

SECTION_KEYS = {
    "laser": ["uri", "max_power_dbm", "min_wavelength_nm", "max_wavelength_nm", "safe_state"],
    "tec": ["uri", "min_c", "max_c", "max_step_c", "step_interval_s", "safe_state",
            "safe_setpoint_c"],
    "power_meter": ["uri"],
    "chip": ["uri"],
}  # fmt: skip
URIS = [
    "mock://?rows=4&cols=4",
    "visa://TCPIP0::127.0.0.1::5000::SOCKET?model=santec-tsl570&backend=@sim",
    "visa://X?backend=defs.yaml@sim",
    "visa://X?backend=%zz@sim&backend=",
    "visa://?",
    "",
]
any_value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
    st.sampled_from([*URIS, "off", "setpoint", "warm", 1e-300, -0.0, 5e-324]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.builds(Fraction, st.integers(), st.integers(min_value=1)),
)
sections = st.dictionaries(
    st.one_of(st.sampled_from(list(SECTION_KEYS)), st.text(max_size=6)),
    st.one_of(
        st.dictionaries(
            st.one_of(st.sampled_from(sorted({k for v in SECTION_KEYS.values() for k in v})),
                      st.text(max_size=6)),
            any_value,
            max_size=6,
        ),
        any_value,
    ),
    max_size=4,
)


@FUZZ
@given(sections, st.dictionaries(st.sampled_from(["LUMINA_LASER", "LUMINA_TEC", "LUMINA_CHIP"]),
                                 st.sampled_from(URIS), max_size=2))
def test_any_bench_table_loads_or_raises_a_lumina_error(data, environ):
    try:
        config = parse_bench_config(data, Path("/fuzz/bench.toml"), environ)
    except LuminaError as exc:
        assert str(exc)
        return
    for limits in (config.laser_limits, config.tec_limits):
        for name in limits.number_fields:
            value = getattr(limits, name)
            assert value is None or (type(value) is float and math.isfinite(value))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(
            value
        ) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


toml_lines = st.lists(
    st.one_of(
        st.sampled_from([f"[{s}]" for s in SECTION_KEYS] + ["[bogus]", "[laser", "= 1", ""]),
        st.builds(
            lambda k, v: f"{k} = {_toml_value(v)}",
            st.sampled_from(sorted({k for v in SECTION_KEYS.values() for k in v})),
            st.one_of(st.floats(), st.integers(min_value=-(10**30), max_value=10**30),
                      st.booleans(), st.sampled_from([*URIS, "off", "setpoint"])),
        ),
        st.text(max_size=15),
    ),
    max_size=12,
)


@FUZZ
@given(toml_lines)
def test_any_bench_file_text_loads_or_raises_a_lumina_error(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("bench") / "bench.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    with contextlib.suppress(LuminaError):
        load_bench_config(path, environ={})


@FUZZ
@given(st.dictionaries(st.sampled_from([*SECTION_KEYS["tec"][1:], "bogus"]), any_value,
                       max_size=5))
def test_tec_limits_from_anything_are_valid_or_a_lumina_error(values):
    try:
        limits = TecLimits.from_mapping(values, "fuzz [tec]")
    except LuminaError:
        return
    if limits.max_step_c is not None and limits.min_c is not None and limits.max_c is not None:
        assert (limits.max_c - limits.min_c) / limits.max_step_c <= MAX_RAMP_POINTS


# --- the role API against a recording fake instrument ----------------------------------------


class RecordingInstrument:
    """A VisaResource that answers from a table and the state the driver wrote, and records
    every write after the open (``writes``)."""

    def __init__(self, answers: dict[str, str], state: dict[str, str], error_query: str) -> None:
        self.answers, self.state, self.error_query = answers, dict(state), error_query
        self.timeout: float | None = 2000.0
        self.writes: list[str] = []
        self.recording = False

    def write(self, message: str) -> int:
        if self.recording:
            self.writes.append(message)
        header, _, value = message.partition(" ")
        self.state[header] = value
        return len(message)

    def query(self, message: str) -> str:
        if message == self.error_query:
            return '0,"No error"'
        header = message[:-1] if message.endswith("?") else message
        if header in self.state:
            return self.state[header]
        return self.answers[message]

    def close(self) -> None:
        pass


def santec(limits: LaserLimits, setpoint_dbm: float) -> tuple[SantecTsl570, RecordingInstrument]:
    answers = {
        "*IDN?": "SANTEC,TSL-570,1,1", ":WAV? MIN": "1.48E-06", ":WAV? MAX": "1.64E-06",
        ":POW? MIN": "-15", ":POW? MAX": "13",
    }  # fmt: skip
    state = {":POW": f"{setpoint_dbm:.2f}", ":WAV": "1.55E-06", ":POW:STAT": "0",
             ":POW:ATT": "0", ":POW:ATT:AUT": "1", ":POW:SHUT": "1", ":SYST:LOCK": "0",
             ":POW:UNIT": "0"}  # fmt: skip
    resource = RecordingInstrument(answers, state, ":SYST:ERR?")
    laser = SantecTsl570("FAKE", resource=resource)
    laser.limits = limits
    laser.safe_on_close = False
    laser.open()
    resource.recording = True
    return laser, resource


laser_limits = st.builds(
    lambda p, lo, width: LaserLimits(max_power_dbm=p, min_wavelength_nm=lo,
                                     max_wavelength_nm=lo + width),
    st.floats(-15, 13), st.floats(1480, 1600), st.floats(0, 40),
)  # fmt: skip
LASER_PATHS = ["power_dbm", "power_w", "wavelength_nm", "output", "_power_dbm", "_wavelength_nm",
               "_output", "on", "off", "hook_power", "hook_output", "attenuation_db",
               "_attenuation_db", "auto_power_control", "_manual_attenuation", "shutter_open",
               "_shutter_open", "frequency_thz", "_frequency_nm", "power_unit", "_power_mw",
               "fine_tuning"]  # fmt: skip
laser_values = st.one_of(st.floats(-30, 30), st.floats(1e-9, 1.0), st.floats(1450, 1700),
                         st.floats(180, 205), st.sampled_from(["mW", "dBm"]), st.booleans(),
                         any_value)  # fmt: skip


def _apply(laser: SantecTsl570, path: str, value: Any) -> None:
    if path == "on":
        laser.on()
    elif path == "off":
        laser.off()
    elif path == "hook_power":
        laser._set_power_dbm(value)
    elif path == "hook_output":
        laser._set_output(value)
    else:
        setattr(laser, path, value)


@FUZZ
@given(laser_limits, st.floats(-15, 13),
       st.lists(st.tuples(st.sampled_from(LASER_PATHS), laser_values), min_size=1, max_size=8))
def test_no_write_ever_leaves_the_laser_limits(limits, setpoint_dbm, operations):
    laser, resource = santec(limits, setpoint_dbm)
    with contextlib.closing(laser):  # nothing left open for the exit hook
        for path, value in operations:
            before = len(resource.writes)
            try:
                _apply(laser, path, value)
            except LuminaError:
                assert len(resource.writes) == before, "a refused call wrote something"
        power_dbm = float(f"{setpoint_dbm:.2f}")  # as the laser holds it
        unit_mw, manual, attenuated_dbm = False, False, 13.0  # *RST state: APC, 0 dB
        setpoint_nm = 1550.0  # the fake's :WAV
        window = (limits.min_wavelength_nm - 1e-9, limits.max_wavelength_nm + 1e-9)
        for command in resource.writes:
            header, _, text = command.partition(" ")
            emitted_dbm = attenuated_dbm if manual else power_dbm
            if header == ":POW":
                power_dbm = 10 * math.log10(float(text)) if unit_mw else float(text)
                assert power_dbm <= limits.max_power_dbm + 1e-9  # as sent: rounding checked too
            elif header == ":POW:UNIT":
                unit_mw = text == "1"
            elif header == ":POW:ATT":
                attenuated_dbm = 13.0 - float(text)  # the laser's maximum minus attenuation
                assert attenuated_dbm <= limits.max_power_dbm + 1e-9
            elif command == ":POW:ATT:AUT 0":
                manual = True
                assert attenuated_dbm <= limits.max_power_dbm + 1e-9, "manual mode too bright"
            elif command == ":POW:ATT:AUT 1":
                manual = False
            elif header in (":WAV", ":FREQ"):
                nm = float(text) * 1e9 if header == ":WAV" else 299_792_458.0 / float(text) * 1e9
                assert window[0] <= nm <= window[1]
                setpoint_nm = nm
            elif header == ":WAV:FIN":  # the light: setpoint + 0.1 pm per unit (±100: ±10 pm)
                assert window[0] <= setpoint_nm + float(text) * 1e-4 <= window[1]
            elif command in (":POW:STAT 1", ":POW:SHUT 0"):
                assert emitted_dbm <= limits.max_power_dbm, f"{command} above the power limit"


def ted(limits: TecLimits, setpoint_c: float) -> tuple[ThorlabsTed4015, RecordingInstrument]:
    answers = {"*IDN?": "THORLABS,TED4015,1,1", "SOUR:TEMP? MIN": "-45", "SOUR:TEMP? MAX": "145",
               "SOUR:CURR:LIM? MIN": "0", "SOUR:CURR:LIM? MAX": "15",
               "MEAS:TEMP?": "25"}  # fmt: skip
    resource = RecordingInstrument(answers, {"SOUR:TEMP": f"{setpoint_c:.3f}", "OUTP": "0"},
                                   "SYST:ERR?")  # fmt: skip
    tec = ThorlabsTed4015("FAKE", resource=resource)
    tec.limits = limits
    tec.safe_on_close = False
    tec.sleep = lambda seconds: None
    tec.open()
    resource.recording = True
    return tec, resource


@FUZZ
@given(st.data(), st.floats(-45, 145), st.floats(-40, 60), st.floats(0, 80),
       st.one_of(st.none(), st.floats(1e-3, 50), st.floats(1e-300, 1e-3)))
def test_tec_ramps_stay_inside_the_limits_and_the_step_count(data, start_c, low, width, step):
    try:
        limits = TecLimits(min_c=low, max_c=low + width, max_step_c=step)
    except LuminaError:
        return  # a limits object that would ramp too finely is refused when it is made
    tec, resource = ted(limits, start_c)
    with contextlib.closing(tec):  # nothing left open for the exit hook
        path = data.draw(st.sampled_from(["setpoint_c", "ramp_to", "_setpoint_c", "output", "on"]))
        value = data.draw(st.one_of(st.floats(-60, 160), any_value))
        try:
            if path == "ramp_to":
                tec.ramp_to(value)
            elif path == "on":
                tec.on()
            else:
                setattr(tec, path, value)
        except LuminaError:
            assert resource.writes == []
            return
        temps = [float(c.split()[1]) for c in resource.writes if c.startswith("SOUR:TEMP ")]
        assert len(temps) <= MAX_RAMP_POINTS
        for t in temps:
            assert limits.min_c <= t <= limits.max_c  # as sent, after rounding
        if "OUTP 1" in resource.writes:
            assert limits.min_c <= float(f"{start_c:.3f}") <= limits.max_c  # as the TEC holds it


@FUZZ
@given(st.sampled_from(["wavelength_nm", "auto_range", "range_w", "averages", "_wavelength_nm",
                        "_auto_range", "_range_w", "_averages", "beam_diameter_mm",
                        "attenuation_db", "low_bandwidth", "_beam_diameter_mm", "_attenuation_db",
                        "_low_bandwidth", "_operation_enable", "_questionable_enable"]),
       any_value)
def test_power_meter_setters_raise_only_lumina_errors(name, value):
    answers = {"*IDN?": "Thorlabs,PM100D,1,1", "SYST:SENS:IDN?": "S122C,1,1-JAN-2020,1,3,33",
               "SENS:CORR:WAV? MIN": "400", "SENS:CORR:WAV? MAX": "1100"}  # fmt: skip
    resource = RecordingInstrument(answers, {"SENS:AVER": "1"}, "SYST:ERR?")
    meter = ThorlabsPm100d("FAKE", resource=resource)
    meter.open()
    with contextlib.closing(meter):  # nothing left open for the exit hook
        resource.recording = True
        try:
            setattr(meter, name, value)
        except LuminaError:
            assert resource.writes == []


# --- open_instrument -------------------------------------------------------------------------

MODELS = ["santec-tsl570", "keysight-8164b", "thorlabs-pm100d", "thorlabs-ted4015", "acme", ""]
RESOURCES = ["TCPIP0::127.0.0.1::5000::SOCKET", "USB0::0x1313::0x8048::M00324477::INSTR",
             "GPIB0::20::INSTR", "NOPE::INSTR", "", "::"]  # fmt: skip
PARAM_VALUES = [*MODELS, "@sim", "@py", "x@sim", "0", "nan", "1e9", "-1"]
visa_uris = st.builds(
    lambda scheme, resource, params: f"{scheme}://{resource}?"
    + "&".join(f"{k}={v}" for k, v in params),
    st.sampled_from(["visa", "VISA", "mock", "visa+x", ""]),
    st.one_of(st.sampled_from(RESOURCES), st.text(max_size=10)),
    st.lists(st.tuples(st.sampled_from(["model", "backend", "timeout", "bogus"]),
                       st.one_of(st.sampled_from(PARAM_VALUES), st.text(max_size=5))),
             max_size=3),
)  # fmt: skip


@SLOW
@given(st.one_of(visa_uris, st.text(max_size=30), st.integers(), st.none()),
       st.one_of(st.none(), st.dictionaries(st.sampled_from(["max_power_dbm", "min_c", "x"]),
                                            any_value, max_size=2)))
def test_open_instrument_with_any_uri_and_limits_raises_only_lumina_errors(
    lumina_sim_visa, uri, limits
):
    if isinstance(uri, str):  # never a real VISA library: the simulated one only
        uri = re.sub(r"backend=[^&]*", "backend=@sim", uri) + "&backend=@sim"
    try:
        instrument = lumina_hal.open_instrument(uri, limits=limits)
    except LuminaError:
        return
    instrument.safe_on_close = False
    instrument.close()


def test_the_recording_fake_sees_writes_so_the_properties_can_fail():
    laser, resource = santec(LaserLimits(max_power_dbm=5.0), 0.0)
    with contextlib.closing(laser):  # nothing left open for the exit hook
        laser.power_dbm = 4.0
        laser.on()
        assert resource.writes == [":POW 4.00", ":POW:STAT 1"]
        with contextlib.suppress(SafetyLimitError):
            laser.power_dbm = 6.0
        assert resource.writes == [":POW 4.00", ":POW:STAT 1"]
