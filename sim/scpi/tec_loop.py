"""A TEC plate under PID control with a current limit: the thermal model of the TED4015 sim.

Plant (first-order, linear Peltier [sim]), controller (PID on the error, derivative on the
measurement, current clamped to ±limit with the integral frozen while clamped):

    tau_s · dT/dt = T_amb − T + gain_k_per_a · I
    I = clamp(P·e + S − D·dT/dt, −I_lim, +I_lim),   e = T_set − T,   dS/dt = I_gain·e

With the output off (or the TEC open) I = 0 and T relaxes to the ambient in closed form.
Unclamped, (T, S) obey a linear ODE (the D term solved algebraically), integrated with the
trapezoidal rule (A-stable, second order); clamped, T follows the exact first-order solution.
docs/instrument-sim.md "Thermal model" is the specification.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Steps per plant time constant (at most; a long idle stretch uses fewer, larger steps).
STEPS_PER_TAU = 400
MAX_STEPS_PER_ADVANCE = 200_000
#: A step that moves neither state by more than this is a fixed point: skip to "now".
STATIONARY = 1e-12


@dataclass
class PidGains:
    """Proportional (A/K), integral (A/(K·s)), derivative (A·s/K) shares and the period (s)."""

    p_a_per_k: float = 1.0
    i_a_per_k_s: float = 0.1
    d_a_s_per_k: float = 0.0
    period_s: float = 1.0


class TecLoop:
    """State (temperature, integral) advanced piecewise; ``drive`` says if the loop runs."""

    def __init__(self, temperature_c: float, tau_s: float, gain_k_per_a: float) -> None:
        self.temperature_c = temperature_c
        self.integral_a = 0.0
        self.current_a = 0.0
        self.tau_s = tau_s
        self.gain_k_per_a = gain_k_per_a

    def advance(
        self,
        duration_s: float,
        *,
        drive: bool,
        setpoint_c: float,
        ambient_c: float,
        gains: PidGains,
        limit_a: float,
    ) -> None:
        """Move the state ``duration_s`` on under constant settings."""
        if duration_s <= 0:
            return
        if not drive:
            decay = math.exp(-duration_s / self.tau_s)
            self.temperature_c = ambient_c + (self.temperature_c - ambient_c) * decay
            self.current_a = 0.0
            return
        dt = max(self.tau_s / STEPS_PER_TAU, duration_s / MAX_STEPS_PER_ADVANCE)
        left = duration_s
        while left > 0:
            h = min(dt, left)
            before = (self.temperature_c, self.integral_a)
            self._step(h, setpoint_c, ambient_c, gains, limit_a)
            left -= h
            moved = max(abs(self.temperature_c - before[0]), abs(self.integral_a - before[1]))
            if moved < STATIONARY:
                break  # a fixed point: nothing changes for the rest of the interval

    def _unclamped_current_a(
        self, t: float, s: float, setpoint_c: float, ambient_c: float, g: PidGains
    ) -> float:
        k, tau = self.gain_k_per_a, self.tau_s
        e = setpoint_c - t
        dtdt = (ambient_c - t + k * (g.p_a_per_k * e + s)) / (tau + k * g.d_a_s_per_k)
        return g.p_a_per_k * e + s - g.d_a_s_per_k * dtdt

    def _step(
        self, h: float, setpoint_c: float, ambient_c: float, g: PidGains, limit_a: float
    ) -> None:
        t, s = self.temperature_c, self.integral_a
        current = self._unclamped_current_a(t, s, setpoint_c, ambient_c, g)
        if abs(current) > limit_a:  # clamped: exact first order, integral frozen
            clamped = math.copysign(limit_a, current)
            target = ambient_c + self.gain_k_per_a * clamped
            self.temperature_c = target + (t - target) * math.exp(-h / self.tau_s)
            self.current_a = clamped
            return
        # x' = A x + b with x = (T, S); trapezoidal: (I − hA/2) x1 = (I + hA/2) x0 + h b
        k, tau = self.gain_k_per_a, self.tau_s
        a = tau + k * g.d_a_s_per_k
        a11, a12 = -(1.0 + k * g.p_a_per_k) / a, k / a
        a21, a22 = -g.i_a_per_k_s, 0.0
        b1, b2 = (ambient_c + k * g.p_a_per_k * setpoint_c) / a, g.i_a_per_k_s * setpoint_c
        r1 = t + h / 2 * (a11 * t + a12 * s) + h * b1
        r2 = s + h / 2 * (a21 * t + a22 * s) + h * b2
        m11, m12, m21, m22 = 1 - h / 2 * a11, -h / 2 * a12, -h / 2 * a21, 1 - h / 2 * a22
        det = m11 * m22 - m12 * m21
        self.temperature_c = (r1 * m22 - m12 * r2) / det
        self.integral_a = max(-limit_a, min(limit_a, (m11 * r2 - m21 * r1) / det))
        self.current_a = self._unclamped_current_a(
            self.temperature_c, self.integral_a, setpoint_c, ambient_c, g
        )
        self.current_a = max(-limit_a, min(limit_a, self.current_a))
