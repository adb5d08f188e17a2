"""A small generic SCPI command engine: header matching, path rules, error queue, status.

A model declares a table of :class:`Command` whose headers are written like the manuals
(``[SOURce[1]]:TEMPerature[:SPOint]``, ``MEASure[:SCALar][:POWer]?``); the engine turns one
program message (without termination) into one reply or None. It does no I/O and never sleeps,
so a TCP server, a test or a coupling layer can all drive it. See docs/instrument-sim.md.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from lumina_hal.sim.scpi.params import STANDARD_ERRORS, ScpiError, expect_params, split_number

log = logging.getLogger(__name__)

SetHandler = Callable[[list[str]], None]
QueryHandler = Callable[[list[str]], str]
Clock = Callable[[], float]
T = TypeVar("T")

# Standard Event Status Register bits (IEEE 488.2) set by error classes.
ESR_OPC, ESR_QYE, ESR_DDE, ESR_EXE, ESR_CME = 1, 4, 8, 16, 32
# Status byte bits.
STB_EAV, STB_ESB, STB_MSS = 4, 32, 64

_NODE = re.compile(
    r":?(?:\[:?(?P<oname>[A-Za-z]+)(?:\[(?P<osuffix>\d+)\]|\{(?P<oslot>\d+)\})?\]"
    r"|(?P<name>[A-Za-z]+)(?:\[(?P<suffix>\d+)\]|\{(?P<slot>\d+)\})?)"
)
_TOKEN = re.compile(r"([A-Za-z]+?)(\d*)")


@dataclass(frozen=True)
class _Node:
    short: str
    long: str
    optional: bool
    max_suffix: int  # 0: no numeric suffix accepted; N: suffixes 1..N accepted
    slot: int | None = None  # NAME{N}: only suffix N (or none, the default slot) accepted

    def accepts(self, token: str) -> bool:
        m = _TOKEN.fullmatch(token)
        if not m:
            return False
        name, suffix = m.group(1).upper(), m.group(2)
        if name not in (self.short, self.long):
            return False
        if self.slot is not None:
            return not suffix or int(suffix) == self.slot
        return not suffix or 1 <= int(suffix) <= self.max_suffix


def compile_header(pattern: str) -> tuple[_Node, ...]:
    """Nodes of a manual-style header: upper case is the short form, ``[...]`` is optional,
    ``NAME[N]`` accepts no suffix or 1..N, ``NAME{N}`` no suffix or exactly N (a mainframe
    slot, 0 included); a trailing ``?`` is allowed and ignored.
    """
    text = pattern.strip().rstrip("?")
    nodes: list[_Node] = []
    pos = 0
    while pos < len(text):
        m = _NODE.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"bad SCPI header pattern {pattern!r} at {text[pos:]!r}")
        optional = m.group("oname") is not None
        name = m.group("oname") or m.group("name")
        suffix = m.group("osuffix") or m.group("suffix")
        slot = m.group("oslot") or m.group("slot")
        if not re.fullmatch(r"[A-Z]+[a-z]*", name):
            raise ValueError(f"node {name!r} in {pattern!r}: short form upper, then lower")
        short = "".join(c for c in name if c.isupper())
        nodes.append(_Node(
            short, name.upper(), optional, int(suffix) if suffix else 0,
            int(slot) if slot is not None else None,
        ))  # fmt: skip
        pos = m.end()
    if not nodes:
        raise ValueError(f"empty SCPI header pattern {pattern!r}")
    return tuple(nodes)


def _match(nodes: Sequence[_Node], tokens: Sequence[str]) -> bool:
    if not nodes:
        return not tokens
    if tokens and nodes[0].accepts(tokens[0]) and _match(nodes[1:], tokens[1:]):
        return True
    return nodes[0].optional and _match(nodes[1:], tokens)


@dataclass(frozen=True)
class Command:
    """One table row: a header pattern and its set and/or query handler."""

    pattern: str
    set: SetHandler | None = None
    query: QueryHandler | None = None

    def __post_init__(self) -> None:
        if self.set is None and self.query is None:
            raise ValueError(f"{self.pattern}: needs a set or a query handler")
        if self.pattern.rstrip().endswith("?") and self.set is not None:
            raise ValueError(f"{self.pattern}: a '?' pattern is query-only")
        object.__setattr__(self, "_nodes", compile_header(self.pattern))

    def matches(self, tokens: Sequence[str]) -> bool:
        return _match(self._nodes, tokens)  # type: ignore[attr-defined]


class ErrorQueue:
    """SCPI error/event queue: FIFO of (code, text), bounded; on overflow the newest entry
    is replaced by -350 and further errors are lost until it is read.
    """

    def __init__(self, capacity: int = 10, overflow_text: str = "Queue overflow") -> None:
        if capacity < 2:
            raise ValueError("error queue capacity must be at least 2")
        self.capacity = capacity
        self.overflow_text = overflow_text
        self._items: deque[tuple[int, str]] = deque()

    def push(self, code: int, text: str) -> None:
        if len(self._items) < self.capacity:
            self._items.append((code, text))
        else:
            self._items[-1] = (-350, self.overflow_text)

    def pop(self) -> tuple[int, str] | None:
        return self._items.popleft() if self._items else None

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._items))


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts, current, quote = [], [], ""
    for ch in text:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            current.append(ch)
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quote:
        raise ScpiError(-102, "unterminated string")
    parts.append("".join(current))
    return parts


def _split_unit(unit: str) -> tuple[str, list[str]]:
    """Header and parameters of one program message unit (header ends at white space)."""
    header, _, rest = re.sub(r"\s", " ", unit, count=1).partition(" ")
    rest = rest.strip()
    params = [p.strip() for p in _split_outside_quotes(rest, ",")] if rest else []
    if any(not p for p in params):
        raise ScpiError(-102, "empty parameter")
    return header, params


def _without_params(action: Callable[[], T]) -> Callable[[list[str]], T]:
    """A handler for a command that takes no parameters (-108 if it gets some)."""

    def handler(params: list[str]) -> T:
        expect_params(params, 0, 0)
        return action()

    return handler


_HEADER_CHARS = re.compile(r"[A-Za-z0-9:*?]+")


class ScpiEngine:
    """Executes program messages against a command table.

    Path rules: each message starts at the root; after a compound header ``A:B:C`` the next
    unit without a leading ``:`` is resolved under ``A:B``; a leading ``:`` returns to the
    root; common (``*``) commands do not move the path. A command error (-1xx) discards the
    rest of the message, other errors do not. Replies of several queries are joined by ``;``.
    """

    def __init__(
        self,
        commands: Sequence[Command],
        *,
        idn: Callable[[], str],
        reset: Callable[[], None],
        format_int: Callable[[int], str] = str,
        no_error: str = '0,"No error"',
        queue_size: int = 10,
        overflow_text: str = "Queue overflow",
        options: str | None = None,
    ) -> None:
        self.errors = ErrorQueue(queue_size, overflow_text)
        self.no_error = no_error
        self.format_int = format_int
        self.esr = 0  # Standard Event Status Register
        self.ese = 0  # its enable mask
        self.sre = 0  # service request enable mask
        self._idn = idn
        self._reset = reset
        self._commands: list[Command] = [*self._system_commands(), *commands]
        self._common: dict[str, tuple[SetHandler | None, QueryHandler | None]] = {
            "*IDN": (None, _without_params(self._idn)),
            "*RST": (_without_params(self._reset), None),
            "*CLS": (_without_params(self.clear_status), None),
            "*OPC": (_without_params(self._set_opc), _without_params(lambda: self.format_int(1))),
            "*WAI": (_without_params(lambda: None), None),
            "*TST": (None, _without_params(lambda: self.format_int(0))),
            "*ESR": (None, _without_params(self._read_esr)),
            "*ESE": (self._set_ese, _without_params(lambda: self.format_int(self.ese))),
            "*SRE": (self._set_sre, _without_params(lambda: self.format_int(self.sre))),
            "*STB": (None, _without_params(lambda: self.format_int(self.status_byte()))),
        }
        if options is not None:  # IEEE 488.2 *OPT?: installed options ("0" for none)
            self._common["*OPT"] = (None, _without_params(lambda: options))

    # -- error queue and status ------------------------------------------------------------

    def push_error(self, code: int, text: str | None = None) -> None:
        """Queue an error and set its event bit, as the instrument would."""
        self.errors.push(code, text or STANDARD_ERRORS.get(code, "Error"))
        if -199 <= code <= -100:
            self.esr |= ESR_CME
        elif -299 <= code <= -200:
            self.esr |= ESR_EXE
        elif -399 <= code <= -300 or code > 0:
            self.esr |= ESR_DDE
        elif -499 <= code <= -400:
            self.esr |= ESR_QYE

    def clear_status(self) -> None:
        """``*CLS``: empty the error queue and the event register."""
        self.errors.clear()
        self.esr = 0

    def status_byte(self) -> int:
        stb = STB_EAV if len(self.errors) else 0
        if self.esr & self.ese:
            stb |= STB_ESB
        if stb & self.sre:
            stb |= STB_MSS
        return stb

    def next_error(self) -> str:
        item = self.errors.pop()
        return self.no_error if item is None else f'{item[0]},"{item[1]}"'

    def _system_commands(self) -> list[Command]:
        return [
            Command("SYSTem:ERRor[:NEXT]?", query=_without_params(self.next_error)),
            Command(
                "SYSTem:ERRor:COUNt?",
                query=_without_params(lambda: self.format_int(len(self.errors))),
            ),
        ]

    # -- common commands ---------------------------------------------------------------------

    def _int_param(self, params: list[str]) -> int:
        expect_params(params, 1, 1)
        value, suffix = split_number(params[0])
        if suffix:
            raise ScpiError(-131, params[0])
        if not 0 <= round(value) <= 255:
            raise ScpiError(-222, params[0])
        return round(value)

    def _set_opc(self) -> None:
        self.esr |= ESR_OPC  # every operation here completes at once

    def _read_esr(self) -> str:
        value, self.esr = self.esr, 0
        return self.format_int(value)

    def _set_ese(self, params: list[str]) -> None:
        self.ese = self._int_param(params)

    def _set_sre(self, params: list[str]) -> None:
        self.sre = self._int_param(params) & ~STB_MSS

    # -- message processing ----------------------------------------------------------------

    def process(self, message: str) -> str | None:
        """Execute one program message; return the joined replies, or None if no query."""
        replies: list[str] = []
        try:
            units = _split_outside_quotes(message, ";")
        except ScpiError as exc:
            self.push_error(exc.code)
            return None
        path: list[str] = []
        for raw in units:
            unit = raw.strip()
            if not unit:
                continue
            try:
                handler, params, is_query, path = self._resolve(unit, path)
                reply = handler(params)
            except ScpiError as exc:
                log.debug("SCPI %r: %s", unit, exc)
                self.push_error(exc.code, exc.text)
                if -199 <= exc.code <= -100:
                    break  # a command error discards the rest of the message
                continue
            except Exception:  # a model bug must not kill the server: report it like firmware
                log.exception("SCPI handler failed on %r", unit)
                self.push_error(-300)
                continue
            if is_query and reply is not None:
                replies.append(reply)
        return ";".join(replies) if replies else None

    def _resolve(
        self, unit: str, path: list[str]
    ) -> tuple[Callable[[list[str]], str | None], list[str], bool, list[str]]:
        """Handler, parameters, query flag and the path the next unit starts from."""
        header, params = _split_unit(unit)
        if not _HEADER_CHARS.fullmatch(header):
            raise ScpiError(-102, header)
        is_query = header.endswith("?")
        name = header[:-1] if is_query else header
        if name.startswith("*"):
            set_handler, query_handler = self._common.get(name.upper(), (None, None))
            handler = query_handler if is_query else set_handler
            if handler is None:
                raise ScpiError(-113, header)
            return handler, params, is_query, path
        absolute = name.startswith(":")
        tokens = name[1:].split(":") if absolute else name.split(":")
        if any(not t or "?" in t or "*" in t for t in tokens):
            raise ScpiError(-102, header)
        full = tokens if absolute else [*path, *tokens]
        for command in self._commands:
            handler = command.query if is_query else command.set
            if handler is not None and command.matches(full):
                return handler, params, is_query, full[:-1]
        raise ScpiError(-113, header)


class SimulatedInstrument:
    """Base of the instrument models: an engine, a lock and an injected clock.

    Subclasses set ``read_termination``/``write_termination`` (what the real instrument
    expects and sends) and build ``self.engine``. Other threads (a coupling layer) change the
    model's attributes while holding ``self.lock``.
    """

    model = "instrument"
    read_termination = "\n"
    write_termination = "\n"

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or time.monotonic
        self.lock = threading.RLock()
        self.engine: ScpiEngine
        #: Wall-clock seconds per modelled second of work (averaging, tuning): 1.0 behaves like
        #: the instrument, 0.01 a hundred times faster (tests), 0 answers at once.
        self.time_scale = 1.0
        self._work_s = 0.0

    def take_time(self, seconds: float) -> None:
        """The message being processed keeps the instrument busy ``seconds`` (model time)."""
        self._work_s += max(seconds, 0.0)

    def process(self, message: str) -> str | None:
        return self.process_timed(message)[0]

    def process_timed(self, message: str) -> tuple[str | None, float]:
        """The reply, and how long (wall-clock s) a server waits before sending it."""
        with self.lock:
            self._work_s = 0.0
            reply = self.engine.process(message)
            return reply, self._work_s * self.time_scale
