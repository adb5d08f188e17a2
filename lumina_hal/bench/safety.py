"""The safety gate: the one place where every change of instrument state is checked.

Every setting an instrument driver can write is declared as a gated quantity (``power_dbm``,
``wavelength_nm``, ``output``, ``setpoint_c``, ...). Whatever path a write takes — a role
property, a ramp, a bench file's safe state, the CLI, or a driver's private SCPI attribute —
it ends in :meth:`SafetyGate.write`, which checks, in this order (docs/safety.md §3):

1. the type: a finite real for numbers, a real ``bool`` for switches, an ``int`` for counts
   (InputError);
2. the soft limit of the quantity, and for a switch turned on, its interlocks: the current
   value of each named quantity must be inside its soft limit (SafetyLimitError);

and only then calls the driver's ``send``, which checks the instrument's own range, writes,
and drains the error queue. Limits are fixed when the instrument is opened (:meth:`seal`).
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable
from typing import Any, Literal

from lumina_hal.bench.limits import MAX_RAMP_POINTS, Bound, Limits
from lumina_hal.errors import ConfigurationError, InputError, SafetyLimitError

log = logging.getLogger(__name__)

#: What a gated quantity holds: a finite real, an on/off switch, or a count.
Kind = Literal["number", "bool", "int"]
#: Reads the instrument's current value of a quantity (for interlocks and ramps).
Reader = Callable[[str], float]

_UNITS = {"_dbm": "dBm", "_nm": "nm", "_c": "°C", "_w": "W", "_s": "s", "_m": "m", "_a": "A"}


def unit_of(quantity: str) -> str:
    """The unit a quantity's name ends with (``power_dbm`` -> dBm); empty if none."""
    for suffix, unit in _UNITS.items():
        if quantity.endswith(suffix):
            return unit
    return ""


def coerce(quantity: str, kind: Kind, value: Any) -> Any:
    """Step 1: the value as the kind's Python type, or InputError (bools are not numbers)."""
    unit = unit_of(quantity)
    if kind == "bool":
        if not isinstance(value, bool):
            raise InputError(f"{quantity} must be True or False, got {value!r}; nothing was sent")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise InputError(f"{quantity} must be an integer, got {value!r}; nothing was sent")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(
            f"{quantity} must be a number{f' in {unit}' if unit else ''}, got {value!r}; "
            "nothing was sent"
        )
    try:
        number = float(value)
    except (OverflowError, ValueError):  # a huge Fraction or an exotic Real
        raise InputError(f"{quantity} = {value!r} is not representable as a float") from None
    if not math.isfinite(number):
        raise InputError(f"{quantity} must be finite, got {value!r}; nothing was sent")
    return number


def check_bound(quantity: str, value: float, bound: Bound, source: str, what: str = "") -> None:
    """Step 2: SafetyLimitError when ``value`` is outside ``bound``."""
    label = what or quantity
    if bound.low is not None and value < bound.low:
        raise SafetyLimitError(
            f"{label} = {value:g} {bound.unit} is below the soft limit {bound.low:g} {bound.unit} "
            f"({source}); nothing was sent"
        )
    if bound.high is not None and value > bound.high:
        raise SafetyLimitError(
            f"{label} = {value:g} {bound.unit} is above the soft limit {bound.high:g} "
            f"{bound.unit} ({source}); nothing was sent"
        )


def clip(value: float, bound: Bound | None) -> float:
    """``value`` moved into ``bound`` (unchanged when unbounded)."""
    if bound is not None and bound.low is not None:
        value = max(value, bound.low)
    if bound is not None and bound.high is not None:
        value = min(value, bound.high)
    return value


