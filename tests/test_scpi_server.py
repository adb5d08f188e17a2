"""The simulated instruments over loopback TCP, reached by real pyvisa + pyvisa-py."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import pyvisa

from lumina_hal.sim.scpi.instruments import (
    SantecTsl570,
    SimulatedInstrument,
    ThorlabsPm100d,
    ThorlabsTed4015,
)
from lumina_hal.sim.scpi.server import ScpiTcpServer

TIMEOUT_MS = 300


@pytest.fixture(scope="module")
def rm() -> Iterator[pyvisa.ResourceManager]:
    manager = pyvisa.ResourceManager("@py")
    yield manager
    manager.close()


def open_client(rm: pyvisa.ResourceManager, server: ScpiTcpServer):  # type: ignore[no-untyped-def]
    """A pyvisa session with the terminations a real driver would use for this model."""
    instrument = server.instrument
    return rm.open_resource(
        server.resource,
        read_termination=instrument.write_termination,
        write_termination=instrument.read_termination,
        timeout=TIMEOUT_MS,
    )


@pytest.mark.parametrize(
    ("model", "idn"),
    [
        (SantecTsl570(), "SANTEC,TSL-570,00001,0026.0026.0011"),
        (ThorlabsPm100d(), "Thorlabs,PM100D,P0009368,2.4.0"),
        (ThorlabsTed4015(), "THORLABS,TED4015,M00324477,1.2.3/2.0.1/1.0.0"),
    ],
    ids=lambda v: getattr(v, "model", ""),
)
def test_each_model_answers_pyvisa(
    rm: pyvisa.ResourceManager, model: SimulatedInstrument, idn: str
) -> None:
    with ScpiTcpServer(model) as server:
        assert server.port > 0
        assert server.resource == f"TCPIP::127.0.0.1::{server.port}::SOCKET"
        client = open_client(rm, server)
        try:
            assert client.query("*IDN?") == idn
            client.write("*CLS")
            client.write("BOGUS:HEADER")
            assert int(client.query("SYST:ERR?").split(",")[0]) == -113
            assert int(client.query("SYST:ERR?").split(",")[0]) == 0
        finally:
            client.close()


def test_laser_session_with_cr_termination(rm: pyvisa.ResourceManager) -> None:
    laser = SantecTsl570()
    with ScpiTcpServer(laser) as server:
        client = open_client(rm, server)
        try:
            client.write(":WAV 1560nm")
            client.write(":POW 20")  # out of range: a silent write, an error queued
            assert client.query(":WAV?;:SYST:ERR?") == '+1.56000000E-006;-222,"Data out of range"'
            client.write(":POW:STAT 1")
            assert float(client.query(":POW:ACT?")) == 0.0
        finally:
            client.close()
    assert laser.output_on and laser.wavelength_nm == pytest.approx(1560.0)


def test_state_persists_across_clients_served_in_sequence(rm: pyvisa.ResourceManager) -> None:
    with ScpiTcpServer(ThorlabsTed4015()) as server:
        first = open_client(rm, server)
        first.write("SOUR:TEMP 42")
        assert first.query("*OPC?") == "1"  # sessions run concurrently: sync before leaving
        first.close()
        second = open_client(rm, server)
        try:
            assert float(second.query("SOUR:TEMP?")) == 42.0
        finally:
            second.close()


def test_unresponsive_server_makes_pyvisa_time_out(rm: pyvisa.ResourceManager) -> None:
    with ScpiTcpServer(ThorlabsPm100d()) as server:
        client = open_client(rm, server)
        try:
            server.faults.unresponsive = True
            with pytest.raises(pyvisa.VisaIOError) as info:
                client.query("*IDN?")
            assert info.value.error_code == pyvisa.constants.StatusCode.error_timeout
            server.faults.unresponsive = False
            assert client.query("*OPC?") == "1"
        finally:
            client.close()


def test_reply_cut_mid_way_then_a_new_connection_works(rm: pyvisa.ResourceManager) -> None:
    with ScpiTcpServer(SantecTsl570()) as server:
        client = open_client(rm, server)
        server.faults.cut_next_reply = True
        try:
            with pytest.raises(pyvisa.VisaIOError):
                client.query("*IDN?")
        finally:
            client.close()
        client = open_client(rm, server)
        try:
            assert client.query("*IDN?").startswith("SANTEC,TSL-570,")
        finally:
            client.close()


def _raw_exchange(
    server: ScpiTcpServer, payload: bytes, replies: int, terminator: bytes = b"\n"
) -> list[bytes]:
    """Send raw bytes on a plain socket and collect ``replies`` terminated replies."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(payload)
        data = b""
        while data.count(terminator) < replies:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(terminator)[:replies]


@pytest.mark.parametrize("size", [3000, 200_000])  # one recv, or split over several
def test_over_long_message_is_dropped_with_an_error(size: int) -> None:
    with ScpiTcpServer(ThorlabsPm100d(), max_message_bytes=1000) as server:
        junk = b"SENS:CORR:WAV " + b"1" * size
        lines = _raw_exchange(server, junk + b"\n*OPC?\nSYST:ERR?\nSYST:ERR?\n", 3)
    assert lines == [b"1", b'-363,"Input buffer overrun"', b'+0,"No error"']


def test_crlf_from_a_client_is_tolerated_and_queries_join() -> None:
    with ScpiTcpServer(SantecTsl570()) as server:
        lines = _raw_exchange(server, b"*OPC?\r\n:SYST:ERR?;*OPC?\r\n", 2, b"\r")
    assert lines == [b"+1", b'0,"No error";+1']


def test_close_with_a_connected_client_returns_and_stops_serving() -> None:
    server = ScpiTcpServer(ThorlabsTed4015()).start()
    sock = socket.create_connection((server.host, server.port), timeout=5)
    try:
        sock.sendall(b"*IDN?\n")
        assert sock.recv(4096).startswith(b"THORLABS,TED4015")
        server.close()
        assert not server._thread.is_alive()
        assert sock.recv(4096) == b""  # the server hung up
    finally:
        sock.close()
    with pytest.raises(OSError):
        socket.create_connection((server.host, server.port), timeout=1).close()


def test_cli_serves_a_model_until_interrupted(rm: pyvisa.ResourceManager) -> None:
    args = [sys.executable, "-m", "lumina_hal", "sim", "instrument", "thorlabs-ted4015"]
    proc = subprocess.Popen(
        [*args, "--tcp", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = [proc.stdout.readline() for _ in range(3)]  # type: ignore[union-attr]
        match = re.search(r"VISA resource: (\S+)", "".join(lines))
        assert match, f"no resource printed: {lines!r}"
        assert "read_termination='\\n'" in lines[2]
        client = rm.open_resource(
            match.group(1), read_termination="\n", write_termination="\n", timeout=2000
        )
        try:
            assert client.query("*IDN?").startswith("THORLABS,TED4015,")
        finally:
            client.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
