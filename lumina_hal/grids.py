"""Inclusive grids of sweep values: ``start`` to ``stop`` in steps of ``step`` > 0."""

from __future__ import annotations

import math
from typing import Any

from lumina_hal.errors import InputError


def inclusive_grid(start: Any, stop: Any, step: Any, *, max_points: int, what: str) -> list[float]:
    """``start`` to ``stop`` inclusive, either direction, at most ``max_points`` points.

    ``what`` names the quantity in errors (``"wavelength (nm)"``); every failure is an
    InputError naming the values.
    """
    values = (start, stop, step)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise InputError(f"{what}: start, stop and step must be numbers, got {values}")
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"{what}: start, stop and step must be finite, got {values}")
    if step <= 0:
        raise InputError(f"{what}: step must be > 0, got {step:g}")
    count = math.floor(abs(stop - start) / step + 1e-9) + 1
    if count > max_points:
        raise InputError(f"{what}: the grid has {count} points; at most {max_points} allowed")
    direction = 1.0 if stop >= start else -1.0
    return [round(start + direction * k * step, 9) for k in range(count)]
