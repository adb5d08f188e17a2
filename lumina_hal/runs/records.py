"""Record a chip run into one append-only file: ``record_run`` and ``RecordedRun``.

Every weight load and matmul made through the run object is written as one checksummed
frame (arrays, checksum id, telemetry, timings) before the call returns, so a run that dies
keeps what it did and a torn write can only damage its own frame. The layout is specified
in docs/records.md; ``record_load.load_run`` reads it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import numpy as np

from lumina_hal._version import __version__
from lumina_hal.device import PhotonicDevice
from lumina_hal.errors import ConfigurationError, InputError
from lumina_hal.params import resolve_params
from lumina_hal.progress import progress_bar
from lumina_hal.runs.interrupts import InterruptGuard
from lumina_hal.runs.record_format import (
    FORMAT_NAME,
    STATUS_COMPLETE,
    STATUS_INCOMPLETE,
    check_output_path,
    encode_frame,
    file_header,
    json_value,
)
from lumina_hal.runs.record_writer import FrameWriter
from lumina_hal.uri import parse_uri

log = logging.getLogger(__name__)

T = TypeVar("T")

Frame = tuple[dict[str, Any], dict[str, np.ndarray]]


class Bench(Protocol):
    """What a run needs from an instrument bench: a JSON-serializable dict of its settings."""

    def snapshot(self) -> dict[str, Any]: ...


def environment() -> dict[str, str]:
    """Versions and host that produced a record."""
    return {
        "lumina_hal_version": __version__,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "host": socket.gethostname(),
        "platform": platform.platform(),
    }


def describe_uri(
    device: PhotonicDevice, snapshot: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The device's URI, scheme, raw query and every declared parameter: typed from the URI,
    else the value in force from the device snapshot's chip (physics a preset supplied, the
    seed, serial, kernel...), else the driver default."""
    if not device.uri:
        return {"uri": "", "scheme": "", "uri_params": {}, "params": {}}
    parsed = parse_uri(device.uri)
    declared = type(device).uri_params
    try:
        typed = resolve_params(declared, parsed.query, context=parsed.scheme, source="URI")
    except ConfigurationError as exc:  # a device built by hand with a foreign URI
        log.warning("URI parameters of %s not recorded as typed: %s", device.uri, exc)
        typed = {}
    chip = (snapshot or {}).get("chip") or {}
    in_force = {**chip, **(chip.get("physics") or {})}
    params = {p.name: typed.get(p.name, in_force.get(p.name, p.default)) for p in declared}
    return {
        "uri": parsed.uri,
        "scheme": parsed.scheme,
        "uri_params": parsed.query,
        "params": params,
    }


def device_metadata(device: PhotonicDevice) -> dict[str, Any]:
    """The ``device`` object of the ``start`` frame (docs/records.md §2), JSON-checked.

    This is the one place where what is known about the device goes into a record: its
    info, URI and parameters, and its own ``snapshot()`` (physics in force, settings) when
    the device offers one.
    """
    take_snapshot = getattr(device, "snapshot", None)
    snapshot = take_snapshot() if callable(take_snapshot) else None
    uri = describe_uri(device, snapshot if isinstance(snapshot, dict) else None)
    params = uri["params"]
    seed, preset = params.get("seed"), params.get("preset")
    data = {
        "info": device.info.to_dict(),
        **uri,
        "seed": seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        "preset": preset if isinstance(preset, str) else None,
        "snapshot": snapshot,
    }
    return dict(json_value(data, "device metadata"))


def _bench_data(bench: Bench) -> dict[str, Any]:
    snapshot = getattr(bench, "snapshot", None)
    if not callable(snapshot):
        raise ConfigurationError(
            f"bench must have a snapshot() -> dict method; {type(bench).__name__} has none"
        )
    data = snapshot()
    if not isinstance(data, dict):
        raise ConfigurationError(f"bench.snapshot() must return a dict, got {type(data).__name__}")
    return dict(json_value(data, "bench.snapshot()"))


