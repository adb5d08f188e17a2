"""The emulator's link behaviour (docs/protocol.md §2, §5, §6): NAK_CRC, the 50 ms idle
partial-frame clear and the "rebooted" EVENT, bytes in and bytes out."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from cobs import cobs

from lumina_hal.drivers.fpga import framing
from lumina_hal.drivers.fpga import messages as msg
from lumina_hal.drivers.fpga.framing import (
    FLAG_ERR,
    FLAG_EVENT,
    FLAG_RESP,
    FLAG_RETX,
    FrameDecoder,
    encode_frame,
    frame_bytes,
)
from lumina_hal.sim.fpga import firmware as fpga_firmware
from lumina_hal.sim.fpga.faults import build_endpoint

SESSION = 0x1234ABCD  # the session of the worked examples in docs/protocol.md §12


def Frame(opcode: int, seq: int, payload: bytes = b"", flags: int = 0, **kw) -> framing.Frame:
    """A v1.1 frame of this module's session (the emulator's after ``FirmwareEmulator``)."""
    kw.setdefault("session", SESSION)
    return framing.Frame(opcode, seq, payload, flags, **kw)


def FirmwareEmulator(**params) -> fpga_firmware.FirmwareEmulator:
    """An emulator whose session has been started with SESSION (a HELLO, seq 0xFFFE)."""
    emulator = fpga_firmware.FirmwareEmulator(**params)
    start_session(emulator)
    return emulator


def start_session(emulator: fpga_firmware.FirmwareEmulator) -> None:
    emulator.receive(encode_frame(Frame(msg.Opcode.HELLO, 0xFFFE)))

DOCS = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"


def doc_example(label: str) -> tuple[bytes, bytes]:
    """(frame, wire) bytes of the first worked example in §8 after ``label``."""
    text = DOCS.read_text(encoding="utf-8")
    after = text[text.index(label) :]
    match = re.search(r"^frame  ([0-9a-f ]+)\nwire   ([0-9a-f ]+)$", after, flags=re.M)
    assert match, f"no worked example after {label!r}"
    return bytes.fromhex(match.group(1)), bytes.fromhex(match.group(2))


def damaged(frame: Frame, byte: int, bit: int = 1) -> bytes:
    """Wire bytes of ``frame`` with one bit flipped before COBS (COBS and length stay valid)."""
    raw = bytearray(frame_bytes(frame))
    raw[byte] ^= bit
    return cobs.encode(bytes(raw)) + b"\x00"


def telemetry(emulator: FirmwareEmulator, seq: int = 900) -> msg.Telemetry:
    (reply,) = FrameDecoder().feed(emulator.receive(encode_frame(Frame(msg.Opcode.TELEMETRY, seq))))
    return msg.Telemetry.unpack(reply.payload)


def staged_txn(emulator: FirmwareEmulator, seq: int) -> int:
    (reply,) = FrameDecoder().feed(emulator.receive(encode_frame(Frame(msg.Opcode.W_STATUS, seq))))
    return struct.unpack_from("<I", reply.payload, 12)[0]


class FakeClock:
    """Monotonic seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


# ---- NAK_CRC ---------------------------------------------------------------------------
def test_the_docs_damaged_ping_gets_the_docs_nak_frame():
    request_raw, _ = doc_example("PING request, `seq = 1`")
    nak_raw, nak_wire = doc_example("The PING request above, damaged")
    damaged_raw = bytearray(request_raw)
    damaged_raw[12] = 0x03  # §12: frame byte 12, its first payload byte, turned from 01 into 03
    emulator = FirmwareEmulator(rows=4, cols=4)
    reply = emulator.receive(cobs.encode(bytes(damaged_raw)) + b"\x00")
    assert reply == nak_wire
    assert cobs.decode(reply[:-1]) == nak_raw
    (nak,) = FrameDecoder().feed(reply)  # and it says what §6 says, field by field
    assert (nak.version, nak.flags, nak.opcode, nak.chan, nak.seq, nak.session) == (
        0x11,
        FLAG_RESP | FLAG_ERR,
        0,
        0,
        0,
        0,
    )
    assert msg.ErrorReply.unpack(nak.payload) == msg.ErrorReply(msg.ErrorCode.NAK_CRC, 0, 0, "")


