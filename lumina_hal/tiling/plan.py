"""How a matrix larger than the array is cut into tiles, where they run, and what it costs.

``plan_tiles`` is pure arithmetic on shapes (docs/tiling.md sections 2-4): it opens nothing
and runs nothing, so a caller can read the cost of a product (tiles, loads, runs, readouts,
predicted SNR cost) before programming anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from lumina_hal.errors import ConfigurationError

#: Placement strategies: tile t on device t mod D, or each tile on the least-loaded device.
ASSIGNMENTS = ("round_robin", "balanced")
#: How a device's readout noise scales with the columns summed in one readout (docs/tiling.md 4).
FULL_SCALE_LAWS = ("sqrt_cols", "fixed")


@dataclass(frozen=True)
class DeviceSlot:
    """What the planner needs to know about one device: array shape and resident tiles."""

    rows: int
    cols: int
    #: Tiles the device keeps programmed at once (1 for an ordinary chip).
    resident_tiles: int = 1
    #: Whether it sums resident tiles on its detectors (Capability.ANALOG_ACCUMULATION).
    analog_accumulation: bool = False


@dataclass(frozen=True)
class Tile:
    """One weight-stationary block: rows ``row_start:row_stop`` x cols ``col_start:col_stop``."""

    index: int
    row_block: int
    col_block: int
    row_start: int
    row_stop: int
    col_start: int
    col_stop: int
    device: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.row_stop - self.row_start, self.col_stop - self.col_start


@dataclass(frozen=True)
class TilePlan:
    """The tiling of an (out_features, in_features) matrix over one or more devices.

    Counts are per product (one ``matmul`` call, whatever its batch): ``first_loads`` tiles are
    programmed by the first product, ``loads_per_product`` by each later one (0 when every
    tile stays resident), ``runs_per_product`` device calls, ``readouts_per_output`` ADC
    conversions summed into each output. ``snr_cost_db`` is the predicted SNR loss against the
    same product read out once (docs/tiling.md section 4).
    """

    out_features: int
    in_features: int
    tile_rows: int
    tile_cols: int
    row_blocks: int
    col_blocks: int
    tiles: tuple[Tile, ...]
    devices: int
    assignment: str
    analog: bool
    #: Column tiles summed on the detectors per readout (1 without analog accumulation).
    analog_group: int
    full_scale_law: str
    first_loads: int
    loads_per_product: int
    runs_per_product: int
    readouts_per_output: int
    snr_cost_db: float
    tiles_per_device: tuple[int, ...] = field(default=())

    @property
    def n_tiles(self) -> int:
        return len(self.tiles)

    @property
    def resident(self) -> bool:
        """True when no tile is re-programmed after the first product."""
        return self.loads_per_product == 0

    def predicted_snr_db(self, readout_snr_db: float) -> float:
        """The product's SNR given the SNR of one full-array readout on the device (dB)."""
        return float(readout_snr_db) - self.snr_cost_db

    def describe(self) -> str:
        """One line for logs and reports."""
        mode = f"analog x{self.analog_group}" if self.analog else "digital"
        return (
            f"{self.out_features}x{self.in_features} in {self.n_tiles} tiles of "
            f"{self.tile_rows}x{self.tile_cols} ({self.row_blocks}x{self.col_blocks}) on "
            f"{self.devices} device(s), {mode} accumulation: first product {self.first_loads} "
            f"loads, then {self.loads_per_product} loads and {self.runs_per_product} runs per "
            f"product, {self.readouts_per_output} readout(s) per output, predicted SNR cost "
            f"{self.snr_cost_db:.2f} dB"
        )


def _blocks(total: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, total)) for start in range(0, total, size)]


def _check_positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")
    return value


def snr_cost_db(readout_cols: Sequence[Sequence[int]], in_features: int, law: str) -> float:
    """Predicted SNR cost (dB) of summing the given readouts against one readout of the whole.

    ``readout_cols[g]`` lists the columns of each readout summed into an output. Under the
    ``sqrt_cols`` law (the twin and the FPGA: ADC full scale a·sqrt(c) for c columns) a
    readout's noise power is proportional to its columns, as is the signal, so the cost is
    10 log10(sum of readout columns / in_features) = 0 dB for any split. Under the ``fixed``
    law (the same full scale whatever the columns) every readout adds the same noise power,
    so the cost is 10 log10(readouts per output).
    """
    if law not in FULL_SCALE_LAWS:
        raise ConfigurationError(f"full_scale_law must be one of {FULL_SCALE_LAWS}, got {law!r}")
    if law == "sqrt_cols":
        summed = sum(sum(group) for group in readout_cols)
        return 10.0 * math.log10(summed / in_features)
    return 10.0 * math.log10(len(readout_cols))


