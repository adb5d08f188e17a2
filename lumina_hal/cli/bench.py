"""``lumina-hal bench [FILE]``: open a bench file and print every part's state."""

from __future__ import annotations

import argparse
from typing import Any

from lumina_hal.bench import open_bench


def _cmd_bench(args: argparse.Namespace) -> dict[str, Any]:
    with open_bench(args.file) as bench:
        return bench.snapshot()


def _print_bench(report: dict[str, Any]) -> None:
    print(f"bench file: {report.get('bench_file')}")
    for name, part in report.items():
        if name == "bench_file":
            continue
        print(f"\n[{name}] {part.get('uri', '')}")
        for section in ("identity", "info", "settings", "limits"):
            values = part.get(section) or {}
            if values:
                print(f"  {section}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
        if "error" in part:
            print(f"  error: {part['error']}")


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="open a bench file and print every part's state")
    p.add_argument(
        "file", nargs="?", default=None,
        help="bench TOML (default $LUMINA_BENCH, else the simulated bench)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_cmd_bench, show=_print_bench)
