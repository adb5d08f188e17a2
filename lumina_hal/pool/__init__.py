"""Device pools: many chips used like one device, in threads or on Ray (docs/scale-out.md).

with lumina_hal.open_pool(["fpga+sim://?seed=1", "fpga+sim://?seed=2"]) as pool:
    pool.load_weights(W)   # every chip programmed once (or W tiled over them if it is larger)
    Y = pool.matmul(X)     # the batch split over the chips, run concurrently
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lumina_hal.device import PhotonicDevice
from lumina_hal.errors import ConfigurationError
from lumina_hal.pool.handle import ChipHandle, LocalHandle, weights_key
from lumina_hal.pool.pool import DevicePool
from lumina_hal.pool.proxy import ChipProxy
from lumina_hal.pool.worker import ChipWorker

BACKENDS = ("local", "ray")
DeviceSource = PhotonicDevice | str | Callable[[], PhotonicDevice]


class RayPool(DevicePool):
    """A DevicePool whose chips live in Ray actors; ``actors`` are their handles."""

    @property
    def actors(self) -> list[Any]:
        """One Ray actor handle per chip (for fault tests and for placing work)."""
        return [chip.handle.actor for chip in self.chips]  # type: ignore[attr-defined]

    def actor_pids(self) -> list[int]:
        """Process id of each chip's actor now (a restarted actor has a new one)."""
        return [chip.handle.process_id() for chip in self.chips]  # type: ignore[attr-defined]


def open_pool(
    devices: Sequence[DeviceSource],
    backend: str = "local",
    *,
    timeout_s: float | None = None,
    resources: Mapping[str, float] | Sequence[Mapping[str, float]] | None = None,
    start_timeout_s: float = 60.0,
) -> DevicePool:
    """Open a pool of chips used like one device (docs/scale-out.md).

    ``devices``: URIs, or zero-argument callables returning a device (pickled to the actor
    with backend ``"ray"``), or device objects (``"local"`` only; left open on close if they
    were open). ``timeout_s``: longest a chip call may take before LinkError (``"ray"``
    default 30 s, then the actor restarts; ``"local"`` default None = no limit).
    ``resources``: Ray custom resources of every actor, or one mapping per device (default
    ``{"lumina_chip": 1}``). ``start_timeout_s``: longest an actor may take to open its chip.
    """
    if backend not in BACKENDS:
        raise ConfigurationError(f"backend must be one of {BACKENDS}, got {backend!r}")
    items: list[DeviceSource] = (
        list(devices) if not isinstance(devices, (str, PhotonicDevice)) else [devices]
    )
    if not items:
        raise ConfigurationError("open_pool needs at least one device")
    for item in items:
        if not (isinstance(item, (str, PhotonicDevice)) or callable(item)):
            raise ConfigurationError(
                f"devices must be URIs, device objects or factories, got {type(item).__name__}"
            )
    if timeout_s is not None and not timeout_s > 0:
        raise ConfigurationError(f"timeout_s must be positive, got {timeout_s!r}")
    handles: list[ChipHandle]
    if backend == "local":
        if resources is not None:
            raise ConfigurationError("resources are Ray placement; backend='local' takes none")
        handles = [LocalHandle(item, timeout_s) for item in items]
        pool = DevicePool(handles, backend)
    else:
        handles = _ray_handles(items, timeout_s, resources, start_timeout_s)
        pool = RayPool(handles, backend)
    return pool.open()  # type: ignore[return-value]


def _ray_handles(
    items: list[DeviceSource],
    timeout_s: float | None,
    resources: Mapping[str, float] | Sequence[Mapping[str, float]] | None,
    start_timeout_s: float,
) -> list[ChipHandle]:
    from lumina_hal.pool.ray_backend import DEFAULT_RESOURCES, RayHandle, import_ray

    per_device: list[Mapping[str, float]]
    if resources is None:
        per_device = [DEFAULT_RESOURCES] * len(items)
    elif isinstance(resources, Mapping):
        per_device = [resources] * len(items)
    else:
        per_device = list(resources)
        if len(per_device) != len(items):
            raise ConfigurationError(
                f"{len(per_device)} resource mappings for {len(items)} devices"
            )
    if any(isinstance(item, PhotonicDevice) for item in items):
        raise ConfigurationError(
            "backend='ray' opens each chip in its actor: pass URIs or factories, not device objects"
        )
    ray = import_ray()
    if not ray.is_initialized():  # a local Ray instance offering this pool's chips
        wanted: dict[str, float] = {}
        for res in per_device:
            for name, amount in res.items():
                wanted[name] = wanted.get(name, 0.0) + float(amount)
        ray.init(resources=wanted, include_dashboard=False)
    handles: list[ChipHandle] = [
        RayHandle(item, res, timeout_s or 30.0, start_timeout_s)  # type: ignore[arg-type]
        for item, res in zip(items, per_device, strict=True)
    ]
    return handles


__all__ = [
    "BACKENDS",
    "ChipProxy",
    "ChipWorker",
    "DevicePool",
    "RayPool",
    "open_pool",
    "weights_key",
]
