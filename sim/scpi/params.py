"""SCPI program-data parsing and response formatting shared by the simulated instruments.

Parsing raises :class:`ScpiError` with the SCPI code a real parser reports (-104 data type,
-131 invalid suffix, -222 out of range, -224 illegal value, -108/-109 parameter count), so the
engine can queue it. Formatting covers the number styles of the modelled instruments.
See docs/instrument-sim.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

STANDARD_ERRORS: dict[int, str] = {
    -100: "Command error",
    -102: "Syntax error",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -131: "Invalid suffix",
    -200: "Execution error",
    -221: "Settings conflict",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -230: "Data corrupt or stale",
    -241: "Hardware missing",
    -300: "Device-specific error",
    -350: "Queue overflow",
    -363: "Input buffer overrun",
}


class ScpiError(Exception):
    """An SCPI error event: ``code`` goes to the error queue with its standard text."""

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        self.text = STANDARD_ERRORS.get(code, "Error")
        self.detail = detail
        super().__init__(f'{code},"{self.text}"' + (f" ({detail})" if detail else ""))


# A unit suffix maps to a factor (value * factor) or to a conversion function.
Unit = float | Callable[[float], float]

_DECIMAL = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)")
_NONDECIMAL = {"H": (16, "0123456789ABCDEF"), "Q": (8, "01234567"), "B": (2, "01")}
_KEYWORDS = {"MIN": "MIN", "MINIMUM": "MIN", "MAX": "MAX", "MAXIMUM": "MAX"}
_KEYWORDS |= {"DEF": "DEF", "DEFAULT": "DEF"}


def expect_params(params: Sequence[str], minimum: int, maximum: int) -> None:
    """Check the parameter count: too few is -109, too many is -108."""
    if len(params) < minimum:
        raise ScpiError(-109)
    if len(params) > maximum:
        raise ScpiError(-108)


def limit_keyword(text: str) -> str | None:
    """``MIN``/``MAX``/``DEF`` (short or long form, any case) or None for anything else."""
    return _KEYWORDS.get(text.strip().upper())


def split_number(text: str) -> tuple[float, str]:
    """Decimal (with an optional unit suffix, returned upper case) or ``#H``/``#Q``/``#B``."""
    text = text.strip()
    if text[:1] == "#" and len(text) > 2 and text[1].upper() in _NONDECIMAL:
        base, digits = _NONDECIMAL[text[1].upper()]
        if all(c in digits for c in text[2:].upper()):
            return float(int(text[2:], base)), ""
        raise ScpiError(-104, text)
    m = _DECIMAL.fullmatch(text)
    if not m:
        raise ScpiError(-104, text)
    return float(m.group(1)), m.group(2).upper()


def parse_bool(text: str) -> bool:
    """ON/OFF or a number (rounded; non-zero is ON), as SCPI booleans are defined."""
    word = text.strip().upper()
    if word in ("ON", "OFF"):
        return word == "ON"
    try:
        value, suffix = split_number(word)
    except ScpiError:
        raise ScpiError(-224, text) from None
    if suffix:
        raise ScpiError(-131, text)
    return round(value) != 0


def parse_choice(text: str, choices: Sequence[str]) -> str:
    """A mnemonic written like the manual (``DBM``, ``CELsius``): returns its long form upper."""
    word = text.strip().upper()
    for choice in choices:
        short = "".join(c for c in choice if c.isupper() or c.isdigit())
        if word in (short, choice.upper()):
            return choice.upper()
    raise ScpiError(-224, text)


@dataclass(frozen=True)
class NumberSpec:
    """A numeric parameter: limits and default in the base unit, accepted unit suffixes.

    ``parse`` accepts MIN/MAX/DEF, a decimal with a suffix from ``units`` (or none), rounds to
    ``resolution`` and checks the limits (-222). ``units`` keys are upper case.
    """

    minimum: float
    maximum: float
    default: float | None = None
    units: Mapping[str, Unit] = field(default_factory=dict)
    resolution: float | None = None

    def parse(self, text: str) -> float:
        keyword = limit_keyword(text)
        if keyword is not None:
            return self.limit(keyword)
        value, suffix = split_number(text)
        if suffix:
            if suffix not in self.units:
                raise ScpiError(-131, text)
            unit = self.units[suffix]
            value = unit(value) if callable(unit) else value * unit
        if self.resolution:
            value = round(value / self.resolution) * self.resolution
        tolerance = 1e-9 * max(abs(self.minimum), abs(self.maximum), 1e-300)
        if not (self.minimum - tolerance <= value <= self.maximum + tolerance):
            raise ScpiError(-222, text)
        return min(max(value, self.minimum), self.maximum)

    def limit(self, keyword: str) -> float:
        if keyword == "MIN":
            return self.minimum
        if keyword == "MAX":
            return self.maximum
        if self.default is None:
            raise ScpiError(-224, "DEF")
        return self.default

    def parse_params(self, params: Sequence[str]) -> float:
        """Exactly one parameter, parsed."""
        expect_params(params, 1, 1)
        return self.parse(params[0])

    def query_value(self, params: Sequence[str], current: float) -> float:
        """For ``HEADER? [MIN|MAX|DEF]``: ``current``, or the limit asked for."""
        keyword = self.query_limit(params)
        return current if keyword is None else self.limit(keyword)

    def query_limit(self, params: Sequence[str]) -> str | None:
        """For ``HEADER? [MIN|MAX|DEF]``: the keyword asked for, or None for the value itself."""
        expect_params(params, 0, 1)
        if not params:
            return None
        keyword = limit_keyword(params[0])
        if keyword is None:
            raise ScpiError(-224, params[0])
        return keyword


def format_nr3(value: float, digits: int = 8, exponent_digits: int = 3) -> str:
    """Signed NR3 with a fixed exponent width, e.g. ``+1.55000000E-006`` (Keysight/Santec)."""
    mantissa, exponent = f"{value:+.{digits}E}".split("E")
    return f"{mantissa}E{int(exponent):+0{exponent_digits + 1}d}"


def format_e(value: float) -> str:
    """C ``%E`` style, e.g. ``1.550000E+03`` (the Thorlabs consoles' float form)."""
    return f"{value:E}"


def watts_to_dbm(power_w: float) -> float:
    """Power in dBm; a non-positive power has no dBm value (-inf)."""
    return 10.0 * math.log10(power_w / 1e-3) if power_w > 0 else -math.inf


def dbm_to_watts(power_dbm: float) -> float:
    return 1e-3 * 10.0 ** (power_dbm / 10.0)


def parse_int_choice(text: str, allowed: Sequence[int]) -> int:
    """An enumerated integer setting such as ``:POW:UNIT 0|1`` (-224 for anything else)."""
    try:
        value, suffix = split_number(text)
    except ScpiError:
        raise ScpiError(-224, text) from None
    if suffix or value not in allowed:
        raise ScpiError(-224, text)
    return int(value)
