"""FPGA link benchmark: what the PHL1 driver really does, next to the raw link, in one run.

The emulator and the raw echo servers run in a separate process (as a board would be), so
the host side is measured alone. For TCP and pty it prints:
- raw RTT of a message the size of a small RUN request, PING and a 1-vector 8x8 RUN through
  ``chip.matmul`` (the RUN goal: <= 60 us above the raw echo of the same size);
- raw throughput (8 kB writes, echo drained) vs the weight data of an upload exactly as the
  driver sends it: W_BEGIN then the W_CHUNKs pipelined inside HELLO's window
  (``FpgaDevice._upload``'s own chunking and window; goals >= 125 MB/s over TCP, pty >= 50 %
  of raw); and the whole ``load_weights`` (which adds the emulator's physics at commit).

Beside each wall time it prints the CPU time both ends spent per exchange (this process's
``process_time``; the peer's from /proc/PID/task/*/schedstat, in ns), because on a loaded
machine wall times mostly measure the scheduler: the CPU columns show what bounds a goal.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import select
import socket
import subprocess
import sys
import time
import tty
import zlib
from typing import Any

import numpy as np

import lumina_hal
from lumina_hal.drivers.fpga import device as fpga_device
from lumina_hal.drivers.fpga import messages as msg

SERVER = r"""
import os, select, socket, sys, threading, time, tty
kind, what = sys.argv[1], sys.argv[2]
if what == "phl1":
    from lumina_hal.sim.fpga.faults import FaultInjector, FaultRates
    from lumina_hal.sim.fpga.firmware import FirmwareEmulator
    from lumina_hal.sim.fpga.server import PtyServer, TcpServer
    side = int(sys.argv[3])
    emulator = FirmwareEmulator(rows=side, cols=side, seed=1)
    faults = FaultInjector(FaultRates())
    if kind == "pty":
        server = PtyServer(emulator, faults).start()
        print(server.path, flush=True)
    else:
        server = TcpServer(emulator, faults).start()
        print("%s:%d" % server.address, flush=True)
    sys.stdin.read()
