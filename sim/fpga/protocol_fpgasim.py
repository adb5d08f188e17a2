"""pyserial URL handler ``fpgasim://?rows=..&seed=..``: the FPGA emulator in-process.

``serial.serial_for_url("fpgasim://?seed=1")`` (after ``lumina_hal.sim.fpga`` is appended to
``serial.protocol_handler_packages``) gives a port whose writes go to a FirmwareEmulator
and whose reads return its replies, so the real driver runs unchanged without a pty or a
socket. Replies wait in a bounded buffer guarded by a condition variable.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import serial
from serial import SerialBase, SerialException

from lumina_hal.sim.fpga.faults import FaultInjector, FaultyEndpoint, build_endpoint
from lumina_hal.sim.fpga.firmware import FirmwareEmulator

MAX_BUFFER = 1 << 22  # bytes of replies held before the emulator stops answering


class Serial(SerialBase):
    """A pyserial port backed by an in-process FirmwareEmulator."""

    is_open: bool  # set by pyserial's (untyped) SerialBase

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.endpoint: FaultyEndpoint | None = None
        self._rx = bytearray()
        self._cond = threading.Condition()
        super().__init__(*args, **kwargs)

    def open(self) -> None:
        if self._port is None:
            raise SerialException("port must be configured before it can be used")
        if self.is_open:
            raise SerialException("port already open")
        self.endpoint = build_endpoint(self.from_url(self.portstr))
        self._rx.clear()
        self.is_open = True

    def from_url(self, url: str) -> dict[str, Any]:
        parts = urlsplit(url)
        if parts.scheme != "fpgasim":
            raise SerialException(f"expected fpgasim://, got {url!r}")
        return dict(parse_qsl(parts.query))

    def close(self) -> None:
        self.is_open = False
        with self._cond:
            self._cond.notify_all()

    def _reconfigure_port(self) -> None:  # baud rate and the like mean nothing here
        pass

    @property
    def in_waiting(self) -> int:
        with self._cond:
            return len(self._rx)

    def write(self, data: bytes) -> int:
        if not self.is_open or self.endpoint is None:
            raise serial.PortNotOpenError()
        reply = self.endpoint.handle(bytes(data))
        with self._cond:
            if len(self._rx) + len(reply) <= MAX_BUFFER:
                self._rx += reply
            self._cond.notify_all()
        return len(data)

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise serial.PortNotOpenError()
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        with self._cond:
            while len(self._rx) < size and self.is_open:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining)
            data = bytes(self._rx[:size])
            del self._rx[:size]
            return data

    @property
    def emulator(self) -> FirmwareEmulator | None:
        return self.endpoint.emulator if self.endpoint else None

    @property
    def faults(self) -> FaultInjector | None:
        return self.endpoint.faults if self.endpoint else None

    def reset_input_buffer(self) -> None:
        with self._cond:
            self._rx.clear()

    def reset_output_buffer(self) -> None:
        pass
