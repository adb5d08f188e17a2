"""PHL1 payload layouts against docs/protocol.md §5-6."""

from __future__ import annotations

import dataclasses
import math
import struct

import numpy as np
import pytest

from lumina_hal.drivers.fpga.messages import (
    ErrorCode,
    ErrorReply,
    Event,
    EventKind,
    Hello,
    MalformedPayload,
    RunRequest,
    RunResponse,
    Telemetry,
    WBegin,
    WChunk,
)

HELLO = Hello(
    (1, 1),
    (1, 2, 3),
    0xDEADBEEF,
    64,
    48,
    12,
    12,
    12,
    4,
    8192,
    1 << 20,
    1 << 19,
    2.0,
    0.3125,
    0.4166,
    -10.0,
    95.0,
    0.05,
    1e-6,
    5e-8,
    "FPGA-0001",
    "Lumina PTC-64 over PHL1",
)


def test_hello_is_120_bytes_at_the_documented_offsets():
    """docs/protocol.md §6 HELLO table, offset by offset."""
    raw = HELLO.pack()
    assert len(raw) == 120
    assert raw[0:6] == bytes([1, 1, 4, 12, 12, 12])
    assert struct.unpack_from("<H", raw, 6)[0] == 8192
    assert raw[8:12] == bytes([1, 2, 3, 0])
    assert struct.unpack_from("<IHHII", raw, 12) == (0xDEADBEEF, 64, 48, 1 << 20, 1 << 19)
    assert struct.unpack_from("<f", raw, 28)[0] == 2.0
    assert struct.unpack_from("<ff", raw, 40) == (-10.0, 95.0)
    assert struct.unpack_from("<fff", raw, 48) == pytest.approx((0.05, 1e-6, 5e-8))
    assert raw[60:64] == bytes(4)
    assert raw[64:73] == b"FPGA-0001" and raw[88:111] == b"Lumina PTC-64 over PHL1"
    back = Hello.unpack(raw).validate()
    assert back.serial == "FPGA-0001" and back.model == "Lumina PTC-64 over PHL1"
    assert back.firmware == (1, 2, 3) and back.cols == 48 and back.proto_version == (1, 1)
    assert back.loss_row_db == pytest.approx(0.3125)
    assert back == Hello.unpack(raw)


def test_hello_offset_60_is_the_heater_range_from_v1_2_only():
    """§6/§11: f32 heater_range_pi at offset 60 when proto_minor >= 2; reserved before."""
    v12 = dataclasses.replace(HELLO, proto_version=(1, 2), heater_range_pi=2.0)
    raw = v12.pack()
    assert struct.unpack_from("<f", raw, 60)[0] == 2.0
    back = Hello.unpack(raw).validate()
    assert back.heater_range_pi == 2.0 and back.heater_range_rad == 2 * math.pi
    v11 = bytearray(raw)
    v11[1] = 1  # the same bytes from a v1.1 device: offset 60 is reserved, ignored
    assert Hello.unpack(bytes(v11)).heater_range_pi == 0.0
    assert Hello.unpack(bytes(v11)).heater_range_rad is None
    for bad in (math.nan, -0.5, 4.25):
        with pytest.raises(MalformedPayload, match=r"heater_range_pi|not finite"):
            Hello.unpack(dataclasses.replace(v12, heater_range_pi=bad).pack()).validate()
    unknown = Hello.unpack(dataclasses.replace(v12, heater_range_pi=0.0).pack()).validate()
    assert unknown.heater_range_rad is None


def test_fixed_payloads_round_trip_and_wrong_lengths_are_malformed():
    begin = WBegin(7, 64, 48, 4 * 64 * 48, 0x12345678)
    assert len(begin.pack()) == 16 and WBegin.unpack(begin.pack()) == begin
    tel = Telemetry(45.0, -7.5, 3, 10, 640, 0, 1, 2, 99)
    assert len(tel.pack()) == 36 and Telemetry.unpack(tel.pack()) == tel
    for cls, raw in [(Hello, HELLO.pack()[:-1]), (WBegin, begin.pack() + b"x"), (Telemetry, b"")]:
        with pytest.raises(MalformedPayload, match="must be"):
            cls.unpack(raw)


def test_chunks_need_whole_codes_at_aligned_offsets():
    chunk = WChunk(1, 64, b"\x01\x00\x00\x00" * 3)
    assert WChunk.unpack(chunk.pack()) == chunk
    with pytest.raises(MalformedPayload, match="whole 4-byte codes"):
        WChunk.unpack(chunk.pack()[:-1])
    with pytest.raises(MalformedPayload, match="not a multiple of 4"):
        WChunk.unpack(WChunk(1, 6, b"").pack())


def test_run_request_and_response_carry_int32_codes():
    codes = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    req = RunRequest(5, 2**40 + 3, 17, codes)
    raw = req.pack()
    assert len(raw) == 20 + 4 * 12
    assert struct.unpack_from("<IQIHH", raw) == (5, 2**40 + 3, 17, 3, 0)
    back = RunRequest.unpack(raw, cols=4)
    np.testing.assert_array_equal(back.codes, codes)
    assert (back.weight_id, back.call_index, back.first_vector) == (5, 2**40 + 3, 17)
    with pytest.raises(MalformedPayload, match="for 3 vectors of 5 inputs"):
        RunRequest.unpack(raw, cols=5)
    resp = RunResponse(5, 2, codes)
    np.testing.assert_array_equal(RunResponse.unpack(resp.pack(), rows=4).codes, codes)
    with pytest.raises(MalformedPayload):
        RunResponse.unpack(resp.pack()[:-4], rows=4)


def test_error_replies_name_their_code():
    err = ErrorReply(ErrorCode.WEIGHT_ID_MISMATCH, 0, 0, "active weights are 4")
    back = ErrorReply.unpack(err.pack())
    assert back.describe() == "WEIGHT_ID_MISMATCH: active weights are 4"
    with pytest.raises(MalformedPayload):  # a reply too short to be an error (§10)
        ErrorReply.unpack(b"\x01")
    assert ErrorReply(200).describe() == "error 200"


def test_events_are_8_bytes_as_documented_and_describe_themselves():
    rebooted = Event(EventKind.REBOOTED, 0, 0xDEADBEEF)
    assert rebooted.pack() == bytes([2, 0, 0, 0]) + struct.pack("<I", 0xDEADBEEF)
    assert Event.unpack(rebooted.pack()) == rebooted
    assert rebooted.describe() == "rebooted (boot id deadbeef)"
    trip = Event(EventKind.THERMAL_TRIP, 0, struct.unpack("<I", struct.pack("<f", 97.5))[0])
    assert trip.describe() == "thermal trip at 97.5 °C"
    assert Event.unpack(b"\x01\x00\xff\xff" + bytes(4)).kind == 1  # reserved is ignored
    assert "kind 9" in Event(9, 1, 5).describe()
    with pytest.raises(MalformedPayload, match="EVENT payload must be 8 bytes"):
        Event.unpack(rebooted.pack()[:7])
