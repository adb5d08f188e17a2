"""A real board's pace: link wire time and RUN latency, one model for the emulator and the twin.

An emulated chip answers at memory speed, so by itself it cannot show what a pool of boards
buys: a real board spends its time waiting on its UART and on the optics. Both emulations
take a board's time from this one model (docs/scale-out.md section 4):

- wire time: ``BITS_PER_BYTE * bytes / baudrate`` seconds for every byte in both directions
  (UART 8N1); no wire time with ``baudrate = 0``;
- RUN latency: ``run_latency_s`` for every RUN the chip executes.

The FPGA emulator (``sim/fpga/timing.py``) charges the bytes it actually moved; the twin
(``mock://?baudrate=...&run_latency_s=...``) charges the bytes the same RUN or weight upload
would move on a PHL1 link (``run_wire_bytes``, ``upload_wire_bytes``; docs/protocol.md
sections 2 and 6). The wait is a
``time.sleep`` in the caller's thread (it releases the GIL), so chips served by different
threads or processes wait concurrently, as separate boards do. Lives in the core so that
both ``lumina_hal.twin`` and ``lumina_hal.sim`` may import it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lumina_hal.params import Param, resolve_params
from lumina_hal.phl1_constants import FRAME_OVERHEAD as PHL_FRAME_OVERHEAD
from lumina_hal.phl1_constants import MAX_PAYLOAD as PHL_MAX_PAYLOAD
from lumina_hal.phl1_constants import (
    RUN_MAX_COUNT,
    RUN_REPLY_HEAD,
    RUN_REQUEST_HEAD,
    W_BEGIN_BYTES,
    W_BEGIN_REPLY,
    W_CHUNK_HEAD,
    W_CHUNK_REPLY,
    W_COMMIT_BYTES,
    W_COMMIT_REPLY,
)

#: UART 8N1: a start bit, 8 data bits and a stop bit per byte.
BITS_PER_BYTE = 10

TIMING_PARAMS: tuple[Param, ...] = (
    Param(
        "baudrate",
        int,
        0,
        "emulated link baud rate (UART 8N1 wire time); 0: no wire time",
        unit="Bd",
        minimum=0,
        maximum=20_000_000,
    ),
    Param(
        "run_latency_s",
        float,
        0.0,
        "emulated time the chip takes per executed RUN",
        unit="s",
        minimum=0.0,
        maximum=60.0,
    ),
)
TIMING_NAMES = frozenset(p.name for p in TIMING_PARAMS)


def uart_wire_s(nbytes: int, baudrate: int | None) -> float:
    """Seconds ``nbytes`` take on a UART (8N1) at ``baudrate``; 0 without one (TCP, in-process).

    The one wire-time formula: the board model here and the FPGA driver's timeouts
    (docs/protocol.md section 8) both use it.
    """
    return BITS_PER_BYTE * nbytes / baudrate if baudrate else 0.0


def frame_wire_bytes(payload_bytes: int) -> int:
    """Bytes one PHL1 frame of ``payload_bytes`` takes on the wire: header and CRC, COBS's
    worst-case overhead (one code byte per 254, plus one) and the 0x00 delimiter."""
    framed = payload_bytes + PHL_FRAME_OVERHEAD
    return framed + framed // 254 + 1 + 1


def run_wire_bytes(
    batch: int, rows: int, cols: int, max_payload: int = PHL_MAX_PAYLOAD
) -> tuple[int, int, int]:
    """(request bytes, reply bytes, RUNs) of ``batch`` vectors through a ``rows x cols``
    matrix on a PHL1 link: as many vectors per RUN as fit one payload each way (int32 codes,
    docs/protocol.md section 6); a side too long for one payload travels in payload-sized
    frames (an estimate of the staged transfer)."""
    if batch <= 0:
        return 0, 0, 0
    per_run = min(
        (max_payload - RUN_REQUEST_HEAD) // (4 * cols),
        (max_payload - RUN_REPLY_HEAD) // (4 * rows),
        RUN_MAX_COUNT,
    )
    per_run = max(1, per_run)
    runs = math.ceil(batch / per_run)
    request = reply = 0
    for first in range(0, batch, per_run):
        count = min(per_run, batch - first)
        request += _frames_wire_bytes(RUN_REQUEST_HEAD + 4 * count * cols, max_payload)
        reply += _frames_wire_bytes(RUN_REPLY_HEAD + 4 * count * rows, max_payload)
    return request, reply, runs


def upload_wire_bytes(rows: int, cols: int, max_payload: int = PHL_MAX_PAYLOAD) -> tuple[int, int]:
    """(request bytes, reply bytes) of programming a ``rows x cols`` matrix on a PHL1 link:
    its int32 codes in W_CHUNKs of at most one payload, between W_BEGIN and W_COMMIT."""
    data = 4 * rows * cols
    room = max_payload - W_CHUNK_HEAD
    chunks, rest = divmod(data, room)
    request = frame_wire_bytes(W_BEGIN_BYTES) + frame_wire_bytes(W_COMMIT_BYTES)
    request += chunks * frame_wire_bytes(max_payload)
    request += frame_wire_bytes(W_CHUNK_HEAD + rest) if rest else 0
    replies = chunks + (1 if rest else 0)
    reply = frame_wire_bytes(W_BEGIN_REPLY) + frame_wire_bytes(W_COMMIT_REPLY)
    return request, reply + replies * frame_wire_bytes(W_CHUNK_REPLY)


def _frames_wire_bytes(payload_bytes: int, max_payload: int) -> int:
    full, rest = divmod(payload_bytes, max_payload)
    return full * frame_wire_bytes(max_payload) + (frame_wire_bytes(rest) if rest else 0)


@dataclass(frozen=True)
class BoardTiming:
    """How long a board takes: link baud rate (0: instant wire) and latency per RUN."""

    baudrate: int = 0
    run_latency_s: float = 0.0

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], *, context: str = "board timing"
    ) -> BoardTiming:
        """From URI-query strings or typed values (validated against TIMING_PARAMS;
        ConfigurationError when out of range); other keys are ignored."""
        given = {k: v for k, v in params.items() if k in TIMING_NAMES and v is not None}
        typed = resolve_params(TIMING_PARAMS, given, context=context)
        return cls(int(typed.get("baudrate", 0)), float(typed.get("run_latency_s", 0.0)))

    @property
    def active(self) -> bool:
        return self.baudrate > 0 or self.run_latency_s > 0

    def wire_s(self, nbytes: int) -> float:
        """Seconds ``nbytes`` take on the wire (0 without a baud rate)."""
        return uart_wire_s(nbytes, self.baudrate)

    def exchange_s(self, request_bytes: int, reply_bytes: int, runs: int) -> float:
        """Seconds one exchange takes: both directions on the wire plus executed RUNs."""
        return self.wire_s(request_bytes + reply_bytes) + runs * self.run_latency_s

    def run_s(self, batch: int, rows: int, cols: int) -> float:
        """Seconds a board takes to run ``batch`` vectors through ``rows x cols`` weights."""
        return self.exchange_s(*run_wire_bytes(batch, rows, cols))

    def upload_s(self, rows: int, cols: int) -> float:
        """Seconds a board's link takes to program a ``rows x cols`` matrix (wire only)."""
        return self.exchange_s(*upload_wire_bytes(rows, cols), 0)

    def wait(self, seconds: float, elapsed_s: float = 0.0) -> None:
        """Take ``seconds`` of the caller's thread, as the board would, of which
        ``elapsed_s`` (the emulation's own computing) were already spent (no-op if none)."""
        remaining = seconds - elapsed_s
        if remaining > 0:
            time.sleep(remaining)

    @staticmethod
    def now_s() -> float:
        """The monotonic clock ``elapsed_s`` is measured on."""
        return time.perf_counter()


class BoardClock:
    """A device's modelled board time: waits it and sums it (the twin's timing option)."""

    def __init__(self, timing: BoardTiming) -> None:
        self.timing = timing
        self.waited_s = 0.0

    def run(self, batch: int, shape: tuple[int, int] | None) -> None:
        """Wait what a board takes to RUN ``batch`` vectors through weights of ``shape``
        (rows, cols; None: nothing programmed, no RUN)."""
        if self.timing.active and shape is not None:
            self._take(self.timing.run_s(batch, *shape))

    def load(self, shape: tuple[int, int] | None) -> None:
        """Wait what a board's link takes to upload weights of ``shape`` (rows, cols)."""
        if self.timing.active and shape is not None:
            self._take(self.timing.upload_s(*shape))

    def _take(self, seconds: float) -> None:
        self.waited_s += seconds
        self.timing.wait(seconds)

    def counters(self) -> dict[str, int]:
        """``{"board_time_us": ...}``, the modelled time so far, when timing is on; else {}."""
        return {"board_time_us": round(self.waited_s * 1e6)} if self.timing.active else {}

    def reset(self) -> None:
        self.waited_s = 0.0
