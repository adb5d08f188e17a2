"""Sweep any settable quantity and measure anything at each value (docs/records.md §7).

``sweep_quantity(set_value, values, measure)`` sets each value, waits ``settle_s``, calls
``measure()`` (a mapping of named readings), and returns a :class:`~lumina_hal.tables.Table`
(the swept quantity first, then the readings, with units), optionally recording every row.
``bench_quantity`` names a bench part's quantity as ``"laser.wavelength_nm"``: setting goes
through the part's public, limit-checked property, so a sweep can never bypass the safety gate.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lumina_hal.errors import ConfigurationError, InputError
from lumina_hal.progress import progress_bar
from lumina_hal.tables import Table

MAX_SWEEP_VALUES = 100_000
_NAME = re.compile(r"(chip|laser|tec|power_meter)\.([a-z][a-z0-9_]*)")
#: Unit of a quantity from its name's suffix (the project's naming convention).
_SUFFIX_UNITS = {
    "_nm": "nm", "_dbm": "dBm", "_w": "W", "_c": "degC", "_db": "dB", "_s": "s", "_hz": "Hz",
    "_a": "A", "_v": "V", "_mm": "mm",
}  # fmt: skip


def unit_of(name: str) -> str:
    """The unit a quantity's name carries (``wavelength_nm`` -> ``nm``), else ''."""
    return next((u for suffix, u in _SUFFIX_UNITS.items() if name.endswith(suffix)), "")


@dataclass(frozen=True)
class BenchQuantity:
    """``part.attribute`` of an open bench, read and (if settable) set through the role API."""

    part: str
    attribute: str
    target: Any

    @property
    def name(self) -> str:
        return f"{self.part}.{self.attribute}"

    @property
    def unit(self) -> str:
        return unit_of(self.attribute)

    def set(self, value: float) -> None:
        if self.part == "chip" and self.attribute == "temperature_c":
            self.target.set_temperature(value)  # the chip's own (gated) setter
            return
        setattr(self.target, self.attribute, value)

    def read(self) -> float:
        if self.part == "chip" and self.attribute == "temperature_c":
            return float(self.target.telemetry().temperature_c)
        value = getattr(self.target, self.attribute)
        return float(value() if callable(value) else value)


def bench_quantity(bench: Any, name: str) -> BenchQuantity:
    """Resolve ``"laser.wavelength_nm"`` (or ``power_meter.read_power_w``, ``tec.setpoint_c``,
    ``chip.temperature_c``) on an open bench; public names only."""
    match = _NAME.fullmatch(name.strip())
    if match is None:
        raise ConfigurationError(
            f"quantity {name!r} must be PART.NAME with PART one of chip, laser, tec, "
            "power_meter and NAME a public attribute, e.g. laser.wavelength_nm"
        )
    part, attribute = match.groups()
    target = getattr(bench, part, None)
    if target is None:
        raise ConfigurationError(f"the bench has no [{part}] for {name!r}")
    chip_temperature = part == "chip" and attribute == "temperature_c"
    if not chip_temperature and not hasattr(type(target), attribute):
        raise ConfigurationError(f"{part} ({type(target).__name__}) has no {attribute!r}")
    return BenchQuantity(part, attribute, target)


def sweep_quantity(
    set_value: Callable[[float], None],
    values: Iterable[float],
    measure: Callable[[], Mapping[str, float]],
    *,
    name: str = "value",
    unit: str = "",
    units: Mapping[str, str] | None = None,
    settle_s: float = 0.0,
    run: Any = None,
    progress: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Table:
    """Set each of ``values``, settle, measure; one table row per value (recorded if ``run``).

    ``units`` gives the readings' units (default: from their names' suffixes).
    """
    grid = [float(v) for v in values]
    if not grid or len(grid) > MAX_SWEEP_VALUES:
        raise InputError(f"a sweep needs 1 to {MAX_SWEEP_VALUES} values, got {len(grid)}")
    if not all(math.isfinite(v) for v in grid):
        raise InputError("sweep values must be finite numbers")
    if not (math.isfinite(settle_s) and settle_s >= 0):
        raise InputError(f"settle_s must be a finite number >= 0, got {settle_s!r}")
    rows: list[dict[str, float]] = []
    all_units: dict[str, str] = {name: unit}
    for value in progress_bar(grid, enabled=progress, desc=name, unit="pt"):
        set_value(value)
        if settle_s:
            sleep(settle_s)
        readings = {key: float(v) for key, v in measure().items()}
        for key in readings:
            all_units.setdefault(key, (units or {}).get(key, unit_of(key)))
        row = {name: value, **readings}
        if run is not None:
            run.log_row(f"sweep:{name}", units=all_units, **row)
        rows.append(row)
    return Table.from_rows(rows, all_units, title=f"sweep of {name}")
