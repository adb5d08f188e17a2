"""Record a chip run into one HDF5 file: ``record_run`` and ``RecordedRun``.

Every weight load and matmul made through the run object is written (arrays, checksum,
telemetry, timings) and flushed before the call returns, so a run that dies keeps what it
did. The file layout is specified in docs/records.md; ``records_load.load_run`` reads it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import platform
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import h5py
import numpy as np

from lumina_hal._version import __version__
from lumina_hal.device import PhotonicDevice
from lumina_hal.errors import ConfigurationError, InputError
from lumina_hal.params import resolve_params
from lumina_hal.progress import progress_bar
from lumina_hal.runs.record_format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    STATUS_COMPLETE,
    STATUS_INCOMPLETE,
    STATUS_RUNNING,
    check_output_path,
    index_name,
    to_json,
)
from lumina_hal.uri import parse_uri

log = logging.getLogger(__name__)

T = TypeVar("T")

_GZIP_LEVEL = 4
_ROW_CHUNK = 256  # rows per chunk of a /results column


class Bench(Protocol):
    """What a run needs from an instrument bench: a JSON-serializable dict of its settings."""

    def snapshot(self) -> dict[str, Any]: ...


def environment() -> dict[str, str]:
    """Versions and host that produced a record."""
    return {
        "lumina_hal_version": __version__,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "h5py_version": h5py.version.version,
        "hdf5_version": h5py.version.hdf5_version,
        "host": socket.gethostname(),
        "platform": platform.platform(),
    }


def describe_uri(device: PhotonicDevice) -> dict[str, Any]:
    """The device's URI, scheme, raw query and every declared parameter (typed or default)."""
    if not device.uri:
        return {"uri": "", "scheme": "", "uri_params": {}, "params": {}}
    parsed = parse_uri(device.uri)
    declared = type(device).uri_params
    try:
        typed = resolve_params(declared, parsed.query, context=parsed.scheme, source="URI")
    except ConfigurationError as exc:  # a device built by hand with a foreign URI
        log.warning("URI parameters of %s not recorded as typed: %s", device.uri, exc)
        typed = {}
    params = {p.name: typed.get(p.name, p.default) for p in declared}
    return {
        "uri": parsed.uri,
        "scheme": parsed.scheme,
        "uri_params": parsed.query,
        "params": params,
    }


def _bench_json(bench: Bench) -> str:
    snapshot = getattr(bench, "snapshot", None)
    if not callable(snapshot):
        raise ConfigurationError(
            f"bench must have a snapshot() -> dict method; {type(bench).__name__} has none"
        )
    data = snapshot()
    if not isinstance(data, dict):
        raise ConfigurationError(f"bench.snapshot() must return a dict, got {type(data).__name__}")
    return to_json(data, "bench.snapshot()")


def _write_array(group: h5py.Group, name: str, data: np.ndarray) -> None:
    if data.size and data.ndim:
        group.create_dataset(
            name, data=data, compression="gzip", compression_opts=_GZIP_LEVEL, shuffle=True
        )
    else:  # HDF5 cannot chunk an empty or scalar dataset
        group.create_dataset(name, data=data)


