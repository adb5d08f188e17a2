"""DevicePool: many chips used like one device (docs/scale-out.md).

A matrix that fits one chip is programmed on every chip once per weights id (replicated) and
each ``matmul`` splits its batch into contiguous shards, one per chip, run concurrently: the
throughput of N chips that spend their time waiting on their links. A matrix larger than a
chip's array is tiled over the chips (lumina_hal.tiling.TiledDevice over the pool's
ChipProxy objects), tiles resident. Either way every chip keeps its own noise stream, and a
shard retried after a failure repeats its noise-stream position, so no result changes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np

from lumina_hal.device import Capability, DeviceInfo, PhotonicDevice, Telemetry
from lumina_hal.errors import ConfigurationError, InputError
from lumina_hal.pool.handle import ChipHandle
from lumina_hal.pool.proxy import ChipProxy
from lumina_hal.tiling import MAX_LOGICAL_SIZE, TiledDevice, TilePlan

log = logging.getLogger(__name__)

T = TypeVar("T")


class DevicePool(PhotonicDevice):
    """Chips behind ChipHandles, used like one device. Build it with ``open_pool``."""

    summary = "several chips used like one device (replicated batches or tiles)"

    def __init__(self, handles: Sequence[ChipHandle], backend: str) -> None:
        super().__init__()
        if not handles:
            raise ConfigurationError("a pool needs at least one device")
        self.backend = backend
        #: The pool's chips, each used like a device (also what tiling spreads tiles over).
        self.chips = [ChipProxy(h, i) for i, h in enumerate(handles)]
        self._backend_checks_finite = True  # every chip checks its own inputs
        self._executor: ThreadPoolExecutor | None = None
        self._tiled: TiledDevice | None = None
        self._counters = {"matmul_calls": 0, "shards": 0, "weight_loads": 0}
        #: Largest batch that is one shard (docs/scale-out.md section 2): all on one chip.
        self._direct_batch = sys.maxsize if len(self.chips) == 1 else 1
        self._direct_calls = 0

    def __repr__(self) -> str:
        return f"DevicePool({len(self.chips)} chip(s), backend={self.backend})"

    @property
    def tiled(self) -> bool:
        """True when the loaded matrix is tiled over the chips (larger than one array)."""
        return self._tiled is not None

    @property
    def chip_shape(self) -> tuple[int, int]:
        """(rows, cols) of the smallest chip: larger matrices are tiled."""
        infos = [chip.info for chip in self.chips]
        return min(i.rows for i in infos), min(i.cols for i in infos)

    @property
    def tile_plan(self) -> TilePlan | None:
        """The TilePlan (docs/tiling.md) of a tiled matrix; None in replicated mode."""
        return self._tiled.plan if self._tiled is not None else None

    # ---- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> DevicePool:
        self.open()
        return self

    def _open(self) -> None:
        if len(self.chips) > 1:
            self._executor = ThreadPoolExecutor(len(self.chips), thread_name_prefix="lumina-pool")
        try:
            self._each(lambda chip: chip.open(), self.chips)
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        errors: list[BaseException] = []
        self._drop_tiled()
        for chip in self.chips:
            try:
                chip.close()
            except Exception as exc:  # close every chip, report the first failure
                errors.append(exc)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if errors:
            raise errors[0]

    # ---- queries -----------------------------------------------------------------------
    def _info(self) -> DeviceInfo:
        infos = [chip.info for chip in self.chips]
        first = infos[0]
        return DeviceInfo(
            vendor=first.vendor,
            model=f"pool/{first.model.removeprefix('pool-chip/')}x{len(infos)}",
            serial="+".join(i.serial for i in infos),
            firmware=first.firmware,
            rows=MAX_LOGICAL_SIZE,  # any matrix up to this is accepted (tiled if needed)
            cols=MAX_LOGICAL_SIZE,
            weight_bits=min(i.weight_bits for i in infos),
            input_bits=min(i.input_bits for i in infos),
            output_bits=min(i.output_bits for i in infos),
            # per chip: codes, calibration and the noise stream (each chip keeps its own)
            capabilities=frozenset.intersection(*(i.capabilities for i in infos))
            - {
                Capability.HEATER_CODES.value,
                Capability.CALIBRATE.value,
                Capability.NOISE_POSITION.value,
            },
        )

    def _telemetry(self) -> Telemetry:
        snaps = self._each(lambda chip: chip.telemetry(), self.chips)
        counters = dict(self._counters)
        counters["matmul_calls"] += self._direct_calls
        counters["shards"] += self._direct_calls
        for i, snap in enumerate(snaps):
            for name, value in snap.counters.items():
                counters[f"chip{i}_{name}"] = int(value)
        temperature_c = max(s.temperature_c for s in snaps)
        powers = [s.optical_power_dbm for s in snaps if s.optical_power_dbm is not None]
        return replace(
            snaps[0],
            temperature_c=temperature_c,
            optical_power_dbm=min(powers) if powers else None,
            weights_id=self.weights_id,
            counters=counters,
        )

    # ---- operations --------------------------------------------------------------------
    def load_weights(self, weights: Any) -> str:
        """Program ``weights`` on every chip (fits one array) or tile them over the chips."""
        with self._lock:
            self._require_open()
            try:
                shape: tuple[int, ...] | None = np.shape(weights)
            except Exception:  # ragged and the like: the device's validation says why
                shape = None
            rows, cols = self.chip_shape
            if (
                shape is not None
                and len(shape) == 2
                and max(shape) <= MAX_LOGICAL_SIZE  # beyond: the contract's InputError
                and (shape[0] > rows or shape[1] > cols)
            ):
                return self._load_tiled(weights)
            return super().load_weights(weights)

    def _load_weights(self, weights: np.ndarray) -> str:
        self._drop_tiled()  # validated: a refused matrix leaves the pool as it was
        ids = self._each(lambda chip: chip.load_weights(weights), self.chips)
        self._counters["weight_loads"] += 1
        if len(set(ids)) > 1:
            log.info("chips report different weights ids for one matrix: %s", ids)
        if all(chip.direct for chip in self.chips):
            # PhotonicDevice's fast-path hook: cleared by every load, reset and close.
            self._fast_matmul = self._direct_matmul
        return ids[0]

    def _direct_matmul(self, x: Any, out: np.ndarray | None) -> np.ndarray | None:
        """A call that is one shard on one local chip without a timeout (every call of a
        one-chip pool, a single vector on more chips) goes straight to chip 0, whose device
        validates ``x`` and ``out`` once (not the pool and then the device again). Declines
        (None, nothing done) what the general path handles: anything but an array of one
        vector or of a non-empty batch that is one shard (an empty batch reaches no chip)."""
        if type(x) is not np.ndarray:
            return None
        if x.ndim == 2:
            if not 0 < x.shape[0] <= self._direct_batch:
                return None
        elif x.ndim != 1:
            return None
        y = self.chips[0].run_direct(x, out)
        self._direct_calls += 1  # each one call and one shard (telemetry adds them)
        return y

    def _load_tiled(self, weights: Any) -> str:
        tiled = TiledDevice(self.chips)
        tiled.open()
        try:
            weights_id = tiled.load_weights(weights)
        except BaseException:  # refused before programming: the previous state stays
            tiled.close()
            raise
        self._drop_tiled()
        self._fast_matmul = None  # tiled products go through the tiler
        self._tiled = tiled
        self._weights_shape = tiled.weights_shape
        self._weights_id = weights_id
        self._counters["weight_loads"] += 1
        return weights_id

    def _drop_tiled(self) -> None:
        tiled, self._tiled = self._tiled, None
        if tiled is not None:
            tiled.close()  # leaves the chips open: they were open when it was built

    def matmul(self, x: Any, out: np.ndarray | None = None) -> np.ndarray:
        """``X @ W.T``: batch shards over the chips, or the tiled product (docs/scale-out.md)."""
        tiled = self._tiled
        if tiled is None:
            return super().matmul(x, out)
        with self._lock:
            self._require_open()
            try:
                ndim = np.ndim(x)
            except Exception as exc:  # ragged lists and the like
                raise InputError(f"input cannot be read as an array: {exc}") from None
            if ndim not in (1, 2):  # the device contract, whatever the tiler accepts
                raise InputError(f"input must have shape (cols,) or (batch, cols), got {ndim}-D")
            y = tiled.matmul(x, out)
            self._counters["matmul_calls"] += 1
            return y

    def _matmul(self, x: np.ndarray, out: np.ndarray) -> None:
        n = min(len(self.chips), x.shape[0])
        batch = x.shape[0]
        # Contiguous shards as even as possible: chip i gets rows floor(i*B/n):floor((i+1)*B/n).
        shards = [(self.chips[i], i * batch // n, (i + 1) * batch // n) for i in range(n)]

        def run(shard: tuple[ChipProxy, int, int]) -> None:
            chip, lo, hi = shard
            chip.run_shard(x[lo:hi], out[lo:hi])  # validated once, here

        if n > 1 and all(chip.submits for chip, _, _ in shards):
            _submit_then_collect(x, out, shards)  # Ray: no driver thread per chip
        else:
            self._each(run, shards)
        self._counters["matmul_calls"] += 1
        self._counters["shards"] += n

    def _set_temperature(self, temperature_c: float) -> None:
        self._each(lambda chip: chip.set_temperature(temperature_c), self.chips)

    def _reset(self) -> None:
        self._drop_tiled()
        self._each(lambda chip: chip.reset(), self.chips)
        self._counters = dict.fromkeys(self._counters, 0)
        self._direct_calls = 0

    # ---- internals ---------------------------------------------------------------------
    def _each(self, fn: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
        """``fn`` on every item, concurrently on the pool's threads; the first error raises
        after all have finished (no call is left running behind the caller's back)."""
        if self._executor is None or len(items) == 1:
            return [fn(item) for item in items]
        futures = [self._executor.submit(fn, item) for item in items]
        errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error
        return [f.result() for f in futures]


def _submit_then_collect(
    x: np.ndarray, out: np.ndarray, shards: Sequence[tuple[ChipProxy, int, int]]
) -> None:
    """Every shard submitted from this thread, then every result collected in order; the
    first error raises after all submitted shards have finished (none left running)."""
    errors: list[BaseException] = []
    started: list[tuple[ChipProxy, int, int, tuple[int, Any]]] = []
    for chip, lo, hi in shards:
        try:
            started.append((chip, lo, hi, chip.submit_shard(x[lo:hi])))
        except Exception as exc:
            errors.append(exc)
            break
    for chip, lo, hi, token in started:
        try:
            chip.finish_shard(token, out[lo:hi])
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
