"""ChipHandle: how a pool reaches one chip, whatever the backend (threads here, Ray actors).

A handle remembers the weights of every key it was given (the local backend keeps the array,
the Ray backend one ``ray.put`` reference), so that a chip which lost them is re-programmed
from the host side without the caller shipping them again (docs/scale-out.md section 3).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol, TypeVar

import numpy as np

from lumina_hal.device import DeviceInfo, PhotonicDevice, Telemetry
from lumina_hal.errors import LinkError
from lumina_hal.pool.worker import ChipWorker
from lumina_hal.registry import build_device

log = logging.getLogger(__name__)

T = TypeVar("T")


def weights_key(weights: np.ndarray) -> str:
    """The pool's key of a float matrix: shape, dtype and a BLAKE2 digest of its bytes.

    Computed on the host before anything is programmed, so that a load and every later run
    name the same weights whatever the chip reports (docs/scale-out.md section 3).
    """
    w = np.ascontiguousarray(weights)
    digest = hashlib.blake2b(w.data.cast("B"), digest_size=8).hexdigest()
    return f"{w.shape[0]}x{w.shape[1]}-{w.dtype.name}-{digest}"


class ChipHandle(Protocol):
    """One chip of a pool. ``open`` returns its info and the noise-stream position."""

    label: str

    def open(self) -> tuple[DeviceInfo, int]: ...

    def remember(self, key: str, weights: np.ndarray) -> None: ...

    def forget_all(self) -> None: ...

    def load(self, key: str) -> str: ...

    def run(self, key: str, call_index: int, x: np.ndarray, out: np.ndarray) -> None:
        """Write the chip's result for ``x`` at ``call_index`` into ``out``."""

    def telemetry(self) -> Telemetry: ...

    def set_temperature(self, temperature_c: float) -> None: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


class LocalHandle:
    """A chip in this process. Calls run in the caller's thread; with ``timeout_s`` they run
    on the chip's own thread and a call that overruns raises LinkError (the chip is then
    marked hung: a thread cannot be stopped, so later calls fail at once)."""

    def __init__(
        self, device: PhotonicDevice | str | Callable[[], PhotonicDevice], timeout_s: float | None
    ) -> None:
        self._source = device
        self.label = device if isinstance(device, str) else repr(device)
        self.timeout_s = timeout_s
        self._worker: ChipWorker | None = None
        self._weights: dict[str, np.ndarray] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._hung = ""
        self._opened_here = False

    def open(self) -> tuple[DeviceInfo, int]:
        source = self._source
        device = (
            source
            if isinstance(source, PhotonicDevice)
            else build_device(source)
            if isinstance(source, str)
            else source()
        )
        self._opened_here = not device.is_open or not isinstance(source, PhotonicDevice)
        # A device built here from a URI is the pool's alone (objects and factories' devices
        # may be used by their caller too): its worker can trust its own position.
        worker = ChipWorker.open(lambda: device, exclusive=isinstance(source, str))
        self._worker = worker
        if self.timeout_s is not None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="lumina-chip")
        return worker.info(), worker.next_call

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._hung:
            raise LinkError(self._hung)
        if self._executor is None:
            return fn(*args)
        future = self._executor.submit(fn, *args)
        try:
            return future.result(timeout=self.timeout_s)
        except FutureTimeout:
            self._hung = (
                f"chip {self.label} did not answer within {self.timeout_s:g} s; it is "
                "marked hung (close the pool and open it again)"
            )
            log.error(self._hung)
            raise LinkError(self._hung) from None

    def _require(self) -> ChipWorker:
        if self._worker is None:
            raise LinkError(f"chip {self.label} is not open")
        return self._worker

    def remember(self, key: str, weights: np.ndarray) -> None:
        self._weights[key] = weights

    def forget_all(self) -> None:
        self._weights.clear()

    def load(self, key: str) -> str:
        worker = self._require()
        return self._call(worker.load, key, self._weights[key])

    def run(self, key: str, call_index: int, x: np.ndarray, out: np.ndarray) -> None:
        worker = self._require()
        self._call(worker.run, key, call_index, x, self._weights.get(key), out)

    @property
    def direct(self) -> bool:
        """True when ``run_direct`` may be used: no timeout, so calls run in the caller's
        thread anyway (with ``timeout_s`` every call keeps the chip's thread and its limit)."""
        return self._executor is None

    def run_direct(self, key: str, call_index: int, x: Any, out: np.ndarray | None) -> np.ndarray:
        """``run`` in the caller's thread on an unchecked ``x`` (the device's matmul validates
        it and ``out``), returning the device's result: a one-chip pool's fast path (only
        when ``direct``: without a timeout no chip is ever marked hung)."""
        return self._require().run(key, call_index, x, self._weights.get(key), out)

    def telemetry(self) -> Telemetry:
        return self._call(self._require().telemetry)

    def set_temperature(self, temperature_c: float) -> None:
        self._call(self._require().set_temperature, temperature_c)

    def reset(self) -> None:
        self._call(self._require().reset)

    def close(self) -> None:
        worker, self._worker = self._worker, None
        if self._executor is not None:
            self._executor.shutdown(wait=not self._hung, cancel_futures=True)
            self._executor = None
        if worker is not None and self._opened_here and not self._hung:
            worker.close()
        self._weights.clear()
