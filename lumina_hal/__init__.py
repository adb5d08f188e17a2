"""Lumina HAL: one API for photonic matrix-multiplication chips and their digital twin.

import lumina_hal
with lumina_hal.open_device("mock://?rows=64&cols=64&preset=typical&seed=1") as chip:
    chip.load_weights(W)
    y = chip.matmul(x)

Record a run with ``record_run(path, chip)`` and read it back with ``load_run(path)``
(docs/records.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lumina_hal._version import __version__
from lumina_hal.bench import Bench, open_bench
from lumina_hal.bench.instruments import open_instrument
from lumina_hal.bench.roles import Instrument, Laser, PowerMeter, TemperatureController
from lumina_hal.device import Capability, DeviceInfo, PhotonicDevice, Telemetry
from lumina_hal.errors import (
    ConfigurationError,
    DeviceClosedError,
    DeviceError,
    InputError,
    InstrumentError,
    LinkError,
    LuminaError,
    OverRangeError,
    RecordDamagedError,
    RecordError,
    SafetyLimitError,
    UnsupportedOperationError,
)
from lumina_hal.params import Param
from lumina_hal.registry import (
    available_schemes,
    build_device,
    default_uri,
    open_device,
    register_driver,
    unregister_driver,
)

__all__ = [
    "Bench",
    "Capability",
    "ConfigurationError",
    "DeviceClosedError",
    "DeviceError",
    "DeviceInfo",
    "InputError",
    "Instrument",
    "InstrumentError",
    "Laser",
    "LinkError",
    "LuminaError",
    "OverRangeError",
    "Param",
    "PhotonicDevice",
    "PowerMeter",
    "RecordDamagedError",
    "RecordError",
    "SafetyLimitError",
    "Telemetry",
    "TemperatureController",
    "UnsupportedOperationError",
    "__version__",
    "available_schemes",
    "build_device",
    "default_uri",
    "load_run",
    "open_bench",
    "open_device",
    "open_instrument",
    "open_pool",
    "record_run",
    "register_driver",
    "unregister_driver",
]

if TYPE_CHECKING:  # typed for checkers; imported lazily at run time (see __getattr__)
    from lumina_hal.pool import open_pool


def __getattr__(name: str) -> object:
    # Run records need h5py; import it only when they are used (keeps `import lumina_hal` fast).
    if name == "record_run":
        from lumina_hal.runs.records import record_run

        return record_run
    if name == "open_pool":  # lumina_hal.pool (and Ray, for backend="ray") only when used
        from lumina_hal.pool import open_pool

        return open_pool
    if name == "load_run":
        from lumina_hal.runs.record_load import load_run

        return load_run
    raise AttributeError(f"module 'lumina_hal' has no attribute {name!r}")
