"""PM100D settings in our driver: the manual's strings, the gate, status registers, sensor
flags, and a read timeout that grows with the averaging count (docs/instruments.md §4)."""

from __future__ import annotations

import socket

import pytest

import lumina_hal
from lumina_hal.drivers.instruments import thorlabs_pm100d
from lumina_hal.drivers.instruments.thorlabs_pm100d import ThorlabsPm100d, sensor_flag_names
from lumina_hal.errors import InputError, LinkError
from lumina_hal.sim.scpi.pm100d import ThorlabsPm100d as SimPm100d
from lumina_hal.sim.scpi.server import ScpiTcpServer
from lumina_hal.testing.expected_protocol import expected_protocol

OK = ("SYST:ERR?", '+0,"No error"')
OPEN = [
    ("*IDN?", "Thorlabs,PM100D,P0009368,2.4.0"), OK,
    ("SENS:POW:UNIT W", None), OK,
    ("SYST:SENS:IDN?", "S155C,220426071,26-APR-2022,1,18,289"),
    ("SENS:CORR:WAV? MIN", "8.000000E+02"), ("SENS:CORR:WAV? MAX", "1.700000E+03"),
]  # fmt: skip


def test_each_setting_sends_the_manual_string() -> None:
    exchanges = [
        *OPEN,
        ("SENS:CORR:BEAM 2.5000", None), OK,
        ("SENS:CORR:LOSS 3.0000", None), OK,
        ("INP:FILT 1", None), OK,
        ("SENS:CORR:COLL:ZERO", None), OK,
        ("SENS:CORR:COLL:ZERO:MAGN?", "1.000000E-10"),
        ("STAT:OPER:ENAB 512", None), OK,
        ("STAT:QUES:ENAB 16", None), OK,
        ("STAT:OPER:COND?", "512"), ("STAT:OPER?", "512"),
        ("STAT:QUES:COND?", "16"), ("STAT:QUES?", "0"),
    ]  # fmt: skip
    with expected_protocol(ThorlabsPm100d, exchanges) as meter:
        meter.beam_diameter_mm = 2.5
        meter.attenuation_db = 3.0
        meter.low_bandwidth = True
        meter.zero()
        assert meter.zero_w == 1e-10
        meter.set_status_enable(operation=512, questionable=16)
        assert meter.status() == {
            "operation_condition": 512, "operation_event": 512,
            "questionable_condition": 16, "questionable_event": 0,
        }  # fmt: skip
        # flags 289 = 256 + 32 + 1
        assert meter.sensor_flags == ("power sensor", "wavelength settable", "temperature sensor")


def test_bad_values_are_refused_before_sending() -> None:
    with expected_protocol(ThorlabsPm100d, OPEN) as meter:
        for name, value in [("beam_diameter_mm", 0.0), ("beam_diameter_mm", "2"),
                            ("attenuation_db", float("nan")), ("low_bandwidth", 1)]:
            with pytest.raises(InputError):
                setattr(meter, name, value)
        with pytest.raises(InputError):
            meter.set_status_enable(operation=40000)
        with pytest.raises(InputError):
            meter.set_status_enable(questionable=1.5)  # type: ignore[arg-type]


def test_sensor_flag_names_follow_the_thorlabs_bits() -> None:
    assert sensor_flag_names(33) == ("power sensor", "wavelength settable")
    assert sensor_flag_names(2 | 64) == ("energy sensor", "time constant settable")
    assert sensor_flag_names(0x8000) == ()


def test_the_read_timeout_grows_with_the_averaging_count() -> None:
    # The timeout the resource has while MEAS:POW? waits: 2 s + 2 x 1000 x 3 ms = 8 s.
    exchanges = [
        *OPEN, ("SENS:AVER 1000", None), OK,
        ("SENS:AVER?", "1000"), ("MEAS:POW?", "1.000000E-04"),  # the count, then the reading
        ("SENS:AVER?", "1000"),  # reading_timeout_s() asks too
    ]  # fmt: skip
    with expected_protocol(ThorlabsPm100d, exchanges, timeout_s=2.0) as meter:
        resource = meter._resource
        seen: list[float] = []
        query = resource.query

        def recording_query(message: str) -> str:
            seen.append(resource.timeout)
            return query(message)

        resource.query = recording_query
        meter.averages = 1000
        assert meter.read_power_w() == 1e-4
        # the error check after SENS:AVER and the count at the base timeout, then the reading's
        assert seen == [2000.0, 2000.0, pytest.approx((2.0 + 2 * 1000 * 3e-3) * 1000.0)]
        assert resource.timeout == 2000.0  # restored after the reading
        assert meter.reading_timeout_s() == pytest.approx(8.0)


