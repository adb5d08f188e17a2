"""Soft limits of each instrument role, validated when they are made (docs/safety.md §2).

A limits object is frozen and checks every field in ``__post_init__``: numbers must be finite
reals (not bools, not strings), minima must not exceed maxima, a TEC ramp must fit in
:data:`MAX_RAMP_POINTS` steps. A bad value is a ConfigurationError naming the source (file and
section), the key and the value. The same classes serve bench files and
``open_instrument(uri, limits=...)``, so both are validated by one set of rules.

What the gate needs from a limits object: :meth:`Limits.bounds` (quantity -> [low, high] in the
role's units) and :meth:`Limits.interlocks` (switching a quantity on requires others in bounds).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from lumina_hal.errors import ConfigurationError, SafetyLimitError

#: No ramp may take more steps than this (the limit a bench file and a ramp are checked against).
MAX_RAMP_POINTS = 10_000
#: Longest pause between two ramp steps (s): a longer one is a typo, and would hang a shutdown.
MAX_STEP_INTERVAL_S = 3600.0

L = TypeVar("L", bound="Limits")


@dataclass(frozen=True)
class Bound:
    """Closed interval [low, high] in ``unit``; None is unbounded on that side."""

    low: float | None
    high: float | None
    unit: str

    @property
    def bounded(self) -> bool:
        return self.low is not None or self.high is not None


def config_number(value: Any, key: str, source: str, *, optional: bool = True) -> float | None:
    """A finite real number (int or float, never bool or str), else ConfigurationError."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigurationError(f"{source}: {key} must be a number, got {value!r}")
    try:
        number = float(value)
    except (OverflowError, ValueError):  # a huge Fraction or an exotic Real
        raise ConfigurationError(f"{source}: {key} = {value!r} is not a float") from None
    if not math.isfinite(number):
        raise ConfigurationError(f"{source}: {key} must be finite, got {value!r}")
    return number


