"""The small-RUN fast paths of both PHL1 ends against the spec's reference path (property tests).

Four properties: the frame encoder gives the bytes of tests/phl1_peer (written from
docs/protocol.md §2-3 alone) and the stream decoder reaches its verdict on any piece; the
host's fused ``matmul`` path sends the reference request bytes and returns what the general
path returns, bit for bit (and refuses what it refuses); any RUN reply the host accepts is one
§10 allows, anything else is a LuminaError; the emulator's inline RUN answers exactly as its
general RUN, or leaves the request to it.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phl1_peer import wire as peer_wire

import lumina_hal
from lumina_hal import codes as chip_codes
from lumina_hal.drivers.fpga import messages as msg
from lumina_hal.drivers.fpga.framing import (
    FLAG_RESP,
    BadCrc,
    Frame,
    FrameDecoder,
    encode_frame,
)
from lumina_hal.errors import LinkError, LuminaError
from lumina_hal.sim.fpga.firmware import FirmwareEmulator, _Refusal

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SIDE = 8
WEIGHTS = np.random.default_rng(3).uniform(-1, 1, size=(SIDE, SIDE))

payloads = st.binary(max_size=300)
u8, u16, u32 = (st.integers(0, (1 << n) - 1) for n in (8, 16, 32))


# ---- framing -------------------------------------------------------------------------------
@FAST
@given(opcode=u8, seq=u16, flags=u8, chan=u8, session=u32, payload=payloads)
def test_encoder_gives_the_reference_bytes(opcode, seq, flags, chan, session, payload):
    frame = Frame(opcode, seq, payload, flags, chan, session)
    pdu = peer_wire.Pdu(opcode, seq, session, payload, flags, chan)
    assert encode_frame(frame) == peer_wire.wire(pdu)


def _reference_verdict(piece: bytes) -> object:
    """What §2 makes of one piece: None (dropped), 'crc' (BadCrc) or the frame's fields."""
    raw = peer_wire.cobs_decode(piece)
    if raw is None:
        return None
    parsed = peer_wire.parse_raw(raw)
    if parsed == "crc":
        return "crc"
    if isinstance(parsed, str):
        return None
    return (
        parsed.ver,
        parsed.flags,
        parsed.opcode,
        parsed.chan,
        parsed.seq,
        parsed.session,
        parsed.payload,
    )


def _verdict(item: Frame | BadCrc) -> object:
    if isinstance(item, BadCrc):
        return "crc"
    return (item.version, item.flags, item.opcode, item.chan, item.seq, item.session, item.payload)


pieces = st.one_of(
    st.binary(min_size=1, max_size=80).map(lambda b: b.replace(b"\x00", b"\x01")),
    st.builds(
        lambda f, at, bit, cut: _damaged(f, at, bit, cut),
        st.builds(peer_wire.Pdu, u8, u16, u32, payloads, u8, u8, st.sampled_from([0x11, 0x01])),
        st.integers(0, 400),
        st.integers(-1, 7),
        st.integers(0, 3),
    ),
)


def _damaged(pdu: peer_wire.Pdu, at: int, bit: int, cut: int) -> bytes:
    """The COBS piece of ``pdu`` with one bit of the raw frame flipped (bit -1: none) and up
    to 3 bytes cut from its end: intact, bad CRC, bad length, bad COBS alike."""
    raw = bytearray(peer_wire.raw_frame(pdu))
    if bit >= 0:
        raw[at % len(raw)] ^= 1 << bit
    piece = peer_wire.cobs_encode(bytes(raw))
    return piece[: len(piece) - cut] if cut < len(piece) else piece


@FAST
@given(piece=pieces, split=st.integers(0, 500), lead=payloads)
def test_decoder_reaches_the_reference_verdict(piece, split, lead):
    expected = _reference_verdict(piece)
    want = [] if expected is None else [expected]
    # alone in one read (the decoder's one-frame case), split over two reads, after a frame
    alone = FrameDecoder().scan(piece + b"\x00")
    decoder = FrameDecoder()
    at = split % (len(piece) + 1)
    halves = decoder.scan(piece[:at]) + decoder.scan(piece[at:] + b"\x00")
    first = encode_frame(Frame(1, 1, lead, session=7))
    both = FrameDecoder().scan(first + piece + b"\x00")
    assert [_verdict(i) for i in alone] == want
    assert [_verdict(i) for i in halves] == want
    assert [_verdict(i) for i in both[1:]] == want and _verdict(both[0])[6] == lead


