"""The generic SCPI engine against docs/instrument-sim.md: headers, paths, parameters, errors."""

from __future__ import annotations

import pytest

from lumina_hal.sim.scpi.engine import Command, ErrorQueue, ScpiEngine, compile_header
from lumina_hal.sim.scpi.params import (
    NumberSpec,
    ScpiError,
    expect_params,
    format_nr3,
    parse_bool,
    parse_choice,
    split_number,
)


class Toy:
    """A two-setting instrument: a temperature setpoint and an output flag."""

    def __init__(self) -> None:
        self.setpoint = 25.0
        self.output = False
        self.resets = 0
        spec = NumberSpec(-45.0, 145.0, default=25.0, units={"C": 1.0, "K": lambda k: k - 273.15})
        self.spec = spec

        def set_temp(params: list[str]) -> None:
            self.setpoint = spec.parse_params(params)

        def query_temp(params: list[str]) -> str:
            keyword = spec.query_limit(params)
            return f"{self.setpoint if keyword is None else spec.limit(keyword):g}"

        def set_output(params: list[str]) -> None:
            expect_params(params, 1, 1)
            self.output = parse_bool(params[0])

        def query_output(params: list[str]) -> str:
            expect_params(params, 0, 0)
            return str(int(self.output))

        def query_power(params: list[str]) -> str:
            expect_params(params, 0, 0)
            return "1.5"

        self.engine = ScpiEngine(
            [
                Command("[SOURce[1]]:TEMPerature[:SPOint]", set=set_temp, query=query_temp),
                Command("OUTPut[1][:STATe]", set=set_output, query=query_output),
                Command("MEASure[:SCALar][:POWer]?", query=query_power),
                Command("SENSe:CORRection:BEAMdiameter", query=lambda p: "beam"),
                Command("SENSe:CORRection:WAVelength", query=lambda p: "wave"),
            ],
            idn=lambda: "ACME,TOY,1,0.1",
            reset=self.reset,
        )

    def reset(self) -> None:
        self.setpoint, self.output = 25.0, False
        self.resets += 1

    def ask(self, message: str) -> str | None:
        return self.engine.process(message)

    def errors(self) -> list[int]:
        """Drain the queue through SYST:ERR? and return the codes, oldest first."""
        codes = []
        while True:
            reply = self.ask("SYST:ERR?")
            assert reply is not None
            code = int(reply.split(",", 1)[0])
            if code == 0:
                return codes
            codes.append(code)


@pytest.fixture
def toy() -> Toy:
    return Toy()


# -- headers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "SOUR:TEMP?",
        "SOURCE:TEMPERATURE:SPOINT?",
        "sour1:temp:spo?",
        "Source1:Temperature?",
        ":SOUR:TEMP?",
        "TEMP?",
        "TEMPERATURE:SPO?",
    ],
)
def test_short_long_case_optional_nodes_and_suffixes_match(toy: Toy, header: str) -> None:
    toy.setpoint = 31.5
    assert toy.ask(header) == "31.5"
    assert toy.errors() == []


@pytest.mark.parametrize("header", ["SOURC:TEMP?", "SOUR2:TEMP?", "SOUR0:TEMP?", "TEMPE?"])
def test_partial_forms_and_bad_suffixes_are_undefined(toy: Toy, header: str) -> None:
    assert toy.ask(header) is None
    assert toy.errors() == [-113]


def test_all_optional_nodes_can_be_left_out(toy: Toy) -> None:
    assert toy.ask("MEAS?") == "1.5"
    assert toy.ask("MEAS:SCAL:POW?") == "1.5"
    assert toy.ask("meas:pow?") == "1.5"


def test_query_only_row_rejects_a_set(toy: Toy) -> None:
    assert toy.ask("MEAS:POW 3") is None
    assert toy.errors() == [-113]


@pytest.mark.parametrize(
    ("header", "matches"),
    [("SOUR0:POW", True), ("SOUR:POW", True), ("source0:chan1:pow", True),
     ("SOUR1:POW", False), ("SOUR0:CHAN2:POW", False),
     ("SOUR0:CHAN0:POW", False)],
)  # fmt: skip
def test_slot_nodes_take_no_suffix_or_exactly_theirs(header: str, matches: bool) -> None:
    """``NAME{N}`` (a mainframe slot, 0 included) accepts no suffix or exactly N."""
    command = Command("SOURce{0}[:CHANnel{1}]:POWer", set=lambda params: None)
    assert command.matches(header.split(":")) is matches


