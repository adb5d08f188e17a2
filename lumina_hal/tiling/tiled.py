"""TiledDevice: any M x N matrix on one or several R x C devices, used like one device.

docs/tiling.md is the specification. Tiles are weight-stationary: each is programmed on its
device once and stays there while the device keeps its weights id; partial products are
summed on the host (float32 or float64) in tile order, or on the detectors of a device with
Capability.ANALOG_ACCUMULATION. Several devices run their tiles concurrently, one thread each.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from lumina_hal.device import Capability, DeviceInfo, PhotonicDevice, Telemetry
from lumina_hal.errors import ConfigurationError, InputError, UnsupportedOperationError
from lumina_hal.registry import open_device
from lumina_hal.tiling.plan import DeviceSlot, Tile, TilePlan, plan_tiles

log = logging.getLogger(__name__)

#: Largest logical matrix side a TiledDevice accepts (reported as its info.rows/cols).
MAX_LOGICAL_SIZE = 1 << 24
ACCUMULATE_DTYPES = {"float32": np.float32, "float64": np.float64}

DeviceLike = PhotonicDevice | str


def _as_device_list(devices: DeviceLike | Sequence[DeviceLike]) -> list[PhotonicDevice | str]:
    items = [devices] if isinstance(devices, (PhotonicDevice, str)) else list(devices)
    if not items:
        raise ConfigurationError("TiledDevice needs at least one device")
    for item in items:
        if not isinstance(item, (PhotonicDevice, str)):
            raise ConfigurationError(
                f"devices must be PhotonicDevice objects or URIs, got {type(item).__name__}"
            )
    return items


def _as_float_matrix(weights: Any) -> np.ndarray:
    """A 2-D finite float32 or float64 matrix; float32 stays float32 (no doubled memory)."""
    try:
        w = np.asarray(weights)
    except Exception as exc:
        raise InputError(f"weights cannot be read as an array: {exc}") from None
    if w.ndim != 2 or w.shape[0] == 0 or w.shape[1] == 0:
        raise InputError(f"weights must be a non-empty 2-D matrix, got shape {w.shape}")
    if w.dtype.kind not in "fiu":
        raise InputError(f"weights must be a real numeric array, got dtype {w.dtype}")
    if w.dtype != np.float32:
        w = w.astype(np.float64, copy=False)
    w = np.ascontiguousarray(w)
    if not np.isfinite(w).all():
        raise InputError("weights contain NaN or Inf values")
    return w


def matrix_id(weights: np.ndarray) -> str:
    """Id of a logical matrix: shape, dtype and the CRC-32 of its bytes."""
    rows, cols = weights.shape
    crc = zlib.crc32(np.ascontiguousarray(weights).data) & 0xFFFFFFFF
    return f"tiled-{rows}x{cols}-{weights.dtype.name}-{crc:08x}"


class TiledDevice(PhotonicDevice):
    """A matrix of any size on one device or a list of devices (docs/tiling.md).

    ``devices``: a device, a URI, or a sequence of them (a pool passes several). Devices given
    as URIs, or unopened, are opened by ``open()`` and closed by ``close()``; devices that are
    already open are left open. ``accumulate``: ``"float32"`` or ``"float64"`` host sums (the
    result has that dtype). ``assignment``: ``"round_robin"`` or ``"balanced"``. ``analog``:
    None uses analog accumulation where every device has it, False never, True requires it.
    """

    summary = "a matrix of any size tiled over one or several devices"

    def __init__(
        self,
        devices: DeviceLike | Sequence[DeviceLike],
        *,
        accumulate: str = "float32",
        assignment: str = "round_robin",
        analog: bool | None = None,
        max_tile_rows: int | None = None,
        max_tile_cols: int | None = None,
        full_scale_law: str = "sqrt_cols",
    ) -> None:
        super().__init__()
        if accumulate not in ACCUMULATE_DTYPES:
            raise ConfigurationError(
                f"accumulate must be one of {tuple(ACCUMULATE_DTYPES)}, got {accumulate!r}"
            )
        self._items = _as_device_list(devices)
        self.devices: list[PhotonicDevice] = []
        self._opened_here: list[PhotonicDevice] = []
        self.accumulate = accumulate
        self._dtype = ACCUMULATE_DTYPES[accumulate]
        self._plan_options: dict[str, Any] = {
            "assignment": assignment,
            "analog": analog,
            "max_tile_rows": max_tile_rows,
            "max_tile_cols": max_tile_cols,
            "full_scale_law": full_scale_law,
        }
        self._plan: TilePlan | None = None
        self._weights: np.ndarray | None = None
        self._tile_ids: list[str | None] = []
        self._order: list[list[Tile]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._counter_lock = threading.Lock()
        self._counters = self._zero_counters()

    def _count(self, key: str, n: int = 1) -> None:
        with self._counter_lock:
            self._counters[key] += n

    @staticmethod
    def _zero_counters() -> dict[str, int]:
        return {"products": 0, "tile_loads": 0, "tile_runs": 0, "analog_runs": 0}

    def __repr__(self) -> str:
        return f"TiledDevice({len(self._items)} device(s), accumulate={self.accumulate})"

    @property
    def plan(self) -> TilePlan:
        """The plan of the loaded matrix; InputError before load_weights."""
        if self._plan is None:
            raise InputError("no weights are loaded; call load_weights(W) first")
        return self._plan

    def slots(self) -> list[DeviceSlot]:
        """What the planner sees of each (open) device."""
        out = []
        for device in self.devices:
            info = device.info
            analog = Capability.ANALOG_ACCUMULATION.value in info.capabilities
            banks = int(getattr(device, "resident_capacity", 1)) if analog else 1
            out.append(DeviceSlot(info.rows, info.cols, banks, analog))
        return out

    def plan_for(self, out_features: int, in_features: int) -> TilePlan:
        """The plan an (out_features, in_features) matrix would get, without loading it."""
        with self._lock:
            self._require_open()
            return plan_tiles(out_features, in_features, self.slots(), **self._plan_options)

    # ---- lifecycle -------------------------------------------------------------------
    def _open(self) -> None:
        devices: list[PhotonicDevice] = []
        try:
            for item in self._items:
                device = open_device(item) if isinstance(item, str) else item
                if not device.is_open:
                    device.open()
                    self._opened_here.append(device)
                elif isinstance(item, str):
                    self._opened_here.append(device)
                devices.append(device)
        except BaseException:
            self._close_opened()
            raise
        self.devices = devices
        if len(devices) > 1:
            self._executor = ThreadPoolExecutor(len(devices), thread_name_prefix="lumina-tile")
        self._forget_weights()

    def _close_opened(self) -> None:
        while self._opened_here:
            self._opened_here.pop().close()

    def _close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._forget_weights()
        self._close_opened()
        self.devices = []

    def _forget_weights(self) -> None:
        self._plan = None
        self._weights = None
        self._tile_ids = []
        self._order = []

    # ---- queries ---------------------------------------------------------------------
    def _info(self) -> DeviceInfo:
        infos = [d.info for d in self.devices]
        caps = frozenset.intersection(*(i.capabilities for i in infos))
        caps -= {Capability.ANALOG_ACCUMULATION.value, Capability.HEATER_CODES.value}
        caps -= {Capability.CALIBRATE.value}  # calibrate the chips, not the composite
        # each tile has its own noise stream: the tiled device has no one position
        caps -= {Capability.NOISE_POSITION.value}
        first = infos[0]
        return DeviceInfo(
            vendor=first.vendor,
            model=f"tiled/{first.model}" + (f"x{len(infos)}" if len(infos) > 1 else ""),
            serial="+".join(i.serial for i in infos),
            firmware=first.firmware,
            rows=MAX_LOGICAL_SIZE,
            cols=MAX_LOGICAL_SIZE,
            weight_bits=min(i.weight_bits for i in infos),
            input_bits=min(i.input_bits for i in infos),
            output_bits=min(i.output_bits for i in infos),
            capabilities=caps,
        )

    def _telemetry(self) -> Telemetry:
        snaps = [d.telemetry() for d in self.devices]
        counters: dict[str, int] = {}
        for snap in snaps:
            for key, value in snap.counters.items():
                counters[f"device_{key}"] = counters.get(f"device_{key}", 0) + int(value)
        counters.update(self._counters)
        counters["tiles"] = self._plan.n_tiles if self._plan else 0
        return replace(
            snaps[0],
            weights_id=self._weights_id,
            counters=counters,
        )

    # ---- operations ------------------------------------------------------------------
    def load_weights(self, weights: Any) -> str:
        """Plan the tiling of ``weights`` (any 2-D size) and program every tile once."""
        w = _as_float_matrix(weights)
        if max(w.shape) > MAX_LOGICAL_SIZE:
            raise InputError(
                f"weights of shape {w.shape} exceed the {MAX_LOGICAL_SIZE} rows and columns "
                "a TiledDevice takes (its info.rows and info.cols)"
            )
        with self._lock:
            self._require_open()
            plan = plan_tiles(w.shape[0], w.shape[1], self.slots(), **self._plan_options)
            weights_id = matrix_id(w)
            self._plan, self._weights = plan, w
            self._tile_ids = [None] * plan.n_tiles
            self._order = [[t for t in plan.tiles if t.device == d] for d in range(plan.devices)]
            self._weights_shape = (int(w.shape[0]), int(w.shape[1]))
            self._weights_id = weights_id
            self._run_per_device(self._program_device)
            log.debug("loaded %s", plan.describe())
            return weights_id

    def _load_weights(self, weights: np.ndarray) -> str:  # pragma: no cover - load_weights
        return self.load_weights(weights)

    def matmul(self, x: Any, out: np.ndarray | None = None) -> np.ndarray:
        """``X @ W.T`` for X of shape (..., in_features); result (..., out_features).

        The result has the accumulator's dtype (float32 by default). ``out``, if given, must
        be C-contiguous, of that dtype and of the result's shape.
        """
        with self._lock:
            self._require_open()
            if self._plan is None or self._weights_shape is None:
                raise InputError("no weights are loaded; call load_weights(W) first")
            rows, cols = self._weights_shape
            x2d, lead = self._input_batch(x, cols)
            result = self._product(x2d).reshape(*lead, rows)
            if out is None:
                return result
            if (
                not isinstance(out, np.ndarray)
                or out.shape != result.shape
                or out.dtype != result.dtype
                or not out.flags.c_contiguous
            ):
                raise InputError(
                    f"out must be a C-contiguous {result.dtype} array of shape {result.shape}"
                )
            out[...] = result
            return out

    def _matmul(self, x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - matmul
        out[...] = self._product(x)

    def _set_temperature(self, temperature_c: float) -> None:
        for device in self.devices:
            device.set_temperature(temperature_c)

    def _reset(self) -> None:
        for device in self.devices:
            device.reset()
        self._forget_weights()
        self._counters = self._zero_counters()

    # ---- internals -------------------------------------------------------------------
    @staticmethod
    def _input_batch(x: Any, cols: int) -> tuple[np.ndarray, tuple[int, ...]]:
        try:
            arr = np.asarray(x)
        except Exception as exc:
            raise InputError(f"input cannot be read as an array: {exc}") from None
        if arr.ndim < 1 or arr.shape[-1] != cols:
            raise InputError(f"input must have shape (..., {cols}), got {arr.shape}")
        if arr.dtype.kind not in "fiu":
            raise InputError(f"input must be a real numeric array, got dtype {arr.dtype}")
        x2d = np.ascontiguousarray(arr.reshape(-1, cols), dtype=np.float32)
        if not np.isfinite(x2d).all():
            raise InputError("input contains NaN or Inf values")
        return x2d, tuple(arr.shape[:-1])

    def _run_per_device(self, work: Any, *args: Any) -> list[Any]:
        """Call ``work(device_index, *args)`` for every device, concurrently if several."""
        n = len(self.devices)
        if self._executor is None or n == 1:
            return [work(d, *args) for d in range(n)]
        futures = [self._executor.submit(work, d, *args) for d in range(n)]
        return [f.result() for f in futures]

    def _tile_weights(self, tile: Tile) -> np.ndarray:
        if self._weights is None:  # pragma: no cover - guarded by callers
            raise InputError("no weights are loaded")
        return self._weights[tile.row_start : tile.row_stop, tile.col_start : tile.col_stop]

    def _ensure_loaded(self, device: PhotonicDevice, tile: Tile, banked: bool) -> str:
        """Program ``tile`` on ``device`` unless the device still holds its weights id."""
        known = self._tile_ids[tile.index]
        if banked:
            resident = known in getattr(device, "resident_weights_ids", ())
        else:
            resident = known is not None and device.weights_id == known
        if not resident:
            known = device.load_weights(self._tile_weights(tile))
            self._tile_ids[tile.index] = known
            self._count("tile_loads")
        if known is None:  # pragma: no cover - load_weights always returns an id
            raise UnsupportedOperationError("device returned no weights id")
        return known

    def _program_device(self, d: int) -> None:
        device = self.devices[d]
        with device.lock:
            for tile in self._order[d]:
                self._ensure_loaded(device, tile, banked=False)

    def _device_order(self, d: int) -> list[Tile]:
        """Serpentine order: programming runs a device's tiles forwards, even products
        backwards, odd products forwards, so the tiles still programmed from the previous pass
        come first (docs/tiling.md section 3)."""
        order = self._order[d]
        return order if self._counters["products"] % 2 else order[::-1]

    def _run_device(self, d: int, x_blocks: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        """Run device d's tiles (or analog groups); results keyed by first tile index."""
        plan = self._plan
        if plan is None:  # pragma: no cover - guarded by matmul
            raise InputError("no weights are loaded")
        device = self.devices[d]
        results: dict[int, np.ndarray] = {}
        with device.lock:
            if not plan.analog:
                for tile in self._device_order(d):
                    self._ensure_loaded(device, tile, banked=False)
                    results[tile.index] = device.matmul(x_blocks[tile.col_block])
                    self._count("tile_runs")
                return results
            groups: dict[tuple[int, int], list[Tile]] = {}
            for tile in self._order[d]:
                key = (tile.row_block, tile.col_block // plan.analog_group)
                groups.setdefault(key, []).append(tile)
            keys = list(groups)
            if not self._counters["products"] % 2:
                keys.reverse()
            accumulate = device.matmul_accumulate  # type: ignore[attr-defined]
            for key in keys:
                tiles = groups[key]
                ids = [self._ensure_loaded(device, t, banked=True) for t in tiles]
                blocks = [x_blocks[t.col_block] for t in tiles]
                results[tiles[0].index] = np.asarray(accumulate(ids, blocks))
                self._count("tile_runs", len(tiles))
                self._count("analog_runs")
        return results

    def _product(self, x2d: np.ndarray) -> np.ndarray:
        plan = self._plan
        if plan is None:  # pragma: no cover - guarded by matmul
            raise InputError("no weights are loaded")
        acc = np.zeros((x2d.shape[0], plan.out_features), dtype=self._dtype)
        if x2d.shape[0] == 0:
            return acc
        x_blocks: dict[int, np.ndarray] = {}
        for tile in plan.tiles[: plan.col_blocks]:
            block = x2d[:, tile.col_start : tile.col_stop]
            x_blocks[tile.col_block] = block if plan.col_blocks == 1 else block.copy()
        merged: dict[int, np.ndarray] = {}
        for part in self._run_per_device(self._run_device, x_blocks):
            merged.update(part)
        for index in sorted(merged):  # fixed order: the sum does not depend on thread timing
            tile = plan.tiles[index]
            acc[:, tile.row_start : tile.row_stop] += merged[index]
        self._count("products")
        return acc
