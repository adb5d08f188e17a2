"""ChipWorker: one chip's owner inside a pool, with idempotent loads and runs.

The same class serves both backends: the local backend calls it from a thread, the Ray
backend wraps it in an actor (pool/ray_backend.py). Its two operations are idempotent, which
is what lets a pool retry a shard after a failure without changing any result
(docs/scale-out.md section 3):

- ``load(key, weights)`` programs the matrix unless the chip already holds ``key``;
- ``run(key, call_index, x, weights=...)`` runs ``x`` at noise-stream position ``call_index``
  on the weights named ``key``; a chip that lost them (a restarted actor, a rebooted board)
  is first re-programmed from ``weights``, which the caller keeps (Ray: in its object store).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from lumina_hal.device import Capability, DeviceInfo, PhotonicDevice, Telemetry
from lumina_hal.errors import InputError, LinkError

log = logging.getLogger(__name__)

#: Weights to re-program from: the array, or a callable that fetches it (Ray: ray.get).
WeightsSource = np.ndarray | Callable[[], np.ndarray]

#: Loads retried after a LinkError (a board that rebooted mid-upload, a dropped link).
LOAD_ATTEMPTS = 3


class ChipWorker:
    """Owns one open device; every public method is thread-safe (the device's lock).

    ``exclusive``: nothing but this worker uses the device (it was opened from a URI for the
    pool). The worker then knows where the noise stream is after each of its own successful
    runs and reads it only when it may have moved (docs/scale-out.md section 3); a device
    shared with its caller (an object or a factory's) is read before every run.
    """

    def __init__(self, device: PhotonicDevice, exclusive: bool = False) -> None:
        self.device = device
        self.exclusive = exclusive
        self._lock = threading.Lock()
        self._key: str | None = None  # pool key of the weights the chip holds now
        self._device_id: str | None = None  # the device's weights id for that key
        self._seeded = False
        self._seekable = False
        self._next_call = 0
        self._position: int | None = None  # where the device's stream is known to be

    @classmethod
    def open(cls, factory: Callable[[], PhotonicDevice], exclusive: bool = False) -> ChipWorker:
        """Open the device ``factory`` builds (a URI's, for a Ray actor) and own it."""
        device = factory()
        if not device.is_open:
            device.open()
        worker = cls(device, exclusive)
        worker.start()
        return worker

    def start(self) -> None:
        """Read where the (open) device's noise stream is; call once before the first run."""
        with self._lock:
            capabilities = self.device.info.capabilities
            self._seeded = Capability.SEEDED.value in capabilities
            self._seekable = Capability.NOISE_POSITION.value in capabilities
            self._next_call = self.device.call_index if self._seekable else 0
            self._position = None

    # ---- queries -----------------------------------------------------------------------
    def info(self) -> DeviceInfo:
        return self.device.info

    def telemetry(self) -> Telemetry:
        return self.device.telemetry()

    def set_temperature(self, temperature_c: float) -> None:
        """The device's set_temperature (its position is read again before the next run)."""
        with self._lock:
            self._position = None
            self.device.set_temperature(temperature_c)

    @property
    def next_call(self) -> int:
        """The noise-stream position the device's next call uses."""
        return self._next_call

    @property
    def loaded_key(self) -> str | None:
        """Pool key of the weights the chip holds (None if none or lost)."""
        with self._lock:
            return self._key if self._holds_current() else None

    # ---- operations --------------------------------------------------------------------
    def load(self, key: str, weights: np.ndarray) -> str:
        """Program ``weights`` under ``key`` unless already held; return the device's id."""
        with self._lock:
            return self._ensure(key, weights)

    def run(
        self,
        key: str,
        call_index: int,
        x: np.ndarray,
        weights: WeightsSource | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """``x`` through the weights ``key`` at noise position ``call_index`` (idempotent).

        ``weights`` (an array, or a callable returning it, fetched only when needed)
        re-programs a chip that no longer holds ``key``, also when the board lost them
        during this call (LinkError from a reboot); without it such a chip raises InputError.
        ``out`` is passed to the device's matmul (the result is written there). ``x`` and
        ``out`` need no prior checks: the device's matmul validates them (InputError).
        """
        with self._lock:
            # Holds ``key`` and the device still the weights it was given for it (a reset or
            # another load behind the worker's back changes its id): _holds_current, inline.
            if self._key != key or self.device.weights_id != self._device_id:
                self._ensure(key, _fetch(key, weights))
            try:
                return self._run_at(call_index, x, out)
            except LinkError as exc:
                if weights is None:
                    raise
                log.warning("run on %s failed (%s); re-programming and running again", key, exc)
                self._key = self._device_id = None
                self._ensure(key, _fetch(key, weights))
                return self._run_at(call_index, x, out)

    def reset(self) -> None:
        """The device's reset (no weights, counters zeroed, noise stream at call 0)."""
        with self._lock:
            self._position = None
            self.device.reset()
            self._key = self._device_id = None
            self._next_call = 0

    def close(self) -> None:
        with self._lock:
            self._key = self._device_id = self._position = None
            self.device.close()

    # ---- internals ---------------------------------------------------------------------
    def _run_at(self, call_index: int, x: Any, out: np.ndarray | None) -> np.ndarray:
        if self._position == call_index:  # an exclusive device known to be there already
            return self._matmul_at(call_index, x, out)
        device = self.device
        with device.lock:
            # A shared device may have been used, reset or restarted behind the worker's
            # back: its position is read on every call (cheaper than moving it, twin 0.6 µs
            # against 0.9 µs) and moved only if it is elsewhere.
            if self._seekable:
                if device.call_index != call_index:
                    device.seek_call_index(call_index)
            elif self._seeded and call_index != self._next_call:
                log.warning(
                    "%s cannot seek its noise stream: call %d runs at the device's own "
                    "position, so it may differ from a first run",
                    type(device).__name__,
                    call_index,
                )
            return self._matmul_at(call_index, x, out)

    def _matmul_at(self, call_index: int, x: Any, out: np.ndarray | None) -> np.ndarray:
        self._position = None  # unknown until the call succeeds (a failed call may move it)
        y = self.device.matmul(x, out)
        self._next_call = call_index + 1
        if self.exclusive and self._seekable and (y.ndim == 1 or y.shape[0]):
            self._position = call_index + 1  # a non-empty call advanced the stream by one
        return y

    def _holds_current(self) -> bool:
        return self._key is not None and self.device.weights_id == self._device_id

    def _ensure(self, key: str, weights: np.ndarray) -> str:
        if self._key == key and self._holds_current() and self._device_id is not None:
            return self._device_id
        self._key = self._device_id = self._position = None
        for attempt in range(1, LOAD_ATTEMPTS + 1):
            try:
                device_id = self.device.load_weights(weights)
                break
            except LinkError as exc:  # e.g. the board rebooted during the upload
                if attempt == LOAD_ATTEMPTS:
                    raise
                log.warning("load of %s failed (%s); attempt %d again", key, exc, attempt + 1)
        self._key, self._device_id = key, device_id
        return device_id


def _fetch(key: str, weights: WeightsSource | None) -> np.ndarray:
    if weights is None:
        raise InputError(f"the chip does not hold weights {key}; pass them to run")
    return weights() if callable(weights) else weights
