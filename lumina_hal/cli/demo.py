"""``lumina-hal demo``: the main job: program, multiply, report error and SNR per temperature."""

from __future__ import annotations

import argparse
from typing import Any

from lumina_hal.cli.common import float_list, positive_int, table
from lumina_hal.runs.demo import run_demo


def _cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    return run_demo(args.uri, batch=args.batch, temperatures_c=args.temperatures, seed=args.seed)


def _print_demo(report: dict[str, Any]) -> None:
    dev = report["device"]
    print(
        f"device   {report['uri']}  ({dev['model']} {dev['rows']}x{dev['cols']}, "
        f"serial {dev['serial']}, firmware {dev['firmware']})"
    )
    print(
        f"weights  {report['weights_id']}   batch {report['workload']['batch']} "
        f"uniform[-1,1] inputs, seed {report['workload']['seed']}"
    )
    rows = [
        (
            f"{r['temperature_c']:.1f}",
            f"{r['snr_db']:.2f}",
            f"{r['max_abs_error']:.4g}",
            f"{r['rms_error']:.4g}",
            f"{r['rms_signal']:.4g}",
            f"{r['seconds'] * 1e3:.3f}",
        )
        for r in report["runs"]
    ]
    print(table(rows, ("temp_C", "SNR_dB", "max_abs_err", "rms_err", "rms_signal", "ms")))


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="scripted chip run: error and SNR vs the ideal result")
    p.add_argument("--uri", default=None, help="device URI (default $LUMINA_DEVICE or mock://)")
    p.add_argument("--batch", type=positive_int, default=256, help="input vectors per run")
    p.add_argument(
        "--temperatures", type=float_list, default=[25.0, 45.0, 85.0], help="comma-separated °C"
    )
    p.add_argument("--seed", type=int, default=0, help="workload seed")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_cmd_demo, show=_print_demo)
