"""The Ray backend of a device pool: one actor per chip (optional extra ``lumina-hal[ray]``).

Each actor owns one chip (a ChipWorker) on the node that offers its custom resource
(``{"lumina_chip": 1}`` by default, or one resource per board). Actors restart without limit
(``max_restarts=-1``) and re-open their chip; Ray does not retry their tasks: the handle does,
because it knows that loads and runs are idempotent (docs/scale-out.md section 3). The
weights of a key go into the object store once (``ray.put``); the actor keeps their reference
from the load and fetches them only when its chip does not hold them, so a run carries no
reference (a restarted actor asks for it: ``WeightsNeeded``). A pool submits every chip's
shard from one thread and then collects the results (``submit_run``, ``finish_run``): no
thread per chip on the driver. Only this module imports ray, and only when a Ray pool is built.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from lumina_hal.device import DeviceInfo, PhotonicDevice, Telemetry
from lumina_hal.errors import ConfigurationError, LinkError, LuminaError
from lumina_hal.pool.worker import ChipWorker
from lumina_hal.registry import open_device

log = logging.getLogger(__name__)

#: Attempts of one call across actor deaths (each restart re-opens the chip).
CALL_ATTEMPTS = 4
DEFAULT_RESOURCES: Mapping[str, float] = {"lumina_chip": 1}


def import_ray() -> Any:
    """The ray module, or ConfigurationError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigurationError("backend='ray' needs Ray: pip install 'lumina-hal[ray]'") from None
    return ray


class WeightsNeeded(Exception):
    """Raised in an actor whose chip lost the weights of a key it has no reference to (a
    restarted actor): the handle sends the run again with the reference. Never reaches a user."""


