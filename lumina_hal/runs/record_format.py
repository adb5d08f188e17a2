"""Names, framing and small helpers shared by the run-record writer and reader.

docs/records.md §2 is the normative layout: a 16-byte file header, then frames of a 28-byte
header (sync, seq, length, two CRC-32s) and a payload (JSON fields, then raw arrays).
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lumina_hal.errors import ConfigurationError

FORMAT_NAME = "lumina-hal-run"
FORMAT_VERSION = 2

STATUS_RUNNING = "running"
STATUS_COMPLETE = "complete"
STATUS_INCOMPLETE = "incomplete"

INDEX_WIDTH = 6  # v1 HDF5 names: calls/000003 sort in call order in every HDF5 tool

MAGIC = b"LHRUN\r\n\x1a"
FILE_HEADER = struct.Struct("<8sHH")  # magic, format_version, reserved; then CRC-32
FILE_HEADER_SIZE = FILE_HEADER.size + 4
SYNC = b"LHFR"
FRAME_HEAD = struct.Struct("<4sQQ")  # sync, seq, length; then header CRC, payload CRC
FRAME_HEADER_SIZE = FRAME_HEAD.size + 8
MAX_PAYLOAD = 1 << 40
JSON_LENGTH = struct.Struct("<I")
ARRAY_DTYPES = ("<f4", "<f8", "<i8")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def crc32(data: bytes | memoryview) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def file_header(version: int = FORMAT_VERSION) -> bytes:
    head = FILE_HEADER.pack(MAGIC, version, 0)
    return head + struct.pack("<I", crc32(head))


def encode_frame_parts(
    seq: int, fields: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
) -> list[bytes | memoryview]:
    """One whole frame as buffers to write in order: header, JSON ``fields`` (plus the
    array list), then each array's bytes (views, not copies, of C-contiguous arrays)."""
    blobs: list[memoryview] = []
    specs: list[dict[str, Any]] = []
    for name, array in arrays.items():
        data = np.asarray(array)
        dtype = data.dtype.newbyteorder("<").str
        if dtype not in ARRAY_DTYPES:
            raise ConfigurationError(f"array {name!r}: dtype {dtype} cannot be recorded")
        data = data.astype(dtype, order="C", copy=False)  # keeps 0-d arrays 0-d
        specs.append({"name": name, "dtype": dtype, "shape": list(data.shape)})
        blobs.append(data.data.cast("B") if data.size else memoryview(b""))
    body = dict(fields)
    if specs:
        body["arrays"] = specs
    text = json.dumps(body, sort_keys=True).encode("utf-8")
    prefix = JSON_LENGTH.pack(len(text)) + text
    payload_crc = zlib.crc32(prefix)
    for blob in blobs:
        payload_crc = zlib.crc32(blob, payload_crc)
    head = FRAME_HEAD.pack(SYNC, seq, len(prefix) + sum(b.nbytes for b in blobs))
    return [head + struct.pack("<II", crc32(head), payload_crc & 0xFFFFFFFF) + prefix, *blobs]


def encode_frame(seq: int, fields: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> bytes:
    """One whole frame as bytes (see :func:`encode_frame_parts`)."""
    return b"".join(encode_frame_parts(seq, fields, arrays))


def index_name(index: int) -> str:
    return f"{index:0{INDEX_WIDTH}d}"


def to_json(value: Any, what: str) -> str:
    """JSON text of ``value``; ConfigurationError naming ``what`` if it cannot be encoded."""
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ConfigurationError(f"{what} must be JSON-serializable: {exc}") from None


def json_value(value: Any, what: str) -> Any:
    """``value`` as it will read back (a JSON round trip); ConfigurationError if it cannot."""
    return json.loads(to_json(value, what))


def from_json(text: Any) -> Any:
    return json.loads(str(text))


def check_output_path(path: str | os.PathLike[str], *, overwrite: bool, what: str) -> Path:
    """Refuse a path whose directory is missing, that is a directory, or that exists.

    Called before any device is opened so that a typo costs nothing. ``overwrite`` allows
    an existing regular file.
    """
    target = Path(path)
    if target.is_dir():
        raise ConfigurationError(f"{what} {str(target)!r} is a directory, not a file")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigurationError(
            f"{what} {str(target)!r}: directory {str(parent)!r} does not exist"
        )
    if target.exists() and not overwrite:
        raise ConfigurationError(
            f"{what} {str(target)!r} already exists; choose another name or allow overwriting "
            "(overwrite=True, CLI --overwrite)"
        )
    return target
