"""Serve one simulated SCPI instrument on a TCP socket, as a LAN instrument's raw socket does.

A pyvisa client reaches it as ``TCPIP::127.0.0.1::<port>::SOCKET`` with the model's
terminations (pyvisa-py needs no vendor VISA). The byte stream is split on the model's read
termination, each message goes to ``instrument.process`` and a reply gets the write
termination. Clients are served one after another. ``faults`` makes the server stop answering
or cut a reply short, for driver tests. See docs/instrument-sim.md.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from dataclasses import dataclass
from types import TracebackType

from lumina_hal.sim.scpi.engine import SimulatedInstrument
from lumina_hal.sim.socket_io import received_chunks

log = logging.getLogger(__name__)

POLL_S = 0.1  # how often blocked accept/recv calls look at the stop flag


@dataclass
class ServerFaults:
    """Misbehaviour switched on by a test; read by the serving thread at each message."""

    unresponsive: bool = False  # read and drop every message: the client times out
    cut_next_reply: bool = False  # send half of the next reply, then close the connection


class ScpiTcpServer:
    """The instrument on ``host:port`` (port 0 picks a free one; see ``.port``)."""

    def __init__(
        self,
        instrument: SimulatedInstrument,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_message_bytes: int = 4096,
    ) -> None:
        self.instrument = instrument
        self.faults = ServerFaults()
        self.max_message_bytes = max_message_bytes
        self._sock = socket.create_server((host, port))
        self._sock.settimeout(POLL_S)
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._conn: socket.socket | None = None
        self._conn_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._serve, name=f"scpi-{instrument.model}-{self.port}", daemon=True
        )

    @property
    def resource(self) -> str:
        """The VISA resource string a pyvisa client opens."""
        return f"TCPIP::{self.host}::{self.port}::SOCKET"

    def start(self) -> ScpiTcpServer:
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and drop any client; returns within a few polling periods."""
        self._stop.set()
        with self._conn_lock:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        if self._thread.is_alive():
            self._thread.join(timeout=5 * POLL_S + 1.0)

    def __enter__(self) -> ScpiTcpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- serving thread --------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            log.info("%s: client %s connected", self.instrument.model, peer)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(POLL_S)
            with self._conn_lock:
                self._conn = conn
            try:
                self._client(conn)
            finally:
                with self._conn_lock:
                    self._conn = None
                conn.close()
                log.info("%s: client %s gone", self.instrument.model, peer)

    def _client(self, conn: socket.socket) -> None:
        terminator = self.instrument.read_termination.encode("ascii")
        buffer = bytearray()
        discarding = False  # inside an over-long message: drop up to its terminator
        for data in received_chunks(conn, self._stop):
            buffer += data
            while (end := buffer.find(terminator)) >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + len(terminator)]
                if discarding:
                    discarding = False
                elif len(line) > self.max_message_bytes:
                    self._overrun()
                elif not self._answer(conn, line):
                    return
            if discarding:  # still inside a dropped message
                buffer.clear()
            elif len(buffer) > self.max_message_bytes:  # no terminator yet: drop up to it
                self._overrun()
                buffer.clear()
                discarding = True

    def _overrun(self) -> None:
        log.warning(
            "%s: message longer than %d bytes dropped",
            self.instrument.model,
            self.max_message_bytes,
        )
        with self.instrument.lock:
            self.instrument.engine.push_error(-363)

    def _answer(self, conn: socket.socket, line: bytes) -> bool:
        """Process one message and send its reply; False when the connection must end."""
        if self.faults.unresponsive:
            return True
        reply = self.instrument.process(line.decode("ascii", errors="replace").strip())
        if reply is None:
            return True
        payload = (reply + self.instrument.write_termination).encode("ascii", errors="replace")
        try:
            if self.faults.cut_next_reply:
                self.faults.cut_next_reply = False
                conn.sendall(payload[: len(payload) // 2])
                return False
            conn.sendall(payload)
        except OSError:
            return False
        return True
