"""The receive loop both simulated-hardware TCP servers use."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator


def received_chunks(conn: socket.socket, stop: threading.Event) -> Iterator[bytes]:
    """Yield what ``conn`` receives until the peer closes, the socket fails or ``stop`` is set.

    ``conn`` must have a timeout, so ``stop`` is seen even when the peer is silent.
    """
    while not stop.is_set():
        try:
            data = conn.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return
        if not data:
            return
        yield data