# ---- the host's fused matmul path ------------------------------------------------------------
def _device():
    chip = lumina_hal.open_device(f"fpga+sim://?rows={SIDE}&cols={SIDE}&seed=5")
    chip.load_weights(WEIGHTS)
    return chip


def _recording(chip) -> list[bytes]:
    sent: list[bytes] = []
    port = chip._link.port
    write = port.write

    def record(data):
        sent.append(bytes(data))
        return write(data)

    port.write = record
    return sent


floats32 = st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True)
inputs = st.one_of(
    st.lists(floats32, min_size=SIDE, max_size=SIDE).map(lambda v: np.array(v, np.float32)),
    st.integers(1, 3).flatmap(
        lambda b: st.lists(floats32, min_size=b * SIDE, max_size=b * SIDE).map(
            lambda v: np.array(v, np.float32).reshape(b, SIDE)
        )
    ),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=inputs)
def test_fused_matmul_sends_the_reference_bytes_and_returns_the_general_result(x):
    fast, general = _device(), _device()
    try:
        assert fast._fast_matmul is not None
        sent_fast, sent_general = _recording(fast), _recording(general)
        call_index = fast._call_index
        heads = [(c._link._seq % 0xFFFF + 1, c._link.session) for c in (fast, general)]
        outcomes = []
        for chip in (fast, general):
            if chip is general:
                chip._fast_matmul = None  # the general path only
            try:
                outcomes.append(chip.matmul(x))
            except LuminaError as exc:
                outcomes.append(type(exc))
        y_fast, y_general = outcomes
        if isinstance(y_fast, np.ndarray):
            assert isinstance(y_general, np.ndarray) and y_fast.shape == y_general.shape
            assert y_fast.dtype == np.float32 and y_fast.tobytes() == y_general.tobytes()
            # the request, as the spec builds it: input DAC codes, RUN payload, frame
            q, _ = chip_codes.input_codes(x.reshape(-1, SIDE), fast._hello.input_bits)
            head = msg.RunRequest.HEAD.pack(fast._weight_id, call_index, 0, q.shape[0], 0)
            payload = head + q.astype("<i4").tobytes()
            for sent, (seq, session) in zip((sent_fast, sent_general), heads, strict=True):
                assert sent == [
                    peer_wire.wire(peer_wire.Pdu(msg.Opcode.RUN, seq, session, payload))
                ]
        else:
            assert y_fast is y_general and not sent_fast and not sent_general
    finally:
        fast.close()
        general.close()


