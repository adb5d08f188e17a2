"""``lumina-hal run script.py|plan.toml``: a recorded run (docs/records.md §6).

Output paths and inputs are checked before a device is opened; the command returns a
JSON-ready report that ``cli.main`` prints as a table or as JSON.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from lumina_hal.cli.common import table
from lumina_hal.errors import ConfigurationError
from lumina_hal.progress import progress_wanted
from lumina_hal.runs.record_format import check_output_path


def default_record_name(source: Path) -> str:
    """``<stem>-YYYYmmdd-HHMMSS.lhrun`` in the current directory."""
    return f"{source.stem}-{time.strftime('%Y%m%d-%H%M%S')}.lhrun"


def _cmd_run(args: argparse.Namespace) -> dict[str, Any]:
    from lumina_hal.runs.plan import read_plan, run_plan
    from lumina_hal.runs.script import ScriptError, load_script, run_script

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
        print(table(rows, ("setpoint_C", "temp_C", "batch", "SNR_dB", "max_abs_err")))
    elif report.get("result") is not None:
        print(f"result   {report['result']!r}")


def add_common_options(p: argparse.ArgumentParser) -> None:
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


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run a script (main(run)) or a TOML plan, recorded")
    p.add_argument("target", help="script.py defining main(run), or plan.toml")
    p.add_argument("--record", default=None, help="record file (default <name>-<time>.lhrun)")
    add_common_options(p)
    p.set_defaults(run=_cmd_run, show=_print_run)