class ChipActor:
    """The body of a chip's actor: a ChipWorker on a device opened from a URI or factory."""

    def __init__(self, source: str | Callable[[], PhotonicDevice]) -> None:
        factory = (lambda: open_device(source)) if isinstance(source, str) else source
        # Opened in this actor from a URI: no one else uses it (a factory's device might be).
        self._worker = ChipWorker.open(factory, exclusive=isinstance(source, str))
        self._refs: dict[str, Any] = {}  # key -> ObjectRef of the weights last sent

    def start(self) -> tuple[DeviceInfo, int]:
        """The chip's info and noise-stream position."""
        return self._worker.info(), self._worker.next_call

    def pid(self) -> int:
        return os.getpid()

    def node_id(self) -> str:
        """The Ray node the actor (and so its chip) runs on."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def load(self, key: str, box: list[Any]) -> str:
        import ray

        self._refs = {key: box[0]}  # the chip holds one matrix
        return self._worker.load(key, ray.get(box[0]))

    def run(
        self, key: str, call_index: int, x_bytes: bytes, batch: int, box: list[Any] | None = None
    ) -> bytes:
        """The shard's result as float32 bytes; ``x_bytes``: ``batch`` float32 rows (plain
        bytes cross Ray without pickling, a quarter less driver time than arrays)."""
        if box is not None:
            self._refs = {key: box[0]}  # the chip holds one matrix
        x = np.frombuffer(x_bytes, dtype=np.float32).reshape(batch, -1)
        # The weights are fetched from the object store only if the chip lost them.
        y = self._worker.run(key, call_index, x, lambda: self._fetch(key))
        return y.tobytes()

    def _fetch(self, key: str) -> np.ndarray:
        import ray

        ref = self._refs.get(key)
        if ref is None:
            raise WeightsNeeded(key)
        weights: np.ndarray = ray.get(ref)
        return weights

    def telemetry(self) -> Telemetry:
        return self._worker.telemetry()

    def set_temperature(self, temperature_c: float) -> None:
        self._worker.set_temperature(temperature_c)

    def reset(self) -> None:
        self._worker.reset()

    def close(self) -> None:
        self._worker.close()


class RayHandle:
    """A chip in a Ray actor. Calls that overrun ``timeout_s`` raise LinkError and restart
    the actor (its chip is re-opened, the pool stays usable)."""

    def __init__(
        self,
        source: str | Callable[[], PhotonicDevice],
        resources: Mapping[str, float],
        timeout_s: float,
        start_timeout_s: float,
    ) -> None:
        self._ray = import_ray()
        self.label = source if isinstance(source, str) else repr(source)
        self._source = source
        self.resources = dict(resources)
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.actor: Any = None
        self._refs: dict[str, Any] = {}  # key -> ObjectRef of the weights (ray.put once)

    def open(self) -> tuple[DeviceInfo, int]:
        ray = self._ray
        check_resources(ray, self.resources)
        remote = ray.remote(ChipActor).options(
            num_cpus=0,
            resources=self.resources,
            max_restarts=-1,
            max_task_retries=0,
            max_concurrency=1,
        )
        self.actor = remote.remote(self._source)
        info, next_call = self._call("start", timeout_s=self.start_timeout_s)
        return info, next_call

    def remember(self, key: str, weights: np.ndarray) -> None:
        if key not in self._refs:
            self._refs[key] = self._ray.put(weights)

    def forget_all(self) -> None:
        self._refs.clear()

    def load(self, key: str) -> str:
        result: str = self._call("load", key, [self._refs[key]])
        return result

    def run(self, key: str, call_index: int, x: np.ndarray, out: np.ndarray) -> None:
        self.finish_run(self.submit_run(key, call_index, x), out)

    def submit_run(self, key: str, call_index: int, x: np.ndarray) -> PendingRun:
        """Start a run on the actor and return at once; ``finish_run`` waits for it."""
        if self.actor is None:
            raise LinkError(f"chip {self.label} is not open")
        args = (key, call_index, np.ascontiguousarray(x, dtype=np.float32).tobytes(), len(x))
        return PendingRun(args, self.actor.run.remote(*args))

    def finish_run(self, pending: PendingRun, out: np.ndarray) -> None:
        """Write the result of a submitted run into ``out`` (retried as ``_call`` does)."""
        reply = self._result("run", pending.args, pending.ref, self.timeout_s)
        out[...] = np.frombuffer(reply, dtype=np.float32).reshape(out.shape)

    def process_id(self) -> int:
        """The actor's process id now (waits for a restarting actor)."""
        return int(self._call("pid"))

    def telemetry(self) -> Telemetry:
        result: Telemetry = self._call("telemetry")
        return result

    def set_temperature(self, temperature_c: float) -> None:
        self._call("set_temperature", temperature_c)

    def reset(self) -> None:
        self._call("reset")

    def close(self) -> None:
        actor, self.actor = self._actor_or_none(), None
        self._refs.clear()
        if actor is None:
            return
        try:
            self._ray.get(actor.close.remote(), timeout=self.timeout_s)
        except Exception as exc:  # a dead or hung actor: closing must still finish
            log.warning("closing chip %s: %s", self.label, exc)
        self._ray.kill(actor, no_restart=True)

    def _actor_or_none(self) -> Any:
        return self.actor

    def _call(self, method: str, *args: Any, timeout_s: float | None = None) -> Any:
        """``actor.method(*args)``, retried across actor deaths; LinkError on a timeout."""
        if self.actor is None:
            raise LinkError(f"chip {self.label} is not open")
        timeout = self.timeout_s if timeout_s is None else timeout_s
        return self._result(method, args, getattr(self.actor, method).remote(*args), timeout)

    def _result(self, method: str, args: tuple[Any, ...], ref: Any, timeout: float) -> Any:
        """The value of ``ref`` (``actor.method(*args)`` submitted), submitted again after an
        actor death (or with the weights reference the actor asked for); LinkError on a
        timeout."""
        ray = self._ray
        for attempt in range(1, CALL_ATTEMPTS + 1):
            if attempt > 1:
                if self.actor is None:
                    raise LinkError(f"chip {self.label} is not open")
                ref = getattr(self.actor, method).remote(*args)
            try:
                return ray.get(ref, timeout=timeout)
            except ray.exceptions.GetTimeoutError:
                ray.cancel(ref, force=False)
                self._restart()
                raise LinkError(
                    f"chip {self.label} did not answer {method} within {timeout:g} s; "
                    "its actor was restarted (the chip is re-opened on the next call)"
                ) from None
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause
                if isinstance(cause, WeightsNeeded) and method == "run" and len(args) == 4:
                    key = args[0]
                    log.info("chip %s: actor lacks %s; sending it", self.label, key)
                    args = (*args, [self._refs[key]])  # counts as an attempt
                    continue
                if isinstance(cause, LuminaError):
                    raise cause from None
                raise LinkError(f"chip {self.label}: {method} failed: {cause!r}") from None
            except ray.exceptions.RayActorError as exc:
                if attempt == CALL_ATTEMPTS:
                    raise LinkError(
                        f"chip {self.label}: its actor died {attempt} times during {method}: "
                        f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else exc!r}"
                    ) from exc
                log.warning("chip %s: actor died during %s (%s); retrying", self.label, method, exc)
                time.sleep(0.05 * attempt)
        raise LinkError(f"chip {self.label}: {method} failed")  # pragma: no cover - loop returns

    def _restart(self) -> None:
        try:
            self._ray.kill(self.actor, no_restart=False)
        except Exception as exc:  # already gone
            log.debug("restarting chip %s: %s", self.label, exc)


class PendingRun:
    """A run submitted to an actor: its arguments (to submit again) and its ObjectRef."""

    __slots__ = ("args", "ref")

    def __init__(self, args: tuple[Any, ...], ref: Any) -> None:
        self.args = args
        self.ref = ref


def check_resources(ray: Any, resources: Mapping[str, float]) -> None:
    """ConfigurationError if the cluster offers none of a resource an actor needs."""
    offered = ray.cluster_resources()
    for name, amount in resources.items():
        if offered.get(name, 0) < amount:
            raise ConfigurationError(
                f"no node of the Ray cluster offers resource {name!r} (needed {amount:g}); "
                f"start nodes with ray start --resources='{{\"{name}\": N}}' "
                "(docs/scale-out.md)"
            )