def plan_tiles(
    out_features: int,
    in_features: int,
    devices: Sequence[DeviceSlot],
    *,
    assignment: str = "round_robin",
    analog: bool | None = None,
    max_tile_rows: int | None = None,
    max_tile_cols: int | None = None,
    full_scale_law: str = "sqrt_cols",
) -> TilePlan:
    """Cut an (out_features, in_features) matrix into tiles and place them on ``devices``.

    Tiles have the smallest array shape among the devices (capped by ``max_tile_*``), so any
    tile runs on any device. ``analog=None`` uses analog accumulation when every device has it;
    True demands it (ConfigurationError otherwise). With analog accumulation the column tiles
    of one row block go to the same device in groups of its resident capacity.
    """
    _check_positive("out_features", out_features)
    _check_positive("in_features", in_features)
    if not devices:
        raise ConfigurationError("tiling needs at least one device")
    if assignment not in ASSIGNMENTS:
        raise ConfigurationError(f"assignment must be one of {ASSIGNMENTS}, got {assignment!r}")
    tile_rows = min(d.rows for d in devices)
    tile_cols = min(d.cols for d in devices)
    if max_tile_rows is not None:
        tile_rows = min(tile_rows, _check_positive("max_tile_rows", max_tile_rows))
    if max_tile_cols is not None:
        tile_cols = min(tile_cols, _check_positive("max_tile_cols", max_tile_cols))
    all_analog = all(d.analog_accumulation for d in devices)
    if analog and not all_analog:
        raise ConfigurationError("analog accumulation requested but not every device has it")
    use_analog = all_analog if analog is None else bool(analog)
    row_ranges = _blocks(out_features, tile_rows)
    col_ranges = _blocks(in_features, tile_cols)
    group = min(min(d.resident_tiles for d in devices), len(col_ranges)) if use_analog else 1
    use_analog = use_analog and group > 1

    n_dev = len(devices)
    work = [0] * n_dev
    tiles: list[Tile] = []
    for rb, (r0, r1) in enumerate(row_ranges):
        for cb, (c0, c1) in enumerate(col_ranges):
            index = len(tiles)
            if use_analog:  # a whole analog group shares one device's detectors
                unit = rb * math.ceil(len(col_ranges) / group) + cb // group
                device = unit % n_dev
            elif assignment == "round_robin":
                device = index % n_dev
            else:
                device = min(range(n_dev), key=lambda d: (work[d], d))
            work[device] += (r1 - r0) * (c1 - c0)
            tiles.append(Tile(index, rb, cb, r0, r1, c0, c1, device))

    per_device = tuple(sum(1 for t in tiles if t.device == d) for d in range(n_dev))
    steady_loads = 0
    for d, count in enumerate(per_device):
        capacity = devices[d].resident_tiles
        if count > capacity:  # serpentine order keeps `capacity` tiles across products
            steady_loads += count - capacity
    groups = [
        [c1 - c0 for (c0, c1) in col_ranges[g : g + group]]
        for g in range(0, len(col_ranges), group)
    ]
    return TilePlan(
        out_features=out_features,
        in_features=in_features,
        tile_rows=tile_rows,
        tile_cols=tile_cols,
        row_blocks=len(row_ranges),
        col_blocks=len(col_ranges),
        tiles=tuple(tiles),
        devices=n_dev,
        assignment=assignment,
        analog=use_analog,
        analog_group=group,
        full_scale_law=full_scale_law,
        first_loads=len(tiles),
        loads_per_product=steady_loads,
        runs_per_product=len(row_ranges) * len(groups),
        readouts_per_output=len(groups),
        snr_cost_db=snr_cost_db(groups, in_features, full_scale_law),
        tiles_per_device=per_device,
    )
