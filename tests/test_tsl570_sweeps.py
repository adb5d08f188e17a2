"""The simulated TSL-570's sweeps, triggers and logged readout against docs/instrument-sim.md,
on a fake clock; and the SCPI server's several clients."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from lumina_hal.sim.scpi.server import ScpiTcpServer
from lumina_hal.sim.scpi.tsl570 import SantecTsl570


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def laser():
    clock = FakeClock()
    model = SantecTsl570(clock=clock)
    model.fake_clock = clock  # type: ignore[attr-defined]
    return model


def ask(model: SantecTsl570, text: str) -> str | None:
    return model.process(text)


def errors(model: SantecTsl570) -> list[str]:
    found = []
    while (entry := ask(model, ":SYST:ERR?")) and not entry.startswith("0,"):
        found.append(entry)
    return found


def block_floats(reply: str) -> tuple[float, ...]:
    data = reply.encode("latin-1")
    assert data[:1] == b"#"
    digits = int(data[1:2])
    length = int(data[2 : 2 + digits])
    payload = data[2 + digits : 2 + digits + length]
    assert len(payload) == length
    return struct.unpack(f"<{length // 4}f", payload)


def test_rst_defaults(laser):
    assert ask(laser, ":WAV:SWE:STAR?") == "+1.50000000E-006"
    assert ask(laser, ":WAV:SWE:STOP?") == "+1.60000000E-006"
    assert ask(laser, ":WAV:SWE:SPE?") == "+1.00000000E+001"
    assert ask(laser, ":WAV:SWE:MOD?") == "+1"
    assert ask(laser, ":WAV:SWE?") == "+0"
    assert ask(laser, ":TRIG:OUTP?") == "+0"


def test_a_continuous_sweep_runs_on_the_clock_and_logs_its_trigger_points(laser):
    clock = laser.fake_clock
    ask(laser, ":WAV:SWE:STAR 1540nm;STOP 1560nm;SPE 10;:TRIG:OUTP 3;:TRIG:OUTP:STEP 5nm")
    ask(laser, ":WAV:SWE 1")
    assert errors(laser) == []
    assert ask(laser, ":WAV:SWE?") == "+4"  # preparing for 0.2 s
    clock.now = 0.2 + 1.0  # 1 s into a 2 s run at 10 nm/s
    assert ask(laser, ":WAV:SWE?") == "+1"
    assert laser.emitted_wavelength_nm == pytest.approx(1550.0)
    assert ask(laser, ":WAV?") == "+1.55000000E-006"  # the static setpoint, not the sweep
    clock.now = 0.2 + 2.0 + 1e-6
    assert ask(laser, ":WAV:SWE?") == "+0"
    assert ask(laser, ":WAV:SWE:COUN?") == "+1"
    assert ask(laser, ":READ:POIN?") == "+5"
    assert block_floats(ask(laser, ":READ:DAT?")) == (1540.0, 1545.0, 1550.0, 1555.0, 1560.0)
    assert ask(laser, ":WAV?") == "+1.56000000E-006"  # rests at the stop


def test_a_stepped_two_way_sweep_returns_to_the_start_and_logs_every_step(laser):
    clock = laser.fake_clock
    ask(laser, ":WAV:SWE:MOD 2;STAR 1500nm;STOP 1520nm;STEP 10nm;DWEL 0.5;SPE 20")
    ask(laser, ":WAV:SWE 1")
    # one pass: 2 steps of 10 nm at 20 nm/s plus 3 dwells of 0.5 s = 2.5 s; two-way: 5 s
    clock.now = 0.2 + 0.25
    assert laser.emitted_wavelength_nm == pytest.approx(1500.0)
    clock.now = 0.2 + 1.2
    assert laser.emitted_wavelength_nm == pytest.approx(1510.0)
    clock.now = 0.2 + 4.9
    assert ask(laser, ":WAV:SWE?") == "+1"
    clock.now = 0.2 + 5.0 + 1e-6
    assert ask(laser, ":WAV:SWE?") == "+0"
    assert block_floats(ask(laser, ":READ:DAT?")) == (1500.0, 1510.0, 1520.0)
    assert ask(laser, ":WAV?") == "+1.50000000E-006"


def test_a_triggered_sweep_waits_and_repeats(laser):
    clock = laser.fake_clock
    ask(laser, ":WAV:SWE:STAR 1500nm;STOP 1510nm;SPE 10;CYCL 3;DEL 1;:TRIG:INP:EXT 1")
    ask(laser, ":WAV:SWE:REP")
    clock.now = 5.0
    assert ask(laser, ":WAV:SWE?") == "+3"  # standing by for a trigger
    ask(laser, ":TRIG:INP:SOFT")
    clock.now = 5.0 + 1.0 + 0.5  # first cycle (1 s) done, inside the 1 s delay
    assert ask(laser, ":WAV:SWE:COUN?") == "+1"
    clock.now = 5.0 + 3 * 1.0 + 2 * 1.0 + 1e-6
    assert ask(laser, ":WAV:SWE?") == "+0"
    assert ask(laser, ":WAV:SWE:COUN?") == "+3"


def test_conflicts_and_bad_values_are_queued_errors(laser):
    ask(laser, ":WAV:SWE:STAR 1550nm;STOP 1550nm")
    ask(laser, ":WAV:SWE 1")
    assert errors(laser) == ['-221,"Settings conflict"']
    assert ask(laser, ":WAV:SWE?") == "+0"
    ask(laser, ":WAV:SWE:SPE 7")
    ask(laser, ":WAV:SWE:STAR 1400nm")
    ask(laser, ":WAV:SWE:CYCL 1000")
    assert errors(laser) == [
        '-224,"Illegal parameter value"', '-222,"Data out of range"', '-222,"Data out of range"',
    ]  # fmt: skip
    ask(laser, ":WAV:SWE:STOP 1560nm;:WAV:SWE 1")
    ask(laser, ":WAV 1555nm;:WAV:SWE:SPE 20")  # refused while the sweep runs
    assert errors(laser) == ['-221,"Settings conflict"', '-221,"Settings conflict"']
    ask(laser, ":WAV:SWE 0")
    assert ask(laser, ":WAV:SWE?") == "+0"
    ask(laser, "*RST")
    assert ask(laser, ":WAV:SWE:STAR?") == "+1.50000000E-006"


def test_frequency_views_of_the_sweep(laser):
    ask(laser, ":WAV:SWE:STAR 1500nm;STOP 1600nm")
    start_hz = float(ask(laser, ":FREQ:SWE:STAR?"))
    assert start_hz == pytest.approx(299_792_458.0 / 1500e-9, rel=1e-7)
    ask(laser, ":FREQ:SWE:STOP 190THZ")
    assert float(ask(laser, ":WAV:SWE:STOP?")) == pytest.approx(299_792_458.0 / 190e12, rel=1e-6)
    ask(laser, ":FREQ:SWE:STEP 100GHZ")
    centre_nm = (1500.0 + 299_792_458.0 / 190e12 * 1e9) / 2
    expected_step_m = (centre_nm**2 * 100e9 / 299_792_458.0) * 1e-9 * 1e-9
    assert float(ask(laser, ":WAV:SWE:STEP?")) == pytest.approx(expected_step_m, rel=1e-3)


def _query(sock: socket.socket, text: str) -> str:
    sock.sendall(text.encode() + b"\r")
    data = b""
    while not data.endswith(b"\r"):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data[:-1].decode("latin-1")


def test_several_clients_share_one_instrument_and_an_extra_one_is_refused():
    with ScpiTcpServer(SantecTsl570(), max_clients=2) as server:
        a = socket.create_connection((server.host, server.port), timeout=5)
        b = socket.create_connection((server.host, server.port), timeout=5)
        try:
            assert _query(a, ":WAV 1560nm;*OPC?") == "+1"  # *OPC?: a's write is processed
            assert _query(b, ":WAV?") == "+1.56000000E-006"  # b sees a's setting
            b.sendall(b":BOGUS\r")  # an error ends its message: sync with a query of its own
            assert _query(b, "*OPC?") == "+1"
            assert _query(a, ":SYST:ERR?") == '-113,"Undefined header"'  # one error queue
            c = socket.create_connection((server.host, server.port), timeout=5)
            assert c.recv(16) == b""  # accepted and closed at once
            c.close()
            assert server.refused == 1
        finally:
            a.close()
            b.close()


def test_a_reading_takes_the_averaging_time_scaled_by_time_scale():
    from lumina_hal.sim.scpi.pm100d import ThorlabsPm100d

    meter = ThorlabsPm100d()
    with ScpiTcpServer(meter) as server, socket.create_connection(
        (server.host, server.port), timeout=5
    ) as conn:
        conn.sendall(b"SENS:AVER 100\n")  # 100 samples x 3 ms = 0.3 s of model time

        def timed_read() -> float:
            start = time.perf_counter()
            conn.sendall(b"MEAS:POW?\n")
            data = b""
            while not data.endswith(b"\n"):
                data += conn.recv(4096)
            return time.perf_counter() - start

        assert timed_read() >= 0.29  # real time: at least the averaging time
        meter.time_scale = 0.0
        fast = timed_read()
        meter.time_scale = 1.0
        assert fast < 0.29  # answers at once, whatever the load (a lower bound above)
    assert meter.process("SENS:AVER?") == "100"  # direct calls never wait
