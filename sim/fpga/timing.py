"""A real board's timing for the FPGA emulator: link baud rate and RUN latency.

The emulator answers at memory speed, so by itself it cannot show what a pool of boards buys:
a real board spends its time waiting on its UART and on the optics. ``TimedEndpoint`` wraps
the emulator's endpoint and sleeps as the board would (docs/scale-out.md section 4):

- wire time: ``10 * bytes / baudrate`` seconds for every byte in both directions (UART 8N1);
- RUN latency: ``run_latency_s`` for every RUN the emulator executed (answers from the
  response cache for a retransmission are not executed, so they cost only wire time).

The sleep happens in the caller's thread (``time.sleep`` releases the GIL), so chips served by
different threads or processes wait concurrently, as separate boards do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from lumina_hal.params import Param

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


@dataclass(frozen=True)
class BoardTiming:
    """How long a board takes: link baud rate (0: instant wire) and latency per RUN."""

    baudrate: int = 0
    run_latency_s: float = 0.0

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> BoardTiming:
        """From URL-query strings or typed values; unknown keys are ignored."""
        return cls(
            int(float(params.get("baudrate", 0) or 0)),
            float(params.get("run_latency_s", 0.0) or 0.0),
        )

    @property
    def active(self) -> bool:
        return self.baudrate > 0 or self.run_latency_s > 0

    def wire_s(self, nbytes: int) -> float:
        """Seconds ``nbytes`` take on the wire (0 without a baud rate)."""
        return BITS_PER_BYTE * nbytes / self.baudrate if self.baudrate else 0.0

    def exchange_s(self, request_bytes: int, reply_bytes: int, runs: int) -> float:
        """Seconds one exchange takes: both directions on the wire plus executed RUNs."""
        return self.wire_s(request_bytes + reply_bytes) + runs * self.run_latency_s


class TimedEndpoint:
    """An emulator endpoint (``handle(bytes) -> bytes``) that takes a board's time."""

    def __init__(self, endpoint: Any, timing: BoardTiming) -> None:
        self.endpoint = endpoint
        self.timing = timing

    @property
    def emulator(self) -> Any:
        return self.endpoint.emulator

    @property
    def faults(self) -> Any:
        return self.endpoint.faults

    def handle(self, data: bytes) -> bytes:
        counters = self.endpoint.emulator.counters
        runs_before = counters["runs"]
        reply: bytes = self.endpoint.handle(data)
        # A reboot replaces the counters: count runs on whichever dict is current now.
        runs = self.endpoint.emulator.counters["runs"]
        executed = runs - runs_before if self.endpoint.emulator.counters is counters else runs
        delay_s = self.timing.exchange_s(len(data), len(reply), executed)
        if delay_s > 0:
            time.sleep(delay_s)
        return reply
