"""The 8164B laser's own wavelength sweep as a function of the model's clock.

Settings (nm, nm/s), the check codes of ``SOUR0:WAV:SWE:CHEC?`` and the state
(0 stopped, 1 running, 2 paused) follow the 8163A/B/8164A/B programming guide as PyMeasure's
N7776C driver and LabExT use it; positions and the lambda log are computed from the clock when
asked, so the model never sleeps. docs/instrument-sim.md, "Keysight 8164B".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

STOPPED, RUNNING, PAUSED = 0, 1, 2
MAX_LOGGED_POINTS = 100_001  # [sim]
#: SOUR0:WAV:SWE:CHEC? codes (as PyMeasure's KeysightN7776C.valid_sweep_params lists them).
CHECK_TEXT = {
    0: "OK",
    368: "End Wavelength <= Start Wavelength",
    373: "Number of triggers exceeds allowed limit",
    375: "Lambda logging only works Step Finished output trigger configuration",
    376: "Lambda logging can only be done in continuous sweep mode",
}


@dataclass
class SweepSettings816x:
    """``*RST`` values are the defaults [sim]."""

    start_nm: float = 1510.0
    stop_nm: float = 1590.0
    step_nm: float = 0.1
    speed_nm_s: float = 40.0
    mode: str = "CONT"  # STEP, MAN or CONT
    two_way: bool = False  # REP TWOW
    lambda_logging: bool = False  # LLOG

    def points(self) -> int:
        return math.floor((self.stop_nm - self.start_nm) / self.step_nm + 1e-9) + 1

    def check(self, trigger_output: str) -> int:
        """The CHEC? code of these settings (0 = consistent)."""
        if self.stop_nm <= self.start_nm:
            return 368
        if self.points() > MAX_LOGGED_POINTS:
            return 373
        if self.lambda_logging and self.mode != "CONT":
            return 376
        if self.lambda_logging and trigger_output != "STF":
            return 375
        return 0


@dataclass
class Sweep816x:
    """A sweep in progress on ``clock``; ``settings`` are frozen copies while it runs."""

    clock: Callable[[], float]
    settings: SweepSettings816x = field(default_factory=SweepSettings816x)
    _running: SweepSettings816x | None = None
    _started_s: float = 0.0
    _paused_at_s: float | None = None  # elapsed sweep time when paused
    _manual_step: int = 0
    log_nm: list[float] = field(default_factory=list)

    def _duration_s(self, s: SweepSettings816x) -> float:
        one_way = (s.stop_nm - s.start_nm) / s.speed_nm_s
        return one_way * (2 if s.two_way else 1)

    def _elapsed_s(self) -> float:
        if self._paused_at_s is not None:
            return self._paused_at_s
        return self.clock() - self._started_s

    def state(self) -> int:
        s = self._running
        if s is None:
            return STOPPED
        if self._paused_at_s is not None:
            return PAUSED
        if s.mode == "MAN":
            return RUNNING
        if self._elapsed_s() >= self._duration_s(s):
            self._finish()
            return STOPPED
        return RUNNING

    def start(self) -> None:
        if self._running is not None and self._paused_at_s is not None:  # resume
            self._started_s = self.clock() - self._paused_at_s
            self._paused_at_s = None
            return
        self._running = SweepSettings816x(**vars(self.settings))
        self._started_s, self._paused_at_s, self._manual_step = self.clock(), None, 0
        self.log_nm = []

    def pause(self) -> None:
        if self.state() == RUNNING:
            self._paused_at_s = self._elapsed_s()

    def stop(self) -> None:
        self._running, self._paused_at_s = None, None

    def step(self, direction: int) -> None:
        """``:STEP:NEXT``/``:PREV`` of a manual or paused stepped sweep."""
        s = self._running
        if s is None:
            return
        self._manual_step = max(0, min(s.points() - 1, self._manual_step + direction))

    def _finish(self) -> None:
        s = self._running
        if s is not None and s.lambda_logging:
            self.log_nm = [s.start_nm + k * s.step_nm for k in range(s.points())]
        self._running, self._paused_at_s = None, None

    def emitted_nm(self) -> float | None:
        """The laser's wavelength while a sweep runs (None: no sweep)."""
        if self.state() == STOPPED or self._running is None:
            return None
        s = self._running
        if s.mode == "MAN":
            return s.start_nm + self._manual_step * s.step_nm
        travelled = self._elapsed_s() * s.speed_nm_s
        span = s.stop_nm - s.start_nm
        if s.mode == "STEP":
            travelled = math.floor(travelled / s.step_nm + 1e-9) * s.step_nm
        if travelled <= span:
            return s.start_nm + travelled
        return s.stop_nm - (travelled - span)  # the way back of a two-way sweep
