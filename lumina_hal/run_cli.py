"""The ``run`` and ``sweep`` subcommands of ``lumina-hal`` (docs/records.md §6).

Output paths and inputs are checked before a device is opened; the commands return a
JSON-ready report that ``cli.main`` prints as a table or as JSON.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from lumina_hal.errors import ConfigurationError
from lumina_hal.progress import progress_wanted
from lumina_hal.records import record_run
from lumina_hal.records_format import check_output_path
from lumina_hal.registry import open_device
from lumina_hal.sweeps import plot_snr_vs_temperature, temperature_steps, temperature_sweep


def default_record_name(source: Path) -> str:
    """``<stem>-YYYYmmdd-HHMMSS.h5`` in the current directory."""
    return f"{source.stem}-{time.strftime('%Y%m%d-%H%M%S')}.h5"


def _cmd_run(args: argparse.Namespace) -> dict[str, Any]:
    from lumina_hal.run_plan import read_plan, run_plan
    from lumina_hal.run_script import ScriptError, load_script, run_script

    target = Path(args.target)
    progress = progress_wanted(args.no_progress)
    if target.suffix == ".py":
        script = load_script(target)
        record = check_output_path(
            args.record or default_record_name(target), overwrite=args.overwrite, what="record file"
        )
        try:
            return run_script(
                script, record, uri=args.device, overwrite=args.overwrite, progress=progress
            )
        except ScriptError as exc:
            traceback.print_exception(exc.__cause__, file=sys.stderr)
            raise
    if target.suffix == ".toml":
        plan = read_plan(target)
        record = check_output_path(
            args.record or plan.record or default_record_name(target),
            overwrite=args.overwrite,
            what="record file",
        )
        return run_plan(plan, record, uri=args.device, overwrite=args.overwrite, progress=progress)
    raise ConfigurationError(
        f"cannot run {str(target)!r}: expected a Python script (.py) or a TOML plan (.toml)"
    )


def _print_run(report: dict[str, Any]) -> None:
    print(f"device   {report['uri']}")
    print(f"record   {report['record']}  ({report['calls']} calls)")
    if "rows" in report:
        rows = [
            (
                "-" if r["setpoint_c"] is None else f"{r['setpoint_c']:g}",
                f"{r['temperature_c']:.1f}",
                r["batch_index"],
                f"{r['snr_db']:.2f}",
                f"{r['max_abs_error']:.4g}",
            )
            for r in report["rows"]
        ]
        print(_table(rows, ("setpoint_C", "temp_C", "batch", "SNR_dB", "max_abs_err")))
    elif report.get("result") is not None:
        print(f"result   {report['result']!r}")


def _cmd_sweep_temperature(args: argparse.Namespace) -> dict[str, Any]:
    temps = temperature_steps(args.start, args.stop, args.step)
    png = check_output_path(args.png, overwrite=True, what="PNG")
    record = (
        check_output_path(args.record, overwrite=args.overwrite, what="record file")
        if args.record
        else None
    )
    progress = progress_wanted(args.no_progress)
    kwargs: dict[str, Any] = {"batch": args.batch, "seed": args.seed, "progress": progress}
    with open_device(args.device) as device:
        info = device.info
        if record is None:
            result = temperature_sweep(device, temps, **kwargs)
        else:
            meta = {"command": "sweep temperature"}
            with record_run(record, device, meta=meta, overwrite=args.overwrite) as run:
                result = temperature_sweep(device, temps, run=run, **kwargs)
    title = f"{info.model} {info.rows}x{info.cols}, batch {args.batch}, seed {args.seed}"
    plot_snr_vs_temperature(result, png, title=title)
    return {
        "uri": info.uri,
        "device": info.to_dict(),
        "png": str(png),
        "record": None if record is None else str(record),
        "workload": {"rows": info.rows, "cols": info.cols, "batch": args.batch, "seed": args.seed},
        "points": result.to_dict(),
    }


def _print_sweep(report: dict[str, Any]) -> None:
    points = report["points"]
    rows = [
        (f"{s:g}", f"{t:.1f}", f"{snr:.2f}", f"{err:.4g}")
        for s, t, snr, err in zip(
            points["setpoints_c"],
            points["temperatures_c"],
            points["snr_db"],
            points["max_abs_error"],
            strict=True,
        )
    ]
    print(f"device   {report['uri']}")
    print(_table(rows, ("setpoint_C", "temp_C", "SNR_dB", "max_abs_err")))
    print(f"plot     {report['png']}")
    if report["record"]:
        print(f"record   {report['record']}")


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    from lumina_hal.cli import _table as table

    return table(rows, header)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        "--uri",
        dest="device",
        default=None,
        help="device URI (default $LUMINA_DEVICE or mock://)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing record file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def add_record_commands(sub: Any) -> None:
    """Register ``run`` and ``sweep temperature`` on the ``lumina-hal`` subparsers."""
    p = sub.add_parser("run", help="run a script (main(run)) or a TOML plan, recorded to HDF5")
    p.add_argument("target", help="script.py defining main(run), or plan.toml")
    p.add_argument("--record", default=None, help="record file (default <name>-<time>.h5)")
    _add_common(p)
    p.set_defaults(run=_cmd_run, show=_print_run)

    sweep = sub.add_parser("sweep", help="parameter sweeps of the reference workload")
    sweep_sub = sweep.add_subparsers(dest="sweep", required=True)
    p = sweep_sub.add_parser("temperature", help="SNR vs chip temperature, plotted to PNG")
    p.add_argument("--start", type=float, default=20.0, help="first temperature (°C)")
    p.add_argument("--stop", type=float, default=85.0, help="last temperature (°C), inclusive")
    p.add_argument("--step", type=float, default=5.0, help="temperature step (°C)")
    p.add_argument("--png", required=True, help="write the SNR plot to this PNG file")
    p.add_argument("--record", default=None, help="also record the sweep to this HDF5 file")
    p.add_argument("--batch", type=int, default=256, help="input vectors per temperature")
    p.add_argument("--seed", type=int, default=0, help="workload seed")
    _add_common(p)
    p.set_defaults(run=_cmd_sweep_temperature, show=_print_sweep)
