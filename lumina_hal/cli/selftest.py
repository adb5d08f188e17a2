"""``lumina-hal selftest [URI]``: the device conformance suite against any backend."""

from __future__ import annotations

import argparse
from typing import Any

from lumina_hal.testing.selftest import format_line, run_selftest


def _cmd_selftest(args: argparse.Namespace) -> dict[str, Any]:
    show_line = None if args.json else (lambda result: print(format_line(result), flush=True))
    return run_selftest(args.uri, args.k, show_line)


def _print_summary(report: dict[str, Any]) -> None:
    print(
        f"{report['passed']} passed, {report['failed']} failed, {report['skipped']} skipped "
        f"in {report['seconds']:.2f} s on {report['uri']}"
    )


def register(sub: Any) -> None:
    p = sub.add_parser("selftest", help="run the conformance suite against a device")
    p.add_argument(
        "uri", nargs="?", default=None, help="device URI (default $LUMINA_DEVICE or mock://)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-k", metavar="PATTERN", default=None, help="only checks whose name has it")
    p.set_defaults(run=_cmd_selftest, show=_print_summary)
