"""The host end of a PHL1 link: sequencing, timeouts, retries and resync (docs/protocol.md §4).

``PhlLink.request`` sends one request and returns its response payload. A lost or damaged
frame is retransmitted with RETX (the FPGA answers retransmissions from its cache, so
nothing runs twice); a NAK_CRC from the FPGA triggers that retransmission at once. After
``retries`` attempts the link escalates (flush) and finally raises LinkError. Error
responses raise DeviceError with the FPGA's code. EVENT frames are never responses: they
are logged at WARNING and passed to ``on_event`` in arrival order.
Every frame is logged in hex at DEBUG on ``lumina_hal.drivers.fpga.link``.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
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


class _NoReply(enum.Enum):
    """Why ``_await`` returned without a response."""

    TIMEOUT = "timeout"
    NAK = "NAK_CRC"  # the FPGA got a frame with a bad CRC: resend now


@dataclass
class _Pending:
    """A windowed request awaiting its reply."""

    frame: Frame
    index: int
    attempts: int
    deadline_s: float
    sent_order: int  # when it was last transmitted, as a count of transmissions


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

    def __init__(
        self,
        port: Any,
        timing: LinkTiming,
        on_event: Callable[[msg.Event], None] | None = None,
    ) -> None:
        self.port = port
        self.timing = timing
        self.on_event = on_event
        self._decoder = FrameDecoder()
        self._inbox: deque[Frame] = deque()  # decoded frames not yet claimed
        self._seq = 0
        self._sent = 0
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
            if isinstance(reply, Frame):
                return reply
            if reply is _NoReply.TIMEOUT:
                timeout *= 2.0
        return None

    def _write(self, wire: bytes) -> None:
        self._sent += 1
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
        retransmitted with RETX on its own, without stopping the others; a NAK_CRC resends
        the request transmitted longest ago (docs/protocol.md §4).
        """
        results: list[bytes | None] = [None] * len(payloads)
        with self._lock:
            pending: dict[int, _Pending] = {}
            next_index = 0
            while next_index < len(payloads) or pending:
                while next_index < len(payloads) and len(pending) < max(1, window):
                    frame = Frame(opcode, self._next_seq(), payloads[next_index])
                    wire = encode_frame(frame)
                    timeout = self.timing.attempt_timeout_s(len(wire), response_bytes, 0.0)
                    self._write(wire)
                    pending[frame.seq] = _Pending(
                        frame, next_index, 0, time.monotonic() + timeout, self._sent
                    )
                    next_index += 1
                earliest = min(entry.deadline_s for entry in pending.values())
                reply = self._await(set(pending), max(0.0, earliest - time.monotonic()))
                if isinstance(reply, Frame):
                    index = pending.pop(reply.seq).index
                    if reply.flags & FLAG_ERR:
                        error = msg.ErrorReply.unpack(reply.payload)
                        raise DeviceError(
                            f"FPGA refused {msg.Opcode(opcode).name}: {error.describe()}",
                            code=error.code,
                        )
                    results[index] = reply.payload
                elif reply is _NoReply.NAK:
                    oldest = min(pending.values(), key=lambda entry: entry.sent_order)
                    self._resend(oldest, time.monotonic(), response_bytes, backoff=False)
                else:
                    now = time.monotonic()
                    for entry in list(pending.values()):
                        if entry.deadline_s <= now:
                            self._resend(entry, now, response_bytes, backoff=True)
        return [r for r in results if r is not None]

    def _resend(self, entry: _Pending, now: float, response_bytes: int, *, backoff: bool) -> None:
        """Retransmit one windowed request with RETX (one of its ``retries``)."""
        frame = entry.frame
        if entry.attempts >= self.timing.retries:
            raise LinkError(
                f"no response to {msg.Opcode(frame.opcode).name} seq "
                f"{frame.seq} after {entry.attempts + 1} attempts"
            )
        wire = encode_frame(Frame(frame.opcode, frame.seq, frame.payload, flags=FLAG_RETX))
        self.retransmissions += 1
        self._write(wire)
        entry.attempts += 1
        entry.sent_order = self._sent
        timeout = self.timing.attempt_timeout_s(len(wire), response_bytes, 0.0)
        entry.deadline_s = now + timeout * (2.0**entry.attempts if backoff else 1.0)

    def _await(self, seqs: set[int], timeout_s: float) -> Frame | _NoReply:
        """The next response to one of ``seqs``, or why none came; events are dispatched.

        Frames are handled in arrival order; frames read past the response wait in the inbox.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            while self._inbox:
                reply = self._inbox.popleft()
                if reply.flags & FLAG_EVENT:  # the flag decides: an event is never a reply
                    self._dispatch_event(reply)
                elif reply.is_error and reply.seq == 0 and _is_nak(reply):
                    log.debug("NAK_CRC: a request arrived damaged; resending at once")
                    return _NoReply.NAK
                elif reply.is_response and reply.seq in seqs:
                    return reply
                else:
                    log.debug("dropped stale response seq %d", reply.seq)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _NoReply.TIMEOUT
            self.port.timeout = min(remaining, 0.05)
            try:
                data = self.port.read(max(1, self.port.in_waiting))
            except Exception as exc:
                raise LinkError(f"reading from the FPGA link failed: {exc}") from exc
            if data:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("rx %s", data.hex(" "))
                self._inbox.extend(self._decoder.feed(data))

    def _dispatch_event(self, frame: Frame) -> None:
        try:
            event = msg.Event.unpack(frame.payload)
        except msg.MalformedPayload as exc:
            log.warning("FPGA sent a malformed event (%s): %s", exc, frame.payload.hex(" "))
            return
        log.warning("FPGA event on chan %d: %s", frame.chan, event.describe())
        if self.on_event is not None:
            self.on_event(event)

    def _escalate(self) -> None:
        """Flush both directions and the decoder, so the next attempt starts clean."""
        log.info("link resync: flushing and retrying")
        for frame in self._inbox:  # events already read are still news
            if frame.flags & FLAG_EVENT:
                self._dispatch_event(frame)
        try:
            self.port.write(b"\x00\x00")
            time.sleep(0.01)
            self.port.reset_input_buffer()
        except Exception as exc:
            raise LinkError(f"resynchronizing the FPGA link failed: {exc}") from exc
        self._decoder.reset()
        self._inbox.clear()


def _is_nak(frame: Frame) -> bool:
    return frame.payload[:1] == bytes([msg.ErrorCode.NAK_CRC])