class RecordedRun:
    """A device session being written to a record file; use it through :func:`record_run`.

    ``device`` and ``bench`` stay available to scripts; the device is not closed by the run.
    """

    def __init__(
        self,
        h5: h5py.File,
        device: PhotonicDevice,
        bench: Bench | None,
        show_progress: bool,
    ) -> None:
        self._h5 = h5
        self.path = Path(h5.filename)
        self.device = device
        self.bench = bench
        self.show_progress = show_progress
        self._lock = threading.Lock()
        self._calls = h5.create_group("calls")
        self._weights = h5.create_group("weights")
        self._results = h5.create_group("results")
        self._snapshots = h5.create_group("bench").create_group("snapshots")
        self._weights_index = -1
        self._t0 = time.perf_counter()
        self._closed = False

    # ---- creation and end --------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        device: PhotonicDevice,
        *,
        bench: Bench | None = None,
        meta: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        progress: bool = False,
    ) -> RecordedRun:
        """Check everything, then create the file with status ``running``."""
        meta_json = to_json(dict(meta or {}), "meta")
        bench_json = _bench_json(bench) if bench is not None else None
        info_json = to_json(device.info.to_dict(), "device info")
        uri = describe_uri(device)
        target = check_output_path(path, overwrite=overwrite, what="record file")
        try:
            h5 = h5py.File(target, "w" if overwrite else "w-")
        except FileExistsError:
            raise ConfigurationError(
                f"record file {str(target)!r} already exists; choose another name or allow "
                "overwriting (overwrite=True, CLI --overwrite)"
            ) from None
        except OSError as exc:
            raise ConfigurationError(f"cannot create record file {str(target)!r}: {exc}") from None
        try:
            h5.attrs.update(
                {
                    "format": FORMAT_NAME,
                    "format_version": FORMAT_VERSION,
                    "status": STATUS_RUNNING,
                    "error": "",
                    "started_at_s": time.time(),
                    "ended_at_s": math.nan,
                    "duration_s": math.nan,
                    "meta_json": meta_json,
                }
            )
            h5.create_group("environment").attrs.update(environment())
            dev = h5.create_group("device")
            dev.attrs.update(
                {
                    "info_json": info_json,
                    "uri": uri["uri"],
                    "scheme": uri["scheme"],
                    "uri_params_json": to_json(uri["uri_params"], "URI parameters"),
                    "params_json": to_json(uri["params"], "device parameters"),
                }
            )
            if isinstance(uri["params"].get("seed"), int):
                dev.attrs["seed"] = uri["params"]["seed"]
            if isinstance(uri["params"].get("preset"), str):
                dev.attrs["preset"] = uri["params"]["preset"]
            run = cls(h5, device, bench, progress)
            run._snapshots.parent.attrs["present"] = bench is not None
            if bench_json is not None:
                run._write_snapshot("start", bench_json)
            h5.flush()
        except BaseException:
            h5.close()
            raise
        log.info("recording run to %s", target)
        return run

    def close(self, error: BaseException | None = None) -> None:
        """Mark the run complete (or incomplete with ``error``), take the end snapshot, close."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self.bench is not None:
                    try:
                        self._write_snapshot("end", _bench_json(self.bench))
                    except Exception as exc:  # never hide the run's own outcome
                        log.warning("end bench snapshot failed: %s", exc)
                attrs = self._h5.attrs
                attrs["status"] = STATUS_COMPLETE if error is None else STATUS_INCOMPLETE
                attrs["error"] = "" if error is None else f"{type(error).__name__}: {error}"
                attrs["ended_at_s"] = time.time()
                attrs["duration_s"] = time.perf_counter() - self._t0
            finally:
                self._h5.close()
        log.info("record %s closed (%s)", self.path, "complete" if error is None else error)

    # ---- recorded device operations ----------------------------------------------------
    @property
    def n_calls(self) -> int:
        return len(self._calls)

    def load_weights(self, weights: Any) -> str:
        """``device.load_weights(weights)``; stores the matrix, its id, sha256 and timing."""
        start_s, t0 = time.time(), time.perf_counter()
        weights_id = self.device.load_weights(weights)
        duration_s = time.perf_counter() - t0
        end_s = time.time()
        matrix = np.ascontiguousarray(weights, dtype="<f8")
        with self._lock:
            self._require_open()
            self._weights_index += 1
            name = index_name(self._weights_index)
            _write_array(self._weights, name, matrix)
            self._weights[name].attrs.update(
                {
                    "weights_id": weights_id,
                    "sha256": hashlib.sha256(matrix.tobytes()).hexdigest(),
                    "start_s": start_s,
                    "end_s": end_s,
                    "duration_s": duration_s,
                }
            )
            self._h5.flush()
        return weights_id

    def matmul(self, x: Any, label: str = "") -> np.ndarray:
        """``device.matmul(x)``; stores inputs, outputs, telemetry after the call and timing."""
        start_s, t0 = time.time(), time.perf_counter()
        y = self.device.matmul(x)
        duration_s = time.perf_counter() - t0
        end_s = time.time()
        telemetry_json = to_json(self.device.telemetry().to_dict(), "telemetry")
        inputs = np.asarray(x, dtype=np.float32)
        with self._lock:
            self._require_open()
            group = self._calls.create_group(index_name(len(self._calls)))
            _write_array(group, "inputs", inputs)
            _write_array(group, "outputs", y)
            group.attrs.update(
                {
                    "label": str(label),
                    "weights_index": self._weights_index,
                    "weights_id": self.device.weights_id or "",
                    "start_s": start_s,
                    "end_s": end_s,
                    "duration_s": duration_s,
                    "telemetry_json": telemetry_json,
                }
            )
            self._h5.flush()
        return y

    # ---- other records -----------------------------------------------------------------
    def snapshot_bench(self, label: str) -> None:
        """Store ``bench.snapshot()`` now (e.g. after changing a setpoint); no-op without one."""
        if self.bench is None:
            return
        data = _bench_json(self.bench)
        with self._lock:
            self._require_open()
            self._write_snapshot(label, data)
            self._h5.flush()

    def log_row(self, table: str, units: Mapping[str, str] | None = None, **values: Any) -> None:
        """Append one row of scalars to ``/results/<table>``; every row has the same columns."""
        if not table or "/" in table:
            raise InputError(f"table name must be non-empty without '/', got {table!r}")
        if not values:
            raise InputError(f"log_row({table!r}) needs at least one column value")
        row = {name: _scalar(name, value) for name, value in values.items()}
        with self._lock:
            self._require_open()
            if table not in self._results:
                self._create_table(table, row, units or {})
            group = self._results[table]
            _check_columns(table, set(group), set(row))
            for name, value in row.items():
                column = group[name]
                if column.dtype.kind == "i" and not float(value).is_integer():
                    raise InputError(f"column {table}.{name} holds integers, got {value!r}")
                column.resize((column.shape[0] + 1,))
                column[-1] = value
            self._h5.flush()

    def attach(
        self, name: str, attrs: Mapping[str, Any], texts: Mapping[str, str] | None = None
    ) -> None:
        """Set attributes (and scalar string datasets ``texts``) on group ``/<name>``."""
        with self._lock:
            self._require_open()
            group = self._h5.require_group(name)
            group.attrs.update(dict(attrs))
            for key, text in (texts or {}).items():
                if key in group:
                    del group[key]
                group.create_dataset(key, data=text, dtype=h5py.string_dtype())
            self._h5.flush()

    def progress(
        self, iterable: Iterable[T], desc: str | None = None, total: int | None = None
    ) -> Iterable[T]:
        """``iterable`` with a progress bar when this run shows progress (CLI: a TTY)."""
        return progress_bar(iterable, enabled=self.show_progress, desc=desc, total=total)

    # ---- internals ---------------------------------------------------------------------
    def _require_open(self) -> None:
        if self._closed:
            raise ConfigurationError(f"the record {str(self.path)!r} is closed")

    def _write_snapshot(self, label: str, snapshot_json: str) -> None:
        group = self._snapshots.create_group(index_name(len(self._snapshots)))
        group.attrs.update(
            {
                "label": str(label),
                "at_s": time.time(),
                "after_call": len(self._calls),
                "snapshot_json": snapshot_json,
            }
        )

    def _create_table(
        self, table: str, row: Mapping[str, float | int], units: Mapping[str, str]
    ) -> None:
        unknown = set(units) - set(row)
        if unknown:
            raise InputError(f"units given for columns not in table {table!r}: {sorted(unknown)}")
        group = self._results.create_group(table)
        for name, value in row.items():
            dtype = np.int64 if isinstance(value, int) else np.float64
            column = group.create_dataset(
                name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(_ROW_CHUNK,)
            )
            column.attrs["unit"] = str(units.get(name, ""))


def _scalar(name: str, value: Any) -> float | int:
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    raise InputError(f"column {name!r}: expected a real number, got {type(value).__name__}")


def _check_columns(table: str, have: set[str], got: set[str]) -> None:
    if have != got:
        missing, extra = sorted(have - got), sorted(got - have)
        raise InputError(
            f"table {table!r} has columns {sorted(have)}; this row lacks {missing} and adds {extra}"
        )


@contextmanager
def record_run(
    path: str | os.PathLike[str],
    device: PhotonicDevice,
    *,
    bench: Bench | None = None,
    meta: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Iterator[RecordedRun]:
    """Record what is done through the yielded run into ``path`` (HDF5, docs/records.md).

    ``device`` must be open and stays open. ``bench`` is any object with ``snapshot() ->
    dict``. Leaving the block with an exception marks the file ``incomplete`` (with the
    error) and re-raises; the calls recorded so far stay in it.
    """
    run = RecordedRun.create(
        path, device, bench=bench, meta=meta, overwrite=overwrite, progress=progress
    )
    try:
        yield run
    except BaseException as exc:
        run.close(error=exc)
        raise
    run.close()


__all__ = ["Bench", "RecordedRun", "record_run"]
