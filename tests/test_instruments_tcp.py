"""The drivers against the SCPI models over loopback TCP through pyvisa-py.

These cover what pyvisa-sim cannot model (docs/instruments.md §7): distinct -113/-222 codes,
*CLS clearing the queue, *RST resetting settings, a bounded queue, and real timeouts and cut
connections on a real transport.
"""

from __future__ import annotations

import pytest

import lumina_hal
from lumina_hal.errors import DeviceClosedError, InstrumentError, LinkError
from lumina_hal.sim.scpi.pm100d import ThorlabsPm100d as SimPm100d
from lumina_hal.sim.scpi.server import ScpiTcpServer
from lumina_hal.sim.scpi.ted4015 import ThorlabsTed4015 as SimTed4015
from lumina_hal.sim.scpi.tsl570 import SantecTsl570 as SimTsl570


def _uri(server: ScpiTcpServer, model: str, timeout_s: float = 2.0) -> str:
    return f"visa://{server.resource}?model={model}&backend=@py&timeout={timeout_s}"


@pytest.fixture
def tsl():
    with ScpiTcpServer(SimTsl570()) as server:
        yield server


@pytest.fixture
def ted():
    with ScpiTcpServer(SimTed4015()) as server:
        yield server


def test_laser_over_pyvisa_py_round_trips_and_switches_off_on_close(tsl):
    with lumina_hal.open_instrument(_uri(tsl, "santec-tsl570")) as laser:
        assert not laser.simulated  # reached like a real instrument
        laser.wavelength_nm = 1561.2345
        laser.power_dbm = 7.5
        laser.on()
        assert laser.wavelength_nm == pytest.approx(1561.2345, abs=1e-4)
        assert laser.power_dbm == pytest.approx(7.5)
        assert tsl.instrument.emitted_power_dbm == pytest.approx(7.5)
    assert tsl.instrument.output_on is False


def test_unknown_header_and_out_of_range_give_distinct_codes(tsl):
    with lumina_hal.open_instrument(_uri(tsl, "santec-tsl570")) as laser:
        with pytest.raises(InstrumentError) as unknown:
            _raw_write(laser, ":FOO 1")
        with pytest.raises(InstrumentError) as out_of_range:
            _raw_write(laser, ":POW 20.00")  # bypasses the driver's range check on purpose
        assert unknown.value.code == -113
        assert out_of_range.value.code == -222
        laser.power_dbm = 1.0  # the queue was drained: the next set is clean
        assert laser.power_dbm == pytest.approx(1.0)


def test_clear_empties_the_queue_and_reset_restores_defaults(ted):
    with lumina_hal.open_instrument(_uri(ted, "thorlabs-ted4015")) as tec:
        tec.setpoint_c = 42.0
        tec.on()
        for _ in range(12):  # more than the 10-entry queue holds; bypass the error check
            tec._io(lambda r: r.write("NOPE"), "NOPE")
        assert tec.read_errors()[-1][0] == -350  # overflow marks the last entry
        for _ in range(3):
            tec._io(lambda r: r.write("NOPE"), "NOPE")
        tec.clear()  # *CLS: the queue is empty again
        assert tec.read_errors() == []
        tec.reset()  # *RST: output off, setpoint back to its default
        assert tec.output is False
        assert tec.setpoint_c == pytest.approx(ted.instrument.setpoint_c)


def test_timeout_on_a_real_socket_is_a_link_error_and_recoverable(ted):
    with lumina_hal.open_instrument(_uri(ted, "thorlabs-ted4015", timeout_s=0.3)) as tec:
        ted.faults.unresponsive = True
        with pytest.raises(LinkError, match=r"within 0\.3 s"):
            _ = tec.temperature_c
        ted.faults.unresponsive = False
        assert 20.0 < tec.temperature_c < 30.0  # usable again after the timeout


def test_cut_connection_is_a_link_error_and_close_still_returns(ted):
    tec = lumina_hal.open_instrument(_uri(ted, "thorlabs-ted4015", timeout_s=0.5))
    ted.faults.cut_next_reply = True
    # pyvisa-py suppresses END on sockets, so a half reply and a closed peer read as a timeout.
    with pytest.raises(LinkError, match="timeout"):
        _ = tec.setpoint_c
    tec.close()  # the safe-state write finds the broken pipe: logged, never raised, no hang
    assert not tec.is_open
    with pytest.raises(DeviceClosedError):
        _ = tec.setpoint_c


def test_power_meter_over_range_on_the_real_transport():
    meter_model = SimPm100d()
    with (
        ScpiTcpServer(meter_model) as server,
        lumina_hal.open_instrument(_uri(server, "thorlabs-pm100d")) as meter,
    ):
        meter_model.input_power_w = 5e-3
        meter.auto_range = False
        meter.range_w = 1e-3
        with pytest.raises(lumina_hal.OverRangeError):
            meter.read_power_w()
        meter.auto_range = True
        assert meter.read_power_w() == pytest.approx(5e-3, rel=1e-3)


def _raw_write(instrument, command: str) -> None:
    """Past the safety gate on purpose, on the VISA handle itself: the instrument's own error."""
    instrument._resource.write(command)
    instrument.check_errors(command)
