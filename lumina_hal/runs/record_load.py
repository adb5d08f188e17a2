"""Read a run record (docs/records.md) back into numpy arrays and dicts: ``load_run``.

Version 2 (append-only frames) is read here; version 1 (HDF5) by ``record_load_v1``. A
damaged record raises ``RecordDamagedError`` naming the frame, its offset and the fault, or
with ``recover=True`` yields every intact frame and says in ``damage`` what was dropped.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lumina_hal.errors import ConfigurationError, RecordDamagedError, RecordError
from lumina_hal.runs.record_format import (
    FILE_HEADER_SIZE,
    FORMAT_NAME,
    FORMAT_VERSION,
    HDF5_MAGIC,
    MAGIC,
    STATUS_COMPLETE,
    STATUS_INCOMPLETE,
    STATUS_RUNNING,
    from_json,
)
from lumina_hal.runs.record_frames import Frame, FrameFormatError, read_file_header, scan_frames
from lumina_hal.runs.record_types import (
    BenchSnapshot,
    CallRecord,
    RunRecord,
    WeightsRecord,
)

log = logging.getLogger(__name__)

_TYPES: dict[type, tuple[type, ...]] = {float: (int, float), int: (int,), str: (str,),
                                        dict: (dict,), list: (list,), bool: (bool,)}  # fmt: skip


def _get(fields: dict[str, Any], key: str, kind: type) -> Any:
    value = fields.get(key)
    bad_bool = isinstance(value, bool) and kind is not bool
    if bad_bool or not isinstance(value, _TYPES[kind]):
        raise FrameFormatError(f"field {key!r} is {value!r}, expected {kind.__name__}")
    return float(value) if kind is float and isinstance(value, (int, float)) else value


def _optional(fields: dict[str, Any], key: str, kind: type) -> Any:
    return None if fields.get(key) is None else _get(fields, key, kind)


def _array(frame: Frame, name: str, dtype: str) -> np.ndarray:
    array = frame.arrays.get(name)
    if array is None or array.dtype != np.dtype(dtype):
        raise FrameFormatError(f"array {name!r} ({dtype}) missing")
    return array


@dataclass
class _Builder:
    """Accumulates frames into the parts of a RunRecord."""

    start: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    snapshots: list[BenchSnapshot] = field(default_factory=list)
    weights: list[WeightsRecord] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    tables: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    rows: dict[str, list[list[float | int]]] = field(default_factory=dict)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, frame: Frame) -> None:
        f, kind = frame.fields, frame.fields["kind"]
        if (kind == "start") != (frame.seq == 0):
            raise FrameFormatError("'start' must be frame 0, and only frame 0")
        if self.end is not None:
            raise FrameFormatError(f"a {kind!r} frame after the 'end' frame")
        handler = getattr(self, f"_{kind}", None)
        if handler is None:
            log.info("frame %d: unknown kind %r ignored", frame.seq, kind)
            return
        handler(frame, f)

    def _start(self, frame: Frame, f: dict[str, Any]) -> None:
        if _get(f, "format", str) != FORMAT_NAME:
            raise FrameFormatError(f"'format' is not {FORMAT_NAME!r}")
        _get(f, "started_at_s", float)
        _get(f, "meta", dict)
        env = _get(f, "environment", dict)
        if not all(isinstance(v, str) for v in env.values()):
            raise FrameFormatError("'environment' values must be strings")
        dev = _get(f, "device", dict)
        for key, kind in (("info", dict), ("uri", str), ("scheme", str), ("uri_params", dict),
                          ("params", dict)):  # fmt: skip
            _get(dev, key, kind)
        _optional(dev, "seed", int)
        _optional(dev, "preset", str)
        _optional(dev, "snapshot", dict)
        self.start = f

    def _end(self, frame: Frame, f: dict[str, Any]) -> None:
        if _get(f, "status", str) not in (STATUS_COMPLETE, STATUS_INCOMPLETE):
            raise FrameFormatError(f"'status' {f['status']!r} is not complete/incomplete")
        for key, kind in (("error", str), ("ended_at_s", float), ("duration_s", float)):
            _get(f, key, kind)
        self.end = f

    def _snapshot(self, frame: Frame, f: dict[str, Any]) -> None:
        self.snapshots.append(
            BenchSnapshot(
                label=_get(f, "label", str),
                at_s=_get(f, "at_s", float),
                after_call=_get(f, "after_call", int),
                data=_get(f, "data", dict),
            )
        )

    def _weights(self, frame: Frame, f: dict[str, Any]) -> None:
        self.weights.append(
            WeightsRecord(
                index=_get(f, "index", int),
                matrix=_array(frame, "matrix", "<f8"),
                weights_id=_get(f, "weights_id", str),
                sha256=_get(f, "sha256", str),
                start_s=_get(f, "start_s", float),
                end_s=_get(f, "end_s", float),
                duration_s=_get(f, "duration_s", float),
            )
        )

    def _call(self, frame: Frame, f: dict[str, Any]) -> None:
        self.calls.append(
            CallRecord(
                index=_get(f, "index", int),
                label=_get(f, "label", str),
                inputs=_array(frame, "inputs", "<f4"),
                outputs=_array(frame, "outputs", "<f4"),
                weights_index=_get(f, "weights_index", int),
                weights_id=_get(f, "weights_id", str),
                start_s=_get(f, "start_s", float),
                end_s=_get(f, "end_s", float),
                duration_s=_get(f, "duration_s", float),
                telemetry=_get(f, "telemetry", dict),
            )
        )

    def _table(self, frame: Frame, f: dict[str, Any]) -> None:
        name = _get(f, "table", str)
        columns = []
        for col in _get(f, "columns", list):
            if not isinstance(col, dict) or col.get("dtype") not in ("int64", "float64"):
                raise FrameFormatError(f"table {name!r}: bad column {col!r}")
            columns.append((_get(col, "name", str), col["dtype"], _get(col, "unit", str)))
        if name in self.tables or not columns:
            raise FrameFormatError(f"table {name!r} declared twice or without columns")
        self.tables[name] = columns
        self.rows[name] = []

    def _row(self, frame: Frame, f: dict[str, Any]) -> None:
        name = _get(f, "table", str)
        values = _get(f, "values", list)
        columns = self.tables.get(name)
        if columns is None:
            raise FrameFormatError(f"row of table {name!r}, which was not declared (or lost)")
        if len(values) != len(columns):
            raise FrameFormatError(f"row of {name!r} has {len(values)} values for {len(columns)}")
        for value, (col, dtype, _unit) in zip(values, columns, strict=True):
            _get({col: value}, col, int if dtype == "int64" else float)
        self.rows[name].append(values)

    def _attach(self, frame: Frame, f: dict[str, Any]) -> None:
        section = self.sections.setdefault(_get(f, "name", str), {})
        attrs, texts = _get(f, "attrs", dict), _get(f, "texts", dict)
        if not all(isinstance(v, str) for v in texts.values()):
            raise FrameFormatError("'texts' values must be strings")
        for key, value in attrs.items():
            if key.endswith("_json") and isinstance(value, str):
                try:
                    section[key[: -len("_json")]] = from_json(value)
                except ValueError:
                    raise FrameFormatError(f"attribute {key!r} is not JSON text") from None
            else:
                section[key] = value
        section.update(texts)

    def results(self) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, str]]]:
        results: dict[str, dict[str, np.ndarray]] = {}
        units: dict[str, dict[str, str]] = {}
        for name, columns in self.tables.items():
            rows = self.rows[name]
            results[name] = {
                col: np.array([row[i] for row in rows], dtype=np.dtype(dtype))
                for i, (col, dtype, _unit) in enumerate(columns)
            }
            units[name] = {col: unit for col, _dtype, unit in columns}
        return results, units


def _damaged(target: Path, what: str) -> RecordDamagedError:
    return RecordDamagedError(
        f"record {str(target)!r} is damaged: {what}; load_run(..., recover=True) returns the "
        "intact calls"
    )


def _read_bytes(target: Path) -> bytes:
    if not target.exists():
        raise ConfigurationError(f"record file {str(target)!r} does not exist")
    if target.is_dir():
        raise ConfigurationError(f"record file {str(target)!r} is a directory, not a file")
    try:
        return target.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read record file {str(target)!r}: {exc}") from None


def _check_header(target: Path, data: bytes) -> int:
    if not data:
        raise _damaged(target, "the file is empty (its writer was stopped before writing)")
    if len(data) < FILE_HEADER_SIZE and MAGIC.startswith(data[: len(MAGIC)]):
        raise _damaged(target, f"the file ends inside its {FILE_HEADER_SIZE}-byte header")
    if len(data) < FILE_HEADER_SIZE or data[: len(MAGIC)] != MAGIC:
        raise RecordError(
            f"{str(target)!r} is not a lumina-hal run record (it starts with neither the "
            "record magic 'LHRUN' nor, for version-1 records, the HDF5 signature)"
        )
    _magic, version, header_ok = read_file_header(data)
    if not header_ok:
        raise _damaged(target, "the file header checksum does not match")
    if version != FORMAT_VERSION:
        raise RecordError(
            f"{str(target)!r} has run-record format version {version}; this lumina-hal reads "
            f"versions 1 to {FORMAT_VERSION} (upgrade lumina-hal to read it)"
        )
    return version


def load_run(path: str | os.PathLike[str], *, recover: bool = False) -> RunRecord:
    """Read a run record written by :func:`lumina_hal.record_run` (any status).

    A damaged record raises :class:`~lumina_hal.errors.RecordDamagedError`; with
    ``recover=True`` every intact frame is returned and ``damage`` says what was dropped.
    A torn tail (a writer killed mid-frame) is never an error.
    """
    target = Path(path)
    data = _read_bytes(target)
    if data.startswith(HDF5_MAGIC):
        from lumina_hal.runs.record_load_v1 import load_v1

        return load_v1(target)
    version = _check_header(target, data)
    scan = scan_frames(data, recover=recover)
    if scan.damaged and not recover:
        raise _damaged(target, scan.damage[-1])
    build = _Builder()
    damage = list(scan.damage)
    for frame in scan.frames:
        try:
            build.add(frame)
        except FrameFormatError as exc:
            note = f"frame {frame.seq} at offset {frame.offset} ({frame.fields['kind']}): {exc}"
            if not recover or build.start is None:
                raise _damaged(target, note) from None
            damage.append(note + "; dropped")
    if build.start is None:
        raise _damaged(target, "its start frame (device, environment, meta) is not intact")
    for note in damage:
        log.warning("record %s: %s", target, note)
    return _record(target, version, build, tuple(damage))


def _record(target: Path, version: int, build: _Builder, damage: tuple[str, ...]) -> RunRecord:
    start, end = build.start or {}, build.end
    dev = start["device"]
    results, units = build.results()
    return RunRecord(
        path=target,
        format_version=version,
        status=STATUS_RUNNING if end is None else end["status"],
        error="" if end is None else end["error"],
        started_at_s=float(start["started_at_s"]),
        ended_at_s=np.nan if end is None else float(end["ended_at_s"]),
        duration_s=np.nan if end is None else float(end["duration_s"]),
        meta=start["meta"],
        environment=start["environment"],
        device=dev["info"],
        uri=dev["uri"],
        scheme=dev["scheme"],
        uri_params=dev["uri_params"],
        params=dev["params"],
        seed=dev.get("seed"),
        preset=dev.get("preset"),
        bench_snapshots=build.snapshots,
        weights=build.weights,
        calls=build.calls,
        results=results,
        result_units=units,
        script=build.sections.get("script", {}),
        plan=build.sections.get("plan", {}),
        sweep=build.sections.get("sweep", {}),
        device_snapshot=dev.get("snapshot"),
        damage=damage,
    )


__all__ = ["BenchSnapshot", "CallRecord", "RunRecord", "WeightsRecord", "load_run"]