def ramp_points(start: float, target: float, max_step: float | None) -> list[float]:
    """Setpoints from ``start`` (excluded) to ``target`` (included), steps <= ``max_step``.

    The count is computed before any list is built: more than MAX_RAMP_POINTS is a
    SafetyLimitError (a step of 1e-300 °C must not exhaust memory).
    """
    if max_step is None or abs(target - start) <= max_step:
        return [target]
    if not (math.isfinite(start) and math.isfinite(target) and max_step > 0):
        raise InputError(f"cannot ramp from {start!r} to {target!r} in steps of {max_step!r}")
    exact = abs(target - start) / max_step
    if exact > MAX_RAMP_POINTS:
        raise SafetyLimitError(
            f"a ramp from {start:g} to {target:g} in steps of {max_step:g} needs {exact:.3g} "
            f"steps, more than {MAX_RAMP_POINTS}; nothing was sent"
        )
    count = math.ceil(exact - 1e-12)
    step = math.copysign(max_step, target - start)
    return [start + step * k for k in range(1, count)] + [target]


class SafetyGate:
    """The limits of one instrument and the one method every write goes through."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._bounds = limits.bounds()
        self._sealed = False
        #: The quantity whose admitted write is being sent (its driver hook is running).
        self._sending: str | None = None

    @property
    def limits(self) -> Limits:
        return self._limits

    @property
    def sealed(self) -> bool:
        return self._sealed

    def replace(self, limits: Limits) -> None:
        """Set new limits; allowed only before the instrument is first opened."""
        if self._sealed:
            raise SafetyLimitError(
                f"limits are fixed when the instrument is opened ({self._limits.source}); "
                "give them to open_instrument(..., limits=...) or the bench file"
            )
        expected = type(self._limits)
        if not isinstance(limits, expected):
            raise ConfigurationError(
                f"{type(limits).__name__} do not apply here: this instrument takes "
                f"{expected.__name__}"
            )
        self._limits = limits
        self._bounds = limits.bounds()

    def seal(self) -> None:
        """Fix the limits (called when the instrument opens)."""
        if not self._sealed:
            log.info("soft limits fixed: %s", self._limits)
        self._sealed = True

    @property
    def sending(self) -> str | None:
        """The quantity whose admitted value is being sent right now (None: nothing is)."""
        return self._sending

    def bound(self, quantity: str) -> Bound | None:
        return self._bounds.get(quantity)

    def admit(self, quantity: str, kind: Kind, value: Any, read: Reader) -> Any:
        """Steps 1-2 without sending: the coerced value, or InputError/SafetyLimitError."""
        checked = coerce(quantity, kind, value)
        bound = self._bounds.get(quantity)
        if bound is not None and kind != "bool":
            check_bound(quantity, checked, bound, self._limits.source)
        if kind == "bool" and checked and self._sending != quantity:
            for other in self._limits.interlocks().get(quantity, ()):
                other_bound = self._bounds.get(other)
                if other_bound is None or not other_bound.bounded:
                    continue
                current = read(other)
                check_bound(
                    other, current, other_bound, self._limits.source,
                    f"cannot switch {quantity} on: the current {other}",
                )
        return checked

    def check_sent(self, quantity: str, wire_value: float) -> None:
        """The value as the wire carries it (after the driver's rounding) is inside the limit."""
        bound = self._bounds.get(quantity)
        if bound is not None:
            check_bound(
                quantity, wire_value, bound, self._limits.source,
                f"{quantity} as sent (rounded to the instrument's resolution)",
            )

    def write(self, quantity: str, kind: Kind, value: Any, send: Callable[[Any], None],
              read: Reader) -> None:
        """Admit ``value`` (type, soft limit, interlocks), then ``send`` it.

        ``send`` checks the instrument's range, writes and reads the error queue. A driver
        hook reached from inside ``send`` re-enters here for the same quantity; it is checked
        again (type, limit) but its interlocks are not read twice.
        """
        checked = self.admit(quantity, kind, value, read)
        outer = self._sending
        self._sending = quantity
        try:
            send(checked)
        finally:
            self._sending = outer

    def plan_ramp(self, quantity: str, start: float, target: float,
                  max_step: float | None) -> list[float]:
        """Ramp points to ``target`` (already admitted), each clipped into the soft limit."""
        bound = self._bounds.get(quantity)
        return [clip(p, bound) for p in ramp_points(start, target, max_step)]