@dataclass(kw_only=True, unsafe_hash=True)
class Limits:
    """Base of every role's soft limits. ``source`` names where they came from (errors say it).

    Read-only once built: assigning or deleting a field is a SafetyLimitError (a frozen
    dataclass would raise a bare FrozenInstanceError). Subclasses validate in ``_validate``.
    """

    source: str = "limits"
    #: The role these limits are for (in error messages).
    role: ClassVar[str] = "instrument"
    #: Fields that are numbers (validated and converted to float in ``__post_init__``).
    number_fields: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.source, str):
            raise ConfigurationError(f"limits source must be a str, got {self.source!r}")
        for name in self.number_fields:
            value = config_number(getattr(self, name), name, self.source)
            object.__setattr__(self, name, value)
        self._validate()
        object.__setattr__(self, "_built", True)

    def _validate(self) -> None:
        """Checks across fields (min <= max, ramp size); ConfigurationError naming the source."""

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_built", False):
            raise SafetyLimitError(f"{self.source}: limits are read-only (tried to set {name})")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise SafetyLimitError(f"{self.source}: limits are read-only (tried to delete {name})")

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The limit names a bench-file section or a ``limits=`` dict may give."""
        return tuple(f.name for f in fields(cls) if f.name != "source")

    @classmethod
    def from_mapping(cls: type[L], values: Mapping[str, Any], source: str) -> L:
        """Build from a bench-file section or a ``limits=`` dict; unknown keys are refused."""
        if not isinstance(values, Mapping):
            raise ConfigurationError(f"{source}: limits must be a table/dict, got {values!r}")
        known = set(cls.keys())
        for key in values:
            if key not in known:
                raise ConfigurationError(
                    f"{source}: unknown limit {key!r} for {cls.__name__}; "
                    f"valid: {', '.join(sorted(known))}"
                )
        return cls(**dict(values), source=source)

    def bounds(self) -> dict[str, Bound]:
        """Soft bounds per gated quantity (role units); quantities not named are unbounded."""
        return {}

    def interlocks(self) -> dict[str, tuple[str, ...]]:
        """Switching the key on requires the current value of each named quantity in bounds."""
        return {}


def _ordered(low: float | None, high: float | None, what: str, source: str) -> None:
    if low is not None and high is not None and low > high:
        raise ConfigurationError(f"{source}: {what} minimum {low:g} is above maximum {high:g}")


@dataclass(kw_only=True, unsafe_hash=True)
class NoLimits(Limits):
    """Roles with nothing hazardous to limit (a power meter): every write is only type-checked."""


@dataclass(kw_only=True, unsafe_hash=True)
class LaserLimits(Limits):
    """Soft limits of a laser: power ceiling (dBm) and wavelength window (nm)."""

    max_power_dbm: float | None = None
    min_wavelength_nm: float | None = None
    max_wavelength_nm: float | None = None
    source: str = "laser limits"
    role = "laser"
    number_fields = ("max_power_dbm", "min_wavelength_nm", "max_wavelength_nm")

    def _validate(self) -> None:
        _ordered(self.min_wavelength_nm, self.max_wavelength_nm, "wavelength", self.source)

    def bounds(self) -> dict[str, Bound]:
        window = Bound(self.min_wavelength_nm, self.max_wavelength_nm, "nm")
        ceiling = Bound(None, self.max_power_dbm, "dBm")
        return {
            "power_dbm": ceiling,
            # what the laser emits when on (the setpoint, or its maximum minus a manual
            # attenuation), and what a manual attenuation would emit: the same ceiling
            "emitted_power_dbm": ceiling,
            "attenuated_power_dbm": ceiling,
            "wavelength_nm": window,
            # the light's wavelength after a fine tuning (setpoint + offset): the same window
            "tuned_wavelength_nm": window,
            # a laser's own sweep travels between these: the same window applies
            "sweep_start_nm": window,
            "sweep_stop_nm": window,
        }

    def interlocks(self) -> dict[str, tuple[str, ...]]:
        # A setpoint left above the limit (by *RST or before the limits existed) must not shine;
        # a sweep must not start towards ends stored outside the window.
        # Opening a shutter lets light out like the output switch; switching to manual
        # attenuation must not emit more than the ceiling.
        light = ("power_dbm", "wavelength_nm", "emitted_power_dbm")
        return {
            "output": light,
            "shutter_open": light,
            "manual_attenuation": ("attenuated_power_dbm",),
            "sweep": ("power_dbm", "sweep_start_nm", "sweep_stop_nm"),
        }


@dataclass(kw_only=True, unsafe_hash=True)
class TecLimits(Limits):
    """Soft limits, ramp and safe state of a TEC controller (docs/safety.md §2)."""

    min_c: float | None = None
    max_c: float | None = None
    max_step_c: float | None = None
    step_interval_s: float = 0.0
    safe_state: str = "off"  # "off" or "setpoint"
    safe_setpoint_c: float | None = None
    #: Ceiling of the TEC current limit a driver may set (A); the TEC's own drive stays below it.
    max_current_a: float | None = None
    source: str = "TEC limits"
    role = "tec"
    number_fields = (
        "min_c", "max_c", "max_step_c", "step_interval_s", "safe_setpoint_c", "max_current_a"
    )

    def __post_init__(self) -> None:
        if self.step_interval_s is None:
            raise ConfigurationError(f"{self.source}: step_interval_s must be a number, got None")
        super().__post_init__()

    def _validate(self) -> None:
        _ordered(self.min_c, self.max_c, "temperature", self.source)
        if self.max_step_c is not None:
            if not self.max_step_c > 0:
                raise ConfigurationError(
                    f"{self.source}: max_step_c must be > 0 °C, got {self.max_step_c!r}"
                )
            if self.min_c is not None and self.max_c is not None:
                steps = (self.max_c - self.min_c) / self.max_step_c
                if steps > MAX_RAMP_POINTS:
                    raise ConfigurationError(
                        f"{self.source}: max_step_c = {self.max_step_c:g} °C would ramp "
                        f"{self.min_c:g}..{self.max_c:g} °C in {steps:.3g} steps, more than "
                        f"{MAX_RAMP_POINTS}"
                    )
        if not 0.0 <= self.step_interval_s <= MAX_STEP_INTERVAL_S:
            raise ConfigurationError(
                f"{self.source}: step_interval_s must be in [0, {MAX_STEP_INTERVAL_S:g}] s, "
                f"got {self.step_interval_s!r}"
            )
        if self.max_current_a is not None and self.max_current_a < 0:
            raise ConfigurationError(
                f"{self.source}: max_current_a must be >= 0 A, got {self.max_current_a!r}"
            )
        if self.safe_state not in ("off", "setpoint"):
            raise ConfigurationError(
                f"{self.source}: safe_state must be 'off' or 'setpoint', got {self.safe_state!r}"
            )
        if self.safe_state == "setpoint":
            if self.safe_setpoint_c is None:
                raise ConfigurationError(
                    f"{self.source}: safe_state = 'setpoint' needs safe_setpoint_c"
                )
            low, high = self.min_c, self.max_c
            value = self.safe_setpoint_c
            if (low is not None and value < low) or (high is not None and value > high):
                raise ConfigurationError(
                    f"{self.source}: safe_setpoint_c {value:g} °C is outside the limits "
                    f"[{low}, {high}] °C"
                )

    def bounds(self) -> dict[str, Bound]:
        return {
            "setpoint_c": Bound(self.min_c, self.max_c, "°C"),
            "current_limit_a": Bound(None, self.max_current_a, "A"),
        }

    def interlocks(self) -> dict[str, tuple[str, ...]]:
        # A current limit left above the ceiling (by *RST, or before the limits existed) must
        # not drive the TEC.
        return {"output": ("setpoint_c", "current_limit_a")}
