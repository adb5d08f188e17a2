"""``lumina-hal drivers``: every installed URI scheme with its typed parameters."""

from __future__ import annotations

import argparse
from typing import Any

from lumina_hal.cli.common import table
from lumina_hal.errors import LuminaError
from lumina_hal.registry import available_schemes, driver_for_scheme


def _cmd_drivers(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scheme in available_schemes(refresh=True):
        try:
            driver = driver_for_scheme(scheme)
        except LuminaError as exc:
            out[scheme] = {"error": str(exc)}
            continue
        out[scheme] = {
            "driver": f"{driver.__module__}.{driver.__qualname__}",
            "summary": driver.summary,
            "params": [
                {
                    "name": p.name,
                    "type": p.type.__name__,
                    "default": p.default,
                    "unit": p.unit,
                    "range": p.describe_range(),
                    "doc": p.doc,
                }
                for p in driver.uri_params
            ],
        }
    return out


def _print_drivers(report: dict[str, Any]) -> None:
    for scheme, entry in report.items():
        print(f"{scheme}://  {entry.get('summary') or entry.get('error', '')}")
        if "params" in entry:
            rows = [
                (p["name"], p["type"], p["default"], p["unit"], p["range"], p["doc"])
                for p in entry["params"]
            ]
            print(table(rows, ("param", "type", "default", "unit", "valid", "meaning")))
        print()


def register(sub: Any) -> None:
    p = sub.add_parser("drivers", help="list URI schemes and their parameters")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_cmd_drivers, show=_print_drivers)
