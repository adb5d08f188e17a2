"""FPGA link benchmark: PHL1 against a raw echo on the same transport (pty and TCP).

For each transport it measures, side by side in one run:
- round trip of a small request: a raw 32-byte write/read echo vs a PHL1 PING with a
  16-byte payload vs a 1-vector RUN through ``chip.matmul`` (8x8);
- bulk throughput: a raw echo of the same number of bytes in 8 kB writes (a reader thread
  drains the echo) vs ``chip.load_weights`` of a matrix whose codes are that many bytes.
It prints PHL1 as a fraction of the raw link. Targets: upload >= 90 % of raw throughput,
small-call latency within 2x of the raw round trip.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import threading
import time
import tty
import zlib
from collections.abc import Callable

import numpy as np

import lumina_hal
from lumina_hal.drivers.fpga import messages as msg
from lumina_hal.sim.fpga.faults import FaultInjector
from lumina_hal.sim.fpga.firmware import FirmwareEmulator
from lumina_hal.sim.fpga.server import PtyServer, TcpServer
from lumina_hal.twin import reference


def _pty_echo() -> tuple[int, Callable[[], None]]:
    """A raw pty whose far end echoes every byte; returns (client fd, stop)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    client = os.open(os.ttyname(slave), os.O_RDWR | os.O_NOCTTY)
    tty.setraw(client)
    stop = threading.Event()

    def echo() -> None:
        while not stop.is_set():
            if select.select([master], [], [], 0.05)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:  # closed under us at the end of a measurement
                    return
                view = memoryview(data)
                while view:
                    view = view[os.write(master, view) :]

    threading.Thread(target=echo, daemon=True).start()

    def close() -> None:
        stop.set()
        time.sleep(0.06)  # let the echo thread see the stop flag before its fd goes away
        for fd in (client, slave, master):
            os.close(fd)

    return client, close


def _tcp_echo() -> tuple[socket.socket, Callable[[], None]]:
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while not stop.is_set():
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    client = socket.create_connection(server.getsockname())
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close() -> None:
        stop.set()
        client.close()
        server.close()

    return client, close


def _raw_io(
    kind: str,
) -> tuple[Callable[[bytes], None], Callable[[int], bytes], Callable[[], None]]:
    if kind == "pty":
        fd, close = _pty_echo()
        return (lambda b: _write_all(fd, b)), (lambda n: os.read(fd, n)), close
    sock, close = _tcp_echo()
    return sock.sendall, sock.recv, close


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def raw_round_trip_s(kind: str, repeats: int) -> float:
    write, read, close = _raw_io(kind)
    message = bytes(range(32))
    best = float("inf")
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            write(message)
            got = 0
            while got < len(message):
                got += len(read(len(message) - got))
            best = min(best, time.perf_counter() - start)
    finally:
        close()
    return best