def _open_on_sim(server: ScpiTcpServer, timeout_s: float):  # type: ignore[no-untyped-def]
    return lumina_hal.open_instrument(
        f"visa://{server.resource}?model=thorlabs-pm100d&backend=@py&timeout={timeout_s}"
    )


def test_a_long_average_on_the_simulator_does_not_time_out(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # 200 samples take 0.6 s on the simulator's clock (3 ms each), longer than the 0.3 s
    # timeout: only a timeout scaled with the averaging count lets the reading arrive.
    model = SimPm100d()
    model.input_power_w = 1e-4
    with ScpiTcpServer(model) as server, _open_on_sim(server, 0.3) as meter:
        meter.averages = 200
        assert meter.read_power_w() == pytest.approx(1e-4, rel=1e-3)
        monkeypatch.setattr(thorlabs_pm100d, "AVERAGING_TIME_MARGIN", 0.0)  # unscaled
        with pytest.raises(LinkError, match="timeout"):
            meter.read_power_w()


def _other_client_sets_averages(server: ScpiTcpServer, count: int) -> None:
    """A second client (a raw socket, as another program would be) changes the count."""
    with socket.create_connection((server.host, server.port), timeout=5) as other:
        other.sendall(f"SENS:AVER {count};*OPC?\n".encode())  # *OPC?: processed when it answers
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = other.recv(64)
            assert chunk, "the simulator closed the second connection"
            reply += chunk
        assert reply.strip() == b"1"


def test_the_read_timeout_follows_a_count_changed_by_another_client() -> None:
    # The driver wrote no count; another client sets 100 samples: 0.3 s on the simulator's
    # clock, longer than the 0.2 s timeout. A timeout from a count cached at open (1 sample)
    # would expire; the count read before the reading gives 0.2 + 2 x 100 x 3 ms = 0.8 s.
    model = SimPm100d()
    model.input_power_w = 1e-4
    with ScpiTcpServer(model, max_clients=2) as server, _open_on_sim(server, 0.2) as meter:
        assert meter.reading_timeout_s() == pytest.approx(0.2 + 2 * 1 * 3e-3)
        _other_client_sets_averages(server, 100)
        assert meter.read_power_w() == pytest.approx(1e-4, rel=1e-3)
        assert meter.reading_timeout_s() == pytest.approx(0.2 + 2 * 100 * 3e-3)
        assert meter.averages == 100
        assert meter.snapshot()["settings"]["reading_timeout_s"] == pytest.approx(0.8)
        _other_client_sets_averages(server, 1)  # and back down
        assert meter.reading_timeout_s() == pytest.approx(0.2 + 2 * 1 * 3e-3)


def test_settings_round_trip_on_the_simulator() -> None:
    model = SimPm100d()
    model.time_scale = 0.0
    model.input_power_w = 1e-4
    with ScpiTcpServer(model) as server, _open_on_sim(server, 2.0) as meter:
        meter.beam_diameter_mm = 3.0
        meter.attenuation_db = 10.0
        meter.low_bandwidth = True
        assert (meter.beam_diameter_mm, meter.attenuation_db, meter.low_bandwidth) == (
            3.0, 10.0, True,
        )
        assert meter.read_power_w() == pytest.approx(1e-3, rel=1e-6)  # 10 dB compensated
        meter.attenuation_db = 0.0
        model.input_power_w = 0.0
        meter.zero()
        assert meter.zero_w == pytest.approx(model.dark_power_w)
        assert abs(meter.read_power_w()) < 1e-15  # the dark offset is gone
        assert meter.read_current_a() == pytest.approx(model.dark_power_w)
        meter.set_status_enable(operation=512)
        assert meter.status()["operation_condition"] & 512  # a reading is available
        settings = meter.snapshot()["settings"]
        assert settings["beam_diameter_mm"] == 3.0 and settings["low_bandwidth"] is True
        assert "wavelength settable" in settings["sensor_flags"]
