"""``lumina-hal run plan.toml``: the reference workload in batches at chosen temperatures.

The plan format is specified in docs/records.md §6. Every key is checked before a device
is opened; errors name the key and what was expected.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lumina_hal.errors import ConfigurationError
from lumina_hal.metrics import reference_workload
from lumina_hal.params import Param, resolve_params, unknown_parameter
from lumina_hal.registry import open_device
from lumina_hal.runs.record_format import to_json
from lumina_hal.runs.records import Bench, record_run
from lumina_hal.runs.sweeps import temperature_setter, workload_rows

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PLAN_TABLE = "plan"
PLAN_UNITS = {"setpoint_c": "degC", "temperature_c": "degC", "snr_db": "dB"}
PLAN_COLUMNS = (
    "setpoint_c", "batch_index", "temperature_c", "snr_db", "max_abs_error", "rms_error",
    "rms_signal",
)  # fmt: skip
_TOP_KEYS = ("uri", "record", "temperatures_c", "workload")
WORKLOAD_PARAMS: tuple[Param, ...] = (
    Param("rows", int, None, "weight matrix rows (default: the device's)", minimum=1),
    Param("cols", int, None, "weight matrix columns (default: the device's)", minimum=1),
    Param("seed", int, 0, "workload seed", minimum=0, maximum=2**63 - 1),
    Param("batch", int, 256, "input vectors per call", minimum=1, maximum=1_000_000),
    Param("batches", int, 1, "calls per temperature", minimum=1, maximum=1_000_000),
)


@dataclass(frozen=True)
class Plan:
    """A checked plan file. ``temperatures_c`` empty: the temperature is not changed."""

    path: Path
    uri: str | None
    record: str | None
    temperatures_c: tuple[float, ...]
    workload: dict[str, Any]
    raw: dict[str, Any]


def _optional_str(data: dict[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise ConfigurationError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value


def _temperatures(data: dict[str, Any], where: str) -> tuple[float, ...]:
    value = data.get("temperatures_c", [])
    if not isinstance(value, list) or (not value and "temperatures_c" in data):
        raise ConfigurationError(
            f"{where}: 'temperatures_c' must be a non-empty list of numbers (°C), got {value!r}"
        )
    for item in value:
        ok = isinstance(item, (int, float)) and not isinstance(item, bool)
        if not ok or not math.isfinite(item):
            raise ConfigurationError(
                f"{where}: 'temperatures_c' holds {item!r}; "
                "every entry must be a finite number (°C)"
            )
    return tuple(float(t) for t in value)


def read_plan(path: str | os.PathLike[str]) -> Plan:
    """Parse and check a TOML plan; ConfigurationError naming the bad key or line."""
    target = Path(path)
    where = f"plan {str(target)!r}"
    if not target.is_file():
        raise ConfigurationError(f"{where} does not exist or is not a file")
    try:
        data = tomllib.loads(target.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {where}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{where} is not valid TOML: {exc}") from None
    for key in data:
        if key not in _TOP_KEYS:
            raise unknown_parameter(key, _TOP_KEYS, where)
    table = data.get("workload", {})
    if not isinstance(table, dict):
        raise ConfigurationError(f"{where}: 'workload' must be a table ([workload])")
    typed = resolve_params(WORKLOAD_PARAMS, table, context=f"{where} [workload]", source="plan")
    return Plan(
        path=target,
        uri=_optional_str(data, "uri", where),
        record=_optional_str(data, "record", where),
        temperatures_c=_temperatures(data, where),
        workload={p.name: typed.get(p.name, p.default) for p in WORKLOAD_PARAMS},
        raw=data,
    )


def run_plan(
    plan: Plan,
    record_path: str | os.PathLike[str],
    *,
    uri: str | None = None,
    bench: Bench | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Run ``plan`` on ``uri`` (else the plan's, else the default) and record it."""
    w = plan.workload
    batch, batches = w["batch"], w["batches"]
    meta = {"command": "run", "plan": str(plan.path)}
    with open_device(uri or plan.uri) as device:
        info = device.info
        if plan.temperatures_c:
            temperature_setter(device)  # refuses before anything is recorded
        rows, cols = w["rows"] or info.rows, w["cols"] or info.cols
        if rows > info.rows or cols > info.cols:
            raise ConfigurationError(
                f"plan {str(plan.path)!r}: [workload] {rows}x{cols} does not fit the "
                f"{info.rows}x{info.cols} array of {device.uri or 'the device'}"
            )
        work = reference_workload(rows, cols, batch * batches, w["seed"])
        temperatures: list[float | None] = list(plan.temperatures_c or [None])
        report_rows: list[dict[str, Any]] = []
        with record_run(
            record_path, device, bench=bench, meta=meta, overwrite=overwrite, progress=progress
        ) as run:
            run.attach("plan", {"path": str(plan.path), "plan_json": to_json(plan.raw, "plan")})
            run.load_weights(work.weights)
            steps = workload_rows(
                device, work, temperatures, batches=batches, run=run, progress=progress,
                desc="plan", label_batches=True,
            )  # fmt: skip
            for step in steps:
                row = {name: step[name] for name in PLAN_COLUMNS}
                setpoint = row["setpoint_c"]
                run.log_row(
                    PLAN_TABLE,
                    units=PLAN_UNITS,
                    **{**row, "setpoint_c": math.nan if setpoint is None else setpoint},
                )
                report_rows.append(row)
            calls = run.n_calls
    return {
        "record": str(record_path),
        "uri": device.uri,
        "workload": {
            "rows": rows,
            "cols": cols,
            "batch": batch,
            "batches": batches,
            "seed": w["seed"],
        },
        "calls": calls,
        "rows": report_rows,
    }
