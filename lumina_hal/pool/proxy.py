"""ChipProxy: one chip of a pool, used like a PhotonicDevice (and by TiledDevice).

It validates like any device, keeps the chip's noise-stream position on the host (so that a
retried call repeats the same position) and forwards loads and runs to its ChipHandle, which
reaches the chip in this process or in a Ray actor.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from lumina_hal.device import DeviceInfo, PhotonicDevice, Telemetry
from lumina_hal.errors import InputError
from lumina_hal.pool.handle import ChipHandle, weights_key


class ChipProxy(PhotonicDevice):
    """A pool's chip: ``info``, ``load_weights``, ``matmul``, ``weights_id``, ``telemetry``."""

    summary = "one chip of a device pool"

    def __init__(self, handle: ChipHandle, index: int) -> None:
        super().__init__()
        self.handle = handle
        self.index = index
        self._backend_checks_finite = True  # the chip's own device checks its inputs
        self._device_info: DeviceInfo | None = None
        self._key: str | None = None
        self._next_call = 0

    def __repr__(self) -> str:
        return f"ChipProxy({self.index}: {self.handle.label})"

    @property
    def weights_key(self) -> str | None:
        """The pool key (weights_key) of the loaded matrix."""
        return self._key

    @property
    def next_call(self) -> int:
        """The noise-stream position the next matmul uses."""
        return self._next_call

    def _open(self) -> None:
        self._device_info, self._next_call = self.handle.open()
        self._key = None

    def _close(self) -> None:
        self._key = None
        self.handle.close()

    def _info(self) -> DeviceInfo:
        if self._device_info is None:
            raise InputError(f"{self!r} has not been opened")
        info = self._device_info
        return replace(info, model=f"pool-chip/{info.model}")

    def _load_weights(self, weights: np.ndarray) -> str:
        key = weights_key(weights)
        self.handle.remember(key, weights)
        weights_id = self.handle.load(key)
        self._key = key
        return weights_id

    def run_shard(self, x: np.ndarray, out: np.ndarray) -> None:
        """``matmul`` for a caller that validated already (the pool): ``x`` (batch, c)
        float32 C-contiguous rows, ``out`` (batch, r) float32 rows to write."""
        with self._lock:
            self._require_open()
            self._matmul(x, out)

    @property
    def direct(self) -> bool:
        """True when ``run_direct`` may be used (a local chip without a timeout)."""
        return bool(getattr(self.handle, "direct", False))

    def run_direct(self, x: Any, out: np.ndarray | None) -> np.ndarray:
        """``matmul`` of an unchecked ``x`` straight to the chip, whose device validates it
        (a one-chip pool's fast path, docs/scale-out.md section 2): the same position
        bookkeeping as every run, the device's own result returned."""
        with self._lock:
            if not self._is_open:
                self._require_open()  # raises
            key = self._key
            if key is None:
                raise InputError("no weights are loaded; call load_weights(W) first")
            call_index = self._next_call
            y: np.ndarray = self.handle.run_direct(key, call_index, x, out)  # type: ignore[attr-defined]
            self._next_call = call_index + 1  # only after success: a retry repeats it
            return y

    @property
    def submits(self) -> bool:
        """True when the handle can start a run without waiting for it (Ray actors)."""
        return hasattr(self.handle, "submit_run")

    def submit_shard(self, x: np.ndarray) -> tuple[int, Any]:
        """Start ``run_shard(x, ...)`` and return at once (a handle that ``submits``); the
        returned token MUST be passed to ``finish_shard`` by this thread, which holds the
        chip's lock until then."""
        self._lock.acquire()
        try:
            self._require_open()
            if self._key is None:
                raise InputError("no weights are loaded; call load_weights(W) first")
            call_index = self._next_call
            return call_index, self.handle.submit_run(self._key, call_index, x)  # type: ignore[attr-defined]
        except BaseException:
            self._lock.release()
            raise

    def finish_shard(self, token: tuple[int, Any], out: np.ndarray) -> None:
        """Wait for a submitted shard and write its result into ``out``; releases the lock."""
        call_index, pending = token
        try:
            self.handle.finish_run(pending, out)  # type: ignore[attr-defined]
            self._next_call = call_index + 1  # only after success: a retry repeats it
        finally:
            self._lock.release()

    def _matmul(self, x: np.ndarray, out: np.ndarray) -> None:
        if self._key is None:
            raise InputError("no weights are loaded; call load_weights(W) first")
        call_index = self._next_call
        self.handle.run(self._key, call_index, x, out)
        self._next_call = call_index + 1  # only after success: a retry repeats the position

    def _read_call_index(self) -> int:
        return self._next_call

    def _seek_call_index(self, call_index: int) -> None:
        self._next_call = call_index  # the chip is moved there with the next shard

    def _telemetry(self) -> Telemetry:
        return self.handle.telemetry()

    def _set_temperature(self, temperature_c: float) -> None:
        self.handle.set_temperature(temperature_c)

    def _reset(self) -> None:
        self.handle.reset()
        self.handle.forget_all()
        self._key = None
        self._next_call = 0
