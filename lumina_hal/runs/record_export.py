"""Export a loaded run record as an HDF5 file in the version-1 layout (docs/records.md §5).

HDF5 is kept as an export only: generic tools (h5dump, HDFView, MATLAB, Julia) read it, but
it is never written during a run, where a torn write could take the whole file with it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from lumina_hal.errors import ConfigurationError
from lumina_hal.runs.record_format import FORMAT_NAME, check_output_path, index_name, to_json
from lumina_hal.runs.record_types import RunRecord


def _array(group: Any, name: str, data: np.ndarray) -> Any:
    if data.size and data.ndim:
        return group.create_dataset(name, data=data, compression="gzip", shuffle=True)
    return group.create_dataset(name, data=data)  # HDF5 cannot chunk empty or scalar data


def _section(h5: Any, name: str, values: dict[str, Any]) -> None:
    if not values:
        return
    group = h5.create_group(name)
    for key, value in values.items():
        if isinstance(value, str):
            group.attrs[key] = value
        else:
            group.attrs[f"{key}_json"] = to_json(value, f"{name}.{key}")


def export_hdf5(
    record: RunRecord, path: str | os.PathLike[str], *, overwrite: bool = False
) -> None:
    """Write ``record`` to ``path`` as a version-1-layout HDF5 file (readable by ``load_run``)."""
    import h5py

    target = check_output_path(path, overwrite=overwrite, what="HDF5 export")
    try:
        h5 = h5py.File(target, "w" if overwrite else "w-")
    except OSError as exc:
        raise ConfigurationError(f"cannot create HDF5 export {str(target)!r}: {exc}") from None
    with h5:
        h5.attrs.update(
            {
                "format": FORMAT_NAME, "format_version": 1, "status": record.status,
                "error": record.error, "started_at_s": record.started_at_s,
                "ended_at_s": record.ended_at_s, "duration_s": record.duration_s,
                "meta_json": to_json(record.meta, "meta"),
            }
        )  # fmt: skip
        h5.create_group("environment").attrs.update(record.environment)
        dev = h5.create_group("device")
        dev.attrs.update(
            {
                "info_json": to_json(record.device, "device"), "uri": record.uri,
                "scheme": record.scheme, "uri_params_json": to_json(record.uri_params, "uri"),
                "params_json": to_json(record.params, "params"),
            }
        )  # fmt: skip
        if record.seed is not None:
            dev.attrs["seed"] = record.seed
        if record.preset is not None:
            dev.attrs["preset"] = record.preset
        bench = h5.create_group("bench")
        bench.attrs["present"] = record.bench is not None
        snaps = bench.create_group("snapshots")
        for i, snap in enumerate(record.bench_snapshots):
            snaps.create_group(index_name(i)).attrs.update(
                {"label": snap.label, "at_s": snap.at_s, "after_call": snap.after_call,
                 "snapshot_json": to_json(snap.data, "snapshot")}
            )  # fmt: skip
        weights = h5.create_group("weights")
        for w in record.weights:
            _array(weights, index_name(w.index), w.matrix).attrs.update(
                {"weights_id": w.weights_id, "sha256": w.sha256, "start_s": w.start_s,
                 "end_s": w.end_s, "duration_s": w.duration_s}
            )  # fmt: skip
        calls = h5.create_group("calls")
        for c in record.calls:
            group = calls.create_group(index_name(c.index))
            _array(group, "inputs", c.inputs)
            _array(group, "outputs", c.outputs)
            group.attrs.update(
                {"label": c.label, "weights_index": c.weights_index, "weights_id": c.weights_id,
                 "start_s": c.start_s, "end_s": c.end_s, "duration_s": c.duration_s,
                 "telemetry_json": to_json(c.telemetry, "telemetry")}
            )  # fmt: skip
        results = h5.create_group("results")
        for table, columns in record.results.items():
            group = results.create_group(table)
            for column, values in columns.items():
                group.create_dataset(column, data=values).attrs["unit"] = record.result_units[
                    table
                ][column]
        for name in ("script", "plan", "sweep"):
            _section(h5, name, getattr(record, name))
