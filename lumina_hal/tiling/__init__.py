"""Tiling: matrices larger than the array, on one device or many (docs/tiling.md)."""

from __future__ import annotations

from lumina_hal.tiling.plan import (
    ASSIGNMENTS,
    FULL_SCALE_LAWS,
    DeviceSlot,
    Tile,
    TilePlan,
    plan_tiles,
)
from lumina_hal.tiling.tiled import MAX_LOGICAL_SIZE, TiledDevice, matrix_id

__all__ = [
    "ASSIGNMENTS",
    "FULL_SCALE_LAWS",
    "MAX_LOGICAL_SIZE",
    "DeviceSlot",
    "Tile",
    "TilePlan",
    "TiledDevice",
    "matrix_id",
    "plan_tiles",
]
