"""Configuration of the digital twin: array size, seed, preset, engine and physics.

A preset supplies a complete PhysicsParams; any physics parameter given explicitly (URI or
keyword) overrides the preset's value. docs/physics.md documents each one.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from lumina_hal.errors import ConfigurationError
from lumina_hal.params import Param
from lumina_hal.twin.physics import PRESETS, PhysicsParams, physics_uri_params
from lumina_hal.twin.physics_v2 import V2_URI_PARAMS

MAX_ARRAY_SIZE = 8192
KERNEL_ENV = "LUMINA_KERNEL"
THREADS_ENV = "LUMINA_NUM_THREADS"
KERNELS = ("native", "reference")
TEMPERATURE_RANGE_C = (-40.0, 125.0)

DEVICE_PARAMS: tuple[Param, ...] = (
    Param("rows", int, 64, "array rows (outputs, detectors)", minimum=1, maximum=MAX_ARRAY_SIZE),
    Param("cols", int, 64, "array columns (inputs, modulators)", minimum=1, maximum=MAX_ARRAY_SIZE),
    Param("seed", int, 0, "seed of the per-call noise", minimum=0, maximum=2**63 - 1),
    Param("preset", str, "typical", "physics preset supplying defaults", choices=tuple(PRESETS)),
    Param("serial", str, None, "serial number; seeds fabrication scatter (default: from seed)"),
    Param(
        "kernel",
        str,
        None,
        f"engine: native C or numpy reference (default: ${KERNEL_ENV} or native)",
        choices=KERNELS,
    ),
    Param("snapshot", str, None, "calibration snapshot file: a twin of the measured chip"),
    Param(
        "threads",
        int,
        None,
        f"kernel threads (default: ${THREADS_ENV} or all CPUs)",
        minimum=1,
        maximum=1024,
    ),
)

TWIN_PARAMS: tuple[Param, ...] = DEVICE_PARAMS + physics_uri_params() + V2_URI_PARAMS
_PHYSICS_NAMES = {f.name for f in fields(PhysicsParams)}


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, "").strip() or default
    if value not in choices:
        raise ConfigurationError(
            f"${name}={value!r} is not valid; expected one of " + ", ".join(choices)
        )
    return value


def default_threads() -> int:
    """$LUMINA_NUM_THREADS, else the CPUs this process may run on."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise ConfigurationError(f"${THREADS_ENV}={raw!r} is not valid; expected an int >= 1")
        return value
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class TwinConfig:
    """Fully resolved twin parameters (no None left)."""

    rows: int
    cols: int
    seed: int
    preset: str
    serial: str
    kernel: str
    threads: int
    physics: PhysicsParams
    snapshot: str | None = None

    @classmethod
    def resolve(cls, **params: Any) -> TwinConfig:
        """Fill unspecified parameters from the preset and defaults; params are pre-typed."""
        given = {k: v for k, v in params.items() if v is not None}
        device = {p.name: p.default for p in DEVICE_PARAMS}
        device.update({k: v for k, v in given.items() if k not in _PHYSICS_NAMES})
        physics = replace(
            PRESETS[device["preset"]], **{k: v for k, v in given.items() if k in _PHYSICS_NAMES}
        )
        if device["serial"] is None:
            device["serial"] = f"TWIN-{device['seed']:016X}"
        if device["kernel"] is None:
            device["kernel"] = _env_choice(KERNEL_ENV, "native", KERNELS)
        if device["threads"] is None:
            device["threads"] = default_threads()
        return cls(physics=physics, **device)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