def test_bad_patterns_are_refused() -> None:
    for pattern in ("", "SOUR::TEMP", "sour:temp", "[SOUR"):
        with pytest.raises(ValueError):
            compile_header(pattern)
    with pytest.raises(ValueError):
        Command("MEAS:POW?", set=lambda p: None)


# -- messages and paths ------------------------------------------------------------------------


def test_writes_are_silent_and_queries_join_with_semicolons(toy: Toy) -> None:
    assert toy.ask("SOUR:TEMP 30") is None
    assert toy.ask("*IDN?;SOUR:TEMP?;:OUTP?") == "ACME,TOY,1,0.1;30;0"


def test_following_unit_continues_on_the_previous_path(toy: Toy) -> None:
    assert toy.ask("SOUR:TEMP 30;TEMP?") == "30"
    assert toy.ask("SENS:CORR:BEAM?;WAV?") == "beam;wave"


def test_leading_colon_returns_to_root_and_path_is_strict(toy: Toy) -> None:
    assert toy.ask("SOUR:TEMP 30;:OUTP ON;:OUTP?") == "1"
    # without the colon OUTP is looked up under SOUR: an error, as the PM100D manual says
    assert toy.ask("SOUR:TEMP 31;OUTP?") is None
    assert toy.errors() == [-113]
    assert toy.setpoint == 31


def test_common_commands_do_not_move_the_path(toy: Toy) -> None:
    assert toy.ask("SOUR:TEMP 32;*OPC?;TEMP?") == "1;32"


def test_each_message_starts_at_the_root(toy: Toy) -> None:
    toy.ask("SOUR:TEMP 33")
    assert toy.ask("OUTP?") == "0"


def test_command_error_discards_rest_execution_error_does_not(toy: Toy) -> None:
    assert toy.ask("BOGUS;SOUR:TEMP 40;TEMP?") is None
    assert toy.setpoint == 25.0
    assert toy.ask("SOUR:TEMP 400;TEMP 41;TEMP?") == "41"
    assert toy.errors() == [-113, -222]


def test_quoted_semicolons_do_not_split(toy: Toy) -> None:
    assert toy.ask('OUTP "a;b"') is None
    assert toy.errors() == [-224]  # one unit, one bad value, no -113 for a "b" header


def test_empty_message_and_trailing_semicolon(toy: Toy) -> None:
    assert toy.ask("") is None
    assert toy.ask("OUTP?;") == "0"
    assert toy.errors() == []


# -- parameters and error codes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("SOUR:TEMPX 30", -113),
        ("SOUR:TEMP 300", -222),
        ("SOUR:TEMP", -109),
        ("SOUR:TEMP 30,31", -108),
        ("SOUR:TEMP abc", -104),
        ("SOUR:TEMP 30Q", -131),
        ("SOUR:TEMP? FOO", -224),
        ("OUTP MAYBE", -224),
        ("OUTP?  1", -108),
        ("SOUR:TEMP 30,", -102),
        ("SOUR:T#MP 30", -102),
        ("*FOO", -113),
    ],
)
def test_each_failure_has_its_own_code(toy: Toy, message: str, code: int) -> None:
    assert toy.ask(message) is None
    assert toy.errors() == [code]


def test_numbers_suffixes_and_keywords(toy: Toy) -> None:
    for text, expected in [
        ("30", 30.0),
        ("+3.1E1", 31.0),
        (".5", 0.5),
        ("25C", 25.0),
        ("25 C", 25.0),
        ("300K", 300 - 273.15),
        ("#H1F", 31.0),
        ("#B101", 5.0),
        ("MIN", -45.0),
        ("maximum", 145.0),
        ("DEF", 25.0),
    ]:
        toy.ask(f"SOUR:TEMP {text}")
        assert toy.setpoint == pytest.approx(expected), text
    assert toy.ask("SOUR:TEMP? MIN;TEMP? MAX;TEMP? DEF") == "-45;145;25"
    assert toy.errors() == []


@pytest.mark.parametrize(("text", "value"), [("ON", True), ("off", False), ("1", True)])
def test_booleans(text: str, value: bool) -> None:
    assert parse_bool(text) is value
    assert parse_bool("0") is False and parse_bool("2") is True


