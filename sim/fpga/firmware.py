"""FPGA firmware emulator: the device side of PHL1 (docs/protocol.md), in pure Python.

``FirmwareEmulator.receive(bytes) -> bytes`` is the whole interface: bytes from the host
in, bytes for the host out. It decodes frames, answers retransmissions from its response
cache without executing them again, and runs the chip with the twin's physics
(a ``TwinChip``, the same chip model as ``mock://``), so the same weights, inputs and seed
give exactly the twin's outputs. Configured by an ``EmulatorConfig`` (or its parameters).
Transports (pyserial handler, pty, TCP) wrap this object.

Link behaviour (PHL1 v1.2: HELLO reports the chip's heater range): a whole frame with a bad
CRC gets NAK_CRC; a partial frame is discarded after 50 ms without a byte (time from the
injectable ``clock``, read when bytes arrive); requests are checked in the order of
docs/protocol.md §7 (version, flags, session, cache, opcode, chan, BUSY, the opcode's own
checks); a v1.0 frame is refused with BAD_VERSION
in the v1.0 layout; no reply is ever larger than a frame (large RUN outputs are held for
Y_READ) and an unexpected fault in a handler becomes an INTERNAL error reply, never an
exception out of ``receive``. After ``reboot()`` the "rebooted" EVENT goes out ahead of the
next output. ``busy_replies`` (a test hook) answers that many requests with BUSY.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from lumina_hal import codes as chip_codes
from lumina_hal.drivers.fpga import messages as msg
from lumina_hal.drivers.fpga.framing import (
    FLAG_ERR,
    FLAG_EVENT,
    FLAG_RESP,
    FLAG_RETX,
    LEGACY_VERSION,
    MAX_PAYLOAD,
    VERSION,
    Frame,
    FrameDecoder,
    encode_frame,
)
from lumina_hal.errors import ConfigurationError
from lumina_hal.phl1_constants import IDLE_CLEAR_S, MIN_CACHE_ENTRIES, PROTO_MAJOR, PROTO_MINOR
from lumina_hal.sim.fpga.config import EmulatorConfig
from lumina_hal.twin import physics
from lumina_hal.twin.chip import TwinChip
from lumina_hal.twin.config import TEMPERATURE_RANGE_C

log = logging.getLogger(__name__)
_RUN_HEAD = msg.RunRequest.HEAD
_RUN_REPLY_HEAD = msg.RunResponse.HEAD

FIRMWARE_VERSION = (1, 1, 0)
PROTOCOL_VERSION = (PROTO_MAJOR, PROTO_MINOR)
MODEL = "Lumina PTC (PHL1 emulator)"
WINDOW = 8
CACHE_SIZE = max(MIN_CACHE_ENTRIES, 2 * WINDOW)
BUFFER_BYTES = 4 << 20  # X_CHUNK staging and held RUN output, each
# Worst-case rates announced in HELLO (§6); generous for a Python emulator on a busy host
OP_S = 0.02
COMMIT_S_PER_CELL = 1e-6
RUN_S_PER_MAC = 5e-8
BUSY_WAIT_MS = 5
# NAK_CRC (§6): opcode, chan and seq 0 because nothing in a damaged header is trusted
NAK_CRC_WIRE = encode_frame(
    Frame(0, 0, msg.ErrorReply(msg.ErrorCode.NAK_CRC).pack(), flags=FLAG_RESP | FLAG_ERR)
)


class _Refusal(Exception):
    """Raised inside a handler: becomes an error response."""

    def __init__(self, code: msg.ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _codes_peak_at(codes: np.ndarray, levels: int) -> bool:
    """True if every row lies in ±levels and peaks at exactly ±levels or is all zero (§5).

    Small RUNs (the latency that matters) are checked on Python ints, which costs less than
    numpy's per-call overhead; large ones by reductions. No abs: −2^31 would overflow.
    """
    if codes.size <= 512:
        for row in codes.tolist():
            low, high = min(row), max(row)
            if low < -levels or high > levels:
                return False
            if high != levels and low != -levels and (low or high):
                return False
        return True
    low, high = codes.min(axis=1), codes.max(axis=1)
    if int(low.min()) < -levels or int(high.max()) > levels:
        return False
    return bool(np.all((high == levels) | (low == -levels) | ((low == 0) & (high == 0))))


def _no_payload(payload: bytes) -> None:
    if payload:
        raise msg.MalformedPayload(f"{len(payload)} payload bytes where none belong")


class FirmwareEmulator:
    """An FPGA with a photonic chip behind it. Accepts the twin's parameters (``mock://``)."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        **params: Any,
    ) -> None:
        """``config`` or the twin's parameters; ``clock``: monotonic seconds, for the idle
        partial-frame clear (tests pass a fake)."""
        if config is None:
            config = EmulatorConfig.from_params(params)
        elif params:
            raise ConfigurationError("give the emulator an EmulatorConfig or parameters, not both")
        self.config = config.chip
        #: The chip behind the FPGA: codes, temperature, light, physics (twin/chip.py).
        self.chip = TwinChip(config.chip)
        self.boot_id = secrets.randbits(32) or 1
        self._clock = clock
        self._last_byte_s = 0.0
        self._decoder = FrameDecoder()
        self._outbox = bytearray()  # unsolicited frames not yet sent
        # (session, seq, opcode) -> (payload, reply): the payload compared in full on a hit
        # is what the spec's CRC-32 key stands for, without hashing every request (§4)
        self._cache: OrderedDict[tuple[int, int, int], tuple[bytes, bytes]] = OrderedDict()
        bits = config.chip.physics  # converter widths never change with temperature or light
        self._code_shift = np.uint32(bits.weight_bits + 1)
        self._input_levels = chip_codes.levels(bits.input_bits)
        self.session = 0  # none until a HELLO (§4)
        self.busy_replies = 0  # test hook: answer this many requests with BUSY
        #: Optional coupling to a simulated bench: returns (chip temperature °C, optical power
        #: per detector dBm), read before every RUN and TELEMETRY (docs/hil.md).
        self.environment: Callable[[], tuple[float, float]] | None = None
        self._power_up()

    # ---- state -------------------------------------------------------------------------
    def _power_up(self) -> None:
        self.weight_id = 0
        self.chip.clear()
        self._staged: dict[str, Any] | None = None
        self._last_commit: tuple[int, bytes] | None = None
        self.counters = {"runs": 0, "vectors": 0, "clipped": 0, "crc_errors": 0}
        self._dropped_before = self._decoder.dropped  # frames_dropped counts from here
        self._not_requests = 0  # frames with RESP or EVENT set, dropped (§7 step 3)
        self._x_buffer = bytearray()
        self._x_written = np.zeros(0, dtype=bool)
        self._held = b""

    def reboot(self) -> None:
        """Power cycle: new boot_id, weights and caches gone, then the "rebooted" EVENT."""
        self.boot_id = secrets.randbits(32) or 1
        self.session = 0
        self._decoder.reset()
        self._cache.clear()
        self.chip.set_environment(temperature_c=self.config.physics.temperature_c)
        self._power_up()
        event = msg.Event(msg.EventKind.REBOOTED, 0, self.boot_id)
        self._outbox += encode_frame(
            Frame(msg.Opcode.EVENT, 0, event.pack(), flags=FLAG_EVENT, session=self.session)
        )
        log.info("emulator rebooted, boot_id %08x", self.boot_id)

    @property
    def physics(self) -> physics.PhysicsParams:
        return self.chip.physics

    def _sync_environment(self) -> None:
        """Take the chip temperature and light from the coupled bench, if there is one."""
        if self.environment is None:
            return
        temperature_c, power_dbm = self.environment()
        lo, hi = TEMPERATURE_RANGE_C
        self.chip.set_environment(min(max(temperature_c, lo), hi), power_dbm)

    # ---- byte interface ------------------------------------------------------------------
    def receive(self, data: bytes) -> bytes:
        """Feed bytes from the host; return the bytes the FPGA sends back."""
        out = self._outbox
        if data:
            now = self._clock()
            if now - self._last_byte_s >= IDLE_CLEAR_S and self._decoder.discard_partial():
                log.debug(
                    "partial frame discarded after %.3f s without a byte", now - self._last_byte_s
                )
            self._last_byte_s = now
        items = self._decoder.scan(data)
        if not out and len(items) == 1 and type(items[0]) is Frame:  # one request, no event
            return self.respond(items[0])
        self._outbox = bytearray()
        for item in items:
            if isinstance(item, Frame):
                out += self.respond(item)
            else:  # a whole frame damaged in transit: ask for it again, never execute it
                self.counters["crc_errors"] += 1
                out += NAK_CRC_WIRE
        return bytes(out)

    def respond(self, frame: Frame) -> bytes:
        """Wire bytes answering one frame, after the checks of §7 in their order."""
        if frame.version != VERSION:
            return self._refuse_version(frame)
        if frame.flags & (FLAG_RESP | FLAG_EVENT):
            self._not_requests += 1  # not a request: dropped (§7 step 3)
            return b""
        if frame.flags & ~FLAG_RETX:
            return self._error(frame, msg.ErrorCode.MALFORMED, f"flags {frame.flags:#04x}")
        if frame.opcode == msg.Opcode.HELLO:
            self._start_session(frame.session)
        elif frame.session != self.session or self.session == 0:
            return self._error(
                frame, msg.ErrorCode.NO_SESSION, f"session {frame.session:08x} is not current"
            )
        key = (frame.session, frame.seq, frame.opcode)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == frame.payload:
            return cached[1]
        if self.busy_replies > 0 and frame.opcode in self._HANDLERS and frame.chan == 0:
            self.busy_replies -= 1
            return self._error(frame, msg.ErrorCode.BUSY, "busy", aux=BUSY_WAIT_MS)
        reply = encode_frame(self._execute(frame))
        cache = self._cache
        cache[key] = (frame.payload, reply)
        cache.move_to_end(key)  # a new payload under an old key is the newest entry
        if len(cache) > CACHE_SIZE:
            cache.popitem(last=False)
        return reply

    def _start_session(self, session: int) -> None:
        """HELLO: adopt the host's session; forget the cache, input staging, held output."""
        self.session = session
        self._cache.clear()
        self._x_written[:] = False
        self._held = b""

    def _error(self, frame: Frame, code: msg.ErrorCode, text: str, aux: int = 0) -> bytes:
        """An uncached error answer (NO_SESSION, BUSY, MALFORMED flags)."""
        error = msg.ErrorReply(code, aux=aux, message=text).pack()
        flags = FLAG_RESP | FLAG_ERR
        return encode_frame(Frame(frame.opcode, frame.seq, error, flags, frame.chan, frame.session))

    def _refuse_version(self, frame: Frame) -> bytes:
        """BAD_VERSION; to a v1.0 request in the v1.0 layout, so a v1.0 host can read it (§11)."""
        error = msg.ErrorReply(msg.ErrorCode.BAD_VERSION, message="PHL1 v1.1 required").pack()
        version = LEGACY_VERSION if frame.version == LEGACY_VERSION else VERSION
        flags = FLAG_RESP | FLAG_ERR
        return encode_frame(
            Frame(frame.opcode, frame.seq, error, flags, frame.chan, frame.session, version)
        )

    def _execute(self, frame: Frame) -> Frame:
        try:
            handler = self._HANDLERS.get(frame.opcode)
            if handler is None:
                raise _Refusal(msg.ErrorCode.UNKNOWN_OP, f"opcode 0x{frame.opcode:02x}")
            if frame.chan != 0:
                raise _Refusal(msg.ErrorCode.OUT_OF_RANGE, f"chan {frame.chan}: one chip")
            payload = handler(self, frame.payload)
            flags = FLAG_RESP
        except msg.MalformedPayload as exc:
            payload, flags = msg.ErrorReply(msg.ErrorCode.MALFORMED, message=str(exc)).pack(), 0
        except _Refusal as exc:
            payload, flags = msg.ErrorReply(exc.code, message=str(exc)).pack(), 0
        except Exception as exc:  # a firmware fault must never take the link down
            log.exception("emulator fault on opcode %#04x", frame.opcode)
            error = msg.ErrorReply(msg.ErrorCode.INTERNAL, message=type(exc).__name__)
            payload, flags = error.pack(), 0
        if len(payload) > MAX_PAYLOAD:  # never build a frame larger than max_payload (§6)
            error = msg.ErrorReply(msg.ErrorCode.INTERNAL, message="reply too large")
            payload, flags = error.pack(), 0
        flags = flags or FLAG_RESP | FLAG_ERR
        return Frame(frame.opcode, frame.seq, payload, flags, frame.chan, frame.session)

    # ---- opcodes -----------------------------------------------------------------------
    def _hello(self, payload: bytes) -> bytes:
        p, c = self.physics, self.config
        k_row, k_col = self.chip.loss_steps_db()
        _no_payload(payload)
        return msg.Hello(
            PROTOCOL_VERSION,
            FIRMWARE_VERSION,
            self.boot_id,
            c.rows,
            c.cols,
            p.weight_bits,
            p.input_bits,
            p.output_bits,
            WINDOW,
            MAX_PAYLOAD,
            max(BUFFER_BYTES, 4 * c.cols),
            max(BUFFER_BYTES, 4 * c.rows),
            p.adc_full_scale,
            k_row,
            k_col,
            TEMPERATURE_RANGE_C[0],
            TEMPERATURE_RANGE_C[1],
            OP_S,
            COMMIT_S_PER_CELL,
            RUN_S_PER_MAC,
            c.serial,
            MODEL,
            self.chip.heater_range_rad / math.pi,  # v1.2: exactly 1.0 for the v1 chip's π
        ).pack()

    def _ping(self, payload: bytes) -> bytes:
        return payload

    def _w_begin(self, payload: bytes) -> bytes:
        begin = msg.WBegin.unpack(payload)
        if begin.txn == 0:
            raise msg.MalformedPayload("txn 0 is reserved")
        if not (1 <= begin.rows <= self.config.rows and 1 <= begin.cols <= self.config.cols):
            raise _Refusal(
                msg.ErrorCode.OUT_OF_RANGE,
                f"{begin.rows}x{begin.cols} exceeds the "
                f"{self.config.rows}x{self.config.cols} array",
            )
        if begin.total_bytes != 4 * begin.rows * begin.cols:
            raise msg.MalformedPayload("total_bytes must be 4 * rows * cols")
        self._staged = {
            "begin": begin,
            "data": bytearray(begin.total_bytes),
            "covered": np.zeros(begin.rows * begin.cols, dtype=bool),
            "poisoned": "",
        }
        return begin.txn.to_bytes(4, "little")

    def _staging(self, txn: int) -> dict[str, Any]:
        if self._staged is None or self._staged["begin"].txn != txn:
            raise _Refusal(msg.ErrorCode.NO_TXN, f"no staged transaction {txn}")
        return self._staged

    def _w_chunk(self, payload: bytes) -> bytes:
        chunk = msg.WChunk.unpack(payload)
        if not chunk.data:
            raise msg.MalformedPayload("W_CHUNK carries no codes")
        staged = self._staging(chunk.txn)
        end = chunk.offset + len(chunk.data)
        if end > len(staged["data"]):
            raise _Refusal(msg.ErrorCode.OUT_OF_RANGE, f"chunk ends at {end}, past the matrix")
        # one reduction, no temporary: a code is in range iff nothing is set above bit `bits`
        if int(np.frombuffer(chunk.data, dtype="<u4").max()) >> self._code_shift:
            bits = int(self._code_shift) - 1
            staged["poisoned"] = f"a code above the {bits}-bit DAC range at offset {chunk.offset}"
            raise _Refusal(msg.ErrorCode.OUT_OF_RANGE, staged["poisoned"])
        staged["data"][chunk.offset : end] = chunk.data
        staged["covered"][chunk.offset // 4 : end // 4] = True
        return msg.WChunk.HEAD.pack(chunk.txn, chunk.offset) + len(chunk.data).to_bytes(4, "little")

    def _w_commit(self, payload: bytes) -> bytes:
        if len(payload) != 8:
            raise msg.MalformedPayload("W_COMMIT payload must be 8 bytes")
        txn, crc = int.from_bytes(payload[:4], "little"), int.from_bytes(payload[4:], "little")
        if self._last_commit is not None and self._last_commit[0] == txn:
            return self._last_commit[1]  # a repeated commit returns the same reply
        staged = self._staging(txn)
        if staged["poisoned"]:
            raise _Refusal(msg.ErrorCode.OUT_OF_RANGE, staged["poisoned"])
        if not staged["covered"].all():
            missing = int(np.count_nonzero(~staged["covered"]))
            raise _Refusal(msg.ErrorCode.STAGED_CRC_MISMATCH, f"{missing} codes never staged")
        actual = zlib.crc32(staged["data"]) & 0xFFFFFFFF
        if actual != crc or actual != staged["begin"].crc32_all:
            raise _Refusal(
                msg.ErrorCode.STAGED_CRC_MISMATCH, f"staged CRC {actual:08x}, expected {crc:08x}"
            )
        begin = staged["begin"]
        codes = np.frombuffer(bytes(staged["data"]), dtype="<i4").reshape(begin.rows, begin.cols)
        self.chip.program(codes)
        self.weight_id += 1
        self._staged = None
        reply = self.weight_id.to_bytes(4, "little") + actual.to_bytes(4, "little")
        self._last_commit = (txn, reply)
        return reply

    def _w_abort(self, payload: bytes) -> bytes:
        if len(payload) != 4:
            raise msg.MalformedPayload("W_ABORT payload must be 4 bytes")
        if self._staged is not None and self._staged["begin"].txn == int.from_bytes(
            payload, "little"
        ):
            self._staged = None
        return b""

    def _w_status(self, payload: bytes) -> bytes:
        _no_payload(payload)
        active = self.chip.codes
        rows, cols = active.shape if active is not None else (0, 0)
        crc = zlib.crc32(active.astype("<i4").tobytes()) if active is not None else 0
        staged_txn = self._staged["begin"].txn if self._staged else 0
        staged_bytes = int(self._staged["covered"].sum()) * 4 if self._staged else 0
        return (
            self.weight_id.to_bytes(4, "little")
            + crc.to_bytes(4, "little")
            + rows.to_bytes(2, "little")
            + cols.to_bytes(2, "little")
            + staged_txn.to_bytes(4, "little")
            + staged_bytes.to_bytes(4, "little")
        )

    def _run(self, payload: bytes) -> bytes:
        reply = self._run_inline(payload)
        return reply if reply is not None else self._run_general(payload)

    def _run_inline(self, payload: bytes) -> bytes | None:
        """The common RUN (inline codes, inline output, every check passing) with fewer
        steps; None, with nothing done, for anything else (``_run_general`` answers it)."""
        shape = self.chip.shape
        size = len(payload) - _RUN_HEAD.size
        if shape is None or size <= 0:
            return None
        weight_id, call_index, first_vector, count, run_flags = _RUN_HEAD.unpack_from(payload)
        rows, cols = shape
        if (
            run_flags
            or weight_id != self.weight_id
            or count == 0
            or size != 4 * count * cols
            or _RUN_REPLY_HEAD.size + 4 * count * rows > MAX_PAYLOAD
        ):
            return None
        codes = np.frombuffer(payload, dtype="<i4", offset=_RUN_HEAD.size).reshape(count, cols)
        if not _codes_peak_at(codes, self._input_levels):
            return None
        self._sync_environment()
        out, clipped = self.chip.forward_codes(
            codes, call_index=call_index, first_vector=first_vector
        )
        counters = self.counters
        counters["runs"] += 1
        counters["vectors"] += count
        counters["clipped"] += clipped
        self._held = b""
        return _RUN_REPLY_HEAD.pack(weight_id, count, min(clipped, 0xFFFF)) + out.astype(
            "<i4", copy=False
        ).tobytes()

    def _run_general(self, payload: bytes) -> bytes:
        """RUN with every case of §6: staged input, held output, each refusal."""
        self._sync_environment()
        _, _, _, _, run_flags = msg.RunRequest.unpack_head(payload)
        if self.chip.shape is None:
            raise _Refusal(msg.ErrorCode.WEIGHT_ID_MISMATCH, "no weights are active")
        rows, cols = self.chip.shape
        run = msg.RunRequest.unpack(payload, cols)
        if run.weight_id != self.weight_id:
            raise _Refusal(
                msg.ErrorCode.WEIGHT_ID_MISMATCH,
                f"RUN names weights {run.weight_id}, active are {self.weight_id}",
            )
        input_codes = self._run_inputs(run, cols) if run.codes is None else run.codes
        held = bool(run_flags & msg.RUN_HOLD_OUTPUT)
        out_bytes = 4 * run.count * rows
        if held and out_bytes > self._buffer_bytes(self.config.rows):
            raise _Refusal(
                msg.ErrorCode.OUT_OF_RANGE, f"{out_bytes} output bytes exceed the buffer"
            )
        if not held and msg.RunResponse.HEAD.size + out_bytes > MAX_PAYLOAD:
            raise msg.MalformedPayload(
                f"{run.count} vectors of {rows} outputs exceed one frame; use HOLD_OUTPUT"
            )
        if not _codes_peak_at(input_codes, self._input_levels):
            levels = self._input_levels
            raise _Refusal(
                msg.ErrorCode.OUT_OF_RANGE,
                f"each vector's codes must lie in ±{levels} and peak there (or be all zero)",
            )
        codes, clipped = self.chip.forward_codes(
            input_codes, call_index=run.call_index, first_vector=run.first_vector
        )
        self.counters["runs"] += 1
        self.counters["vectors"] += int(input_codes.shape[0])
        self.counters["clipped"] += clipped
        self._held = codes.astype("<i4").tobytes() if held else b""
        if held:
            codes = codes[:, :0]
        return msg.RunResponse(self.weight_id, clipped, codes).pack()

    def _buffer_bytes(self, side: int) -> int:
        return max(BUFFER_BYTES, 4 * side)

    def _run_inputs(self, run: msg.RunRequest, cols: int) -> np.ndarray:
        """The staged X_CHUNK codes a STAGED_INPUT RUN names; consumes the staging."""
        size = 4 * run.count * cols
        if size > self._buffer_bytes(self.config.cols):
            raise _Refusal(msg.ErrorCode.OUT_OF_RANGE, f"{size} input bytes exceed the buffer")
        if len(self._x_buffer) < size or not self._x_written[: size // 4].all():
            raise msg.MalformedPayload(f"the first {size} input bytes were not all staged")
        codes = np.frombuffer(bytes(self._x_buffer[:size]), dtype="<i4").reshape(run.count, cols)
        self._x_written[:] = False
        return codes

    def _x_chunk(self, payload: bytes) -> bytes:
        if len(payload) < 8 or len(payload) % 4:
            raise msg.MalformedPayload("X_CHUNK is a u32 offset and at least one code")
        offset = int.from_bytes(payload[:4], "little")
        data = payload[4:]
        end = offset + len(data)
        if offset % 4:
            raise msg.MalformedPayload(f"X_CHUNK offset {offset} is not a multiple of 4")
        capacity = self._buffer_bytes(self.config.cols)
        if end > capacity:
            raise _Refusal(msg.ErrorCode.OUT_OF_RANGE, f"chunk ends at {end}, past {capacity}")
        if len(self._x_buffer) < end:
            grow = end - len(self._x_buffer)
            self._x_buffer += bytes(grow)
            self._x_written = np.concatenate([self._x_written, np.zeros(grow // 4, dtype=bool)])
        self._x_buffer[offset:end] = data
        self._x_written[offset // 4 : end // 4] = True
        return offset.to_bytes(4, "little") + len(data).to_bytes(4, "little")

    def _y_read(self, payload: bytes) -> bytes:
        if len(payload) != 12:
            raise msg.MalformedPayload("Y_READ payload must be 12 bytes")
        weight_id, offset, length = (
            int.from_bytes(payload[i : i + 4], "little") for i in (0, 4, 8)
        )
        if weight_id != self.weight_id or weight_id == 0:
            raise _Refusal(msg.ErrorCode.WEIGHT_ID_MISMATCH, f"weights {weight_id} not active")
        if length < 4 or offset % 4 or length % 4 or length > MAX_PAYLOAD - 4:
            raise msg.MalformedPayload(f"Y_READ offset {offset} length {length}")
        if offset + length > len(self._held):
            raise _Refusal(
                msg.ErrorCode.OUT_OF_RANGE, f"{offset + length} past {len(self._held)} held bytes"
            )
        return offset.to_bytes(4, "little") + self._held[offset : offset + length]

    def _telemetry(self, payload: bytes) -> bytes:
        _no_payload(payload)
        self._sync_environment()
        return msg.Telemetry(
            self.chip.temperature_c,
            self.chip.optical_output_dbm(),
            self.weight_id,
            self.counters["runs"],
            self.counters["vectors"],
            self.counters["clipped"],
            self.counters["crc_errors"],
            self._decoder.dropped - self._dropped_before + self._not_requests,
            self.boot_id,
        ).pack()

    def _set_temperature(self, payload: bytes) -> bytes:
        if len(payload) != 4:
            raise msg.MalformedPayload("SET_TEMPERATURE payload must be 4 bytes")
        value = float(np.frombuffer(payload, dtype="<f4")[0])
        lo, hi = TEMPERATURE_RANGE_C
        if not (math.isfinite(value) and lo <= value <= hi):
            raise _Refusal(msg.ErrorCode.OUT_OF_RANGE, f"{value} °C outside [{lo}, {hi}] °C")
        self.chip.set_environment(temperature_c=value)
        return payload

    def _reset(self, payload: bytes) -> bytes:
        _no_payload(payload)
        self._power_up()
        return b""

    _HANDLERS: ClassVar[dict[int, Any]] = {
        msg.Opcode.HELLO: _hello,
        msg.Opcode.PING: _ping,
        msg.Opcode.W_BEGIN: _w_begin,
        msg.Opcode.W_CHUNK: _w_chunk,
        msg.Opcode.W_COMMIT: _w_commit,
        msg.Opcode.W_ABORT: _w_abort,
        msg.Opcode.W_STATUS: _w_status,
        msg.Opcode.RUN: _run,
        msg.Opcode.X_CHUNK: _x_chunk,
        msg.Opcode.Y_READ: _y_read,
        msg.Opcode.TELEMETRY: _telemetry,
        msg.Opcode.SET_TEMPERATURE: _set_temperature,
        msg.Opcode.RESET: _reset,
        msg.Opcode.SAFE_STATE: _reset,
    }
