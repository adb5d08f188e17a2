"""``lumina-hal info [URI]``: open a device and print its identity and telemetry."""

from __future__ import annotations

import argparse
from typing import Any

from lumina_hal.cli.common import table
from lumina_hal.registry import build_device


def _cmd_info(args: argparse.Namespace) -> dict[str, Any]:
    with build_device(args.uri) as device:
        return {"info": device.info.to_dict(), "telemetry": device.telemetry().to_dict()}


def _print_info(report: dict[str, Any]) -> None:
    info = dict(report["info"])
    info["capabilities"] = ", ".join(info["capabilities"])
    telemetry = report["telemetry"]
    rows = [(k, v) for k, v in info.items()]
    rows += [("temperature_c", telemetry["temperature_c"])]
    print(table(rows, ("field", "value")))


def register(sub: Any) -> None:
    p = sub.add_parser("info", help="open a device and print its identity and telemetry")
    p.add_argument(
        "uri", nargs="?", default=None, help="device URI (default $LUMINA_DEVICE or mock://)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_cmd_info, show=_print_info)