# ---- any RUN reply -----------------------------------------------------------------------
replies = st.fixed_dictionaries(
    {
        "weight_id": st.one_of(st.none(), u32),  # None: the right one
        "count": st.one_of(st.none(), u16),
        "clipped": st.one_of(st.integers(0, 2 * SIDE), u16),
        "codes": st.lists(st.integers(-(2**31), 2**31 - 1) | st.integers(-300, 300), max_size=12),
        "extra": st.binary(max_size=3),
        "short": st.integers(0, 9),
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reply=replies)
def test_a_run_reply_is_used_only_if_section_10_allows_it(reply):
    chip = _device()
    try:
        endpoint = chip._link.port.endpoint
        handle = endpoint.handle
        weight_id = reply["weight_id"] if reply["weight_id"] is not None else chip._weight_id
        count = 1 if reply["count"] is None else reply["count"]
        body = struct.pack(f"<{len(reply['codes'])}i", *reply["codes"]) + reply["extra"]
        payload = struct.pack("<IHH", weight_id, count, reply["clipped"]) + body
        payload = payload[: max(0, len(payload) - reply["short"])] if reply["short"] < 9 else b""

        def answer(data: bytes) -> bytes:
            frames = FrameDecoder().feed(data)
            if frames and frames[0].opcode == msg.Opcode.RUN:
                f = frames[0]
                return encode_frame(Frame(f.opcode, f.seq, payload, FLAG_RESP, 0, f.session))
            return handle(data)

        endpoint.handle = answer
        levels = chip_codes.levels(chip._hello.output_bits)
        codes = payload[8:]
        valid = (
            len(payload) >= 8
            and len(codes) == 4 * SIDE
            and struct.unpack_from("<IHH", payload) == (chip._weight_id, 1, reply["clipped"])
            and reply["clipped"] <= SIDE
            and all(-levels <= c <= levels for c in struct.unpack(f"<{SIDE}i", codes))
        )
        try:
            y = chip.matmul(np.linspace(-1, 1, SIDE, dtype=np.float32))
        except LinkError:
            assert not valid
        else:
            assert valid and y.shape == (SIDE,) and y.dtype == np.float32
    finally:
        chip.close()


# ---- the emulator's inline RUN -------------------------------------------------------------
def _emulator() -> tuple[FirmwareEmulator, int]:
    emulator = FirmwareEmulator(rows=SIDE, cols=SIDE, seed=9)
    codes, _ = chip_codes.heater_codes(WEIGHTS, emulator.physics.weight_bits, (0.0, 0.0))
    data = np.ascontiguousarray(codes, dtype="<i4").tobytes()
    crc = zlib.crc32(data)
    session = 0x600D
    decoder = FrameDecoder()

    def call(seq: int, opcode: int, payload: bytes) -> bytes:
        reply = emulator.receive(encode_frame(Frame(opcode, seq, payload, session=session)))
        (frame,) = decoder.feed(reply)
        assert not frame.is_error
        return frame.payload

    call(1, msg.Opcode.HELLO, b"")
    call(2, msg.Opcode.W_BEGIN, msg.WBegin(1, SIDE, SIDE, len(data), crc).pack())
    call(3, msg.Opcode.W_CHUNK, msg.WChunk(1, 0, data).pack())
    weight_id = struct.unpack("<I", call(4, msg.Opcode.W_COMMIT, struct.pack("<II", 1, crc))[:4])
    return emulator, weight_id[0]


def _peaked(row: list[int], levels: int) -> list[int]:
    top = max(range(len(row)), key=lambda i: abs(row[i]))
    return [*row[:top], levels if row[top] >= 0 else -levels, *row[top + 1 :]]


run_payloads = st.fixed_dictionaries(
    {
        "weight_id": st.one_of(st.none(), u32),
        "call_index": st.integers(0, 2**64 - 1),
        "first": u32,
        "count": st.one_of(st.integers(0, 3), u16),
        "flags": st.one_of(st.just(0), st.sampled_from([1, 2, 3, 4, 0x8000])),
        "rows": st.lists(
            st.lists(st.integers(-200, 200), min_size=SIDE, max_size=SIDE), min_size=0, max_size=3
        ),
        "peak": st.booleans(),
        "extra": st.binary(max_size=5),
    }
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(p=run_payloads)
def test_the_inline_run_answers_as_the_general_run(p):
    (fast, weight_id), (general, _) = _emulator(), _emulator()
    levels = fast._input_levels
    rows = [_peaked(r, levels) for r in p["rows"]] if p["peak"] else p["rows"]
    codes = b"".join(struct.pack(f"<{SIDE}i", *r) for r in rows)
    wid = weight_id if p["weight_id"] is None else p["weight_id"]
    count = len(rows) if p["count"] in (0, 1, 2, 3) and p["peak"] else p["count"]
    payload = (
        msg.RunRequest.HEAD.pack(wid, p["call_index"], p["first"], count, p["flags"])
        + codes
        + p["extra"]
    )
    inline = fast._run_inline(payload)
    try:
        answer: object = general._run_general(payload)
    except (msg.MalformedPayload, _Refusal) as exc:
        answer = exc
    if inline is None:
        assert fast.counters == {"runs": 0, "vectors": 0, "clipped": 0, "crc_errors": 0}
    else:
        assert inline == answer and fast.counters == general.counters
    # whatever the payload, the emulator answers a RUN frame and never raises
    frame = Frame(msg.Opcode.RUN, 50, payload, session=0x600D)
    (reply,) = FrameDecoder().feed(fast.receive(encode_frame(frame)))
    assert reply.seq == 50 and reply.is_response


def test_the_fused_path_follows_a_re_hello():
    chip = _device()
    try:
        x = np.linspace(-1, 1, SIDE, dtype=np.float32)
        chip._link.restart_session()  # a new HELLO object: the next call binds to it
        chip.matmul(x)

        def general_path(*args: object) -> None:
            raise AssertionError("the general path ran")

        chip._matmul = general_path  # type: ignore[method-assign]
        assert chip.matmul(x).shape == (SIDE,)
    finally:
        chip.close()