@pytest.mark.parametrize(
    "byte, bit",
    [(0, 0x04), (2, 0x01), (4, 0x80), (8, 0x01), (20, 0x10), (-1, 0x01)],
    ids=["version", "opcode", "seq", "payload", "payload-end", "crc"],
)
def test_a_whole_frame_with_a_bad_crc_is_nakked_and_not_executed(byte, bit):
    emulator = FirmwareEmulator(rows=4, cols=4)
    begin = Frame(msg.Opcode.W_BEGIN, 5, msg.WBegin(77, 4, 4, 64, 0).pack())
    assert emulator.receive(damaged(begin, byte, bit)) == fpga_firmware.NAK_CRC_WIRE
    assert staged_txn(emulator, 6) == 0  # the damaged W_BEGIN did not run
    counters = telemetry(emulator)
    assert (counters.crc_errors, counters.frames_dropped) == (1, 1)
    retx = Frame(begin.opcode, begin.seq, begin.payload, flags=FLAG_RETX)
    (reply,) = FrameDecoder().feed(emulator.receive(encode_frame(retx)))
    assert (reply.seq, reply.payload, reply.is_error) == (5, (77).to_bytes(4, "little"), False)
    assert staged_txn(emulator, 7) == 77


@pytest.mark.parametrize(
    "wire",
    [
        damaged(Frame(msg.Opcode.PING, 3, b"abcd"), 6, 0x01),  # len disagrees with the length
        cobs.encode(frame_bytes(Frame(msg.Opcode.PING, 3))[:11]) + b"\x00",  # under 12 bytes
        b"\x05\x01\x00",  # COBS says four bytes follow, one does
        b"\x13\x11\x7f garbage \xff\x00",
    ],
    ids=["len-disagrees", "short", "bad-cobs", "garbage"],
)
def test_pieces_that_are_not_a_whole_frame_are_dropped_silently(wire):
    emulator = FirmwareEmulator(rows=4, cols=4)
    assert emulator.receive(wire) == b""
    counters = telemetry(emulator)
    assert (counters.crc_errors, counters.frames_dropped) == (0, 1)


def test_nak_and_replies_keep_stream_order():
    emulator = FirmwareEmulator(rows=4, cols=4)
    stream = (
        encode_frame(Frame(msg.Opcode.PING, 1, b"one"))
        + damaged(Frame(msg.Opcode.PING, 2, b"two"), 9)
        + encode_frame(Frame(msg.Opcode.PING, 3, b"three"))
    )
    frames = FrameDecoder().feed(emulator.receive(stream))
    assert [(f.seq, f.is_error) for f in frames] == [(1, False), (0, True), (3, False)]


# ---- idle partial-frame clear -----------------------------------------------------------
@pytest.mark.parametrize("silence_s", [0.05, 0.051, 3.0])
def test_a_partial_frame_is_dropped_after_50_ms_of_silence(silence_s):
    clock = FakeClock()
    emulator = FirmwareEmulator(rows=4, cols=4, clock=clock)
    clock.now_s = 0.0  # exact: 0.0 + 0.05 is 0.05 (§2: "50 ms or more")
    assert emulator.receive(encode_frame(Frame(msg.Opcode.PING, 1, b"cut short"))[:7]) == b""
    clock.now_s += silence_s
    (reply,) = FrameDecoder().feed(emulator.receive(encode_frame(Frame(msg.Opcode.PING, 2, b"ok"))))
    assert (reply.seq, reply.payload) == (2, b"ok")
    assert telemetry(emulator).frames_dropped == 1


