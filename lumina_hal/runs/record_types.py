"""What a loaded run record holds, in memory (docs/records.md §5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lumina_hal.errors import InputError
from lumina_hal.runs.record_format import STATUS_COMPLETE
from lumina_hal.tables import Table


@dataclass(frozen=True)
class WeightsRecord:
    """One ``load_weights``: the matrix passed, the device's checksum id, timing (s)."""

    index: int
    matrix: np.ndarray
    weights_id: str
    sha256: str
    start_s: float
    end_s: float
    duration_s: float


@dataclass(frozen=True)
class CallRecord:
    """One ``matmul``: inputs as the chip received them, outputs, telemetry, timing (s)."""

    index: int
    label: str
    inputs: np.ndarray
    outputs: np.ndarray
    weights_index: int
    weights_id: str
    start_s: float
    end_s: float
    duration_s: float
    telemetry: dict[str, Any]


@dataclass(frozen=True)
class BenchSnapshot:
    """``bench.snapshot()`` taken at ``at_s`` (Unix s) after ``after_call`` calls."""

    label: str
    at_s: float
    after_call: int
    data: dict[str, Any]


@dataclass(frozen=True)
class RunRecord:
    """Everything a record file holds, in memory."""

    path: Path
    format_version: int
    status: str
    error: str
    started_at_s: float
    ended_at_s: float
    duration_s: float
    meta: dict[str, Any]
    environment: dict[str, str]
    device: dict[str, Any]
    uri: str
    scheme: str
    uri_params: dict[str, str]
    params: dict[str, Any]
    seed: int | None
    preset: str | None
    bench_snapshots: list[BenchSnapshot]
    weights: list[WeightsRecord]
    calls: list[CallRecord]
    results: dict[str, dict[str, np.ndarray]]
    result_units: dict[str, dict[str, str]]
    script: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)
    device_snapshot: dict[str, Any] | None = None
    damage: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return self.status == STATUS_COMPLETE

    @property
    def bench(self) -> dict[str, Any] | None:
        """The bench settings at the start of the run, None if the run had no bench."""
        for snap in self.bench_snapshots:
            if snap.label == "start":
                return snap.data
        return None

    def table(self, name: str) -> Table:
        """Results table ``name`` with its units (``to_xarray()``, ``to_pandas()``, ``plot()``)."""
        if name not in self.results:
            tables = ", ".join(self.results) or "none"
            raise InputError(f"{self.path}: no results table {name!r}; tables: {tables}")
        return Table(dict(self.results[name]), dict(self.result_units.get(name, {})), name)

    def telemetry_series(self, key: str) -> np.ndarray:
        """One telemetry value per call, e.g. ``"temperature_c"``; NaN where it was null."""
        values = [call.telemetry.get(key) for call in self.calls]
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
