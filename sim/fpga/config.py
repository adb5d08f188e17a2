"""EmulatorConfig: the typed configuration of the FPGA firmware emulator.

The chip behind the emulated FPGA is a twin (``TwinConfig``, always on the native C engine:
the emulator's bits are the twin's) and its links may inject faults (``FaultConfig``).
Transports hand this object to the emulator as it is, never through a URI string, so a value
such as a ``fault_seed`` above 2^53 keeps every bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lumina_hal.params import resolve_params
from lumina_hal.sim.fpga.faults import FAULT_PARAMS, FaultConfig
from lumina_hal.twin.config import TWIN_PARAMS, TwinConfig
from lumina_hal.twin.physics_v2 import V2_URI_PARAMS

#: The twin's parameters the emulated board does not take: it draws its own chip (no engine
#: choice, no snapshot) and that chip computes physics v1 (docs/physics.md sections 1-6).
_NOT_EMULATED = {"kernel", "snapshot", "physics_model"} | {p.name for p in V2_URI_PARAMS}
#: Every parameter an emulator accepts: the twin's v1 chip parameters and the faults'.
EMULATOR_PARAMS = tuple(p for p in TWIN_PARAMS if p.name not in _NOT_EMULATED) + FAULT_PARAMS
_FAULT_NAMES = {p.name for p in FAULT_PARAMS}


@dataclass(frozen=True)
class EmulatorConfig:
    """The chip (a resolved twin configuration) and the link's faults."""

    chip: TwinConfig
    faults: FaultConfig = field(default_factory=FaultConfig)

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], *, context: str = "FPGA emulator"
    ) -> EmulatorConfig:
        """From ``mock://``-style and ``fault_*`` parameters (typed values or strings)."""
        given = {k: v for k, v in params.items() if k != "kernel"}  # always the C engine
        typed = resolve_params(EMULATOR_PARAMS, given, context=context)
        chip = {k: v for k, v in typed.items() if k not in _FAULT_NAMES}
        return cls(TwinConfig.resolve(**chip, kernel="native"), FaultConfig.from_params(typed))
