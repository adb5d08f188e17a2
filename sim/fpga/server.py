"""Serve the FPGA emulator on a pseudo-terminal or a TCP socket (``lumina-hal sim fpga``).

The real driver then talks to it unchanged: ``fpga:///dev/pts/N`` or
``fpga+tcp://127.0.0.1:PORT``. The pty is put in raw mode before anything is sent (a fresh
pty is cooked and would eat 0x03/0x13), and reads and writes run on separate threads with a
bounded queue between them, because a pty holds only ~18 kB per direction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import socket
import threading
import time
import tty

from lumina_hal.drivers.fpga.framing import FLAG_ERR, FLAG_RESP, Frame, FrameDecoder, encode_frame
from lumina_hal.drivers.fpga.messages import ErrorCode, ErrorReply
from lumina_hal.sim.fpga.faults import FaultInjector, FaultyEndpoint
from lumina_hal.sim.fpga.firmware import FirmwareEmulator
from lumina_hal.sim.socket_io import received_chunks

log = logging.getLogger(__name__)

QUEUE_FRAMES = 256
HANDOVER_S = 0.5  # how long a new TCP client waits for the previous one to be seen leaving


class PtyServer:
    """The emulator behind a pseudo-terminal; ``path`` is the device a driver opens."""

    def __init__(self, emulator: FirmwareEmulator, faults: FaultInjector) -> None:
        self._endpoint = FaultyEndpoint(emulator, faults)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # before anything is written: no echo, no ^C/^S processing
        self.path = os.ttyname(self._slave)
        self._out: queue.Queue[bytes] = queue.Queue(QUEUE_FRAMES)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._read_loop, daemon=True),
            threading.Thread(target=self._write_loop, daemon=True),
        ]

    def start(self) -> PtyServer:
        for t in self._threads:
            t.start()
        return self

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self._master, 65536)
            except OSError:  # the client side closed; keep serving the next one
                continue
            try:
                reply = self._endpoint.handle(data)
            except Exception:  # never let one bad input take the server down
                log.exception("FPGA emulator fault on the pty; input dropped")
                continue
            if reply and self._out.empty():  # fast path: write now if the pty takes it all
                try:
                    reply = reply[os.write(self._master, reply) :]
                except BlockingIOError:
                    pass
                except OSError:
                    continue
            if reply:
                try:
                    self._out.put(reply, timeout=1.0)
                except queue.Full:
                    log.warning("pty output queue full; a reply was dropped")

    def _write_loop(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._out.get(timeout=0.1)
            except queue.Empty:
                continue
            view = memoryview(data)
            while view and not self._stop.is_set():
                try:
                    view = view[os.write(self._master, view) :]
                except BlockingIOError:
                    select.select([], [self._master], [], 0.1)
                except OSError:
                    break

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=1.0)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class TcpServer:
    """The emulator on a TCP socket (loopback by default).

    One client holds the chip at a time; a second client connected meanwhile is answered
    IN_USE for every request (docs/protocol.md §7) until the first one leaves. Each client
    runs on its own thread, and nothing a client sends can stop the accept loop: a fault
    while serving one client is logged and ends that connection only.
    """

    def __init__(
        self,
        emulator: FirmwareEmulator,
        faults: FaultInjector,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._endpoint = FaultyEndpoint(emulator, faults)
        self._sock = socket.create_server((host, port))
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._owner_lock = threading.Lock()
        self._owner: str | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._clients: list[threading.Thread] = []

    def start(self) -> TcpServer:
        self._thread.start()
        return self

    def _serve(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            thread = threading.Thread(target=self._client, args=(conn, peer), daemon=True)
            self._clients = [t for t in self._clients if t.is_alive()] + [thread]
            thread.start()

    def _client(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        name = f"{peer[0]}:{peer[1]}"
        with conn:
            owner, holder = self._take(name)
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.settimeout(0.1)
                if owner:
                    self._serve_owner(conn)
                else:
                    self._refuse(conn, name, holder)
            except Exception:  # never let one client take the server down
                log.exception("FPGA emulator: serving %s failed; connection closed", name)
            finally:
                if owner:
                    with self._owner_lock:
                        self._owner = None

    def _take(self, name: str) -> tuple[bool, str]:
        """(True, name) if this client now holds the chip, else (False, the holder). A holder
        that just closed its socket gets HANDOVER_S to be noticed, so reconnecting works."""
        deadline = time.monotonic() + HANDOVER_S
        while True:
            with self._owner_lock:
                if self._owner is None:
                    self._owner = name
                    return True, name
                holder = self._owner
            if time.monotonic() > deadline:
                return False, holder
            time.sleep(0.01)

    def _serve_owner(self, conn: socket.socket) -> None:
        for data in received_chunks(conn, self._stop):
            reply = self._endpoint.handle(data)
            if reply:
                try:
                    conn.sendall(reply)
                except OSError:
                    return

    def _refuse(self, conn: socket.socket, name: str, holder: str) -> None:
        """Answer every request of a second client with IN_USE, naming the holder."""
        decoder = FrameDecoder()
        log.warning("FPGA emulator: %s refused, the chip is held by %s", name, holder)
        for data in received_chunks(conn, self._stop):
            for frame in decoder.feed(data):
                error = ErrorReply(ErrorCode.IN_USE, message=f"in use by {holder}").pack()
                reply = Frame(
                    frame.opcode, frame.seq, error, FLAG_RESP | FLAG_ERR, frame.chan, frame.session
                )
                try:
                    conn.sendall(encode_frame(reply))
                except OSError:
                    return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        for thread in self._clients:
            thread.join(timeout=1.0)
        self._sock.close()
