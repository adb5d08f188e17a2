"""Read version-1 run records (HDF5, written by lumina-hal 0.2 and earlier) through h5py.

libhdf5 can crash the process on a damaged file, so ``load_v1`` reads in a child Python
(``python -m lumina_hal.runs.record_load_v1 PATH``, which pickles its result to stdout; a
subprocess rather than multiprocessing, so a user's script is never re-imported); a crash
there, and every HDF5 or content error, becomes a ``RecordDamagedError`` naming the file.
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lumina_hal.errors import RecordDamagedError, RecordError
from lumina_hal.runs.record_format import FORMAT_NAME, from_json
from lumina_hal.runs.record_types import BenchSnapshot, CallRecord, RunRecord, WeightsRecord

log = logging.getLogger(__name__)


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_format(path: Path, attrs: Any) -> int:
    if _str(attrs.get("format", "")) != FORMAT_NAME:
        raise RecordError(
            f"{str(path)!r} is an HDF5 file but not a lumina-hal run record "
            f"(its 'format' attribute is not {FORMAT_NAME!r})"
        )
    version = int(attrs.get("format_version", -1))
    if version != 1:
        raise RecordError(
            f"{str(path)!r} is an HDF5 run record of format version {version}; HDF5 records "
            "are version 1 (later versions are not HDF5; upgrade lumina-hal if it is newer)"
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


def load_v1(target: Path) -> RunRecord:
    """Read a version-1 (HDF5) record in a child process; RecordError/RecordDamagedError."""
    command = [sys.executable, "-m", "lumina_hal.runs.record_load_v1", str(target)]
    proc = subprocess.run(command, capture_output=True, check=False)
    if proc.returncode == 0:
        try:
            outcome, value = pickle.loads(proc.stdout)
        except Exception:  # the child printed something else: treat as its failure
            outcome, value = "crash", None
        if outcome == "record" and isinstance(value, RunRecord):
            return value
        if outcome in ("RecordError", "RecordDamagedError") and isinstance(value, str):
            raise (RecordError if outcome == "RecordError" else RecordDamagedError)(value)
    detail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
    raise RecordDamagedError(
        f"version-1 (HDF5) record {str(target)!r} is damaged: libhdf5 failed reading it "
        f"(reader exit status {proc.returncode}: {detail[0]})"
    )


def read_v1(target: Path) -> RunRecord:
    """Read a version-1 record in this process (libhdf5 may crash on a damaged file)."""
    try:
        with h5py.File(target, "r") as h5:
            return _read(target, h5)
    except RecordError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, RuntimeError, ValueError...
        raise RecordDamagedError(
            f"version-1 (HDF5) record {str(target)!r} is damaged: {type(exc).__name__}: {exc}"
        ) from None


def _read(target: Path, h5: h5py.File) -> RunRecord:
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


def _child(path: str) -> None:
    try:
        result: tuple[str, object] = ("record", read_v1(Path(path)))
    except RecordError as exc:
        result = (type(exc).__name__, str(exc))
    sys.stdout.buffer.write(pickle.dumps(result))


if __name__ == "__main__":
    _child(sys.argv[1])
