"""PHL1 frames (v1.1 = v1.2) from docs/protocol.md §2-3, with a hand-written COBS (test-only)."""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

VER = 0x11
VER_1_0 = 0x01
RESP, ERR, MORE, RETX, EVENT = 0x01, 0x02, 0x04, 0x08, 0x10
MAX_PAYLOAD = 8192


def cobs_encode(data: bytes) -> bytes:
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes | None:
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        if code == 0 or i + code > len(data):
            return None
        block = data[i + 1 : i + code]
        if len(block) != code - 1 or 0 in block:
            return None
        out += block
        i += code
        if code < 255 and i < len(data):
            out.append(0)
    return bytes(out)


def crc32(data: bytes) -> int:
    return binascii.crc32(data) & 0xFFFFFFFF


@dataclass(frozen=True)
class Pdu:
    """One frame: header fields and payload (v1.1 unless ``ver`` says 0x01)."""

    opcode: int
    seq: int
    session: int
    payload: bytes = b""
    flags: int = 0
    chan: int = 0
    ver: int = VER


def raw_frame(pdu: Pdu) -> bytes:
    """Frame before COBS (§3); a v1.0 frame has the 8-byte header and no session."""
    if pdu.ver == VER_1_0:
        head = struct.pack(
            "<BBBBHH", pdu.ver, pdu.flags, pdu.opcode, pdu.chan, pdu.seq, len(pdu.payload)
        )
    else:
        head = struct.pack(
            "<BBBBHHI",
            pdu.ver,
            pdu.flags,
            pdu.opcode,
            pdu.chan,
            pdu.seq,
            4 + len(pdu.payload),
            pdu.session,
        )
    body = head + pdu.payload
    return body + struct.pack("<I", crc32(body))


def wire(pdu: Pdu) -> bytes:
    return cobs_encode(raw_frame(pdu)) + b"\x00"


def parse_raw(raw: bytes) -> Pdu | str:
    """A Pdu, or why not: 'short', 'len', 'crc' (§2)."""
    if len(raw) < 12:
        return "short"
    ver, flags, opcode, chan, seq, length = struct.unpack_from("<BBBBHH", raw)
    if length != len(raw) - 12 or length > 4 + MAX_PAYLOAD:
        return "len"
    if struct.unpack_from("<I", raw, len(raw) - 4)[0] != crc32(raw[:-4]):
        return "crc"
    if ver == VER_1_0:
        return Pdu(opcode, seq, 0, raw[8:-4], flags, chan, ver)
    if length < 4:
        return "len"
    (session,) = struct.unpack_from("<I", raw, 8)
    return Pdu(opcode, seq, session, raw[12:-4], flags, chan, ver)


class Splitter:
    """Bytes in, (Pdu | reason) per delimited piece out; bounded like §2 asks."""

    LIMIT = 2 * (MAX_PAYLOAD + 16) + 64

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[Pdu | str]:
        out: list[Pdu | str] = []
        for byte in data:
            if byte == 0:
                if self.buf:
                    raw = cobs_decode(bytes(self.buf))
                    out.append("cobs" if raw is None else parse_raw(raw))
                self.buf.clear()
            elif len(self.buf) < self.LIMIT:
                self.buf.append(byte)
        return out
