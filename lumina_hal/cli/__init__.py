"""``lumina-hal`` command line: one module per command, tables for people, --json for machines.

Every failure is one line on stderr and exit status 2: LuminaErrors from the commands and
argument errors alike (docs/safety.md).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence

from lumina_hal._version import __version__
from lumina_hal.cli import bench, demo, drivers, info, run, selftest, sim, sweep
from lumina_hal.cli.common import PROG, OneLineParser, fail
from lumina_hal.errors import LuminaError

COMMANDS = (info, drivers, bench, demo, run, sweep, selftest, sim)


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog=PROG, description=__doc__)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = args.run(args)
    except LuminaError as exc:
        fail(str(exc))
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    try:
        if args.json:
            print(json.dumps(report, indent=2, default=str))
        else:
            args.show(report)
    except BrokenPipeError:  # `lumina-hal drivers | head`: the reader left; not an error
        sys.stderr.close()
        return 0
    return int(report.get("exit_status", 0))
