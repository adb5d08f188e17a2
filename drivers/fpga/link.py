"""The host end of a PHL1 link: sequencing, timeouts, retries and resync (docs/protocol.md §4).

``PhlLink.request`` sends one request and returns its response payload. A lost or damaged
frame is retransmitted with RETX (the FPGA answers retransmissions from its cache, so
nothing runs twice); after ``retries`` attempts the link escalates (flush, PING) and
finally raises LinkError. Error responses raise DeviceError with the FPGA's code.
Every frame is logged in hex at DEBUG on ``lumina_hal.drivers.fpga.link``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from lumina_hal.drivers.fpga import messages as msg
from lumina_hal.drivers.fpga.framing import (
    FLAG_ERR,
    FLAG_EVENT,
    FLAG_RETX,
    Frame,
    FrameDecoder,
    encode_frame,
)

from lumina_hal.errors import DeviceError, LinkError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkTiming:
    """Timeout policy: per attempt ``2 * wire(request + response) + slack + op_time``."""

    baudrate: int | None  # None: no wire time (TCP, in-process)
    slack_s: float
    min_timeout_s: float
    retries: int

    def wire_s(self, nbytes: int) -> float:
        return 0.0 if not self.baudrate else 10.0 * nbytes / self.baudrate

    def attempt_timeout_s(self, request_bytes: int, response_bytes: int, op_s: float) -> float:
        budget = 2.0 * self.wire_s(request_bytes + response_bytes) + self.slack_s + op_s
        return max(self.min_timeout_s, budget)


class PhlLink:
    """Request/response over a pyserial-like port (read, write, in_waiting, timeout)."""

    def __init__(self, port: Any, timing: LinkTiming) -> None:
        self.port = port
        self.timing = timing
        self._decoder = FrameDecoder()
        self._inbox: deque[Frame] = deque()  # decoded frames not yet claimed
        self._seq = 0
        self._lock = threading.Lock()
        self.retransmissions = 0

    def close(self) -> None:
        try:
            self.port.close()
        except Exception as exc:  # closing must never raise out of close()
            log.debug("closing the port failed: %s", exc)

    def _next_seq(self) -> int:
        self._seq = self._seq % 0xFFFF + 1  # 1 .. 65535, never 0
        return self._seq

    def request(
        self, opcode: int, payload: bytes = b"", *, response_bytes: int = 64, op_s: float = 0.0
    ) -> bytes:
        """Send one request and return its response payload (see the module docstring)."""
        with self._lock:
            frame = Frame(opcode, self._next_seq(), payload)
            reply = self._exchange(frame, response_bytes, op_s)
            if reply is None:
                self._escalate()
                reply = self._exchange(frame, response_bytes, op_s)
            if reply is None:
                raise LinkError(
                    f"no valid response to {msg.Opcode(opcode).name} after "
                    f"{self.timing.retries + 1} attempts and a resync; the device is unreachable"
                )
        if reply.flags & FLAG_ERR:
            error = msg.ErrorReply.unpack(reply.payload)
            raise DeviceError(
                f"FPGA refused {msg.Opcode(opcode).name}: {error.describe()}", code=error.code
            )
        return reply.payload

    def _exchange(self, frame: Frame, response_bytes: int, op_s: float) -> Frame | None:
        wire = encode_frame(frame)
        timeout = self.timing.attempt_timeout_s(len(wire), response_bytes, op_s)
        for attempt in range(self.timing.retries + 1):
            if attempt:
                self.retransmissions += 1
                frame = Frame(frame.opcode, frame.seq, frame.payload, flags=FLAG_RETX)
                wire = encode_frame(frame)
                log.debug("retransmit seq %d (attempt %d)", frame.seq, attempt + 1)
            self._write(wire)
            reply = self._await({frame.seq}, timeout)
            if reply is not None:
                return reply
            timeout *= 2.0
        return None

    def _write(self, wire: bytes) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("tx %s", wire.hex(" "))
        try:
            self.port.write(wire)  # one write per frame (TCP: one segment, no Nagle wait)
        except Exception as exc:
            raise LinkError(f"writing to the FPGA link failed: {exc}") from exc

    def request_window(
        self, opcode: int, payloads: list[bytes], window: int, *, response_bytes: int = 24
    ) -> list[bytes]:
        """Send ``payloads`` as requests with up to ``window`` in flight; replies in order.

        Only idempotent requests belong here (W_CHUNK): a request whose reply is late is
        retransmitted with RETX on its own, without stopping the others.
        """
        results: list[bytes | None] = [None] * len(payloads)
        with self._lock:
            pending: dict[int, list[Any]] = {}  # seq -> [frame, index, attempts, deadline]
            next_index = 0
            while next_index < len(payloads) or pending:
                while next_index < len(payloads) and len(pending) < max(1, window):
                    frame = Frame(opcode, self._next_seq(), payloads[next_index])
                    wire = encode_frame(frame)
                    timeout = self.timing.attempt_timeout_s(len(wire), response_bytes, 0.0)
                    self._write(wire)
                    pending[frame.seq] = [frame, next_index, 0, time.monotonic() + timeout]
                    next_index += 1
                earliest = min(entry[3] for entry in pending.values())
                reply = self._await(set(pending), max(0.0, earliest - time.monotonic()))
                if reply is not None:
                    frame, index = pending.pop(reply.seq)[:2]
                    if reply.flags & FLAG_ERR:
                        error = msg.ErrorReply.unpack(reply.payload)
                        raise DeviceError(
                            f"FPGA refused {msg.Opcode(opcode).name}: {error.describe()}",
                            code=error.code,
                        )
                    results[index] = reply.payload
                    continue
                self._retransmit_late(pending)
        return [r for r in results if r is not None]

    def _retransmit_late(self, pending: dict[int, list[Any]]) -> None:
        now = time.monotonic()
        for entry in pending.values():
            frame, _, attempts, deadline = entry
            if deadline > now:
                continue
            if attempts >= self.timing.retries:
                raise LinkError(
                    f"no response to {msg.Opcode(frame.opcode).name} seq "
                    f"{frame.seq} after {attempts + 1} attempts"
                )
            retx = Frame(frame.opcode, frame.seq, frame.payload, flags=FLAG_RETX)
            wire = encode_frame(retx)
            self.retransmissions += 1
            self._write(wire)
            timeout = self.timing.attempt_timeout_s(len(wire), 24, 0.0) * 2.0 ** (attempts + 1)
            entry[2], entry[3] = attempts + 1, now + timeout

    def _await(self, seqs: set[int], timeout_s: float) -> Frame | None:
        """The next response to one of ``seqs``; frames read meanwhile wait in the inbox."""
        deadline = time.monotonic() + timeout_s
        while True:
            while self._inbox:
                reply = self._inbox.popleft()
                if reply.flags & FLAG_EVENT:
                    log.warning("FPGA event: %s", reply.payload.hex(" "))
                elif reply.is_error and reply.seq == 0 and reply.payload[:1] == b"\x01":
                    return None  # NAK_CRC: our frame arrived damaged; resend now
                elif reply.is_response and reply.seq in seqs:
                    return reply
                else:
                    log.debug("dropped stale response seq %d", reply.seq)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.port.timeout = min(remaining, 0.05)
            try:
                data = self.port.read(max(1, self.port.in_waiting))
            except Exception as exc:
                raise LinkError(f"reading from the FPGA link failed: {exc}") from exc
            if data:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("rx %s", data.hex(" "))
                self._inbox.extend(self._decoder.feed(data))

    def _escalate(self) -> None:
        """Flush both directions and the decoder, so the next attempt starts clean."""
        log.info("link resync: flushing and retrying")
        try:
            self.port.write(b"\x00\x00")
            time.sleep(0.01)
            self.port.reset_input_buffer()
        except Exception as exc:
            raise LinkError(f"resynchronizing the FPGA link failed: {exc}") from exc
        self._decoder.reset()
        self._inbox.clear()
