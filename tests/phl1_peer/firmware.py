"""A second PHL1 firmware (v1.2, or v1.1 with ``proto_minor = 1``), written from
docs/protocol.md only (test code).

Its "chip" is a plain integer model, not the twin: y_code = clip(rint(sum_j x_j w_j / G), ±L_y)
with w the signed heater fraction, so a test can recompute every output from what was sent.
It serves through ``PeerPort``, a pyserial-like port the real host driver opens. Hooks:
``busy`` (answer that many requests BUSY), ``silent`` (answer nothing), ``stale`` (before the
next answer, send a copy of it from an earlier session with other data), ``max_payload``,
``proto_minor`` and ``heater_range_pi`` (HELLO offset 60 from v1.2), ``reserved60`` (what a
v1.1 firmware puts at offset 60: 0 by the spec; tests break the rule).
"""

from __future__ import annotations

import secrets
import struct
import threading

import numpy as np

from phl1_peer.wire import ERR, EVENT, RESP, RETX, VER, VER_1_0, Pdu, Splitter, crc32, wire

HELLO, PING, W_BEGIN, W_CHUNK, W_COMMIT, W_ABORT, W_STATUS = 1, 2, 0x10, 0x11, 0x12, 0x13, 0x14
RUN, X_CHUNK, Y_READ, TELEMETRY, SET_TEMPERATURE, RESET, SAFE_STATE = (
    0x20,
    0x21,
    0x22,
    0x30,
    0x31,
    0x40,
    0x42,
)
NAK_CRC, MALFORMED, UNKNOWN_OP, BAD_VERSION, BUSY, OUT_OF_RANGE = 1, 2, 3, 4, 5, 6
NO_TXN, STAGED_CRC_MISMATCH, WEIGHT_ID_MISMATCH, NO_SESSION = 7, 8, 9, 10


class Refused(Exception):
    def __init__(self, code: int, text: str = "") -> None:
        super().__init__(text)
        self.code = code


