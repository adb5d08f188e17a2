"""Typed, validated parameters: the keyword arguments a driver accepts from a URI query.

A driver declares a tuple of :class:`Param`; the registry uses it to convert query strings
("64", "typical", "true") into typed values, reject unknown or misspelt names, and list the
parameters in ``lumina-hal drivers``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lumina_hal.errors import ConfigurationError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    """One keyword argument: its type, default, unit and valid range or choices."""

    name: str
    type: type
    default: Any
    doc: str
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None

    def describe_range(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.type is bool:
            return "true or false"
        lo = "-inf" if self.minimum is None else f"{self.minimum:g}"
        hi = "inf" if self.maximum is None else f"{self.maximum:g}"
        if self.minimum is None and self.maximum is None:
            return f"any {self.type.__name__}"
        return f"{self.type.__name__} in [{lo}, {hi}]"

    def convert(self, value: Any, source: str = "") -> Any:
        """Return ``value`` as this parameter's type, or raise ConfigurationError naming it."""
        where = f" (from {source})" if source else ""
        try:
            typed = self._to_type(value)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"parameter {self.name!r}{where}: {value!r} is not valid; "
                f"expected {self.describe_range()}"
            ) from None
        self._check_range(typed, where)
        return typed

    def _to_type(self, value: Any) -> Any:
        if self.type is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(value)
        if self.type is int:
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, (bool, float)):
                raise ValueError(value)
            return int(str(value).strip(), 0) if isinstance(value, str) else int(value)
        if self.type is float:
            if isinstance(value, bool):
                raise ValueError(value)
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(value)
            return number
        return self.type(value)

    def _check_range(self, typed: Any, where: str) -> None:
        if self.choices is not None and typed not in self.choices:
            hint = difflib.get_close_matches(str(typed), self.choices, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigurationError(
                f"parameter {self.name!r}{where}: {typed!r} is not valid{suggestion}; "
                f"expected {self.describe_range()}"
            )
        too_low = self.minimum is not None and typed < self.minimum
        too_high = self.maximum is not None and typed > self.maximum
        if too_low or too_high:
            unit = f" {self.unit}" if self.unit else ""
            raise ConfigurationError(
                f"parameter {self.name!r}{where}: {typed!r}{unit} is out of range; "
                f"expected {self.describe_range()}"
            )


def resolve_params(
    params: Iterable[Param],
    supplied: Mapping[str, Any],
    *,
    context: str,
    source: str = "",
) -> dict[str, Any]:
    """Convert ``supplied`` against ``params``; unknown names raise with a suggestion.

    Returns only the supplied names (typed); defaults stay with the driver.
    """
    by_name = {p.name: p for p in params}
    typed: dict[str, Any] = {}
    for name, value in supplied.items():
        param = by_name.get(name)
        if param is None:
            raise unknown_parameter(name, by_name, context)
        typed[name] = param.convert(value, source)
    return typed


def unknown_parameter(name: str, valid: Iterable[str], context: str) -> ConfigurationError:
    names = sorted(valid)
    hint = difflib.get_close_matches(name, names, n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    listing = ", ".join(names) if names else "none"
    return ConfigurationError(
        f"{context}: unknown parameter {name!r}{suggestion}; valid parameters: {listing}"
    )