def raw_throughput_bps(kind: str, nbytes: int) -> float:
    write, read, close = _raw_io(kind)
    block = bytes(8192)
    done = threading.Event()
    received = [0]

    def drain() -> None:
        while received[0] < nbytes:
            received[0] += len(read(65536))
        done.set()

    try:
        threading.Thread(target=drain, daemon=True).start()
        start = time.perf_counter()
        for _ in range(nbytes // len(block)):
            write(block)
        done.wait(60)
        return nbytes / (time.perf_counter() - start)
    finally:
        close()


def _serve(kind: str, rows: int, cols: int):
    emulator = FirmwareEmulator(rows=rows, cols=cols, seed=1)
    faults = FaultInjector.from_params({})
    if kind == "pty":
        server = PtyServer(emulator, faults).start()
        return server, f"fpga://{server.path}"
    server = TcpServer(emulator, faults).start()
    return server, "fpga+tcp://{}:{}".format(*server.address)


def phl_round_trips_s(kind: str, repeats: int) -> tuple[float, float]:
    server, uri = _serve(kind, 8, 8)
    try:
        with lumina_hal.open_device(uri) as chip:
            chip.load_weights(np.eye(8))
            link = chip._link
            x = np.ones(8, dtype=np.float32)
            ping = run = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                link.request(0x02, bytes(16))
                ping = min(ping, time.perf_counter() - start)
                start = time.perf_counter()
                chip.matmul(x)
                run = min(run, time.perf_counter() - start)
            return ping, run
    finally:
        server.close()


def phl_upload_bps(kind: str, side: int, repeats: int) -> tuple[float, float]:
    """(bulk transfer B/s: W_BEGIN + windowed W_CHUNKs, whole load_weights B/s).

    The whole upload also includes the commit, where the emulator computes the chip's
    static physics (a real FPGA latches the DACs instead), and the host-side conversion.
    """
    server, uri = _serve(kind, side, side)
    try:
        with lumina_hal.open_device(uri) as chip:
            w = np.random.default_rng(0).uniform(-1, 1, size=(side, side))
            link, hello = chip._link, chip._hello
            codes, _ = reference.heater_codes(
                w, hello.weight_bits, (hello.loss_row_db, hello.loss_col_db)
            )
            data = codes.astype("<i4").tobytes()
            step = (hello.max_payload - msg.WChunk.HEAD.size) // 4 * 4
            transfer = whole = float("inf")
            for txn in range(1, repeats + 1):
                chunks = [
                    msg.WChunk(txn, off, data[off : off + step]).pack()
                    for off in range(0, len(data), step)
                ]
                start = time.perf_counter()
                link.request(
                    msg.Opcode.W_BEGIN,
                    msg.WBegin(txn, side, side, len(data), zlib.crc32(data)).pack(),
                )
                link.request_window(msg.Opcode.W_CHUNK, chunks, hello.window)
                transfer = min(transfer, time.perf_counter() - start)
                link.request(msg.Opcode.W_ABORT, txn.to_bytes(4, "little"))
                start = time.perf_counter()
                chip.load_weights(w)
                whole = min(whole, time.perf_counter() - start)
            return len(data) / transfer, len(data) / whole
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=512, help="uploaded matrix is side x side")
    parser.add_argument("--repeats", type=int, default=200, help="round trips per measurement")
    args = parser.parse_args()
    nbytes = 4 * args.side * args.side
    print(
        f"FPGA link benchmark: {args.side}x{args.side} upload ({nbytes / 2**20:.1f} MiB of "
        f"codes), best of {args.repeats} round trips"
    )
    header = (
        "transport",
        "raw RTT us",
        "PING us",
        "RUN us",
        "PING/raw",
        "RUN/raw",
        "raw MB/s",
        "bulk MB/s",
        "bulk/raw",
        "load MB/s",
    )
    print("  ".join(f"{h:>11}" for h in header))
    for kind in ("pty", "tcp"):
        raw_rtt = raw_round_trip_s(kind, args.repeats)
        ping, run = phl_round_trips_s(kind, args.repeats)
        raw_bps = raw_throughput_bps(kind, nbytes)
        bulk_bps, load_bps = phl_upload_bps(kind, args.side, 3)
        row = (
            kind,
            f"{raw_rtt * 1e6:.1f}",
            f"{ping * 1e6:.1f}",
            f"{run * 1e6:.1f}",
            f"{ping / raw_rtt:.2f}x",
            f"{run / raw_rtt:.2f}x",
            f"{raw_bps / 1e6:.1f}",
            f"{bulk_bps / 1e6:.1f}",
            f"{bulk_bps / raw_bps:.0%}",
            f"{load_bps / 1e6:.1f}",
        )
        print("  ".join(f"{c:>11}" for c in row))
    print(
        "targets: bulk/raw >= 90 %, PING/raw and RUN/raw <= 2x; 'load' is the whole "
        "load_weights, including the emulator's physics at commit"
    )


if __name__ == "__main__":
    main()
