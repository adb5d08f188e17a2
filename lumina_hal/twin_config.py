"""Configuration of the digital twin: array size, seed, preset and converter widths.

A preset supplies defaults (temperature, bit widths); any parameter given explicitly, in
the URI or as a keyword, overrides the preset's value. docs/physics.md documents each one.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from lumina_hal.errors import ConfigurationError
from lumina_hal.params import Param

MAX_ARRAY_SIZE = 8192
KERNEL_ENV = "LUMINA_KERNEL"
KERNELS = ("native", "reference")
TEMPERATURE_RANGE_C = (-40.0, 125.0)

PRESETS: dict[str, dict[str, Any]] = {
    "ideal": {"temperature_c": 25.0, "weight_bits": 16, "input_bits": 16, "output_bits": 16},
    "typical": {"temperature_c": 45.0, "weight_bits": 8, "input_bits": 8, "output_bits": 8},
    "harsh": {"temperature_c": 85.0, "weight_bits": 6, "input_bits": 6, "output_bits": 6},
}

TWIN_PARAMS: tuple[Param, ...] = (
    Param("rows", int, 64, "array rows (outputs, detectors)", minimum=1, maximum=MAX_ARRAY_SIZE),
    Param("cols", int, 64, "array columns (inputs, modulators)", minimum=1, maximum=MAX_ARRAY_SIZE),
    Param(
        "seed", int, 0, "seed of all noise and fabrication variation", minimum=0, maximum=2**63 - 1
    ),
    Param("preset", str, "typical", "physics preset supplying defaults", choices=tuple(PRESETS)),
    Param(
        "temperature_c",
        float,
        None,
        "chip temperature (default: the preset's)",
        unit="°C",
        minimum=TEMPERATURE_RANGE_C[0],
        maximum=TEMPERATURE_RANGE_C[1],
    ),
    Param(
        "weight_bits",
        int,
        None,
        "weight (heater) DAC width (default: the preset's)",
        unit="bit",
        minimum=2,
        maximum=24,
    ),
    Param(
        "input_bits",
        int,
        None,
        "input modulator DAC width (default: the preset's)",
        unit="bit",
        minimum=2,
        maximum=24,
    ),
    Param(
        "output_bits",
        int,
        None,
        "detector ADC width (default: the preset's)",
        unit="bit",
        minimum=2,
        maximum=24,
    ),
    Param(
        "adc_full_scale",
        float,
        2.0,
        "ADC full scale in units of sqrt(cols) normalized "
        "output (2.0 = 6 sigma of uniform random data)",
        minimum=1e-3,
        maximum=1e6,
    ),
    Param("serial", str, None, "serial number (default: derived from seed)"),
    Param(
        "kernel",
        str,
        None,
        f"engine: native C or numpy reference (default: ${KERNEL_ENV} or native)",
        choices=KERNELS,
    ),
)


@dataclass(frozen=True)
class TwinConfig:
    """Fully resolved twin parameters (no None left)."""

    rows: int
    cols: int
    seed: int
    preset: str
    temperature_c: float
    weight_bits: int
    input_bits: int
    output_bits: int
    adc_full_scale: float
    serial: str
    kernel: str

    @classmethod
    def resolve(cls, **params: Any) -> TwinConfig:
        """Fill unspecified parameters from the preset and defaults; params are pre-typed."""
        defaults = {p.name: p.default for p in TWIN_PARAMS}
        preset = params.get("preset") or defaults["preset"]
        merged: dict[str, Any] = {**defaults, **PRESETS[preset]}
        merged.update({k: v for k, v in params.items() if v is not None})
        if merged["serial"] is None:
            merged["serial"] = f"TWIN-{merged['seed']:016X}"
        if merged["kernel"] is None:
            merged["kernel"] = os.environ.get(KERNEL_ENV, "native").strip() or "native"
            if merged["kernel"] not in KERNELS:
                raise ConfigurationError(
                    f"${KERNEL_ENV}={merged['kernel']!r} is not valid; expected one of "
                    + ", ".join(KERNELS)
                )
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
