"""``lumina-hal`` command line: info, drivers, demo, run, sweep.

Tables for people, --json for machines.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from lumina_hal import __version__
from lumina_hal.demo import run_demo
from lumina_hal.errors import LuminaError
from lumina_hal.registry import available_schemes, build_device, driver_for_scheme
from lumina_hal.run_cli import add_record_commands
from lumina_hal.selftest import add_parser as add_selftest_parser


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cmd_info(args: argparse.Namespace) -> dict[str, Any]:
    with build_device(args.uri) as device:
        return {"info": device.info.to_dict(), "telemetry": device.telemetry().to_dict()}


def _print_info(report: dict[str, Any]) -> None:
    info = dict(report["info"])
    info["capabilities"] = ", ".join(info["capabilities"])
    telemetry = report["telemetry"]
    rows = [(k, v) for k, v in info.items()]
    rows += [("temperature_c", telemetry["temperature_c"])]
    print(_table(rows, ("field", "value")))


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
            print(_table(rows, ("param", "type", "default", "unit", "valid", "meaning")))
        print()


def _cmd_bench(args: argparse.Namespace) -> dict[str, Any]:
    from lumina_hal.bench import open_bench

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


def _cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    temps = [float(t) for t in args.temperatures.split(",") if t.strip()]
    return run_demo(args.uri, batch=args.batch, temperatures_c=temps, seed=args.seed)


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
    print(_table(rows, ("temp_C", "SNR_dB", "max_abs_err", "rms_err", "rms_signal", "ms")))


def _cmd_sim_fpga(args: argparse.Namespace) -> dict[str, Any]:
    """Serve the FPGA emulator until interrupted; prints where to connect first."""
    import signal
    import threading

    from lumina_hal.params import resolve_params
    from lumina_hal.sim.fpga_faults import FAULT_PARAMS, build_endpoint
    from lumina_hal.sim.fpga_server import PtyServer, TcpServer
    from lumina_hal.twin_config import TWIN_PARAMS

    raw = dict(item.split("=", 1) for item in args.param)
    params = resolve_params(TWIN_PARAMS + FAULT_PARAMS, raw, context="lumina-hal sim fpga")
    endpoint = build_endpoint(params)
    emulator, faults = endpoint.emulator, endpoint.faults
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        server: Any = TcpServer(emulator, faults, host or "127.0.0.1", int(port)).start()
        where = "{}:{}".format(*server.address)
        uri = f"fpga+tcp://{where}"
    else:
        server = PtyServer(emulator, faults).start()
        where, uri = server.path, f"fpga://{server.path}"
    stop = threading.Event()  # handlers first: a client may interrupt as soon as it reads
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"serving the FPGA emulator on {where}\nconnect with: {uri}", flush=True)
    stop.wait()
    server.close()
    return {"served": where}


def _cmd_sim_instrument(args: argparse.Namespace) -> dict[str, Any]:
    """Serve one simulated SCPI instrument on TCP until interrupted; prints its VISA resource."""
    import signal
    import threading

    from lumina_hal.errors import ConfigurationError
    from lumina_hal.sim.scpi_instruments import MODELS
    from lumina_hal.sim.scpi_server import ScpiTcpServer

    host, _, port = args.tcp.rpartition(":")
    if not port.isdigit() or int(port) > 65535:
        raise ConfigurationError(f"--tcp wants HOST:PORT with PORT 0-65535, got {args.tcp!r}")
    instrument = MODELS[args.model]()
    stop = threading.Event()  # handlers first: a client may interrupt as soon as it reads
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with ScpiTcpServer(instrument, host or "127.0.0.1", int(port)) as server:
        print(
            f"serving {args.model} on {server.host}:{server.port}\n"
            f"VISA resource: {server.resource}\n"
            f"open with read_termination={instrument.write_termination!r}, "
            f"write_termination={instrument.read_termination!r}",
            flush=True,
        )
        stop.wait()
    return {"served": server.resource}


def _cmd_sim_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Serve the coupled simulated bench until interrupted; prints the bench file to open."""
    import signal
    import tempfile
    import threading
    from pathlib import Path

    from lumina_hal.sim.coupled_bench import CoupledBench

    chip = dict(item.split("=", 1) for item in args.param)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with CoupledBench(chip, speed=args.speed, tau_s=args.tau) as sim:
        folder = None if args.write else tempfile.mkdtemp(prefix="lumina-bench-")
        path = sim.write_bench(args.write or Path(folder or ".") / "coupled_bench.toml")
        print(f"serving the coupled simulated bench\nbench file: {path}", flush=True)
        for name, uri in sim.uris().items():
            print(f"  {name}: {uri}", flush=True)
        stop.wait()
    return {"bench_file": str(path)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lumina-hal", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lumina-hal {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="open a device and print its identity and telemetry")
    p.add_argument(
        "uri", nargs="?", default=None, help="device URI (default $LUMINA_DEVICE or mock://)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_cmd_info, show=_print_info)

    p = sub.add_parser("drivers", help="list URI schemes and their parameters")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_cmd_drivers, show=_print_drivers)

    p = sub.add_parser("bench", help="open a bench file and print every part's state")
    p.add_argument(
        "file", nargs="?", default=None,
        help="bench TOML (default $LUMINA_BENCH, else the simulated bench)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_cmd_bench, show=_print_bench)

    p = sub.add_parser("demo", help="scripted chip run: error and SNR vs the ideal result")
    p.add_argument("--uri", default=None, help="device URI (default $LUMINA_DEVICE or mock://)")
    p.add_argument("--batch", type=int, default=256, help="input vectors per run")
    p.add_argument("--temperatures", default="25,45,85", help="comma-separated °C")
    p.add_argument("--seed", type=int, default=0, help="workload seed")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_cmd_demo, show=_print_demo)

    add_record_commands(sub)
    add_selftest_parser(sub)

    sim = sub.add_parser("sim", help="serve simulated hardware")
    sim_sub = sim.add_subparsers(dest="target", required=True)
    p = sim_sub.add_parser("fpga", help="the FPGA firmware emulator on a pty or TCP")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal (default)")
    where.add_argument("--tcp", metavar="HOST:PORT", help="serve on TCP, e.g. 127.0.0.1:5555")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="emulator parameter (as in mock://) or fault_*: repeatable",
    )
    p.set_defaults(run=_cmd_sim_fpga, show=lambda report: None, json=False)

    from lumina_hal.sim.scpi_instruments import MODELS

    p = sim_sub.add_parser(
        "bench", help="the coupled simulated bench (chip, laser, meter, TEC) on loopback TCP"
    )
    p.add_argument("--write", metavar="FILE", help="where to write the bench file")
    p.add_argument("--speed", type=float, default=100.0, help="simulated s per wall-clock s")
    p.add_argument("--tau", type=float, default=10.0, help="TEC thermal time constant (s)")
    p.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE",
        help="chip parameter as in mock:// (rows, cols, preset, seed...): repeatable",
    )
    p.set_defaults(run=_cmd_sim_bench, show=lambda report: None, json=False)

    p = sim_sub.add_parser("instrument", help="a simulated SCPI lab instrument on TCP")
    p.add_argument("model", choices=sorted(MODELS), help="which instrument")
    p.add_argument(
        "--tcp", default="127.0.0.1:0", metavar="HOST:PORT", help="where (port 0: any free port)"
    )
    p.set_defaults(run=_cmd_sim_instrument, show=lambda report: None, json=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = args.run(args)
    except LuminaError as exc:
        print(f"lumina-hal: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        args.show(report)
    return int(report.get("exit_status", 0))
