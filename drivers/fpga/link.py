"""The host end of a PHL1 v1.2 link: sessions, timeouts, retries, escalation (protocol §4, §8-10).

``PhlLink.open_session`` sends HELLO with a fresh random session; ``request`` sends one
request and returns its validated response payload; ``request_window`` pipelines idempotent
requests inside the window HELLO announced. A lost or damaged frame is retransmitted with
RETX under a capped backoff (the FPGA answers retransmissions from its cache, so nothing runs
twice); NAK_CRC resends at once; BUSY is retried for at most ``busy_s``. When a request has
used its attempts the link escalates: flush, PING, re-HELLO, one more pass as a fresh
request, and otherwise closes itself (§9). Only replies carrying the current session, an
outstanding seq and the request's opcode and chan are answers; EVENT frames are logged and
passed to ``on_event`` in arrival order. Every frame is logged in hex at DEBUG.
"""

from __future__ import annotations

import enum
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lumina_hal.board_timing import uart_wire_s
from lumina_hal.drivers.fpga import messages as msg
from lumina_hal.drivers.fpga.framing import (
    FLAG_ERR,
    FLAG_EVENT,
    FLAG_RESP,
    FLAG_RETX,
    LEGACY_VERSION,
    VERSION,
    Frame,
    FrameDecoder,
    encode_frame,
)
from lumina_hal.errors import ConfigurationError, DeviceError, LinkError
from lumina_hal.phl1_constants import (
    BACKOFF_CAP,
    BUSY_DEFAULT_S,
    BUSY_MAX_WAIT_S,
    FLUSH_S,
    FRAME_OVERHEAD,
    HELLO_BYTES,
    PRE_HELLO_OP_S,
    PROTO_MAJOR,
    PROTO_MINOR,
    PROTO_MINOR_MIN,
)
from lumina_hal.phl1_constants import FIRMWARE_MAJOR as SUPPORTED_FIRMWARE_MAJOR

log = logging.getLogger(__name__)

__all__ = ["BACKOFF_CAP", "SUPPORTED_FIRMWARE_MAJOR", "LinkTiming", "PhlLink"]


class _NoReply(enum.Enum):
    """Why ``_await`` returned without a response."""

    TIMEOUT = "timeout"
    NAK = "NAK_CRC"  # the FPGA got a frame with a bad CRC: resend now


@dataclass(frozen=True)
class LinkTiming:
    """Timeout policy (§8): per attempt ``max(timeout, 2 wire + slack + op_s + work)``."""

    baudrate: int | None  # None: no wire time (TCP, in-process)
    slack_s: float
    min_timeout_s: float
    retries: int
    busy_s: float = 2.0

    def wire_s(self, nbytes: int) -> float:
        return uart_wire_s(nbytes, self.baudrate)

    def attempt_timeout_s(self, request_bytes: int, response_bytes: int, op_s: float) -> float:
        budget = 2.0 * self.wire_s(request_bytes + response_bytes) + self.slack_s + op_s
        return max(self.min_timeout_s, budget)

    @staticmethod
    def backoff(attempt: int) -> int:
        return min(1 << min(attempt, 8), BACKOFF_CAP)

    def pass_s(self, timeout_s: float, retries: int | None = None) -> float:
        """A(T): the longest one pass of attempts can block."""
        count = self.retries if retries is None else retries
        return timeout_s * sum(self.backoff(k) for k in range(count + 1))

    def max_blocking_s(self, timeout_s: float, op_s: float = PRE_HELLO_OP_S) -> float:
        """B (§8): the longest one request may block, escalation included."""
        small = self.attempt_timeout_s(64, 64, op_s)
        return 2 * self.pass_s(timeout_s) + self.busy_s + 2 * 3 * small + FLUSH_S


@dataclass
class _Pending:
    """A windowed request awaiting its reply."""

    frame: Frame
    index: int
    attempts: int
    deadline_s: float
    sent_order: int  # when it was last transmitted, as a count of transmissions
    timeout_s: float
    busy_since_s: float | None = None