class RecordedRun:
    """A device session being written to a record file; use it through :func:`record_run`.

    ``device`` and ``bench`` stay available to scripts; the device is not closed by the run.
    """

    def __init__(
        self,
        writer: FrameWriter,
        device: PhotonicDevice,
        bench: Bench | None,
        show_progress: bool,
        guard: InterruptGuard,
    ) -> None:
        self._writer = writer
        self.path = writer.path
        self.device = device
        self.bench = bench
        self.show_progress = show_progress
        self._guard = guard
        self._lock = threading.Lock()
        self._n_calls = 0
        self._weights_index = -1
        self._tables: dict[str, list[tuple[str, str]]] = {}  # table -> [(column, dtype)]
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
        """Check everything, then create the file atomically with its ``start`` frame."""
        meta_data = json_value(dict(meta or {}), "meta")
        bench_data = _bench_data(bench) if bench is not None else None
        start = {
            "kind": "start",
            "format": FORMAT_NAME,
            "started_at_s": time.time(),
            "meta": meta_data,
            "environment": environment(),
            "device": device_metadata(device),
            "bench_present": bench is not None,
        }
        target = check_output_path(path, overwrite=overwrite, what="record file")
        frames = [encode_frame(0, start, {})]
        if bench_data is not None:
            frames.append(encode_frame(1, _snapshot_fields("start", bench_data, 0), {}))
        guard = InterruptGuard()
        guard.install()
        try:
            with guard.critical(raise_at_end=False):  # record_run raises it once in its block
                initial = file_header() + b"".join(frames)
                writer = FrameWriter.create(target, initial, len(frames), overwrite, guard)
                run = cls(writer, device, bench, progress, guard)
        except BaseException:
            guard.uninstall()
            raise
        log.info("recording run to %s", target)
        return run

    def close(self, error: BaseException | None = None) -> None:
        """Append the end snapshot and ``end`` (complete, or incomplete with ``error``); close."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                frames: list[Frame] = []
                if self.bench is not None:
                    try:
                        data = _bench_data(self.bench)
                        frames.append((_snapshot_fields("end", data, self._n_calls), {}))
                    except Exception as exc:  # never hide the run's own outcome
                        log.warning("end bench snapshot failed: %s", exc)
                end = {
                    "kind": "end",
                    "status": STATUS_COMPLETE if error is None else STATUS_INCOMPLETE,
                    "error": "" if error is None else f"{type(error).__name__}: {error}",
                    "ended_at_s": time.time(),
                    "duration_s": time.perf_counter() - self._t0,
                }
                frames.append((end, {}))
                self._writer.append(frames)
            finally:
                self._writer.close()
                self._guard.uninstall()
        log.info("record %s closed (%s)", self.path, "complete" if error is None else error)

    @property
    def interrupted(self) -> bool:
        """True once a Ctrl-C arrived during the run (even one Python discarded)."""
        return self._guard.interrupted

    # ---- recorded device operations ----------------------------------------------------
    @property
    def n_calls(self) -> int:
        return self._n_calls

    def load_weights(self, weights: Any) -> str:
        """``device.load_weights(weights)``; stores the matrix, its id, sha256 and timing."""
        self._guard.check()
        start_s, t0 = time.time(), time.perf_counter()
        weights_id = self.device.load_weights(weights)
        duration_s = time.perf_counter() - t0
        end_s = time.time()
        matrix = np.ascontiguousarray(weights, dtype="<f8")
        fields = {
            "kind": "weights",
            "weights_id": weights_id,
            "sha256": hashlib.sha256(matrix.tobytes()).hexdigest(),
            "start_s": start_s,
            "end_s": end_s,
            "duration_s": duration_s,
        }
        with self._lock:
            self._require_open()
            fields["index"] = self._weights_index + 1
            self._writer.append([(fields, {"matrix": matrix})])
            self._weights_index += 1
        self._guard.check()
        return weights_id

    def matmul(self, x: Any, label: str = "") -> np.ndarray:
        """``device.matmul(x)``; stores inputs, outputs, telemetry after the call and timing."""
        self._guard.check()
        start_s, t0 = time.time(), time.perf_counter()
        y = self.device.matmul(x)
        duration_s = time.perf_counter() - t0
        end_s = time.time()
        telemetry = json_value(self.device.telemetry().to_dict(), "telemetry")
        arrays = {"inputs": np.asarray(x, dtype="<f4"), "outputs": np.asarray(y, dtype="<f4")}
        fields = {
            "kind": "call",
            "label": str(label),
            "weights_id": self.device.weights_id or "",
            "start_s": start_s,
            "end_s": end_s,
            "duration_s": duration_s,
            "telemetry": telemetry,
        }
        with self._lock:
            self._require_open()
            fields.update(index=self._n_calls, weights_index=self._weights_index)
            self._writer.append([(fields, arrays)])
            self._n_calls += 1
        self._guard.check()
        return y

    # ---- other records -----------------------------------------------------------------
    def snapshot_bench(self, label: str) -> None:
        """Store ``bench.snapshot()`` now (e.g. after changing a setpoint); no-op without one."""
        self._guard.check()
        if self.bench is None:
            return
        data = _bench_data(self.bench)
        with self._lock:
            self._require_open()
            self._writer.append([(_snapshot_fields(label, data, self._n_calls), {})])

    def log_row(self, table: str, units: Mapping[str, str] | None = None, **values: Any) -> None:
        """Append one row of scalars to the results table ``table``; same columns every row."""
        self._guard.check()
        if not isinstance(table, str) or not table or "/" in table:
            raise InputError(f"table name must be non-empty without '/', got {table!r}")
        if not values:
            raise InputError(f"log_row({table!r}) needs at least one column value")
        row = {name: _scalar(name, value) for name, value in values.items()}
        with self._lock:
            self._require_open()
            frames: list[Frame] = []
            columns = self._tables.get(table)
            if columns is None:
                columns = _table_columns(table, row, units or {})
                names = [{"name": n, "dtype": d, "unit": str((units or {}).get(n, ""))}
                         for n, d in columns]  # fmt: skip
                frames.append(({"kind": "table", "table": table, "columns": names}, {}))
            _check_columns(table, {n for n, _ in columns}, set(row))
            for name, dtype in columns:
                if dtype == "int64" and not float(row[name]).is_integer():
                    raise InputError(f"column {table}.{name} holds integers, got {row[name]!r}")
            cells = [int(row[n]) if d == "int64" else float(row[n]) for n, d in columns]
            frames.append(({"kind": "row", "table": table, "values": cells}, {}))
            self._writer.append(frames)
            self._tables[table] = columns

    def attach(
        self, name: str, attrs: Mapping[str, Any], texts: Mapping[str, str] | None = None
    ) -> None:
        """Record attributes (and texts) of section ``name``; later calls update key by key."""
        self._guard.check()
        fields = {
            "kind": "attach",
            "name": str(name),
            "attrs": json_value(dict(attrs), f"attributes of {name!r}"),
            "texts": {str(k): str(v) for k, v in (texts or {}).items()},
        }
        with self._lock:
            self._require_open()
            self._writer.append([(fields, {})])

    def progress(
        self, iterable: Iterable[T], desc: str | None = None, total: int | None = None
    ) -> Iterator[T]:
        """``iterable`` with a progress bar when this run shows progress (CLI: a TTY).

        Each item is also a safe point where a discarded Ctrl-C is raised again.
        """
        for item in progress_bar(iterable, enabled=self.show_progress, desc=desc, total=total):
            self._guard.check()
            yield item

    # ---- internals ---------------------------------------------------------------------
    def _require_open(self) -> None:
        if self._closed:
            raise ConfigurationError(f"the record {str(self.path)!r} is closed")


def _snapshot_fields(label: str, data: dict[str, Any], after_call: int) -> dict[str, Any]:
    return {
        "kind": "snapshot",
        "label": str(label),
        "at_s": time.time(),
        "after_call": after_call,
        "data": data,
    }


def _table_columns(
    table: str, row: Mapping[str, float | int], units: Mapping[str, str]
) -> list[tuple[str, str]]:
    unknown = set(units) - set(row)
    if unknown:
        raise InputError(f"units given for columns not in table {table!r}: {sorted(unknown)}")
    return [(n, "int64" if isinstance(v, int) else "float64") for n, v in row.items()]


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
    """Record what is done through the yielded run into ``path`` (docs/records.md).

    ``device`` must be open and stays open. ``bench`` is any object with ``snapshot() ->
    dict``. Leaving the block with an exception marks the file ``incomplete`` (with the
    error) and re-raises; the calls recorded so far stay in it. A Ctrl-C during the run
    always ends it (``KeyboardInterrupt``), even one Python discarded in a finalizer.
    """
    run: RecordedRun | None = None
    try:
        run = RecordedRun.create(
            path, device, bench=bench, meta=meta, overwrite=overwrite, progress=progress
        )
        run._guard.check()  # a Ctrl-C that arrived while the file was being created
        yield run
        run._guard.check()  # a Ctrl-C swallowed after the last safe point still ends it
    except BaseException as exc:
        if run is not None:
            run.close(error=exc)
        raise
    run.close()


__all__ = ["Bench", "RecordedRun", "record_run"]
