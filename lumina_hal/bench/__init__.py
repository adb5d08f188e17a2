"""The bench room: instrument roles, soft limits, bench files and safe shutdown.

Flow: bench file -> instruments (opened by URI through the plug-in table) -> roles' safety
checks -> the driver's VISA writes. Imports only the core of lumina_hal (docs/architecture.md).
"""

from __future__ import annotations

from lumina_hal.bench.bench_file import (
    BENCH_ENV,
    Bench,
    BenchConfig,
    load_bench_config,
    open_bench,
    parse_bench_config,
)
from lumina_hal.bench.roles import Instrument, Laser, PowerMeter, TemperatureController

__all__ = [
    "BENCH_ENV",
    "Bench",
    "BenchConfig",
    "Instrument",
    "Laser",
    "PowerMeter",
    "TemperatureController",
    "load_bench_config",
    "open_bench",
    "parse_bench_config",
]
