"""Read a run record (docs/records.md) back into numpy arrays and dicts: ``load_run``."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lumina_hal.errors import ConfigurationError
from lumina_hal.runs.record_format import FORMAT_NAME, FORMAT_VERSION, STATUS_COMPLETE, from_json

log = logging.getLogger(__name__)


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

    def telemetry_series(self, key: str) -> np.ndarray:
        """One telemetry value per call, e.g. ``"temperature_c"``; NaN where it was null."""
        values = [call.telemetry.get(key) for call in self.calls]
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise ConfigurationError(f"record file {str(path)!r} does not exist")
    if path.is_dir():
        raise ConfigurationError(f"record file {str(path)!r} is a directory, not a file")
    if not h5py.is_hdf5(path):
        raise ConfigurationError(f"{str(path)!r} is not an HDF5 file, so not a run record")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ConfigurationError(f"cannot read record file {str(path)!r}: {exc}") from None


def _check_format(path: Path, attrs: Any) -> int:
    if _str(attrs.get("format", "")) != FORMAT_NAME:
        raise ConfigurationError(
            f"{str(path)!r} is an HDF5 file but not a lumina-hal run record "
            f"(its 'format' attribute is not {FORMAT_NAME!r})"
        )
    version = int(attrs.get("format_version", -1))
    if not 1 <= version <= FORMAT_VERSION:
        raise ConfigurationError(
            f"{str(path)!r} has run-record format version {version}; this lumina-hal reads "
            f"versions 1 to {FORMAT_VERSION} (upgrade lumina-hal to read it)"
        )
    return version


def _written(group: h5py.Group, last_attr: str) -> list[str]:
    """Member names in index order, without one cut off mid-write (its last attribute unset)."""
    names = sorted(group, key=int)
    done = [name for name in names if last_attr in group[name].attrs]
    if len(done) < len(names):
        log.warning("%s: skipping %d entries cut off mid-write", group.name, len(names) - len(done))
    return done


def _weights(group: h5py.Group) -> list[WeightsRecord]:
    out = []
    for name in _written(group, "duration_s"):
        ds = group[name]
        a = ds.attrs
        out.append(
            WeightsRecord(
                index=int(name),
                matrix=ds[()],
                weights_id=_str(a["weights_id"]),
                sha256=_str(a["sha256"]),
                start_s=float(a["start_s"]),
                end_s=float(a["end_s"]),
                duration_s=float(a["duration_s"]),
            )
        )
    return out


def _calls(group: h5py.Group) -> list[CallRecord]:
    out = []
    for name in _written(group, "telemetry_json"):
        g = group[name]
        a = g.attrs
        out.append(
            CallRecord(
                index=int(name),
                label=_str(a["label"]),
                inputs=g["inputs"][()],
                outputs=g["outputs"][()],
                weights_index=int(a["weights_index"]),
                weights_id=_str(a["weights_id"]),
                start_s=float(a["start_s"]),
                end_s=float(a["end_s"]),
                duration_s=float(a["duration_s"]),
                telemetry=from_json(_str(a["telemetry_json"])),
            )
        )
    return out


def _snapshots(group: h5py.Group) -> list[BenchSnapshot]:
    return [
        BenchSnapshot(
            label=_str(group[name].attrs["label"]),
            at_s=float(group[name].attrs["at_s"]),
            after_call=int(group[name].attrs["after_call"]),
            data=from_json(_str(group[name].attrs["snapshot_json"])),
        )
        for name in _written(group, "snapshot_json")
    ]


def _plain_attrs(group: h5py.Group | None) -> dict[str, Any]:
    """A group's attributes and scalar string datasets; ``*_json`` attributes decoded."""
    if group is None:
        return {}
    out: dict[str, Any] = {}
    for key, value in group.attrs.items():
        if key.endswith("_json"):
            out[key[: -len("_json")]] = from_json(_str(value))
        elif isinstance(value, (str, bytes)):
            out[key] = _str(value)
        else:
            out[key] = value.item() if isinstance(value, np.generic) else value
    for key, ds in group.items():
        out[key] = _str(ds[()])
    return out


def load_run(path: str | os.PathLike[str]) -> RunRecord:
    """Read a run record written by :func:`lumina_hal.record_run` (any status)."""
    target = Path(path)
    with _open(target) as h5:
        attrs = h5.attrs
        version = _check_format(target, attrs)
        device = h5["device"].attrs
        results = h5["results"]
        seed = device.get("seed")
        preset = device.get("preset")
        return RunRecord(
            path=target,
            format_version=version,
            status=_str(attrs["status"]),
            error=_str(attrs["error"]),
            started_at_s=float(attrs["started_at_s"]),
            ended_at_s=float(attrs["ended_at_s"]),
            duration_s=float(attrs["duration_s"]),
            meta=from_json(_str(attrs["meta_json"])),
            environment={k: _str(v) for k, v in h5["environment"].attrs.items()},
            device=from_json(_str(device["info_json"])),
            uri=_str(device["uri"]),
            scheme=_str(device["scheme"]),
            uri_params=from_json(_str(device["uri_params_json"])),
            params=from_json(_str(device["params_json"])),
            seed=None if seed is None else int(seed),
            preset=None if preset is None else _str(preset),
            bench_snapshots=_snapshots(h5["bench/snapshots"]),
            weights=_weights(h5["weights"]),
            calls=_calls(h5["calls"]),
            results={t: {c: results[t][c][()] for c in results[t]} for t in results},
            result_units={
                t: {c: _str(results[t][c].attrs["unit"]) for c in results[t]} for t in results
            },
            script=_plain_attrs(h5.get("script")),
            plan=_plain_attrs(h5.get("plan")),
            sweep=_plain_attrs(h5.get("sweep")),
        )
