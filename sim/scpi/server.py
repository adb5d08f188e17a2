"""Serve one simulated SCPI instrument on a TCP socket, as a LAN instrument's raw socket does.

A pyvisa client reaches it as ``TCPIP::127.0.0.1::<port>::SOCKET`` with the model's
terminations (pyvisa-py needs no vendor VISA). The byte stream is split on the model's read
termination, each message goes to ``instrument.process`` and a reply gets the write
termination. Up to ``max_clients`` connections are served at once, each by its own thread,
on one shared instrument (one error queue, as on a real instrument); a connection beyond that
is accepted and closed at once, so the client sees a clear refusal instead of a hang.
``faults`` makes the server stop answering or cut a reply short, for driver tests. See
docs/instrument-sim.md.
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
        max_clients: int = 4,
    ) -> None:
        if max_clients < 1:
            raise ValueError(f"max_clients must be >= 1, got {max_clients}")
        self.instrument = instrument
        self.faults = ServerFaults()
        self.max_message_bytes = max_message_bytes
        self.max_clients = max_clients
        self.refused = 0  # connections closed at once because max_clients were being served
        self._sock = socket.create_server((host, port))
        self._sock.settimeout(POLL_S)
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
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
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
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
            with self._conn_lock:
                full = len(self._conns) >= self.max_clients
                if not full:
                    self._conns.add(conn)
            if full:
                self.refused += 1
                log.warning("%s: client %s refused (%d served)", self.instrument.model, peer,
                            self.max_clients)
                conn.close()
                continue
            log.info("%s: client %s connected", self.instrument.model, peer)
            threading.Thread(
                target=self._session, args=(conn, peer), daemon=True,
                name=f"scpi-{self.instrument.model}-{self.port}-{peer[1]}",
            ).start()

    def _session(self, conn: socket.socket, peer: object) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(POLL_S)
        try:
            self._client(conn)
        finally:
            with self._conn_lock:
                self._conns.discard(conn)
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
        reply, delay_s = self.instrument.process_timed(
            line.decode("ascii", errors="replace").strip()
        )
        if delay_s > 0 and self._stop.wait(delay_s):  # the instrument is busy; stop wins
            return False
        if reply is None:
            return True
        # latin-1: ASCII replies unchanged, and a binary block's bytes 0-255 pass through
        payload = (reply + self.instrument.write_termination).encode("latin-1", errors="replace")
        try:
            if self.faults.cut_next_reply:
                self.faults.cut_next_reply = False
                conn.sendall(payload[: len(payload) // 2])
                return False
            conn.sendall(payload)
        except OSError:
            return False
        return True