class PhlLink:
    """Request/response over a pyserial-like port (read, write, in_waiting, timeout)."""

    def __init__(
        self,
        port: Any,
        timing: LinkTiming,
        on_event: Callable[[msg.Event], None] | None = None,
        on_hello: Callable[[msg.Hello], None] | None = None,
    ) -> None:
        self.port = port
        self.timing = timing
        self.on_event = on_event
        self.on_hello = on_hello
        self.hello: msg.Hello | None = None
        self.session = 0
        self._decoder = FrameDecoder()
        self._inbox: deque[Frame] = deque()  # decoded frames not yet claimed
        self._seq = 0
        self._sent = 0
        self._lock = threading.RLock()
        self._reads_available = bool(getattr(port, "reads_available", False))
        self._closed = ""
        self.retransmissions = 0
        self.busy_retries = 0

    # ---- lifecycle -------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return bool(self._closed)

    def close(self, reason: str = "closed") -> None:
        self._closed = self._closed or reason
        try:
            self.port.close()
        except Exception as exc:  # closing must never raise out of close()
            log.debug("closing the port failed: %s", exc)

    def _fail(self, message: str) -> LinkError:
        """Close the link for good (§9 step 5); the caller raises what this returns."""
        log.error("%s; closing the link", message)
        self.close(message)
        return LinkError(message)

    def _check_open(self) -> None:
        if self._closed:
            raise LinkError(f"the FPGA link is closed ({self._closed}); open the device again")

    @property
    def op_s(self) -> float:
        return self.hello.op_s if self.hello is not None else PRE_HELLO_OP_S

    # ---- sessions ------------------------------------------------------------------------
    def open_session(self) -> msg.Hello:
        """HELLO with a fresh session (a full pass of attempts); the validated reply."""
        with self._lock:
            self._check_open()
            self._flush()
            hello = self._hello(self.timing.retries)
            if hello is None:
                raise LinkError("no answer to HELLO: the device is unreachable")
            return hello

    def restart_session(self) -> msg.Hello:
        """Re-HELLO (one attempt and one resend, §9); LinkError if the device is silent."""
        with self._lock:
            self._check_open()
            hello = self._hello(1)
            if hello is None:
                raise LinkError("no answer to HELLO")
            return hello

    def _hello(self, retries: int) -> msg.Hello | None:
        self.session = secrets.randbits(32) or 1
        self._inbox.clear()  # nothing read so far can answer the new session
        frame = Frame(msg.Opcode.HELLO, self._next_seq(), session=self.session)
        reply = self._attempts(frame, HELLO_BYTES + FRAME_OVERHEAD, 0.0, retries)
        if reply is None:
            return None
        payload = self._payload_or_raise(frame, reply)
        hello = msg.Hello.unpack(payload).validate()
        major, minor = hello.proto_version
        if major != PROTO_MAJOR or minor < PROTO_MINOR_MIN:  # any later minor serves ours (§11)
            raise self._incompatible(f"firmware protocol {major}.{minor}")
        if hello.firmware[0] != SUPPORTED_FIRMWARE_MAJOR:
            raise self._incompatible("firmware " + ".".join(map(str, hello.firmware)))
        self.hello = hello
        if self.on_hello is not None:
            self.on_hello(hello)
        return hello

    def _incompatible(self, what: str) -> ConfigurationError:
        self.close(f"incompatible device ({what})")
        return ConfigurationError(
            f"incompatible {what}: this driver speaks PHL1 v{PROTO_MAJOR}.{PROTO_MINOR_MIN}"
            f" to v{PROTO_MAJOR}.{PROTO_MINOR} with firmware "
            f"{SUPPORTED_FIRMWARE_MAJOR}.x"
        )

    def _next_seq(self) -> int:
        self._seq = self._seq % 0xFFFF + 1  # 1 .. 65535, never 0
        return self._seq

    # ---- one request -------------------------------------------------------------------
    def request(
        self, opcode: int, payload: bytes = b"", *, response_bytes: int = 64, work_s: float = 0.0
    ) -> bytes:
        """Send one request and return its response payload (see the module docstring)."""
        with self._lock:
            self._check_open()
            for second_pass in (False, True):
                frame = Frame(opcode, self._next_seq(), payload, session=self.session)
                reply = self._attempts(frame, response_bytes, work_s, self.timing.retries)
                if reply is not None and not reply.flags & FLAG_ERR:
                    return reply.payload  # the common case: an answer without an error
                if reply is None and second_pass:
                    raise self._fail(
                        f"{_name(opcode)}: no valid response, even after a re-HELLO; "
                        "the device is unreachable"
                    )
                if reply is None:
                    self._escalate(f"{_name(opcode)}: no valid response")
                elif _error_code(reply) != msg.ErrorCode.NO_SESSION:
                    return self._payload_or_raise(frame, reply)
                elif second_pass:
                    raise self._session_lost(opcode)
                else:
                    self._rehello(f"{_name(opcode)} answered NO_SESSION")
            raise LinkError("unreachable")  # pragma: no cover - the loop returns or raises

    def _rehello(self, why: str) -> None:
        """NO_SESSION (§9 step 3): flush and re-HELLO; close if HELLO goes unanswered."""
        log.warning("%s: re-HELLO", why)
        self._flush()
        if self._hello(1) is None:
            raise self._fail(f"{why}, then HELLO unanswered: the device is unreachable")

    def _session_lost(self, opcode: int) -> LinkError:
        """NO_SESSION again after a re-HELLO: re-HELLO once more so that later requests
        work, and give up on this one (the device is rebooting or contended)."""
        self._rehello(f"{_name(opcode)} answered NO_SESSION twice")
        return LinkError(
            f"{_name(opcode)} was refused with NO_SESSION twice: the device keeps rebooting or "
            "another host keeps starting sessions"
        )

    def _attempts(
        self, frame: Frame, response_bytes: int, work_s: float, retries: int
    ) -> Frame | None:
        """One pass: send, resend on timeout/NAK (capped backoff), BUSY bounded (§8)."""
        wire = encode_frame(frame)
        timeout = self.timing.attempt_timeout_s(len(wire), response_bytes, self.op_s + work_s)
        attempt = timeouts = 0  # resends so far; timeouts alone advance the backoff
        busy_since: float | None = None
        self._write(wire)
        deadline = time.monotonic() + timeout
        while True:
            reply = self._await({frame.seq: frame}, deadline)
            if isinstance(reply, Frame):
                if _error_code(reply) != msg.ErrorCode.BUSY:
                    return reply
                busy_since = self._busy_wait(frame, reply, busy_since)
            elif attempt >= retries:
                return None
            else:
                attempt += 1
                timeouts += reply is _NoReply.TIMEOUT
                self.retransmissions += 1
                log.debug("retransmit seq %d (attempt %d, %s)", frame.seq, attempt + 1, reply)
            self._write(encode_frame(_retx(frame)))
            deadline = time.monotonic() + timeout * self.timing.backoff(timeouts)

    def _busy_wait(self, frame: Frame, reply: Frame, since: float | None) -> float:
        """Sleep the wait BUSY asks for; DeviceError once ``busy_s`` of BUSY has passed."""
        now = time.monotonic()
        since = now if since is None else since
        error = msg.ErrorReply.unpack(reply.payload)
        wait = min(max(error.aux / 1000.0, 0.001), BUSY_MAX_WAIT_S) if error.aux else BUSY_DEFAULT_S
        if now + wait - since > self.timing.busy_s:
            raise DeviceError(
                f"FPGA stayed BUSY for {now - since:.2f} s on {_name(frame.opcode)} "
                f"(bound {self.timing.busy_s:g} s)",
                code=msg.ErrorCode.BUSY,
            )
        self.busy_retries += 1
        time.sleep(wait)
        return since

    def _payload_or_raise(self, frame: Frame, reply: Frame) -> bytes:
        """The payload of an answer, or the error it carries as a LuminaError (§7)."""
        if not reply.flags & FLAG_ERR:
            return reply.payload
        error = msg.ErrorReply.unpack(reply.payload)
        text = f"FPGA refused {_name(frame.opcode)}: {error.describe()}"
        if error.code == msg.ErrorCode.BAD_VERSION:
            self.close("BAD_VERSION")
            raise ConfigurationError(f"{text}; the device does not serve PHL1 v1.1")
        if error.code == msg.ErrorCode.IN_USE:
            raise self._fail(f"{text} (another host holds the device)")
        raise DeviceError(text, code=error.code)

    def _write(self, wire: bytes, frames: int = 1) -> None:
        self._sent += frames
        if log.isEnabledFor(logging.DEBUG):
            log.debug("tx %s", wire.hex(" "))
        try:
            self.port.write(wire)  # one write per frame (TCP: one segment, no Nagle wait)
        except Exception as exc:
            raise self._fail(f"writing to the FPGA link failed: {exc}") from exc

    # ---- pipelined requests --------------------------------------------------------------
    def request_window(
        self,
        opcode: int,
        payloads: Sequence[bytes],
        window: int,
        *,
        response_bytes: int = 24,
        check: Callable[[int, bytes], None] | None = None,
    ) -> list[bytes]:
        """Send ``payloads`` with up to ``window`` in flight; their replies, in order.

        Only idempotent requests belong here (W_CHUNK, X_CHUNK, Y_READ). Each request has its
        own deadline, backoff and BUSY budget; a NAK_CRC resends the one transmitted longest
        ago. ``check(index, reply)`` validates each reply (raise MalformedPayload). A request
        that uses its attempts escalates once (§9); the requests still pending are then sent
        again as fresh requests in the new session.
        """
        results: list[bytes] = [b""] * len(payloads)
        window = max(1, window)
        total = len(payloads)
        with self._lock:
            self._check_open()
            pending: dict[int, _Pending] = {}
            frames = _FramesOf(pending)
            next_index = 0
            escalated = False
            while next_index < total or pending:
                # Refill the window once every reply already read is handled, so that the
                # frames freed by one read leave in one write (one syscall, one wake-up).
                if next_index < total and len(pending) < window and not (pending and self._inbox):
                    count = min(window - len(pending), total - next_index)
                    batch = range(next_index, next_index + count)
                    items = [(payloads[i], i) for i in batch]
                    self._send_new(opcode, items, response_bytes, pending)
                    next_index += count
                earliest = min(entry.deadline_s for entry in pending.values())
                reply = self._await(frames, earliest)
                if isinstance(reply, Frame):
                    entry = pending[reply.seq]
                    code = _error_code(reply)
                    if code == msg.ErrorCode.BUSY:
                        entry.busy_since_s = self._busy_wait(entry.frame, reply, entry.busy_since_s)
                        self._resend(entry, backoff=False, count=False)
                        continue
                    if code == msg.ErrorCode.NO_SESSION:
                        if escalated:
                            raise self._session_lost(opcode)
                        self._rehello(f"{_name(opcode)} answered NO_SESSION")
                        escalated = True
                        self._send_again(opcode, pending, response_bytes)
                        continue
                    del pending[reply.seq]
                    payload = self._payload_or_raise(entry.frame, reply)
                    if check is not None:
                        check(entry.index, payload)
                    results[entry.index] = payload
                    continue
                elif reply is _NoReply.NAK:
                    oldest = min(pending.values(), key=lambda e: e.sent_order)
                    if oldest.attempts < self.timing.retries:
                        self._resend(oldest, backoff=False)
                        continue
                    stalled = f"{_name(opcode)}: NAK_CRC {oldest.attempts + 1} times"
                else:
                    now = time.monotonic()
                    late = [e for e in pending.values() if e.deadline_s <= now]
                    if all(e.attempts < self.timing.retries for e in late):
                        for entry in late:
                            self._resend(entry, backoff=True)
                        continue
                    stalled = (
                        f"no response to {_name(opcode)} after {self.timing.retries + 1} attempts"
                    )
                if escalated:
                    raise self._fail(f"{stalled}, even after a re-HELLO; the device is unreachable")
                self._escalate(stalled)
                escalated = True
                self._send_again(opcode, pending, response_bytes)
        return results

    def _send_again(self, opcode: int, pending: dict[int, _Pending], response_bytes: int) -> None:
        """After a re-HELLO: every pending request again, as a fresh one (§9 step 4)."""
        again = sorted(pending.values(), key=lambda e: e.index)
        pending.clear()
        items = [(old.frame.payload, old.index) for old in again]
        self._send_new(opcode, items, response_bytes, pending)

    def _send_new(
        self,
        opcode: int,
        items: Sequence[tuple[bytes, int]],
        response_bytes: int,
        pending: dict[int, _Pending],
    ) -> None:
        """Fresh requests for (payload, index) ``items``, written in one call, into ``pending``.

        Whole frames only, back to back: no frame is ever split over two writes (§1).
        """
        session, wires, entries = self.session, [], []
        for payload, index in items:
            frame = Frame(opcode, self._next_seq(), payload, session=session)
            wire = encode_frame(frame)
            timeout = self.timing.attempt_timeout_s(len(wire), response_bytes, self.op_s)
            wires.append(wire)
            entries.append(_Pending(frame, index, 0, 0.0, self._sent + len(wires), timeout))
        self._write(wires[0] if len(wires) == 1 else b"".join(wires), frames=len(wires))
        now = time.monotonic()
        for entry in entries:
            entry.deadline_s = now + entry.timeout_s
            pending[entry.frame.seq] = entry

    def _resend(self, entry: _Pending, *, backoff: bool, count: bool = True) -> None:
        """Retransmit one windowed request with RETX (one of its ``retries`` if ``count``)."""
        self._write(encode_frame(_retx(entry.frame)))
        if count:
            self.retransmissions += 1
            entry.attempts += 1
        entry.sent_order = self._sent
        factor = self.timing.backoff(entry.attempts) if backoff else 1
        entry.deadline_s = time.monotonic() + entry.timeout_s * factor

    # ---- receiving -----------------------------------------------------------------------
    def _await(self, outstanding: Mapping[int, Frame], deadline_s: float) -> Frame | _NoReply:
        """The next answer to one of ``outstanding`` (by seq), or why none came (§4).

        Frames are handled in arrival order; events are dispatched, stale frames dropped,
        a v1.0 frame refused, a header that contradicts its request a protocol violation.
        """
        while True:
            while self._inbox:
                frame = self._inbox.popleft()
                if frame.flags & FLAG_EVENT:  # the flag decides: an event is never a reply
                    self._dispatch_event(frame)
                    continue
                if frame.version != VERSION:
                    if frame.version == LEGACY_VERSION:
                        raise self._incompatible("firmware speaking PHL1 v1.0 (it refused v1.1)")
                    log.debug("dropped a frame of version %#04x", frame.version)
                    continue
                if frame.flags == FLAG_RESP | FLAG_ERR and _is_nak(frame):
                    log.debug("NAK_CRC: a request arrived damaged; resending at once")
                    return _NoReply.NAK
                request = outstanding.get(frame.seq)
                if frame.session != self.session or request is None:
                    log.debug("dropped stale frame session %08x seq %d", frame.session, frame.seq)
                    continue
                if frame.flags not in (FLAG_RESP, FLAG_RESP | FLAG_ERR) or (
                    frame.opcode,
                    frame.chan,
                ) != (request.opcode, request.chan):
                    raise LinkError(
                        f"protocol violation: the answer to {_name(request.opcode)} seq "
                        f"{frame.seq} has opcode {frame.opcode:#04x}, chan {frame.chan}, "
                        f"flags {frame.flags:#04x}"
                    )
                return frame
            remaining = deadline_s - time.monotonic()
            if remaining <= 0:
                return _NoReply.TIMEOUT
            wait = min(remaining, 0.05)
            if self.port.timeout != wait:  # pyserial reconfigures the tty on every change
                self.port.timeout = wait
            try:
                data = self.port.read(1 if self._reads_available else max(1, self.port.in_waiting))
            except Exception as exc:
                raise self._fail(f"reading from the FPGA link failed: {exc}") from exc
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

    # ---- escalation (§9) -----------------------------------------------------------------
    def _flush(self) -> None:
        """Flush both directions and the decoder; events already read are still news."""
        for frame in self._inbox:
            if frame.flags & FLAG_EVENT:
                self._dispatch_event(frame)
        try:
            self.port.write(b"\x00\x00")
            time.sleep(FLUSH_S)
            self.port.reset_input_buffer()
        except Exception as exc:
            raise self._fail(f"resynchronizing the FPGA link failed: {exc}") from exc
        self._decoder.reset()
        self._inbox.clear()

    def _escalate(self, why: str) -> None:
        """Flush, PING, re-HELLO (§9); closes the link and raises if HELLO goes unanswered."""
        log.warning("link escalation (%s): flush, PING, re-HELLO", why)
        self._flush()
        probe = Frame(msg.Opcode.PING, self._next_seq(), session=self.session)
        alive = self._attempts(probe, 32, 0.0, 1) is not None
        log.info("escalation PING %s", "answered" if alive else "unanswered")
        if self._hello(1) is None:
            raise self._fail(f"{why}; PING and HELLO unanswered: the device is unreachable")


class _FramesOf(Mapping[int, Frame]):
    """The request frames of a window's pending entries, by seq (a live view, no copy)."""

    def __init__(self, pending: dict[int, _Pending]) -> None:
        self._pending = pending

    def __getitem__(self, seq: int) -> Frame:
        return self._pending[seq].frame

    def get(self, seq: int, default: Any = None) -> Any:
        entry = self._pending.get(seq)
        return default if entry is None else entry.frame

    def __iter__(self) -> Iterator[int]:
        return iter(self._pending)

    def __len__(self) -> int:
        return len(self._pending)


def _retx(frame: Frame) -> Frame:
    return Frame(frame.opcode, frame.seq, frame.payload, FLAG_RETX, frame.chan, frame.session)


def _error_code(frame: Frame) -> int | None:
    if not frame.flags & FLAG_ERR or not frame.payload:
        return None
    return frame.payload[0]


def _is_nak(frame: Frame) -> bool:
    return frame.seq == 0 and frame.payload[:1] == bytes([msg.ErrorCode.NAK_CRC])


def _name(opcode: int) -> str:
    try:
        return msg.Opcode(opcode).name
    except ValueError:
        return f"opcode {opcode:#04x}"
