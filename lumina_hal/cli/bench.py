"""``lumina-hal bench [FILE]``: every part's state; ``lumina-hal bench sweep``: a spectrum.

``bench sweep --bench FILE --start NM --stop NM --step NM --png spectrum.png [--record R]``
measures the swept transmission between the bench's laser and power meter
(docs/instruments.md, "Swept transmission"), plots it and optionally records it.
"""

from __future__ import annotations

import argparse
from typing import Any

from lumina_hal.bench import open_bench
from lumina_hal.cli.common import PROG, OneLineParser, finite_float, table
from lumina_hal.errors import ConfigurationError
from lumina_hal.progress import progress_wanted


def _show_parser() -> OneLineParser:
    p = OneLineParser(prog=f"{PROG} bench", add_help=False)
    p.add_argument("file", nargs="?", default=None)
    p.add_argument("--json", action="store_true")
    return p


def _sweep_parser() -> OneLineParser:
    p = OneLineParser(prog=f"{PROG} bench sweep", description="swept transmission spectrum")
    p.add_argument("--bench", dest="file", default=None, help="bench TOML (default as for bench)")
    p.add_argument("--start", type=finite_float, required=True, help="first wavelength (nm)")
    p.add_argument("--stop", type=finite_float, required=True, help="last wavelength (nm)")
    p.add_argument("--step", type=finite_float, default=1.0, help="wavelength step (nm)")
    p.add_argument("--power-dbm", type=finite_float, default=None, help="laser power (dBm)")
    p.add_argument("--settle", type=finite_float, default=0.0, help="wait per point (s)")
    p.add_argument("--png", required=True, help="write the plot to this PNG file")
    p.add_argument("--record", default=None, help="also record the spectrum to this file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing record file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def _cmd_bench(args: argparse.Namespace) -> dict[str, Any]:
    words: list[str] = args.words
    if words[:1] == ["sweep"]:
        options = _sweep_parser().parse_args(words[1:])
        args.json = args.json or options.json
        return {"kind": "spectrum", **_sweep(options)}
    options = _show_parser().parse_args(words)
    args.json = args.json or options.json
    with open_bench(options.file) as bench:
        return {"kind": "bench", **bench.snapshot()}


def _sweep(options: argparse.Namespace) -> dict[str, Any]:
    from lumina_hal.bench.spectra import plot_spectrum
    from lumina_hal.runs.record_format import check_output_path
    from lumina_hal.runs.records import record_run

    png = check_output_path(options.png, overwrite=True, what="PNG")
    record = None
    if options.record:
        record = check_output_path(options.record, overwrite=options.overwrite, what="record file")
    sweep = {
        "power_dbm": options.power_dbm,
        "settle_s": options.settle,
        "progress": progress_wanted(options.no_progress),
    }
    with open_bench(options.file) as bench:
        span = (options.start, options.stop, options.step)
        chip = bench.chip
        if record is None:
            spectrum = bench.swept_transmission(*span, **sweep)
        elif chip is None:
            raise ConfigurationError(
                f"{bench.config.path or 'bench'}: --record needs a [chip] section to record"
            )
        else:
            meta = {"command": "bench sweep"}
            with record_run(record, chip, bench=bench, meta=meta,
                            overwrite=options.overwrite) as run:  # fmt: skip
                spectrum = bench.swept_transmission(*span, run=run, **sweep)
        bench_file = str(bench.config.path) if bench.config.path else None
    plot_spectrum(spectrum, png)
    peak_nm, peak_db = spectrum.peak()
    return {
        "bench_file": bench_file,
        "png": str(png),
        "record": None if record is None else str(record),
        "peak_nm": peak_nm,
        "peak_db": peak_db,
        "bandwidth_3db_nm": spectrum.bandwidth_nm(3.0),
        "spectrum": spectrum.to_dict(),
    }


def _print(report: dict[str, Any]) -> None:
    if report["kind"] == "spectrum":
        _print_spectrum(report)
    else:
        _print_bench(report)


def _print_spectrum(report: dict[str, Any]) -> None:
    s = report["spectrum"]
    rows = [
        (f"{nm:.3f}", f"{w:.4g}", f"{db:.2f}")
        for nm, w, db in zip(s["wavelength_nm"], s["power_w"], s["transmission_db"], strict=True)
    ]
    print(table(rows, ("wavelength_nm", "power_W", "transmission_dB")))
    print(
        f"peak     {report['peak_db']:.2f} dB at {report['peak_nm']:.3f} nm, "
        f"3 dB width {report['bandwidth_3db_nm']:.3f} nm"
    )
    print(f"plot     {report['png']}")
    if report["record"]:
        print(f"record   {report['record']}")


def _print_bench(report: dict[str, Any]) -> None:
    print(f"bench file: {report.get('bench_file')}")
    for name, part in report.items():
        if name in ("bench_file", "kind"):
            continue
        print(f"\n[{name}] {part.get('uri', '')}")
        for section in ("identity", "info", "settings", "limits"):
            values = part.get(section) or {}
            if values:
                print(f"  {section}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
        if "error" in part:
            print(f"  error: {part['error']}")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="print a bench's state, or 'bench sweep ...' for a transmission spectrum",
        usage=f"{PROG} bench [FILE] [--json] | {PROG} bench sweep --start NM --stop NM "
        "--png PNG [--bench FILE] [--step NM] [--power-dbm DBM] [--settle S] [--record FILE]",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("words", nargs=argparse.REMAINDER, help="[FILE] or sweep OPTIONS")
    p.set_defaults(run=_cmd_bench, show=_print)
