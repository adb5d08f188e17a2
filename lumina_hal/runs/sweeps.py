"""Temperature sweep: the reference workload's SNR at each chip temperature, and its plot.

``temperature_sweep`` sets each temperature (the device's own ``set_temperature`` or a
caller's callable, e.g. a bench TEC), runs the reference workload, and compares with the
float result. Given a ``RecordedRun`` it records every call and a results table
(docs/records.md); ``plot_snr_vs_temperature`` draws SNR (dB) against temperature (°C).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lumina_hal.device import Capability, PhotonicDevice
from lumina_hal.errors import ConfigurationError, InputError, UnsupportedOperationError
from lumina_hal.metrics import Workload, error_stats, reference_workload
from lumina_hal.progress import progress_bar
from lumina_hal.runs.record_format import check_output_path, to_json
from lumina_hal.runs.records import RecordedRun
from lumina_hal.tables import Table

log = logging.getLogger(__name__)

SWEEP_TABLE = "temperature_sweep"
SWEEP_UNITS = {
    "setpoint_c": "degC",
    "temperature_c": "degC",
    "snr_db": "dB",
    "max_abs_error": "output units",
    "rms_error": "output units",
    "rms_signal": "output units",
}
MAX_SWEEP_POINTS = 10_000


@dataclass(frozen=True)
class SweepResult:
    """One row per temperature: setpoint and measured temperature (°C), SNR (dB), errors."""

    setpoints_c: np.ndarray
    temperatures_c: np.ndarray
    snr_db: np.ndarray
    max_abs_error: np.ndarray
    rms_error: np.ndarray
    rms_signal: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        return {name: getattr(self, name).tolist() for name in self.__dataclass_fields__}

    def to_table(self) -> Table:
        """The sweep as a table with units (``.to_xarray()``, ``.to_pandas()``, ``.plot()``)."""
        names = {"setpoints_c": "setpoint_c", "temperatures_c": "temperature_c"}
        columns = {names.get(n, n): getattr(self, n) for n in self.__dataclass_fields__}
        units = {name: SWEEP_UNITS.get(name, "") for name in columns}
        return Table(columns, units, "temperature sweep")


def temperature_steps(start_c: float, stop_c: float, step_c: float) -> list[float]:
    """``start_c`` to ``stop_c`` inclusive in steps of ``step_c`` (sign follows direction)."""
    if not all(np.isfinite([start_c, stop_c, step_c])):
        raise ConfigurationError("sweep start, stop and step must be finite numbers")
    if step_c == 0:
        raise ConfigurationError("sweep step must not be 0")
    if (stop_c - start_c) * step_c < 0:
        raise ConfigurationError(
            f"sweep step {step_c:g} goes away from stop {stop_c:g} (start {start_c:g})"
        )
    count = int(np.floor((stop_c - start_c) / step_c + 1e-9)) + 1
    if count > MAX_SWEEP_POINTS:
        raise ConfigurationError(f"sweep has {count} points; at most {MAX_SWEEP_POINTS} allowed")
    return [round(start_c + i * step_c, 9) for i in range(count)]


def measure(
    device: PhotonicDevice,
    inputs: np.ndarray,
    ideal: np.ndarray,
    *,
    run: RecordedRun | None = None,
    label: str = "",
) -> dict[str, float]:
    """One (recorded, if ``run``) matmul: temperature (°C) after it, its duration (s) and its
    error vs ``ideal``."""
    start = time.perf_counter()
    measured = run.matmul(inputs, label=label) if run is not None else device.matmul(inputs)
    seconds = time.perf_counter() - start
    return {
        "temperature_c": device.telemetry().temperature_c,
        **error_stats(measured, ideal),
        "seconds": seconds,
    }


def workload_rows(
    device: PhotonicDevice,
    work: Workload,
    temperatures_c: Sequence[float | None],
    *,
    batches: int = 1,
    set_temperature: Callable[[float], None] | None = None,
    run: RecordedRun | None = None,
    progress: bool = False,
    desc: str = "temperature",
    label_batches: bool = False,
) -> Iterator[dict[str, Any]]:
    """Run ``work`` (already loaded) at each temperature, in ``batches`` equal slices of its
    inputs: the one loop behind the demo, the temperature sweep and run plans.

    A temperature of None runs where the chip is. Yields one row per (temperature, batch):
    ``setpoint_c`` (None if not set), ``batch_index``, and :func:`measure`'s values. With
    ``run``, calls are labelled ``T=<t>C/batch<i>`` (``T=<t>C`` for one batch unless
    ``label_batches``) and the bench is snapshotted at each temperature.
    """
    setter = None
    if any(t is not None for t in temperatures_c):
        setter = temperature_setter(device, set_temperature)
    size = work.inputs.shape[0] // batches
    steps = [(t, b) for t in temperatures_c for b in range(batches)]
    for setpoint_c, index in progress_bar(steps, enabled=progress, desc=desc, unit="pt"):
        prefix = "" if setpoint_c is None else f"T={setpoint_c:g}C"
        if index == 0 and setter is not None and setpoint_c is not None:
            setter(setpoint_c)
            if run is not None:
                run.snapshot_bench(prefix)
        batch_part = f"batch{index}" if label_batches or batches > 1 else ""
        label = "/".join(filter(None, (prefix, batch_part)))
        part = slice(index * size, (index + 1) * size)
        row = measure(device, work.inputs[part], work.ideal[part], run=run, label=label)
        yield {"setpoint_c": setpoint_c, "batch_index": index, **row}


def temperature_setter(
    device: PhotonicDevice, set_temperature: Callable[[float], None] | None = None
) -> Callable[[float], None]:
    """``set_temperature`` if given, else the device's own; error if it has neither."""
    if set_temperature is not None:
        return set_temperature
    if Capability.SET_TEMPERATURE.value not in device.info.capabilities:
        raise UnsupportedOperationError(
            f"{type(device).__name__} cannot set its temperature; pass set_temperature= "
            "(e.g. a bench TEC) to sweep it"
        )
    return device.set_temperature


