"""The ports PhlLink talks through: a TCP socket, and a serial port with leaner hot calls.

pyserial's ``socket://`` reports ``in_waiting`` as 0 or 1 and reads until its size or
timeout, so a reply arrives byte by byte; ``SocketPort`` reads whatever has arrived in one
``recv``. It sets TCP_NODELAY, and PhlLink writes each frame with one call.
``SerialPort`` is pyserial's POSIX Serial whose ``read`` and ``write`` go straight to its
non-blocking descriptor: pyserial's own read asks ``in_waiting`` first and loops with a
Timeout object, and its write selects after every write and re-slices the rest (copies).
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import struct
import termios
from typing import Any

import serial


class SocketPort:
    """``write``, ``read``, ``in_waiting``, ``timeout``, ``reset_input_buffer``, ``close``."""

    #: ``read`` returns whatever has arrived whatever its ``size``: no need to ask first
    reads_available = True

    def __init__(self, host: str, port: int, connect_timeout_s: float = 5.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=connect_timeout_s)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.setblocking(False)
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        self._poll = poller.poll  # ms; returns at once when bytes are waiting
        self.timeout: float | None = 0.05

    @property
    def in_waiting(self) -> int:
        raw = fcntl.ioctl(self._sock.fileno(), termios.FIONREAD, b"\x00\x00\x00\x00")
        return struct.unpack("i", raw)[0]

    def write(self, data: bytes) -> int:
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):  # the common case: one frame, one send
            return sent
        view = memoryview(data)[sent:]
        while view:
            try:
                view = view[self._sock.send(view) :]
            except BlockingIOError:
                select.select([], [self._sock], [], 1.0)
        return len(data)

    def read(self, size: int = 1) -> bytes:
        """Whatever has arrived (up to 64 kB, or ``size`` if larger), waiting up to ``timeout``
        for the first byte."""
        # poll, not a failed recv first: a raised BlockingIOError costs more than a poll
        timeout_ms = None if self.timeout is None else self.timeout * 1000.0
        if not self._poll(timeout_ms):
            return b""
        try:
            data = self._sock.recv(max(size, 65536))
        except BlockingIOError:
            return b""
        if not data:
            raise ConnectionError("the FPGA closed the TCP connection")
        return data

    def reset_input_buffer(self) -> None:
        while select.select([self._sock], [], [], 0)[0]:
            if not self._sock.recv(65536):
                break

    def close(self) -> None:
        self._sock.close()


class SerialPort(serial.Serial):
    """pyserial's Serial (configuration, flush, close as pyserial does them) with the two
    calls a link makes per frame done directly on the descriptor pyserial opened with
    O_NONBLOCK."""

    #: ``read`` returns whatever has arrived whatever its ``size``: no need to ask first
    reads_available = True

    def read(self, size: int = 1) -> bytes:
        """Whatever has arrived (up to 64 kB, or ``size`` if larger), waiting up to
        ``timeout`` for the first byte."""
        if not self.is_open:
            raise serial.PortNotOpenError()
        data = self._read_now(size)  # a tty with VMIN = 0 reads b"" when nothing is there
        if data or not select.select([self.fd], [], [], self._timeout)[0]:
            return data
        data = self._read_now(size)
        if not data:  # readable but empty: the device went away (as pyserial reports it)
            raise serial.SerialException("device reports readiness to read but returned no data")
        return data

    def _read_now(self, size: int) -> bytes:
        try:
            return os.read(self.fd, max(size, 65536))
        except BlockingIOError:
            return b""

    def write(self, data: Any) -> int:
        """All of ``data``, waiting for room as long as it takes (pyserial's default)."""
        if not self.is_open:
            raise serial.PortNotOpenError()
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except BlockingIOError:  # full: wait for room below
                written = 0
            view = view[written:]
            if view:
                select.select([], [self.fd], [], 1.0)
        return len(data)