elif kind == "tcp":
    listener = socket.create_server(("127.0.0.1", 0))
    print("127.0.0.1:%d" % listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
        conn.close()
else:
    master, slave = os.openpty()
    tty.setraw(slave)
    print(os.ttyname(slave), flush=True)
    while True:
        select.select([master], [], [])
        data = os.read(master, 65536)
        view = memoryview(data)
        while view:
            view = view[os.write(master, view):]
"""


def cpu_description() -> str:
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("model name") and model.startswith(("unknown", "x86")):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    return f"{model}; ISA {' '.join(isa) or 'baseline'}; {os.cpu_count()} CPUs"


def cpu_s(pid: int | None = None) -> float:
    """CPU seconds of this process, or of every thread of process ``pid`` (schedstat, ns)."""
    if pid is None:
        return time.process_time()
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/schedstat") as f:
            total += int(f.read().split()[0])
    return total * 1e-9


class Cpu:
    """CPU seconds both ends spend per exchange: ``host_s`` here, ``peer_s`` in the peer
    process. Each ``with`` block times ``count`` exchanges; the block whose two ends spent
    the least is kept (the least disturbed one, as the wall times are a best of)."""

    def __init__(self, peer: Peer) -> None:
        self.pid = peer.process.pid
        self.host_s = self.peer_s = float("inf")
        self.count = 1

    def __enter__(self) -> Cpu:
        self._host, self._peer = cpu_s(), cpu_s(self.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        host = (cpu_s() - self._host) / self.count
        peer = (cpu_s(self.pid) - self._peer) / self.count
        if host + peer < self.host_s + self.peer_s:
            self.host_s, self.peer_s = host, peer


BLOCK = 25  # exchanges per CPU measurement block


class Peer:
    """A server process (raw echo or the PHL1 emulator); ``address`` is what it printed."""

    def __init__(self, kind: str, what: str, side: int = 0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, kind, what, str(side)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.address = self.process.stdout.readline().strip()  # type: ignore[union-attr]

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def raw_link(kind: str, address: str):
    """(write, read, close) on a raw echo peer."""
    if kind == "tcp":
        host, port = address.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock.sendall, sock.recv, sock.close
    fd = os.open(address, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            select.select([], [fd], [])
            view = view[os.write(fd, view) :]

    def read(n: int) -> bytes:
        select.select([fd], [], [])
        return os.read(fd, n)

    return write, read, lambda: os.close(fd)


def raw_round_trip_s(kind: str, size: int, repeats: int) -> tuple[float, Cpu]:
    """(best raw echo round trip of ``size`` bytes, CPU of both ends over all of them)."""
    peer = Peer(kind, "echo")
    write, read, close = raw_link(kind, peer.address)
    message, best = bytes(range(1, 256)) * (size // 255 + 1), float("inf")
    message = message[:size]
    cpu = Cpu(peer)
    cpu.count = BLOCK
    try:
        for _ in range(max(1, repeats // BLOCK)):
            with cpu:
                for _ in range(BLOCK):
                    start = time.perf_counter()
                    write(message)
                    got = 0
                    while got < size:
                        got += len(read(size - got))
                    best = min(best, time.perf_counter() - start)
    finally:
        close()
        peer.close()
    return best, cpu


def raw_throughput_bps(kind: str, nbytes: int, repeats: int = 3) -> float:
    """Raw echo of ``nbytes`` in 8 kB writes, at most 64 kB in flight, reading whenever the
    echo is ready (one select loop, so neither direction can fill up and deadlock)."""
    peer = Peer(kind, "echo")
    if kind == "tcp":
        host, port = peer.address.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        fd, send, recv = sock.fileno(), sock.send, sock.recv
    else:
        fd = os.open(peer.address, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd)
        send, recv = (lambda b: os.write(fd, b)), (lambda n: os.read(fd, n))
    block, best = memoryview(bytes(range(1, 256)) * 32), float("inf")
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            sent = received = 0
            while received < nbytes:
                want_write = sent < nbytes and sent - received < 65536
                readable, writable, _ = select.select([fd], [fd] if want_write else [], [])
                if readable:
                    with contextlib.suppress(BlockingIOError):
                        received += len(recv(65536))
                if writable:
                    with contextlib.suppress(BlockingIOError):
                        sent += send(block[: min(len(block), nbytes - sent)])
            best = min(best, time.perf_counter() - start)
    finally:
        if kind == "tcp":
            sock.close()
        else:
            os.close(fd)
        peer.close()
    return nbytes / best


def phl_uri(kind: str, address: str) -> str:
    return f"fpga://{address}" if kind == "pty" else f"fpga+tcp://{address}"


def best_s(call: Any, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def phl_small_s(kind: str, repeats: int) -> tuple[float, float, int, Cpu]:
    """(PING 16 B, 1-vector 8x8 RUN via matmul, the RUN request's wire size, RUN CPU)."""
    peer = Peer(kind, "phl1", 8)
    try:
        with lumina_hal.open_device(phl_uri(kind, peer.address)) as chip:
            chip.load_weights(np.eye(8))
            link = chip._link
            x = np.ones(8, dtype=np.float32)
            ping = best_s(lambda: link.request(msg.Opcode.PING, bytes(16)), repeats)
            cpu, run = Cpu(peer), float("inf")
            cpu.count = BLOCK
            for _ in range(max(1, repeats // BLOCK)):
                with cpu:
                    run = min(run, best_s(lambda: chip.matmul(x), BLOCK))
            request = msg.RunRequest(1, 0, 0, np.zeros((1, 8), dtype=np.int32)).pack()
            return ping, run, len(request) + 16 + 2, cpu
    finally:
        peer.close()


def phl_upload_bps(kind: str, side: int, repeats: int) -> tuple[float, float, Cpu, int]:
    """(weight data B/s as the driver sends it, whole load_weights B/s, the transfer's CPU,
    its W_CHUNK frames)."""
    peer = Peer(kind, "phl1", side)
    try:
        with lumina_hal.open_device(phl_uri(kind, peer.address)) as chip:
            w = np.random.default_rng(0).uniform(-1, 1, size=(side, side)).astype(np.float32)
            link, hello = chip._link, chip._hello
            codes = np.arange(side * side, dtype="<i4") % (1 << hello.weight_bits)
            data = memoryview(codes.tobytes())
            transfer = whole = float("inf")
            cpu = Cpu(peer)
            for txn in range(1, repeats + 1):
                # exactly FpgaDevice._upload's transfer: its chunking, its window, its checks
                chunks = fpga_device._Chunks(
                    txn.to_bytes(4, "little"), data, hello.max_payload - msg.WChunk.HEAD.size
                )
                with cpu:
                    start = time.perf_counter()
                    begin = msg.WBegin(txn, side, side, len(data), zlib.crc32(data)).pack()
                    link.request(msg.Opcode.W_BEGIN, begin)
                    link.request_window(msg.Opcode.W_CHUNK, chunks, hello.window)
                    transfer = min(transfer, time.perf_counter() - start)
                link.request(msg.Opcode.W_ABORT, txn.to_bytes(4, "little"))
            start = time.perf_counter()
            chip.load_weights(w)
            whole = time.perf_counter() - start
            return len(data) / transfer, len(data) / whole, cpu, len(chunks)
    finally:
        peer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=1024, help="uploaded matrix is side x side")
    parser.add_argument("--repeats", type=int, default=300, help="round trips per measurement")
    args = parser.parse_args()
    nbytes = 4 * args.side * args.side
    print(f"CPU: {cpu_description()}; Python {platform.python_version()}")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"FPGA link benchmark: {args.side}x{args.side} upload ({nbytes / 2**20:.1f} MiB of "
        f"codes), best of {args.repeats} round trips; servers in a separate process; "
        f"load average {load}"
    )
    header = ("link", "raw RTT us", "PING us", "RUN us", "RUN-raw us", "raw MB/s", "data MB/s",
              "data/raw", "load MB/s")
    print("  ".join(f"{h:>10}" for h in header))
    results, cpus = {}, {}
    for kind in ("tcp", "pty"):
        ping, run, run_wire, run_cpu = phl_small_s(kind, args.repeats)
        raw_rtt, raw_cpu = raw_round_trip_s(kind, run_wire, args.repeats)
        raw_bps = raw_throughput_bps(kind, nbytes)
        data_bps, load_bps, data_cpu, frames = phl_upload_bps(kind, args.side, 3)
        results[kind] = (raw_rtt, run, raw_bps, data_bps)
        cpus[kind] = (
            (raw_cpu.host_s, raw_cpu.peer_s),
            (run_cpu.host_s, run_cpu.peer_s),
            (data_cpu.host_s / frames, data_cpu.peer_s / frames, nbytes / frames),
        )
        row = (kind, f"{raw_rtt * 1e6:.1f}", f"{ping * 1e6:.1f}", f"{run * 1e6:.1f}",
               f"{(run - raw_rtt) * 1e6:+.1f}", f"{raw_bps / 1e6:.0f}", f"{data_bps / 1e6:.0f}",
               f"{data_bps / raw_bps:.0%}", f"{load_bps / 1e6:.0f}")
        print("  ".join(f"{c:>10}" for c in row))
    print(f"CPU per exchange, this process + the server process (us; least of blocks of {BLOCK}):")
    for kind, ((rh, rp), (uh, up), (dh, dp, size)) in cpus.items():
        print(
            f"  {kind}: raw echo {rh * 1e6:.1f} + {rp * 1e6:.1f}; RUN {uh * 1e6:.1f} + "
            f"{up * 1e6:.1f}; W_CHUNK frame of {size / 1e3:.1f} kB {dh * 1e6:.1f} + "
            f"{dp * 1e6:.1f} (CPU-bound rate {size / max(dh, dp) / 1e6:.0f} MB/s if both "
            f"ends overlap, {size / (dh + dp) / 1e6:.0f} MB/s if they alternate)"
        )
    tcp, pty = results["tcp"], results["pty"]
    goals = (
        ("weight data over TCP >= 125 MB/s", tcp[3] >= 125e6, f"{tcp[3] / 1e6:.0f} MB/s", "tcp"),
        ("small RUN <= raw echo + 60 us (TCP)", tcp[1] - tcp[0] <= 60e-6,
         f"+{(tcp[1] - tcp[0]) * 1e6:.0f} us", "tcp"),
        ("small RUN <= raw echo + 60 us (pty)", pty[1] - pty[0] <= 60e-6,
         f"+{(pty[1] - pty[0]) * 1e6:.0f} us", "pty"),
        ("pty weight data >= 50 % of raw pty", pty[3] >= 0.5 * pty[2],
         f"{pty[3] / pty[2]:.0%}", "pty"),
    )
    for name, met, value, kind in goals:
        print(f"goal {name}: {'met' if met else 'MISSED'} ({value})")
        if not met:
            print(f"  bound: {_bound(name, cpus[kind])}")


def _bound(goal: str, cpu: tuple[tuple[float, ...], ...]) -> str:
    """What the CPU columns say bounds a missed goal."""
    (rh, rp), (uh, up), (dh, dp, size) = cpu
    if "RUN" in goal:
        return (
            f"a RUN costs {uh * 1e6:.0f} us of CPU here and {up * 1e6:.0f} us in the emulator, "
            f"a raw echo {(rh + rp) * 1e6:.0f} us on both ends; request and reply run one "
            f"after the other, so the difference, {(uh + up - rh - rp) * 1e6:.0f} us of "
            "Python and syscalls per RUN, is what RUN - raw tends to on an idle machine"
        )
    return (
        f"an {size / 1e3:.1f} kB frame costs {dh * 1e6:.0f} us of CPU here and "
        f"{dp * 1e6:.0f} us in the emulator: at most {size / max(dh, dp) / 1e6:.0f} "
        "MB/s with a free CPU for each end, less as they share this machine's CPUs"
    )


if __name__ == "__main__":
    main()