def temperature_sweep(
    device: PhotonicDevice,
    temperatures_c: Sequence[float],
    *,
    batch: int = 256,
    seed: int = 0,
    set_temperature: Callable[[float], None] | None = None,
    run: RecordedRun | None = None,
    progress: bool = False,
) -> SweepResult:
    """Run the reference workload (device-sized, ``batch`` vectors, ``seed``) at each temperature.

    ``set_temperature(t)`` (default ``device.set_temperature``) must return once the chip
    has settled at ``t`` °C; the temperature reported is the device's telemetry after the
    call. With ``run``, weights, calls (labelled ``T=<t>C``), a bench snapshot per point and
    the table ``temperature_sweep`` are recorded.
    """
    temps = [float(t) for t in temperatures_c]
    if not temps:
        raise InputError("temperature sweep needs at least one temperature")
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}")
    temperature_setter(device, set_temperature)  # refuses before anything is loaded
    info = device.info
    work = reference_workload(info.rows, info.cols, batch, seed)
    if run is not None:
        workload = {"rows": info.rows, "cols": info.cols, "batch": batch, "seed": seed}
        run.attach(
            "sweep",
            {
                "workload_json": to_json(workload, "workload"),
                "temperatures_c_json": to_json(temps, "temperatures"),
            },
        )
    load: Callable[[Any], str] = run.load_weights if run is not None else device.load_weights
    load(work.weights)
    rows: list[dict[str, float]] = []
    steps = workload_rows(
        device, work, temps, set_temperature=set_temperature, run=run, progress=progress
    )
    for step in steps:
        row = {name: step[name] for name in SWEEP_UNITS}
        log.info("T=%g C: SNR %.2f dB", row["setpoint_c"], row["snr_db"])
        if run is not None:
            run.log_row(SWEEP_TABLE, units=SWEEP_UNITS, **row)
        rows.append(row)

    def column(name: str) -> np.ndarray:
        return np.array([row[name] for row in rows], dtype=np.float64)

    return SweepResult(
        setpoints_c=column("setpoint_c"),
        temperatures_c=column("temperature_c"),
        snr_db=column("snr_db"),
        max_abs_error=column("max_abs_error"),
        rms_error=column("rms_error"),
        rms_signal=column("rms_signal"),
    )


def plot_snr_vs_temperature(
    result: SweepResult, png_path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Write SNR (dB) against measured temperature (°C) to a PNG (Agg, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    target = check_output_path(png_path, overwrite=True, what="PNG")
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(result.temperatures_c, result.snr_db, marker="o")
    ax.set_xlabel("chip temperature (°C)")
    ax.set_ylabel("SNR (dB)")
    ax.set_title(title or "SNR vs temperature, reference workload")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    try:
        fig.savefig(target, format="png")
    except OSError as exc:
        raise ConfigurationError(f"cannot write PNG {str(target)!r}: {exc}") from None
    return target
