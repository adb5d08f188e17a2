"""Check a driver's exact command strings against a recorded exchange (no instrument needed).

In the spirit of PyMeasure's ``expected_protocol``: the fake resource below plays back a list
of ``(command, reply)`` pairs — ``reply`` None for a write — and fails on the first command that
differs, on a write where a query was expected (or the reverse), and, at the end, on pairs that
were never sent. Third-party driver authors can use it too::

    with expected_protocol(MyLaser, [("*IDN?", "ACME,LD100,1,1.0"), ...]) as laser:
        laser.output = True
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from lumina_hal.bench.limits import Limits
from lumina_hal.drivers.instruments.scpi import ScpiInstrument
from lumina_hal.errors import LuminaError

Exchange = tuple[str, "str | BaseException | None"]


class ExpectedProtocolError(LuminaError, AssertionError):
    """The driver sent something other than the recorded exchange (raised even under -O)."""


class ExpectedProtocolResource:
    """A VisaResource that checks every write/query against ``exchanges`` in order.

    A reply that is an exception instance is raised instead of returned (timeouts, lost links).
    """

    def __init__(self, exchanges: Sequence[Exchange]) -> None:
        self.exchanges = list(exchanges)
        self.position = 0
        self.timeout: float | None = 2000.0
        self.closed = False
        self.sent: list[str] = []

    def _next(self, message: str, kind: str) -> str | BaseException | None:
        self.sent.append(message)
        if self.position >= len(self.exchanges):
            raise ExpectedProtocolError(
                f"unexpected {kind} {message!r} after the end of the recorded exchange"
            )
        expected, reply = self.exchanges[self.position]
        self.position += 1
        if message != expected:
            raise ExpectedProtocolError(
                f"exchange #{self.position}: driver sent {kind} {message!r}, expected {expected!r}"
            )
        return reply

    def write(self, message: str) -> int:
        reply = self._next(message, "write")
        if isinstance(reply, BaseException):
            raise reply
        if reply is not None:
            raise ExpectedProtocolError(
                f"exchange #{self.position}: {message!r} was written, but the recording expects a "
                f"query answered with {reply!r}"
            )
        return len(message)

    def query(self, message: str) -> str:
        reply = self._next(message, "query")
        if isinstance(reply, BaseException):
            raise reply
        if reply is None:
            raise ExpectedProtocolError(
                f"exchange #{self.position}: {message!r} was queried, but the recording expects "
                "a write"
            )
        return reply

    def close(self) -> None:
        self.closed = True

    def assert_done(self) -> None:
        if self.position != len(self.exchanges):
            missing = [c for c, _ in self.exchanges[self.position :]]
            raise ExpectedProtocolError(f"the driver never sent: {missing}")


@contextmanager
def expected_protocol(
    driver: type[ScpiInstrument],
    exchanges: Sequence[Exchange],
    *,
    safe_on_close: bool = False,
    limits: Limits | None = None,
    **kwargs: Any,
) -> Iterator[Any]:
    """Open ``driver`` on a fake resource that plays ``exchanges``; check all were used.

    ``safe_on_close`` is False by default so the recording need not include the safe state.
    ``limits`` are fixed at open, as ``open_instrument(..., limits=...)`` does. A recording
    that ends after the open proves that nothing at all is written afterwards.
    """
    resource = ExpectedProtocolResource(exchanges)
    instrument = driver("FAKE::INSTR", resource=resource, **kwargs)
    instrument.safe_on_close = safe_on_close
    if limits is not None:
        instrument.limits = limits
    instrument.open()
    try:
        yield instrument
    finally:
        instrument.close()
    resource.assert_done()
