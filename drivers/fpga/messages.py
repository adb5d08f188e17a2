"""PHL1 opcodes, error codes and payload layouts (docs/protocol.md §5-6).

Each payload is a frozen dataclass with ``pack()`` and ``unpack(data)``; ``unpack`` raises
``MalformedPayload`` for a wrong length, so neither side ever indexes past a payload.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Opcode(IntEnum):
    HELLO = 0x01
    PING = 0x02
    W_BEGIN = 0x10
    W_CHUNK = 0x11
    W_COMMIT = 0x12
    W_ABORT = 0x13
    W_STATUS = 0x14
    RUN = 0x20
    TELEMETRY = 0x30
    SET_TEMPERATURE = 0x31
    RESET = 0x40
    SAFE_STATE = 0x42
    EVENT = 0x7F


class ErrorCode(IntEnum):
    NAK_CRC = 1
    MALFORMED = 2
    UNKNOWN_OP = 3
    BAD_VERSION = 4
    BUSY = 5
    OUT_OF_RANGE = 6
    NO_TXN = 7
    STAGED_CRC_MISMATCH = 8
    WEIGHT_ID_MISMATCH = 9
    INTERNAL = 12


class EventKind(IntEnum):
    THERMAL_TRIP = 1
    REBOOTED = 2


class MalformedPayload(ValueError):
    """A payload whose length or fields do not fit its opcode."""


def _exact(data: bytes, size: int, what: str) -> None:
    if len(data) != size:
        raise MalformedPayload(f"{what} payload must be {size} bytes, got {len(data)}")


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("ascii", errors="replace")


@dataclass(frozen=True)
class Hello:
    proto_version: int
    firmware: tuple[int, int, int]
    boot_id: int
    rows: int
    cols: int
    weight_bits: int
    input_bits: int
    output_bits: int
    window: int
    max_payload: int
    adc_full_scale: float
    loss_row_db: float
    loss_col_db: float
    temperature_min_c: float
    temperature_max_c: float
    serial: str
    model: str

    LAYOUT = struct.Struct("<B3BIHHBBBBHHfffff24s32s")

    def pack(self) -> bytes:
        return self.LAYOUT.pack(
            self.proto_version,
            *self.firmware,
            self.boot_id,
            self.rows,
            self.cols,
            self.weight_bits,
            self.input_bits,
            self.output_bits,
            self.window,
            self.max_payload,
            0,
            self.adc_full_scale,
            self.loss_row_db,
            self.loss_col_db,
            self.temperature_min_c,
            self.temperature_max_c,
            self.serial.encode("ascii")[:24],
            self.model.encode("ascii")[:32],
        )

    @classmethod
    def unpack(cls, data: bytes) -> Hello:
        _exact(data, cls.LAYOUT.size, "HELLO")
        f = cls.LAYOUT.unpack(data)
        return cls(
            f[0],
            (f[1], f[2], f[3]),
            f[4],
            f[5],
            f[6],
            f[7],
            f[8],
            f[9],
            f[10],
            f[11],
            f[13],
            f[14],
            f[15],
            f[16],
            f[17],
            _text(f[18]),
            _text(f[19]),
        )


@dataclass(frozen=True)
class WBegin:
    txn: int
    rows: int
    cols: int
    total_bytes: int
    crc32_all: int

    LAYOUT = struct.Struct("<IHHII")

    def pack(self) -> bytes:
        return self.LAYOUT.pack(self.txn, self.rows, self.cols, self.total_bytes, self.crc32_all)

    @classmethod
    def unpack(cls, data: bytes) -> WBegin:
        _exact(data, cls.LAYOUT.size, "W_BEGIN")
        return cls(*cls.LAYOUT.unpack(data))


@dataclass(frozen=True)
class WChunk:
    txn: int
    offset: int
    data: bytes

    HEAD = struct.Struct("<II")

    def pack(self) -> bytes:
        return self.HEAD.pack(self.txn, self.offset) + self.data

    @classmethod
    def unpack(cls, data: bytes) -> WChunk:
        if len(data) < cls.HEAD.size or (len(data) - cls.HEAD.size) % 4:
            raise MalformedPayload("W_CHUNK payload must be 8 bytes plus whole 4-byte codes")
        txn, offset = cls.HEAD.unpack_from(data)
        if offset % 4:
            raise MalformedPayload(f"W_CHUNK offset {offset} is not a multiple of 4")
        return cls(txn, offset, bytes(data[cls.HEAD.size :]))


@dataclass(frozen=True)
class RunRequest:
    weight_id: int
    call_index: int
    first_vector: int
    codes: np.ndarray  # int32 (count, cols)

    HEAD = struct.Struct("<IQIHH")

    def pack(self) -> bytes:
        codes = np.ascontiguousarray(self.codes, dtype="<i4")
        return (
            self.HEAD.pack(self.weight_id, self.call_index, self.first_vector, codes.shape[0], 0)
            + codes.tobytes()
        )

    @classmethod
    def unpack(cls, data: bytes, cols: int) -> RunRequest:
        if len(data) < cls.HEAD.size:
            raise MalformedPayload("RUN payload shorter than its 20-byte header")
        weight_id, call_index, first_vector, count, _ = cls.HEAD.unpack_from(data)
        body = data[cls.HEAD.size :]
        if count == 0 or len(body) != 4 * count * cols:
            raise MalformedPayload(
                f"RUN carries {len(body)} code bytes for {count} vectors of {cols} inputs"
            )
        codes = np.frombuffer(body, dtype="<i4").reshape(count, cols)
        return cls(weight_id, call_index, first_vector, codes)


@dataclass(frozen=True)
class RunResponse:
    weight_id: int
    clipped: int
    codes: np.ndarray  # int32 (count, rows)

    HEAD = struct.Struct("<IHH")

    def pack(self) -> bytes:
        codes = np.ascontiguousarray(self.codes, dtype="<i4")
        return (
            self.HEAD.pack(self.weight_id, codes.shape[0], min(self.clipped, 0xFFFF))
            + codes.tobytes()
        )

    @classmethod
    def unpack(cls, data: bytes, rows: int) -> RunResponse:
        if len(data) < cls.HEAD.size:
            raise MalformedPayload("RUN response shorter than its 8-byte header")
        weight_id, count, clipped = cls.HEAD.unpack_from(data)
        body = data[cls.HEAD.size :]
        if len(body) != 4 * count * rows:
            raise MalformedPayload(f"RUN response has {len(body)} bytes for {count}x{rows}")
        return cls(weight_id, clipped, np.frombuffer(body, dtype="<i4").reshape(count, rows))


@dataclass(frozen=True)
class Telemetry:
    temperature_c: float
    optical_power_dbm: float
    weight_id: int
    runs: int
    vectors: int
    clipped: int
    crc_errors: int
    frames_dropped: int
    boot_id: int

    LAYOUT = struct.Struct("<ffIIIIIII")

    def pack(self) -> bytes:
        return self.LAYOUT.pack(
            self.temperature_c,
            self.optical_power_dbm,
            self.weight_id,
            self.runs,
            self.vectors,
            self.clipped,
            self.crc_errors,
            self.frames_dropped,
            self.boot_id,
        )

    @classmethod
    def unpack(cls, data: bytes) -> Telemetry:
        _exact(data, cls.LAYOUT.size, "TELEMETRY")
        return cls(*cls.LAYOUT.unpack(data))


@dataclass(frozen=True)
class ErrorReply:
    code: int
    detail: int = 0
    aux: int = 0
    message: str = ""

    HEAD = struct.Struct("<BBH")

    def pack(self) -> bytes:
        return self.HEAD.pack(self.code, self.detail, self.aux) + self.message.encode(
            "ascii", errors="replace"
        )

    @classmethod
    def unpack(cls, data: bytes) -> ErrorReply:
        if len(data) < cls.HEAD.size:
            return cls(ErrorCode.MALFORMED, message="short error payload")
        code, detail, aux = cls.HEAD.unpack_from(data)
        return cls(code, detail, aux, data[cls.HEAD.size :].decode("ascii", errors="replace"))

    def describe(self) -> str:
        try:
            name = ErrorCode(self.code).name
        except ValueError:
            name = f"error {self.code}"
        return f"{name}: {self.message}" if self.message else name


@dataclass(frozen=True)
class Event:
    """Payload of an unsolicited EVENT frame (docs/protocol.md §5, opcode 0x7F)."""

    kind: int
    detail: int = 0
    value: int = 0

    LAYOUT = struct.Struct("<BBHI")

    def pack(self) -> bytes:
        return self.LAYOUT.pack(self.kind, self.detail, 0, self.value)

    @classmethod
    def unpack(cls, data: bytes) -> Event:
        _exact(data, cls.LAYOUT.size, "EVENT")
        kind, detail, _, value = cls.LAYOUT.unpack(data)
        return cls(kind, detail, value)

    def describe(self) -> str:
        if self.kind == EventKind.REBOOTED:
            return f"rebooted (boot id {self.value:08x})"
        if self.kind == EventKind.THERMAL_TRIP:
            (temperature_c,) = struct.unpack("<f", self.value.to_bytes(4, "little"))
            return f"thermal trip at {temperature_c:.1f} °C"
        return f"event kind {self.kind} (detail {self.detail}, value {self.value:#010x})"