class PeerFirmware:
    def __init__(
        self,
        rows: int = 8,
        cols: int = 8,
        max_payload: int = 1024,
        proto_minor: int = 2,
        heater_range_pi: float = 0.0,
        reserved60: int = 0,
    ) -> None:
        self.rows, self.cols, self.max_payload = rows, cols, max_payload
        self.proto_minor, self.heater_range_pi = proto_minor, heater_range_pi
        self.reserved60 = reserved60
        self.weight_bits, self.input_bits, self.output_bits = 8, 8, 12
        self.window, self.buffer = 4, 1 << 20
        self.boot_id = secrets.randbits(32) | 1
        self.session = 0
        self.cache: dict[tuple[int, int, int, int], bytes] = {}
        self.order: list[tuple[int, int, int, int]] = []
        self.weight_id, self.weights = 0, np.zeros((0, 0))
        self.staged: dict | None = None
        self.last_commit: tuple[int, bytes] | None = None
        self.x = bytearray(self.buffer)
        self.x_ok = np.zeros(self.buffer // 4, dtype=bool)
        self.held = b""
        self.temperature_c = 25.0
        self.busy = 0
        self.silent = False
        self.stale = False
        self.outputs: list[np.ndarray] = []
        self.executed: list[int] = []
        self.splitter = Splitter()

    @property
    def lx(self) -> int:
        return (1 << (self.input_bits - 1)) - 1

    @property
    def ly(self) -> int:
        return (1 << (self.output_bits - 1)) - 1

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for item in self.splitter.feed(data):
            if item == "crc":
                out += wire(Pdu(0, 0, 0, bytes([NAK_CRC, 0, 0, 0]), RESP | ERR))
            elif isinstance(item, Pdu) and not self.silent:
                out += self.answer(item)
        return bytes(out)

    def answer(self, p: Pdu) -> bytes:
        def err(code: int, text: str = "", aux: int = 0, ver: int = VER) -> bytes:
            body = struct.pack("<BBH", code, 0, aux) + text.encode()[:200]
            return wire(Pdu(p.opcode, p.seq, p.session, body, RESP | ERR, p.chan, ver))

        if p.ver == VER_1_0:
            return err(BAD_VERSION, "PHL1 v1.1 required", ver=VER_1_0)
        if p.ver != VER:
            return err(BAD_VERSION, "PHL1 v1.1 required")
        if p.flags & (RESP | EVENT):
            return b""
        if p.flags & ~RETX:
            return err(MALFORMED, "flags")
        if p.opcode == HELLO:
            self.session = p.session
            self.cache.clear()
            self.x_ok[:] = False
            self.held = b""
        elif p.session != self.session or self.session == 0:
            return err(NO_SESSION)
        key = (p.session, p.seq, p.opcode, crc32(p.payload))
        if key in self.cache:
            return self.cache[key]
        if self.busy > 0:
            self.busy -= 1
            return err(BUSY, aux=2)
        try:
            handler = HANDLERS.get(p.opcode)
            if handler is None:
                raise Refused(UNKNOWN_OP)
            if p.chan != 0:
                raise Refused(OUT_OF_RANGE, "chan")
            self.executed.append(p.opcode)
            reply = wire(Pdu(p.opcode, p.seq, p.session, handler(self, p.payload), RESP, p.chan))
        except Refused as exc:
            reply = err(exc.code, str(exc))
        except struct.error:
            reply = err(MALFORMED, "length")
        self.cache[key] = reply
        self.order.append(key)
        if len(self.order) > 32:
            self.cache.pop(self.order.pop(0), None)
        if self.stale:  # an answer from an earlier session, with other data, arrives first
            self.stale = False
            old = Pdu(p.opcode, p.seq, p.session ^ 0x5A5A5A5A, b"\x00" * 8 + b"stale!!!", RESP)
            reply = wire(old) + reply
        return reply

    # ---- opcodes (docs/protocol.md §6) ----
    def hello(self, payload: bytes) -> bytes:
        exact(payload, 0)
        if self.proto_minor >= 2:  # v1.2: f32 heater range in units of π (§6)
            at_60 = struct.pack("<f", self.heater_range_pi)
        else:  # v1.1: reserved
            at_60 = struct.pack("<I", self.reserved60)
        head = struct.pack(
            "<BBBBBBH3BxIHHIIffffffff",
            1,
            self.proto_minor,
            self.window,
            self.weight_bits,
            self.input_bits,
            self.output_bits,
            self.max_payload,
            1,
            0,
            7,
            self.boot_id,
            self.rows,
            self.cols,
            self.buffer,
            self.buffer,
            1.0,
            0.0,
            0.0,
            10.0,
            60.0,
            0.01,
            1e-7,
            1e-8,
        )
        return head + at_60 + struct.pack("<24s32s", b"PEER-1", b"peer")

    def ping(self, payload: bytes) -> bytes:
        return payload

    def w_begin(self, payload: bytes) -> bytes:
        exact(payload, 16)
        txn, rows, cols, total, crc = struct.unpack("<IHHII", payload)
        if txn == 0:
            raise Refused(MALFORMED, "txn 0")
        if not (1 <= rows <= self.rows and 1 <= cols <= self.cols):
            raise Refused(OUT_OF_RANGE, "shape")
        if total != 4 * rows * cols:
            raise Refused(MALFORMED, "total_bytes")
        self.staged = {
            "txn": txn,
            "shape": (rows, cols),
            "crc": crc,
            "data": bytearray(total),
            "seen": np.zeros(total // 4, dtype=bool),
            "bad": False,
        }
        return payload[:4]

    def w_chunk(self, payload: bytes) -> bytes:
        if len(payload) < 12 or len(payload) % 4:
            raise Refused(MALFORMED)
        txn, offset = struct.unpack_from("<II", payload)
        data = payload[8:]
        if offset % 4:
            raise Refused(MALFORMED)
        s = self.staged
        if s is None or s["txn"] != txn:
            raise Refused(NO_TXN)
        if offset + len(data) > len(s["data"]):
            raise Refused(OUT_OF_RANGE)
        codes = np.frombuffer(data, "<u4")
        if np.any(codes >> (self.weight_bits + 1)):
            s["bad"] = True
            raise Refused(OUT_OF_RANGE, "code")
        s["data"][offset : offset + len(data)] = data
        s["seen"][offset // 4 : (offset + len(data)) // 4] = True
        return struct.pack("<III", txn, offset, len(data))

    def w_commit(self, payload: bytes) -> bytes:
        exact(payload, 8)
        txn, crc = struct.unpack("<II", payload)
        if self.last_commit and self.last_commit[0] == txn:
            return self.last_commit[1]
        s = self.staged
        if s is None or s["txn"] != txn:
            raise Refused(NO_TXN)
        if s["bad"]:
            raise Refused(OUT_OF_RANGE)
        if not s["seen"].all() or crc32(bytes(s["data"])) != crc or crc != s["crc"]:
            raise Refused(STAGED_CRC_MISMATCH)
        raw = np.frombuffer(bytes(s["data"]), "<u4").reshape(s["shape"])
        sign = np.where(raw >> self.weight_bits, -1.0, 1.0)
        self.weights = sign * (raw & ((1 << self.weight_bits) - 1)) / ((1 << self.weight_bits) - 1)
        self.weight_id += 1
        self.staged = None
        reply = struct.pack("<II", self.weight_id, crc)
        self.last_commit = (txn, reply)
        return reply

    def w_abort(self, payload: bytes) -> bytes:
        exact(payload, 4)
        if self.staged and self.staged["txn"] == struct.unpack("<I", payload)[0]:
            self.staged = None
        return b""

    def run(self, payload: bytes) -> bytes:
        if len(payload) < 20:
            raise Refused(MALFORMED)
        weight_id, _, _, count, flags = struct.unpack_from("<IQIHH", payload)
        if flags & ~3:
            raise Refused(MALFORMED)
        if self.weight_id == 0 or weight_id != self.weight_id:
            raise Refused(WEIGHT_ID_MISMATCH)
        rows, cols = self.weights.shape
        size = 4 * count * cols
        if flags & 1:
            if count < 1 or len(payload) != 20:
                raise Refused(MALFORMED)
            if size > self.buffer:
                raise Refused(OUT_OF_RANGE)
            if not self.x_ok[: size // 4].all():
                raise Refused(MALFORMED, "not staged")
            codes = np.frombuffer(bytes(self.x[:size]), "<i4").reshape(count, cols)
            self.x_ok[:] = False
        else:
            if count < 1 or len(payload) != 20 + size:
                raise Refused(MALFORMED)
            codes = np.frombuffer(payload[20:], "<i4").reshape(count, cols)
        if flags & 2 and 4 * count * rows > self.buffer:
            raise Refused(OUT_OF_RANGE)
        if not flags & 2 and 8 + 4 * count * rows > self.max_payload:
            raise Refused(MALFORMED, "too large")
        wide = codes.astype(np.int64)
        if np.any(wide < -self.lx) or np.any(wide > self.lx):
            raise Refused(OUT_OF_RANGE)
        y = np.clip(np.rint(wide @ self.weights.T / cols * self.ly / self.lx), -self.ly, self.ly)
        y = y.astype("<i4")
        self.outputs.append(y)
        head = struct.pack("<IHH", self.weight_id, count, 0)
        if flags & 2:
            self.held = y.tobytes()
            return head
        self.held = b""
        return head + y.tobytes()

    def x_chunk(self, payload: bytes) -> bytes:
        if len(payload) < 8 or len(payload) % 4:
            raise Refused(MALFORMED)
        (offset,) = struct.unpack_from("<I", payload)
        data = payload[4:]
        if offset % 4:
            raise Refused(MALFORMED)
        if offset + len(data) > self.buffer:
            raise Refused(OUT_OF_RANGE)
        self.x[offset : offset + len(data)] = data
        self.x_ok[offset // 4 : (offset + len(data)) // 4] = True
        return struct.pack("<II", offset, len(data))

    def y_read(self, payload: bytes) -> bytes:
        exact(payload, 12)
        weight_id, offset, length = struct.unpack("<III", payload)
        if weight_id != self.weight_id:
            raise Refused(WEIGHT_ID_MISMATCH)
        if length < 4 or offset % 4 or length % 4 or length > self.max_payload - 4:
            raise Refused(MALFORMED)
        if offset + length > len(self.held):
            raise Refused(OUT_OF_RANGE)
        return struct.pack("<I", offset) + self.held[offset : offset + length]

    def telemetry(self, payload: bytes) -> bytes:
        exact(payload, 0)
        return struct.pack(
            "<ffIIIIIII", self.temperature_c, -3.0, self.weight_id, 0, 0, 0, 0, 0, self.boot_id
        )

    def set_temperature(self, payload: bytes) -> bytes:
        exact(payload, 4)
        (value,) = struct.unpack("<f", payload)
        if not 10.0 <= value <= 60.0:
            raise Refused(OUT_OF_RANGE)
        self.temperature_c = value
        return payload

    def reset(self, payload: bytes) -> bytes:
        exact(payload, 0)
        self.weight_id, self.staged, self.held = 0, None, b""
        return b""


def exact(payload: bytes, size: int) -> None:
    if len(payload) != size:
        raise Refused(MALFORMED, "length")


HANDLERS = {
    HELLO: PeerFirmware.hello,
    PING: PeerFirmware.ping,
    W_BEGIN: PeerFirmware.w_begin,
    W_CHUNK: PeerFirmware.w_chunk,
    W_COMMIT: PeerFirmware.w_commit,
    W_ABORT: PeerFirmware.w_abort,
    RUN: PeerFirmware.run,
    X_CHUNK: PeerFirmware.x_chunk,
    Y_READ: PeerFirmware.y_read,
    TELEMETRY: PeerFirmware.telemetry,
    SET_TEMPERATURE: PeerFirmware.set_temperature,
    RESET: PeerFirmware.reset,
    SAFE_STATE: PeerFirmware.reset,
}


class PeerPort:
    """The pyserial surface the driver uses, wired to a PeerFirmware in-process."""

    def __init__(self, firmware: PeerFirmware) -> None:
        self.firmware = firmware
        self.timeout: float | None = 0.05
        self._rx = bytearray()
        self._cond = threading.Condition()
        self.is_open = True

    @property
    def in_waiting(self) -> int:
        return len(self._rx)

    def write(self, data: bytes) -> int:
        reply = self.firmware.feed(bytes(data))
        with self._cond:
            self._rx += reply
            self._cond.notify_all()
        return len(data)

    def read(self, size: int = 1) -> bytes:
        with self._cond:
            if not self._rx:
                self._cond.wait(self.timeout)
            data = bytes(self._rx[:size])
            del self._rx[:size]
            return data

    def reset_input_buffer(self) -> None:
        with self._cond:
            self._rx.clear()

    def close(self) -> None:
        self.is_open = False
