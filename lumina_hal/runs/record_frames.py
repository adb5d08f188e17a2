"""Read the frames of a version-2 run record, checking every byte (docs/records.md §2-§3).

``scan_frames`` returns the frames whose checksums and structure hold, a note for each
damaged or torn byte range, and whether anything other than a torn tail was found. It never
returns bytes whose checksum failed.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lumina_hal.runs.record_format import (
    ARRAY_DTYPES,
    FILE_HEADER,
    FILE_HEADER_SIZE,
    FRAME_HEAD,
    FRAME_HEADER_SIZE,
    JSON_LENGTH,
    MAX_PAYLOAD,
    SYNC,
    crc32,
)

_CRCS = struct.Struct("<II")


class FrameFormatError(Exception):
    """Internal: a frame's checksums hold but its payload breaks the spec."""


@dataclass(frozen=True)
class Frame:
    """One intact frame: its sequence number, byte offset, JSON fields and arrays."""

    seq: int
    offset: int
    fields: dict[str, Any]
    arrays: dict[str, np.ndarray]


@dataclass
class Scan:
    """What a pass over the frames found."""

    frames: list[Frame] = field(default_factory=list)
    damage: list[str] = field(default_factory=list)
    damaged: bool = False  # anything other than a torn tail


def read_file_header(data: bytes) -> tuple[bytes, int, bool]:
    """(magic, format_version, header CRC ok) of a file at least FILE_HEADER_SIZE long."""
    magic, version, _reserved = FILE_HEADER.unpack_from(data, 0)
    (stored,) = struct.unpack_from("<I", data, FILE_HEADER.size)
    return magic, version, stored == crc32(data[: FILE_HEADER.size])


def _parse_payload(payload: memoryview) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if len(payload) < JSON_LENGTH.size:
        raise FrameFormatError("payload shorter than its JSON length field")
    (n_json,) = JSON_LENGTH.unpack_from(payload, 0)
    end = JSON_LENGTH.size + n_json
    if end > len(payload):
        raise FrameFormatError(f"JSON length {n_json} exceeds the payload")
    try:
        fields = json.loads(bytes(payload[JSON_LENGTH.size : end]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FrameFormatError(f"fields are not JSON text: {exc}") from None
    if not isinstance(fields, dict) or not isinstance(fields.get("kind"), str):
        raise FrameFormatError("fields are not a JSON object with a 'kind'")
    specs = fields.pop("arrays", [])
    if not isinstance(specs, list):
        raise FrameFormatError("'arrays' is not a list")
    arrays: dict[str, np.ndarray] = {}
    pos = end
    for spec in specs:
        name, dtype, shape = _array_spec(spec)
        count = math.prod(shape)
        nbytes = count * np.dtype(dtype).itemsize
        if nbytes > len(payload) - pos:
            raise FrameFormatError(f"array {name!r} runs past the payload")
        array = np.frombuffer(payload, dtype=dtype, count=count, offset=pos).reshape(shape)
        arrays[name] = array.copy()
        pos += nbytes
    if pos != len(payload):
        raise FrameFormatError(f"{len(payload) - pos} bytes after the last array")
    return fields, arrays


def _array_spec(spec: Any) -> tuple[str, str, tuple[int, ...]]:
    if not isinstance(spec, dict):
        raise FrameFormatError("an 'arrays' entry is not an object")
    name, dtype, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
    if not isinstance(name, str) or dtype not in ARRAY_DTYPES or not isinstance(shape, list):
        raise FrameFormatError(f"bad array description {spec!r}")
    if not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**40 for n in shape):
        raise FrameFormatError(f"array {name!r}: bad shape {shape!r}")
    return name, str(dtype), tuple(shape)


def _frame_at(data: bytes, pos: int) -> tuple[str, Frame | None, int]:
    """Try to read the frame at ``pos``: ("ok", frame, next), ("torn", None, 0) or
    ("bad: reason", None, 0)."""
    remaining = len(data) - pos
    if remaining < FRAME_HEADER_SIZE:
        if data[pos : pos + 4] == SYNC[: min(4, remaining)]:
            return "torn", None, 0
        return "bad: not a frame header (wrong sync word)", None, 0
    sync, seq, length = FRAME_HEAD.unpack_from(data, pos)
    head_crc, payload_crc = _CRCS.unpack_from(data, pos + FRAME_HEAD.size)
    if sync != SYNC:
        return "bad: not a frame header (wrong sync word)", None, 0
    if head_crc != crc32(data[pos : pos + FRAME_HEAD.size]):
        return "bad: frame header checksum mismatch", None, 0
    if length > MAX_PAYLOAD:
        return f"bad: payload length {length} above the limit", None, 0
    start = pos + FRAME_HEADER_SIZE
    if start + length > len(data):
        return "torn", None, 0
    payload = memoryview(data)[start : start + length]
    if payload_crc != crc32(payload):
        return "bad: payload checksum mismatch", None, 0
    try:
        fields, arrays = _parse_payload(payload)
    except FrameFormatError as exc:
        return f"bad: {exc}", None, 0
    return "ok", Frame(seq, pos, fields, arrays), start + length


def scan_frames(data: bytes, *, recover: bool) -> Scan:
    """Every intact frame after the file header; stop at the first damage unless ``recover``."""
    scan = Scan()
    pos = FILE_HEADER_SIZE
    expected = 0
    while pos < len(data):
        status, frame, nxt = _frame_at(data, pos)
        if status == "ok" and frame is not None:
            if frame.seq == expected or (recover and frame.seq > expected and scan.damaged):
                scan.frames.append(frame)
                expected, pos = frame.seq + 1, nxt
                continue
            status = f"bad: frame number {frame.seq} where {expected} was expected"
        if status == "torn":
            scan.damage.append(
                f"torn tail: {len(data) - pos} bytes at offset {pos} (frame {expected} was "
                "being written when the writer stopped); dropped"
            )
            return scan
        scan.damaged = True
        scan.damage.append(f"frame {expected} at offset {pos}: {status[5:]}")
        if not recover:
            return scan
        pos = _resync(data, pos + 1, expected, scan)
    return scan


def _resync(data: bytes, pos: int, expected: int, scan: Scan) -> int:
    """Offset of the next intact frame numbered ``expected`` or later; notes what was lost."""
    start = pos - 1
    while True:
        found = data.find(SYNC, pos)
        if found < 0:
            scan.damage.append(
                f"bytes {start}-{len(data)}: no intact frame after the damage (frames from "
                f"{expected} on lost)"
            )
            return len(data)
        status, frame, _ = _frame_at(data, found)
        if status == "ok" and frame is not None and frame.seq >= expected:
            lost = (
                f"frames {expected}-{frame.seq - 1} lost" if frame.seq > expected else "none lost"
            )
            scan.damage.append(f"bytes {start}-{found} skipped ({lost})")
            return found
        pos = found + 1
