"""``lumina-hal sim fpga|instrument|bench``: serve simulated hardware until interrupted."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from lumina_hal.cli.common import finite_float, host_port, name_value


def _wait_for_a_stop_signal() -> threading.Event:
    """Install SIGINT/SIGTERM handlers first: a client may interrupt as soon as it reads."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _cmd_sim_fpga(args: argparse.Namespace) -> dict[str, Any]:
    """Serve the FPGA emulator until interrupted; prints where to connect first."""
    from lumina_hal.params import resolve_params
    from lumina_hal.sim.fpga.faults import FAULT_PARAMS, build_endpoint
    from lumina_hal.sim.fpga.server import PtyServer, TcpServer
    from lumina_hal.twin.config import TWIN_PARAMS

    raw = dict(args.param)
    params = resolve_params(TWIN_PARAMS + FAULT_PARAMS, raw, context="lumina-hal sim fpga")
    endpoint = build_endpoint(params)  # typed: becomes an EmulatorConfig
    emulator, faults = endpoint.emulator, endpoint.faults
    if args.tcp:
        host, port = args.tcp
        server: Any = TcpServer(emulator, faults, host, port).start()
        where = "{}:{}".format(*server.address)
        uri = f"fpga+tcp://{where}"
    else:
        server = PtyServer(emulator, faults).start()
        where, uri = server.path, f"fpga://{server.path}"
    stop = _wait_for_a_stop_signal()
    print(f"serving the FPGA emulator on {where}\nconnect with: {uri}", flush=True)
    stop.wait()
    server.close()
    return {"served": where}


def _cmd_sim_instrument(args: argparse.Namespace) -> dict[str, Any]:
    """Serve one simulated SCPI instrument on TCP until interrupted; prints its VISA resource."""
    from lumina_hal.sim.scpi.instruments import MODELS
    from lumina_hal.sim.scpi.server import ScpiTcpServer

    host, port = args.tcp
    instrument = MODELS[args.model]()
    stop = _wait_for_a_stop_signal()
    with ScpiTcpServer(instrument, host, port) as server:
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
    import tempfile
    from pathlib import Path

    from lumina_hal.sim.coupled_bench import CoupledBench

    chip = dict(args.param)
    stop = _wait_for_a_stop_signal()
    with CoupledBench(chip, speed=args.speed, tau_s=args.tau) as sim:
        folder = None if args.write else tempfile.mkdtemp(prefix="lumina-bench-")
        path = sim.write_bench(args.write or Path(folder or ".") / "coupled_bench.toml")
        print(f"serving the coupled simulated bench\nbench file: {path}", flush=True)
        for name, uri in sim.uris().items():
            print(f"  {name}: {uri}", flush=True)
        stop.wait()
    return {"bench_file": str(path)}


def register(sub: Any) -> None:
    from lumina_hal.sim.scpi.instruments import MODELS

    sim = sub.add_parser("sim", help="serve simulated hardware")
    sim_sub = sim.add_subparsers(dest="target", required=True)
    p = sim_sub.add_parser("fpga", help="the FPGA firmware emulator on a pty or TCP")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal (default)")
    where.add_argument(
        "--tcp", type=host_port, metavar="HOST:PORT", help="serve on TCP, e.g. 127.0.0.1:5555"
    )
    p.add_argument(
        "--param", type=name_value, action="append", default=[], metavar="NAME=VALUE",
        help="emulator parameter (as in mock://) or fault_*: repeatable",
    )
    p.set_defaults(run=_cmd_sim_fpga, show=lambda report: None, json=False)

    p = sim_sub.add_parser(
        "bench", help="the coupled simulated bench (chip, laser, meter, TEC) on loopback TCP"
    )
    p.add_argument("--write", metavar="FILE", help="where to write the bench file")
    p.add_argument("--speed", type=finite_float, default=100.0, help="simulated s per wall-clock s")
    p.add_argument("--tau", type=finite_float, default=10.0, help="TEC thermal time constant (s)")
    p.add_argument(
        "--param", type=name_value, action="append", default=[], metavar="NAME=VALUE",
        help="chip parameter as in mock:// (rows, cols, preset, seed...): repeatable",
    )
    p.set_defaults(run=_cmd_sim_bench, show=lambda report: None, json=False)

    p = sim_sub.add_parser("instrument", help="a simulated SCPI lab instrument on TCP")
    p.add_argument("model", choices=sorted(MODELS), help="which instrument")
    p.add_argument(
        "--tcp", type=host_port, default=("127.0.0.1", 0), metavar="HOST:PORT",
        help="where (port 0: any free port)",
    )
    p.set_defaults(run=_cmd_sim_instrument, show=lambda report: None, json=False)