def test_split_number_and_choice() -> None:
    assert split_number("1550nm") == (1550.0, "NM")
    assert split_number("1.5500000000e-06") == (1.55e-6, "")
    assert split_number("#Q17") == (15.0, "")
    for bad in ("", "nan", "1..5", "#H1G", "--1"):
        with pytest.raises(ScpiError) as info:
            split_number(bad)
        assert info.value.code == -104
    assert parse_choice("dbm", ("W", "DBM")) == "DBM"
    assert parse_choice("CELSIUS", ("CELsius", "K")) == "CELSIUS"
    assert parse_choice("cel", ("CELsius", "K")) == "CELSIUS"


def test_range_check_tolerates_converted_suffixes() -> None:
    spec = NumberSpec(1.48e-6, 1.64e-6, units={"NM": 1e-9})
    assert spec.parse("1480nm") == 1.48e-6  # 1480 * 1e-9 is a hair above 1.48e-6 in floats
    assert spec.parse("1640NM") == 1.64e-6
    with pytest.raises(ScpiError) as info:
        spec.parse("1640.001nm")
    assert info.value.code == -222
    assert NumberSpec(0, 30, resolution=0.01).parse("12.344") == pytest.approx(12.34)


def test_nr3_format_matches_the_keysight_santec_form() -> None:
    assert format_nr3(1.55e-6) == "+1.55000000E-006"  # reference notes, Santec SCPI mode
    assert format_nr3(1e-9) == "+1.00000000E-009"  # reference notes, Keysight
    assert format_nr3(-15.0) == "-1.50000000E+001"


# -- error queue, *CLS, *RST, status ----------------------------------------------------------


def test_queue_is_fifo_and_bounded_with_overflow_marker(toy: Toy) -> None:
    makers = ["BOGUS", "SOUR:TEMP 999", "SOUR:TEMP", "SOUR:TEMP 1,2"] * 3  # 12 errors
    for message in makers:
        toy.ask(message)
    assert toy.ask("SYST:ERR:COUN?") == "10"
    codes = toy.errors()
    assert codes == [-113, -222, -109, -108, -113, -222, -109, -108, -113, -350]
    assert toy.ask("SYST:ERR:NEXT?") == '0,"No error"'


def test_overflow_entry_text_and_later_errors_are_lost() -> None:
    queue = ErrorQueue(3, "Error queue overflow")
    for code in (-1, -2, -3, -4, -5):
        queue.push(code, "x")
    assert list(queue) == [(-1, "x"), (-2, "x"), (-350, "Error queue overflow")]
    queue.pop()
    queue.push(-6, "y")
    assert list(queue) == [(-2, "x"), (-350, "Error queue overflow"), (-6, "y")]


def test_cls_clears_the_queue_rst_resets_settings_not_the_queue(toy: Toy) -> None:
    toy.ask("SOUR:TEMP 60;:OUTP ON;:BOGUS")
    toy.ask("*RST")
    assert (toy.setpoint, toy.output, toy.resets) == (25.0, False, 1)
    assert toy.ask("SYST:ERR:COUN?") == "1"
    toy.ask("BOGUS")
    toy.ask("*CLS")
    assert toy.ask("SYST:ERR?") == '0,"No error"'


def test_event_status_and_status_byte(toy: Toy) -> None:
    assert toy.ask("*STB?") == "0"
    toy.ask("BOGUS")  # command error: ESR bit 32
    toy.ask("SOUR:TEMP 999")  # execution error: ESR bit 16
    toy.ask("*ESE 32")
    assert toy.ask("*STB?") == str(4 | 32)  # queue not empty, ESB
    assert toy.ask("*ESR?") == "48"
    assert toy.ask("*ESR?") == "0"  # read clears
    toy.ask("*OPC")
    assert toy.ask("*ESR?") == "1"
    toy.ask("*CLS")
    assert toy.ask("*STB?") == "0"


def test_no_error_text_is_configurable() -> None:
    engine = ScpiEngine([], idn=lambda: "x", reset=lambda: None, no_error='+0,"No error"')
    assert engine.process("SYST:ERR?") == '+0,"No error"'


def test_a_handler_bug_becomes_a_device_error_not_a_crash() -> None:
    def broken(params: list[str]) -> str:
        raise ZeroDivisionError

    engine = ScpiEngine([Command("BROKen?", query=broken)], idn=lambda: "x", reset=lambda: None)
    assert engine.process("BROK?;*OPC?") == "1"
    assert engine.process("SYST:ERR?") == '-300,"Device-specific error"'
