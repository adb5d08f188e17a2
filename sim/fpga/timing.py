"""A real board's timing for the FPGA emulator: link baud rate and RUN latency.

The emulator answers at memory speed, so by itself it cannot show what a pool of boards buys.
``TimedEndpoint`` wraps the emulator's endpoint and waits as the board would, by the model
of ``lumina_hal.board_timing`` (shared with the twin's timing option; docs/scale-out.md
section 4): wire time for every byte the exchange actually moved in both directions, plus
``run_latency_s`` for every RUN the emulator executed (answers from the response cache for
a retransmission are not executed, so they cost only wire time). The emulator's own
computing counts within that time, as a board's FPGA and optics work within theirs: an
exchange takes the modelled time, or the computing time if that is longer.
"""

from __future__ import annotations

from typing import Any

from lumina_hal.board_timing import TIMING_NAMES, TIMING_PARAMS, BoardTiming

__all__ = ["TIMING_NAMES", "TIMING_PARAMS", "BoardTiming", "TimedEndpoint"]


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
        start_s = self.timing.now_s()
        counters = self.endpoint.emulator.counters
        runs_before = counters["runs"]
        reply: bytes = self.endpoint.handle(data)
        # A reboot replaces the counters: count runs on whichever dict is current now.
        runs = self.endpoint.emulator.counters["runs"]
        executed = runs - runs_before if self.endpoint.emulator.counters is counters else runs
        modelled_s = self.timing.exchange_s(len(data), len(reply), executed)
        self.timing.wait(modelled_s, self.timing.now_s() - start_s)
        return reply
