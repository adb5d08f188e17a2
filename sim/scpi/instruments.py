"""The simulated SCPI instruments by CLI name: Santec TSL-570, Keysight 8164B, Thorlabs PM100D
and TED4015.

Each model is a :class:`~lumina_hal.sim.scpi.engine.SimulatedInstrument` whose state is plain
attributes (for the coupling layer) and whose ``process(message)`` answers like the real
instrument. See docs/instrument-sim.md.
"""

from __future__ import annotations

from lumina_hal.sim.scpi.engine import SimulatedInstrument
from lumina_hal.sim.scpi.keysight8164b import Keysight8164B
from lumina_hal.sim.scpi.pm100d import S130C, S155C, SensorHead, ThorlabsPm100d
from lumina_hal.sim.scpi.ted4015 import ThorlabsTed4015
from lumina_hal.sim.scpi.tsl570 import SantecTsl570

MODELS: dict[str, type[SimulatedInstrument]] = {
    SantecTsl570.model: SantecTsl570,
    Keysight8164B.model: Keysight8164B,
    ThorlabsPm100d.model: ThorlabsPm100d,
    ThorlabsTed4015.model: ThorlabsTed4015,
}

__all__ = [
    "MODELS",
    "S130C",
    "S155C",
    "Keysight8164B",
    "SantecTsl570",
    "SensorHead",
    "SimulatedInstrument",
    "ThorlabsPm100d",
    "ThorlabsTed4015",
]
