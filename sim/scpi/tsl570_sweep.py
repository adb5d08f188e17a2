"""The TSL-570's wavelength sweep as a function of the model's clock (docs/instrument-sim.md).

A started sweep prepares, optionally waits for a trigger, then runs its cycles; status, the
emitted wavelength, the completed count and the logged wavelengths are all computed from the
clock when asked, so the model never sleeps and a test can run it at any speed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

SPEEDS_NM_S = (1, 2, 5, 10, 20, 50, 100, 200)
PREPARE_S = 0.2
STOPPED, RUNNING, WAITING_FOR_TRIGGER, PREPARING = 0, 1, 3, 4
TRIGGER_NONE, TRIGGER_STOP, TRIGGER_START, TRIGGER_STEP = 0, 1, 2, 3


@dataclass
class SweepSettings:
    """The sweep's settings, in nm, nm/s and s; the ``*RST`` values are the defaults."""

    start_nm: float = 1500.0
    stop_nm: float = 1600.0
    step_nm: float = 1.0
    speed_nm_s: float = 10.0
    mode: int = 1  # 0 stepped one-way, 1 continuous one-way, 2 stepped two-way, 3 continuous
    dwell_s: float = 0.0
    delay_s: float = 0.0
    cycles: int = 1
    trigger_input_external: bool = False
    trigger_output: int = TRIGGER_NONE
    trigger_step_nm: float = 0.1

    @property
    def stepped(self) -> bool:
        return self.mode in (0, 2)

    @property
    def two_way(self) -> bool:
        return self.mode in (2, 3)

    @property
    def span_nm(self) -> float:
        return abs(self.stop_nm - self.start_nm)

    @property
    def direction(self) -> float:
        return 1.0 if self.stop_nm >= self.start_nm else -1.0

    def steps(self) -> int:
        """Steps of a stepped pass (points = steps + 1)."""
        return math.floor(self.span_nm / self.step_nm + 1e-9)

    def conflict(self) -> str | None:
        """Why these settings cannot start a sweep, or None."""
        if self.span_nm == 0:
            return "start equals stop"
        if self.stepped and self.step_nm > self.span_nm:
            return "step exceeds the range"
        return None

    def pass_s(self) -> float:
        """Duration of one pass from start to stop (s)."""
        if self.stepped:
            n = self.steps()
            return n * self.step_nm / self.speed_nm_s + (n + 1) * self.dwell_s
        return self.span_nm / self.speed_nm_s

    def cycle_s(self) -> float:
        return self.pass_s() * (2 if self.two_way else 1)

    def position_nm(self, into_pass_s: float) -> float:
        """Wavelength ``into_pass_s`` seconds into a start-to-stop pass."""
        if self.stepped:
            per_step = self.step_nm / self.speed_nm_s + self.dwell_s
            k = min(int(into_pass_s // per_step) if per_step > 0 else 0, self.steps())
            return self.start_nm + self.direction * k * self.step_nm
        travelled = min(into_pass_s * self.speed_nm_s, self.span_nm)
        return self.start_nm + self.direction * travelled

    def logged_nm(self) -> list[float]:
        """The wavelengths one start-to-stop pass logs (its trigger pulses)."""
        if self.stepped:
            points = range(self.steps() + 1)
            return [self.start_nm + self.direction * k * self.step_nm for k in points]
        if self.trigger_output == TRIGGER_STEP:
            n = math.floor(self.span_nm / self.trigger_step_nm + 1e-9)
            return [self.start_nm + self.direction * k * self.trigger_step_nm for k in range(n + 1)]
        if self.trigger_output == TRIGGER_STOP:
            return [self.stop_nm]
        if self.trigger_output == TRIGGER_START:
            return [self.start_nm]
        return []


class Sweep:
    """One sweep's life on ``clock``: start, optional trigger wait, cycles, completion."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.settings = SweepSettings()
        self._started_s: float | None = None  # None: no sweep started, or it was stopped
        self._run_from_s: float | None = None  # when the first cycle begins (None: awaiting)
        self._cycles = 1  # 0: until stopped
        self.completed = 0
        self.log_nm: list[float] = []
        self.rest_nm: float | None = None  # where the laser rests after the last sweep

    # -- control -------------------------------------------------------------------------------

    def start(self, cycles: int) -> None:
        now = self.clock()
        self._started_s, self._cycles, self.completed = now, cycles, 0
        self.log_nm, self.rest_nm = [], None
        self._run_from_s = None if self.settings.trigger_input_external else now + PREPARE_S

    def stop(self) -> float | None:
        """Abort; returns the wavelength the laser stops at (None if nothing ran)."""
        position = self.emitted_nm()
        self._update()
        self._started_s = self._run_from_s = None
        return position

    def trigger(self) -> None:
        """A trigger input: a sweep standing by starts its first cycle now."""
        if self.status() == WAITING_FOR_TRIGGER:
            self._run_from_s = self.clock()

    # -- state from the clock --------------------------------------------------------------------

    def status(self) -> int:
        self._update()
        if self._started_s is None:
            return STOPPED
        now = self.clock()
        if now < self._started_s + PREPARE_S:
            return PREPARING
        if self._run_from_s is None:
            return WAITING_FOR_TRIGGER
        return RUNNING

    @property
    def running(self) -> bool:
        return self.status() != STOPPED

    def emitted_nm(self) -> float | None:
        """The light's wavelength now, if a cycle is under way (else None)."""
        self._update()
        if self._started_s is None or self._run_from_s is None:
            return None
        s = self.settings
        into_cycle = (self.clock() - self._run_from_s) % (s.cycle_s() + s.delay_s)
        if into_cycle >= s.cycle_s():  # the delay between cycles: at rest at the cycle's end
            return s.start_nm if s.two_way else s.stop_nm
        if into_cycle <= s.pass_s():
            return s.position_nm(into_cycle)
        return s.position_nm(s.cycle_s() - into_cycle)  # the way back of a two-way sweep

    def _update(self) -> None:
        """Count completed cycles; finish the sweep when the last one is done."""
        if self._started_s is None or self._run_from_s is None:
            return
        s = self.settings
        period = s.cycle_s() + s.delay_s
        done = math.floor((self.clock() - self._run_from_s + s.delay_s) / period + 1e-12)
        if self._cycles:
            done = min(done, self._cycles)
        if done > self.completed:
            self.completed = done
            self.log_nm = s.logged_nm()
        if self._cycles and done >= self._cycles:
            self.rest_nm = s.start_nm if s.two_way else s.stop_nm
            self._started_s = self._run_from_s = None
