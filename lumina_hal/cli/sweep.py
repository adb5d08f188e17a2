"""``lumina-hal sweep temperature``: SNR of the reference workload vs chip temperature."""

from __future__ import annotations

import argparse
from typing import Any

from lumina_hal.cli.common import finite_float, positive_int, table
from lumina_hal.cli.run import add_common_options
from lumina_hal.errors import ConfigurationError
from lumina_hal.progress import progress_wanted
from lumina_hal.registry import open_device
from lumina_hal.runs.record_format import check_output_path
from lumina_hal.runs.records import record_run
from lumina_hal.runs.sweeps import plot_snr_vs_temperature, temperature_steps, temperature_sweep


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
    print(table(rows, ("setpoint_C", "temp_C", "SNR_dB", "max_abs_err")))
    print(f"plot     {report['png']}")
    if report["record"]:
        print(f"record   {report['record']}")


def register(sub: Any) -> None:
    sweep = sub.add_parser("sweep", help="parameter sweeps of the reference workload")
    sweep_sub = sweep.add_subparsers(dest="sweep", required=True)
    p = sweep_sub.add_parser("temperature", help="SNR vs chip temperature, plotted to PNG")
    p.add_argument("--start", type=finite_float, default=20.0, help="first temperature (°C)")
    p.add_argument(
        "--stop", type=finite_float, default=85.0, help="last temperature (°C), inclusive"
    )
    p.add_argument("--step", type=finite_float, default=5.0, help="temperature step (°C)")
    p.add_argument("--png", required=True, help="write the SNR plot to this PNG file")
    p.add_argument("--record", default=None, help="also record the sweep to this run-record file")
    p.add_argument("--batch", type=positive_int, default=256, help="input vectors per temperature")
    p.add_argument("--seed", type=int, default=0, help="workload seed")
    add_common_options(p)
    p.set_defaults(run=_cmd_sweep_temperature, show=_print_sweep)

    p = sweep_sub.add_parser(
        "bench", help="sweep any bench quantity (e.g. laser.wavelength_nm), read others"
    )
    p.add_argument("--bench", dest="bench_file", default=None, help="bench TOML")
    p.add_argument("--set", dest="quantity", required=True, help="PART.NAME to sweep")
    p.add_argument("--start", type=finite_float, required=True, help="first value")
    p.add_argument("--stop", type=finite_float, required=True, help="last value, inclusive")
    p.add_argument("--step", type=finite_float, required=True, help="step (> 0)")
    p.add_argument(
        "--read",
        action="append",
        required=True,
        metavar="PART.NAME",
        help="quantity to read at each value (repeatable), e.g. power_meter.read_power_dbm",
    )
    p.add_argument("--settle", type=finite_float, default=0.0, help="wait per value (s)")
    p.add_argument("--png", required=True, help="plot the first reading to this PNG")
    p.add_argument("--record", default=None, help="also record the sweep to this file")
    add_common_options(p)
    p.set_defaults(run=_cmd_sweep_bench, show=_print_bench_sweep)


def _cmd_sweep_bench(args: argparse.Namespace) -> dict[str, Any]:
    from lumina_hal.bench import open_bench
    from lumina_hal.grids import inclusive_grid
    from lumina_hal.runs.quantity_sweep import MAX_SWEEP_VALUES, bench_quantity, sweep_quantity

    values = inclusive_grid(
        args.start, args.stop, args.step, max_points=MAX_SWEEP_VALUES, what=args.quantity
    )
    png = check_output_path(args.png, overwrite=True, what="PNG")
    record = (
        check_output_path(args.record, overwrite=args.overwrite, what="record file")
        if args.record
        else None
    )
    with open_bench(args.bench_file) as bench:
        swept = bench_quantity(bench, args.quantity)
        readings = [bench_quantity(bench, name) for name in args.read]

        def measure() -> dict[str, float]:
            return {q.name: q.read() for q in readings}

        sweep = {
            "name": swept.name, "unit": swept.unit, "settle_s": args.settle,
            "units": {q.name: q.unit for q in readings},
            "progress": progress_wanted(args.no_progress),
        }  # fmt: skip
        if record is None:
            table = sweep_quantity(swept.set, values, measure, **sweep)
        elif bench.chip is None:
            raise ConfigurationError("--record needs a bench with a [chip] section")
        else:
            meta = {"command": "sweep bench"}
            with record_run(record, bench.chip, bench=bench, meta=meta,
                            overwrite=args.overwrite) as run:  # fmt: skip
                table = sweep_quantity(swept.set, values, measure, run=run, **sweep)
    table.plot(swept.name, readings[0].name, png)
    return {
        "png": str(png),
        "record": None if record is None else str(record),
        "units": dict(table.units),
        "columns": {name: table.column(name).tolist() for name in table.columns},
    }


def _print_bench_sweep(report: dict[str, Any]) -> None:
    names = list(report["columns"])
    headers = [f"{n} ({report['units'][n]})" if report["units"].get(n) else n for n in names]
    rows = list(zip(*(report["columns"][n] for n in names), strict=True))
    print(table([[f"{v:.6g}" for v in row] for row in rows], headers))
    print(f"plot     {report['png']}")
    if report["record"]:
        print(f"record   {report['record']}")