@pytest.mark.parametrize("gaps_s", [[0.0], [0.049], [0.03] * 6, [0.0499, 0.0499, 0.0499]])
def test_bytes_arriving_within_50_ms_keep_the_frame(gaps_s):
    """The gap is measured between bytes, so many short gaps add up to any length."""
    clock = FakeClock()
    emulator = FirmwareEmulator(rows=4, cols=4, clock=clock)
    wire = encode_frame(Frame(msg.Opcode.PING, 4, bytes(range(1, 40))))
    step = -(-len(wire) // (len(gaps_s) + 1))
    pieces = [wire[i : i + step] for i in range(0, len(wire), step)]
    assert len(pieces) == len(gaps_s) + 1
    out = emulator.receive(pieces[0])
    for gap_s, piece in zip(gaps_s, pieces[1:], strict=True):
        clock.now_s += gap_s
        out += emulator.receive(piece)
    (reply,) = FrameDecoder().feed(out)
    assert (reply.seq, reply.payload) == (4, bytes(range(1, 40)))
    assert telemetry(emulator).frames_dropped == 0


def test_silence_between_whole_frames_drops_nothing():
    clock = FakeClock()
    emulator = FirmwareEmulator(rows=4, cols=4, clock=clock)
    for seq in (1, 2):
        clock.now_s += 10.0
        (reply,) = FrameDecoder().feed(emulator.receive(encode_frame(Frame(2, seq, b"x"))))
        assert reply.seq == seq
    assert telemetry(emulator).frames_dropped == 0


# ---- EVENT "rebooted" -------------------------------------------------------------------
def test_a_reboot_sends_the_docs_event_frame_once_ahead_of_the_next_reply(monkeypatch):
    emulator = FirmwareEmulator(rows=4, cols=4)
    monkeypatch.setattr(fpga_firmware.secrets, "randbits", lambda bits: 0xDEADBEEF)
    emulator.reboot()
    event_raw, event_wire = doc_example('EVENT "rebooted"')
    out = emulator.receive(encode_frame(Frame(msg.Opcode.PING, 9, b"hi")))
    assert out.startswith(event_wire)
    event, reply = FrameDecoder().feed(out)
    assert frame_bytes(event) == event_raw
    assert (event.flags, event.opcode, event.seq, event.session) == (FLAG_EVENT, 0x7F, 0, 0)
    assert event.payload == struct.pack("<BBHI", 2, 0, 0, 0xDEADBEEF)
    assert reply.seq == 9 and reply.payload[0] == msg.ErrorCode.NO_SESSION  # session lost
    start_session(emulator)
    (only,) = FrameDecoder().feed(emulator.receive(encode_frame(Frame(2, 10, b"again"))))
    assert (only.seq, only.payload) == (10, b"again")  # the event was sent once


def test_a_reboot_injected_mid_upload_announces_itself_before_the_chunk_is_refused():
    endpoint = build_endpoint({"rows": 4, "cols": 4, "fault_reboot": 1.0})
    start_session(endpoint.emulator)
    before = endpoint.emulator.boot_id
    begin = Frame(msg.Opcode.W_BEGIN, 1, msg.WBegin(1, 4, 4, 64, 0).pack())
    (ok,) = FrameDecoder().feed(endpoint.handle(encode_frame(begin)))
    assert not ok.is_error
    chunk = Frame(msg.Opcode.W_CHUNK, 2, msg.WChunk(1, 0, bytes(64)).pack())
    event, refusal = FrameDecoder().feed(endpoint.handle(encode_frame(chunk)))
    assert endpoint.emulator.boot_id != before
    assert event.flags == FLAG_EVENT and event.seq == 0
    assert msg.Event.unpack(event.payload) == msg.Event(
        msg.EventKind.REBOOTED, 0, endpoint.emulator.boot_id
    )
    assert refusal.seq == 2 and refusal.is_error  # the rebooted FPGA has no session (§6)
    assert msg.ErrorReply.unpack(refusal.payload).code == msg.ErrorCode.NO_SESSION
