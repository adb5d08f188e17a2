"""PHL1 opcodes, error codes and payload layouts (docs/protocol.md §5-6).

Each payload is a frozen dataclass with ``pack()`` and ``unpack(data)``; ``unpack`` raises
``MalformedPayload`` (a LinkError: on the host a malformed reply is a protocol violation,
§10) for a wrong length, so neither side ever indexes past a payload.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from lumina_hal.errors import LinkError
from lumina_hal.phl1_constants import (
    CODE_BITS_RANGE,
    ERROR_HEAD_FORMAT,
    EVENT_FORMAT,
    HEATER_RANGE_MAX_PI,
    HELLO_FORMAT,
    HELLO_TEMPERATURE_RANGE_C,
    MAX_BUFFER_BYTES,
    MAX_ERROR_MESSAGE,
    MAX_OP_S,
    MAX_PAYLOAD,
    MAX_S_PER_UNIT,
    MAX_SIDE,
    MAX_WEIGHT_BITS,
    MAX_WINDOW,
    MIN_MAX_PAYLOAD,
    MINOR_HEATER_RANGE,
    RUN_FLAGS,
    RUN_HOLD_OUTPUT,
    RUN_REPLY_FORMAT,
    RUN_REQUEST_FORMAT,
    RUN_STAGED_INPUT,
    TELEMETRY_FORMAT,
    W_BEGIN_FORMAT,
    W_CHUNK_HEAD_FORMAT,
    ErrorCode,
    EventKind,
    Opcode,
)

__all__ = [
    "MAX_BUFFER_BYTES", "MAX_ERROR_MESSAGE", "MAX_SIDE", "RUN_FLAGS", "RUN_HOLD_OUTPUT",
    "RUN_STAGED_INPUT", "ErrorCode", "ErrorReply", "Event", "EventKind", "Hello",
    "MalformedPayload", "Opcode", "RunRequest", "RunResponse", "Telemetry", "WBegin", "WChunk",
]  # fmt: skip


class MalformedPayload(LinkError):
    """A payload whose length or fields do not fit its opcode (docs/protocol.md §10)."""


def _exact(data: bytes, size: int, what: str) -> None:
    if len(data) != size:
        raise MalformedPayload(f"{what} payload must be {size} bytes, got {len(data)}")


def _text(raw: bytes) -> str:
    """Printable ASCII up to the first NUL; anything else becomes '?'."""
    head = raw.split(b"\x00", 1)[0]
    return "".join(chr(b) if 0x20 <= b <= 0x7E else "?" for b in head)


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise MalformedPayload(f"HELLO field out of range: {what}")


def _finite(*values: float) -> bool:
    return all(np.isfinite(v) for v in values)


@dataclass(frozen=True)
class Hello:
    """HELLO reply (§6): identity, geometry, buffers and worst-case rates.

    ``heater_range_pi`` (v1.2, offset 60): the heater phase of the full-scale DAC code in
    units of π rad, 0.0 when unknown; ``unpack`` reads it only from a device of minor >= 2
    (it is reserved before, and a host ignores what a v1.1 device put there, §11).
    """

    proto_version: tuple[int, int]
    firmware: tuple[int, int, int]
    boot_id: int
    rows: int
    cols: int
    weight_bits: int
    input_bits: int
    output_bits: int
    window: int
    max_payload: int
    input_buffer_bytes: int
    output_buffer_bytes: int
    adc_full_scale: float
    loss_row_db: float
    loss_col_db: float
    temperature_min_c: float
    temperature_max_c: float
    op_s: float
    commit_s_per_cell: float
    run_s_per_mac: float
    serial: str
    model: str
    heater_range_pi: float = 0.0

    LAYOUT = struct.Struct(HELLO_FORMAT)

    def pack(self) -> bytes:
        return self.LAYOUT.pack(
            *self.proto_version,
            self.window,
            self.weight_bits,
            self.input_bits,
            self.output_bits,
            self.max_payload,
            *self.firmware,
            self.boot_id,
            self.rows,
            self.cols,
            self.input_buffer_bytes,
            self.output_buffer_bytes,
            self.adc_full_scale,
            self.loss_row_db,
            self.loss_col_db,
            self.temperature_min_c,
            self.temperature_max_c,
            self.op_s,
            self.commit_s_per_cell,
            self.run_s_per_mac,
            self.heater_range_pi,
            self.serial.encode("ascii", errors="replace")[:24],
            self.model.encode("ascii", errors="replace")[:32],
        )

    @classmethod
    def unpack(cls, data: bytes) -> Hello:
        _exact(data, cls.LAYOUT.size, "HELLO")
        f = cls.LAYOUT.unpack(data)
        return cls(
            (f[0], f[1]),
            (f[7], f[8], f[9]),
            f[10],
            f[11],
            f[12],
            f[3],
            f[4],
            f[5],
            f[2],
            f[6],
            f[13],
            f[14],
            f[15],
            f[16],
            f[17],
            f[18],
            f[19],
            f[20],
            f[21],
            f[22],
            _text(f[24]),
            _text(f[25]),
            f[23] if f[1] >= MINOR_HEATER_RANGE else 0.0,
        )

    @property
    def heater_range_rad(self) -> float | None:
        """The reported heater range in rad (exactly π for 1.0, 2π for 2.0); None if unknown."""
        return self.heater_range_pi * math.pi if self.heater_range_pi else None

    def validate(self) -> Hello:
        """Every field within docs/protocol.md §5, else MalformedPayload naming it."""
        payload_ok = MIN_MAX_PAYLOAD <= self.max_payload <= MAX_PAYLOAD
        _require(payload_ok and self.max_payload % 4 == 0, "max_payload")
        _require(1 <= self.window <= MAX_WINDOW, f"window {self.window}")
        _require(1 <= self.rows <= MAX_SIDE and 1 <= self.cols <= MAX_SIDE, "rows/cols")
        low, high = CODE_BITS_RANGE
        _require(1 <= self.weight_bits <= MAX_WEIGHT_BITS, f"weight_bits {self.weight_bits}")
        _require(low <= self.input_bits <= high, f"input_bits {self.input_bits}")
        _require(low <= self.output_bits <= high, f"output_bits {self.output_bits}")
        for name, size, need in (
            ("input_buffer_bytes", self.input_buffer_bytes, 4 * self.cols),
            ("output_buffer_bytes", self.output_buffer_bytes, 4 * self.rows),
        ):
            _require(need <= size <= MAX_BUFFER_BYTES and size % 4 == 0, f"{name} {size}")
        floats = (
            self.adc_full_scale,
            self.loss_row_db,
            self.loss_col_db,
            self.temperature_min_c,
            self.temperature_max_c,
            self.op_s,
            self.commit_s_per_cell,
            self.run_s_per_mac,
            self.heater_range_pi,
        )
        _require(_finite(*floats), "a float field is not finite")
        _require(self.adc_full_scale > 0, "adc_full_scale")
        t_low, t_high = HELLO_TEMPERATURE_RANGE_C
        _require(
            t_low <= self.temperature_min_c < self.temperature_max_c <= t_high,
            "temperature limits",
        )
        _require(0.0 <= self.op_s <= MAX_OP_S, f"op_s {self.op_s}")
        _require(0.0 <= self.commit_s_per_cell <= MAX_S_PER_UNIT, "commit_s_per_cell")
        _require(0.0 <= self.run_s_per_mac <= MAX_S_PER_UNIT, "run_s_per_mac")
        _require(self.boot_id != 0, "boot_id 0")
        _require(
            self.heater_range_pi == 0.0 or 0.0 < self.heater_range_pi <= HEATER_RANGE_MAX_PI,
            f"heater_range_pi {self.heater_range_pi}",
        )
        return self


@dataclass(frozen=True)
class WBegin:
    txn: int
    rows: int
    cols: int
    total_bytes: int
    crc32_all: int

    LAYOUT = struct.Struct(W_BEGIN_FORMAT)

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

    HEAD = struct.Struct(W_CHUNK_HEAD_FORMAT)

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
    """RUN request; ``codes`` is None with RUN_STAGED_INPUT (then ``count`` says how many)."""

    weight_id: int
    call_index: int
    first_vector: int
    codes: np.ndarray | None  # int32 (count, cols)
    run_flags: int = 0
    count: int = 0

    HEAD = struct.Struct(RUN_REQUEST_FORMAT)

    def pack(self) -> bytes:
        if self.codes is None:
            return self.HEAD.pack(
                self.weight_id, self.call_index, self.first_vector, self.count, self.run_flags
            )
        codes = np.ascontiguousarray(self.codes, dtype="<i4")
        head = self.HEAD.pack(
            self.weight_id, self.call_index, self.first_vector, codes.shape[0], self.run_flags
        )
        return head + codes.tobytes()

    @classmethod
    def unpack_head(cls, data: bytes) -> tuple[int, int, int, int, int]:
        """(weight_id, call_index, first_vector, count, run_flags); checks the header only."""
        if len(data) < cls.HEAD.size:
            raise MalformedPayload("RUN payload shorter than its 20-byte header")
        head = cls.HEAD.unpack_from(data)
        if head[4] & ~RUN_FLAGS:
            raise MalformedPayload(f"RUN run_flags {head[4]:#06x} has unknown bits")
        return head

    @classmethod
    def unpack(cls, data: bytes, cols: int) -> RunRequest:
        weight_id, call_index, first_vector, count, flags = cls.unpack_head(data)
        body = data[cls.HEAD.size :]
        if flags & RUN_STAGED_INPUT:
            if count == 0 or body:
                raise MalformedPayload("a staged RUN carries no codes and count >= 1")
            return cls(weight_id, call_index, first_vector, None, flags, count)
        if count == 0 or len(body) != 4 * count * cols:
            raise MalformedPayload(
                f"RUN carries {len(body)} code bytes for {count} vectors of {cols} inputs"
            )
        codes = np.frombuffer(body, dtype="<i4").reshape(count, cols)
        return cls(weight_id, call_index, first_vector, codes, flags, count)


@dataclass(frozen=True)
class RunResponse:
    weight_id: int
    clipped: int
    codes: np.ndarray  # int32 (count, rows)

    HEAD = struct.Struct(RUN_REPLY_FORMAT)

    def pack(self) -> bytes:
        codes = np.ascontiguousarray(self.codes, dtype="<i4")
        return (
            self.HEAD.pack(self.weight_id, codes.shape[0], min(self.clipped, 0xFFFF))
            + codes.tobytes()
        )

    @classmethod
    def unpack(cls, data: bytes, rows: int, held: bool = False) -> RunResponse:
        """The reply; with ``held`` (HOLD_OUTPUT) it has no codes: ``codes`` is (count, 0)."""
        if len(data) < cls.HEAD.size:
            raise MalformedPayload("RUN response shorter than its 8-byte header")
        weight_id, count, clipped = cls.HEAD.unpack_from(data)
        body = data[cls.HEAD.size :]
        width = 0 if held else rows
        if len(body) != 4 * count * width:
            raise MalformedPayload(f"RUN response has {len(body)} bytes for {count}x{width}")
        return cls(weight_id, clipped, np.frombuffer(body, dtype="<i4").reshape(count, width))


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

    LAYOUT = struct.Struct(TELEMETRY_FORMAT)

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

    HEAD = struct.Struct(ERROR_HEAD_FORMAT)

    def pack(self) -> bytes:
        """The message is ASCII and cut to 200 bytes (§7)."""
        text = self.message.encode("ascii", errors="replace")[:MAX_ERROR_MESSAGE]
        return self.HEAD.pack(self.code, self.detail, self.aux) + text

    @classmethod
    def unpack(cls, data: bytes) -> ErrorReply:
        if len(data) < cls.HEAD.size:
            raise MalformedPayload(f"error payload of {len(data)} bytes, at least 4 expected")
        code, detail, aux = cls.HEAD.unpack_from(data)
        return cls(code, detail, aux, _text(bytes(data[cls.HEAD.size :][:MAX_ERROR_MESSAGE])))

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

    LAYOUT = struct.Struct(EVENT_FORMAT)

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
