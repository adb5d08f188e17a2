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
            reply = self._await(frame.seq, timeout)
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

    def _await(self, seq: int, timeout_s: float) -> Frame | None:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.port.timeout = min(remaining, 0.05)
            try:
                data = self.port.read(max(1, self.port.in_waiting))
            except Exception as exc:
                raise LinkError(f"reading from the FPGA link failed: {exc}") from exc
            if not data:
                continue
            if log.isEnabledFor(logging.DEBUG):
                log.debug("rx %s", data.hex(" "))
            for reply in self._decoder.feed(data):
                if reply.flags & FLAG_EVENT:
                    log.warning("FPGA event: %s", reply.payload.hex(" "))
                elif reply.is_error and reply.seq == 0 and reply.payload[:1] == b"\x01":
                    return None  # NAK_CRC: our frame arrived damaged; resend now
                elif reply.is_response and reply.seq == seq:
                    return reply
                else:
                    log.debug("dropped stale response seq %d", reply.seq)

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
