"""PHL1 framing (v1.1 = v1.2): COBS + 0x00, 12-byte header, CRC-32 (docs/protocol.md §2-3).

``encode_frame`` turns a Frame into wire bytes; ``FrameDecoder`` turns an arbitrary byte
stream back into frames, dropping anything damaged and resynchronizing at the next 0x00.
``FrameDecoder.scan`` also reports whole frames whose only fault is the CRC (``BadCrc``),
which the FPGA side answers with NAK_CRC. Intact v1.0 frames (``ver = 1``, 8-byte header)
are decoded too, with ``version = 1``, so that each side can refuse them clearly (§11).
COBS comes from the ``cobs`` package (C-accelerated) and the CRC from ``zlib`` (C) rather
than being written here.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from cobs import cobs

from lumina_hal.errors import LinkError
from lumina_hal.phl1_constants import (
    BASE_FORMAT,
    CRC_FORMAT,
    FLAG_ERR,
    FLAG_EVENT,
    FLAG_MORE,
    FLAG_RESP,
    FLAG_RETX,
    HEADER_FORMAT,
    MAX_FRAME,
    MAX_PAYLOAD,
)
from lumina_hal.phl1_constants import FRAME_OVERHEAD as OVERHEAD
from lumina_hal.phl1_constants import FRAME_VERSION as VERSION
from lumina_hal.phl1_constants import LEGACY_FRAME_OVERHEAD as LEGACY_OVERHEAD
from lumina_hal.phl1_constants import LEGACY_FRAME_VERSION as LEGACY_VERSION

__all__ = [
    "FLAG_ERR", "FLAG_EVENT", "FLAG_MORE", "FLAG_RESP", "FLAG_RETX", "LEGACY_VERSION",
    "MAX_PAYLOAD", "OVERHEAD", "VERSION", "BadCrc", "Frame", "FrameDecoder", "FrameTooLarge",
    "check_frame", "encode_frame", "frame_bytes", "parse_frame",
]  # fmt: skip

BASE = struct.Struct(BASE_FORMAT)
HEADER = struct.Struct(HEADER_FORMAT)
CRC = struct.Struct(CRC_FORMAT)
DELIMITER = b"\x00"
#: zlib.crc32(m + crc32(m) as u32 little-endian) for every m: the CRC-32 residue
CRC_RESIDUE = 0x2144DF1C
_cobs_encode, _cobs_decode, _CobsError = cobs.encode, cobs.decode, cobs.DecodeError


@dataclass(frozen=True, init=False)
class Frame:
    """One PHL1 frame. ``payload`` is at most MAX_PAYLOAD bytes."""

    opcode: int
    seq: int
    payload: bytes = b""
    flags: int = 0
    chan: int = 0
    session: int = 0
    version: int = VERSION

    def __init__(
        self,
        opcode: int,
        seq: int,
        payload: bytes = b"",
        flags: int = 0,
        chan: int = 0,
        session: int = 0,
        version: int = VERSION,
    ) -> None:
        # one dict update instead of a frozen dataclass's seven object.__setattr__ calls
        self.__dict__.update(
            opcode=opcode,
            seq=seq,
            payload=payload,
            flags=flags,
            chan=chan,
            session=session,
            version=version,
        )

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_RESP)

    @property
    def is_error(self) -> bool:
        return bool(self.flags & FLAG_ERR)


class FrameTooLarge(LinkError):
    """A payload larger than MAX_PAYLOAD was about to be framed (a caller's bug)."""


def frame_bytes(frame: Frame) -> bytes:
    """The frame before COBS: header, payload, CRC-32 (little-endian).

    ``version = 1`` builds a v1.0 frame (no session), used only to refuse v1.0 peers.
    """
    size = len(frame.payload)
    if size > MAX_PAYLOAD:
        raise FrameTooLarge(f"payload of {size} bytes exceeds {MAX_PAYLOAD}")
    if frame.version == LEGACY_VERSION:
        head = BASE.pack(frame.version, frame.flags, frame.opcode, frame.chan, frame.seq, size)
    else:
        head = HEADER.pack(
            frame.version,
            frame.flags,
            frame.opcode,
            frame.chan,
            frame.seq & 0xFFFF,
            size + 4,
            frame.session & 0xFFFFFFFF,
        )
    body = head + frame.payload
    return body + CRC.pack(zlib.crc32(body))


def encode_frame(frame: Frame) -> bytes:
    """Wire bytes of one frame: COBS(frame) + 0x00, ready for a single write."""
    return _cobs_encode(frame_bytes(frame)) + DELIMITER


@dataclass(frozen=True)
class BadCrc:
    """A whole frame (COBS decodes, ``len`` agrees) whose CRC is wrong: damaged in transit.

    ``raw`` holds its un-COBSed bytes; nothing in them is trusted.
    """

    raw: bytes


def check_frame(raw: bytes) -> Frame | BadCrc | None:
    """A frame from its un-COBSed bytes; BadCrc if only its CRC is wrong; None otherwise.

    ``len`` must equal the piece's length minus 12 (v1.0 and v1.1 alike, §2/§11). A v1.1
    frame needs ``len >= 4`` (its session); a piece with ``ver = 1`` is read as v1.0.
    """
    size = len(raw)
    if size < LEGACY_OVERHEAD or size > MAX_FRAME:
        return None
    version, flags, opcode, chan, seq, length = BASE.unpack_from(raw)
    if length != size - LEGACY_OVERHEAD:
        return None
    # CRC-32 over the bytes and their little-endian CRC is a constant exactly when the CRC
    # is right: one pass, no slice
    if zlib.crc32(raw) != CRC_RESIDUE:
        return BadCrc(bytes(raw))
    if version == LEGACY_VERSION:
        payload = bytes(raw[BASE.size : size - CRC.size])
        return Frame(opcode, seq, payload, flags=flags, chan=chan, version=version)
    if length < 4:
        return None
    (session,) = CRC.unpack_from(raw, BASE.size)
    payload = bytes(raw[HEADER.size : size - CRC.size])
    return Frame(opcode, seq, payload, flags, chan, session, version)


def parse_frame(raw: bytes) -> Frame | None:
    """A frame from its un-COBSed bytes, or None if its length or CRC is wrong."""
    frame = check_frame(raw)
    return frame if isinstance(frame, Frame) else None


class FrameDecoder:
    """Stream decoder. ``feed`` returns the complete, intact frames found so far.

    Memory is bounded: a piece longer than the largest valid encoded frame is discarded up
    to its delimiter. ``dropped`` counts pieces rejected by COBS, length or CRC checks (and
    partial frames thrown away by ``discard_partial``); ``crc_errors`` counts the BadCrc
    ones among them.
    """

    MAX_ENCODED = MAX_FRAME + MAX_FRAME // 254 + 2

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._discarding = False
        self.dropped = 0
        self.crc_errors = 0

    def reset(self) -> None:
        """Forget any partial frame (after a link flush)."""
        self._buffer.clear()
        self._discarding = False

    @property
    def partial(self) -> bool:
        """True while bytes of an unfinished frame are held (or being discarded)."""
        return bool(self._buffer) or self._discarding

    def discard_partial(self) -> bool:
        """Drop the unfinished frame, counting it in ``dropped``; False if there was none."""
        if not self.partial:
            return False
        self.reset()
        self.dropped += 1
        return True

    def feed(self, data: bytes) -> list[Frame]:
        """The intact frames completed by ``data``, in order."""
        return [item for item in self.scan(data) if isinstance(item, Frame)]

    def scan(self, data: bytes) -> list[Frame | BadCrc]:
        """As ``feed``, plus a BadCrc in stream order for each whole frame with a bad CRC."""
        end = len(data) - 1
        if (  # the common case: exactly one whole frame, nothing held before it
            end > 0
            and data.find(0) == end
            and not self._buffer
            and not self._discarding
            and end <= self.MAX_ENCODED
        ):
            frame = self._decode(data[:end])
            return [] if frame is None else [frame]
        frames: list[Frame | BadCrc] = []
        start = 0
        find, limit = data.find, self.MAX_ENCODED
        while True:
            end = find(0, start)
            if end < 0:
                self._append(data[start:])
                return frames
            if self._buffer or self._discarding:
                self._append(data[start:end])
                piece, discarding = bytes(self._buffer), self._discarding
                self._buffer.clear()
                self._discarding = False
            else:  # the common case: a whole piece inside ``data``, sliced once
                piece, discarding = data[start:end], end - start > limit
            start = end + 1
            if discarding:
                self.dropped += 1
            elif piece:
                frame = self._decode(piece)
                if frame is not None:
                    frames.append(frame)

    def _append(self, chunk: bytes) -> None:
        if self._discarding or not chunk:
            return
        if len(self._buffer) + len(chunk) > self.MAX_ENCODED:
            self._buffer.clear()
            self._discarding = True
            return
        self._buffer += chunk

    def _decode(self, piece: bytes) -> Frame | BadCrc | None:
        try:
            raw = _cobs_decode(piece)
        except _CobsError:
            self.dropped += 1
            return None
        frame = check_frame(raw)
        if isinstance(frame, BadCrc):
            self.crc_errors += 1
        if not isinstance(frame, Frame):
            self.dropped += 1
        return frame
