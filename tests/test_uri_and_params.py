"""URI parsing and typed parameter conversion."""

from __future__ import annotations

import pytest

from lumina_hal.errors import ConfigurationError
from lumina_hal.params import Param, resolve_params
from lumina_hal.uri import parse_uri


def test_parse_query_only_uri():
    uri = parse_uri("mock://?rows=64&cols=32&preset=typical")
    assert uri.scheme == "mock"
    assert uri.location == ""
    assert uri.query == {"rows": "64", "cols": "32", "preset": "typical"}


def test_parse_device_path_and_host_port():
    serial = parse_uri("fpga:///dev/ttyUSB0?baudrate=3000000")
    assert (serial.scheme, serial.path, serial.host) == ("fpga", "/dev/ttyUSB0", "")
    tcp = parse_uri("fpga+tcp://127.0.0.2:5025")
    assert (tcp.scheme, tcp.host, tcp.port, tcp.location) == (
        "fpga+tcp",
        "127.0.0.2",
        5025,
        "127.0.0.2:5025",
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "non-empty"),
        ("rows=8", "no scheme"),
        ("mock://?rows=8&rows=9", "given twice"),
        ("mock://?rows", "no value"),
        ("mock://?rows=", "no value"),
        ("mock://h:notaport", "bad port"),
        ("mock://#frag", "fragments"),
    ],
)
def test_malformed_uris_name_the_problem(text, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        parse_uri(text)


ROWS = Param("rows", int, 8, "rows", minimum=1, maximum=16)
PRESET = Param("preset", str, "a", "preset", choices=("ideal", "typical"))
FLAG = Param("flag", bool, False, "flag")
GAIN = Param("gain", float, 1.0, "gain", unit="dB", minimum=0.0)


@pytest.mark.parametrize(
    ("param", "raw", "expected"),
    [
        (ROWS, "12", 12),
        (ROWS, 12, 12),
        (ROWS, "0x10", 16),
        (ROWS, 4.0, 4),
        (FLAG, "on", True),
        (FLAG, "0", False),
        (FLAG, True, True),
        (GAIN, "2.5", 2.5),
        (GAIN, 3, 3.0),
        (PRESET, "ideal", "ideal"),
    ],
)
def test_param_converts_strings_and_native_values(param, raw, expected):
    value = param.convert(raw)
    assert value == expected
    assert type(value) is param.type


@pytest.mark.parametrize(
    ("param", "raw", "fragment"),
    [
        (ROWS, "-1", "out of range"),
        (ROWS, "17", r"int in \[1, 16\]"),
        (ROWS, "8.5", "not valid"),
        (ROWS, True, "not valid"),
        (FLAG, "maybe", "true or false"),
        (GAIN, "nan", "not valid"),
        (GAIN, "inf", "not valid"),
        (PRESET, "typcal", "did you mean 'typical'"),
    ],
)
def test_param_rejects_bad_values_with_the_reason(param, raw, fragment):
    with pytest.raises(ConfigurationError, match=fragment) as info:
        param.convert(raw)
    assert param.name in str(info.value)


def test_unknown_parameter_suggests_the_close_name_and_lists_valid_ones():
    with pytest.raises(ConfigurationError) as info:
        resolve_params((ROWS, PRESET), {"rowz": "3"}, context="mock://")
    message = str(info.value)
    assert "'rowz'" in message and "did you mean 'rows'" in message and "preset" in message
