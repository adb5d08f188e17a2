"""Each driver against its pyvisa-sim definition, opened by URI (docs/instruments.md §2, §7)."""

from __future__ import annotations

import pytest

import lumina_hal
from lumina_hal.bench.instruments import open_instrument
from lumina_hal.bench.roles import Laser, PowerMeter, TemperatureController
from lumina_hal.errors import ConfigurationError, InstrumentError, LinkError
from lumina_hal.sim.scpi.keysight8164b import Keysight8164B as SimKeysight8164B
from lumina_hal.sim.scpi.server import ScpiTcpServer

LASER = "visa://TCPIP0::127.0.0.1::5000::SOCKET?model=santec-tsl570&backend=@sim"
METER = "visa://USB0::0x1313::0x8078::P0009368::INSTR?model=thorlabs-pm100d&backend=@sim"
TEC = "visa://USB0::0x1313::0x8048::M00324477::INSTR?model=thorlabs-ted4015&backend=@sim"


def test_laser_round_trips(lumina_sim_visa):
    with open_instrument(LASER) as laser:
        assert isinstance(laser, Laser) and laser.simulated
        laser.wavelength_nm = 1561.25
        laser.power_dbm = -3.5
        laser.on()
        assert laser.wavelength_nm == pytest.approx(1561.25, abs=1e-6)
        assert laser.power_dbm == pytest.approx(-3.5)
        assert laser.output is True
    with open_instrument(LASER) as laser:  # close() switched the output off
        assert laser.output is False
        assert laser.wavelength_nm == pytest.approx(1561.25, abs=1e-6)


def test_keysight_opens_and_switches_on_its_scpi_model():
    """The 8164B has its own SCPI model (no pyvisa-sim definition): served on loopback TCP."""
    model = SimKeysight8164B()
    with ScpiTcpServer(model) as server:
        uri = f"visa://{server.resource}?model=keysight-8164b&backend=@py"
        with open_instrument(uri) as laser:
            assert isinstance(laser, Laser) and laser.identity.model == "8164B"
            laser.wavelength_nm = 1560.0  # the YAML read this back as 1550
            assert laser.wavelength_nm == pytest.approx(1560.0)
            laser.power_dbm = 2.0
            laser.on()
            assert laser.output and laser.power_dbm == pytest.approx(2.0)
        assert not model.output_on  # close() switched it off


def test_power_meter_reads_about_100_uW(lumina_sim_visa):
    with open_instrument(METER) as meter:
        assert isinstance(meter, PowerMeter)
        assert meter.sensor is not None and meter.sensor.name == "S155C"
        meter.wavelength_nm = 1310
        meter.averages = 50
        meter.auto_range = False
        meter.range_w = 1e-3
        assert (meter.wavelength_nm, meter.averages, meter.auto_range) == (1310.0, 50, False)
        assert 95e-6 <= meter.read_power_w() <= 105e-6
        assert -10.3 < meter.read_power_dbm() < -9.7


def test_tec_setpoint_and_output(lumina_sim_visa):
    with open_instrument(TEC) as tec:
        assert isinstance(tec, TemperatureController)
        tec.setpoint_c = 31.5
        tec.on()
        assert tec.setpoint_c == pytest.approx(31.5)
        assert tec.output is True
        assert 24.9 <= tec.temperature_c <= 25.1  # pyvisa-sim cannot follow the setpoint
        assert tec.setpoint_range_c == (-45.0, 145.0)


def test_reset_fixture_restores_defaults(lumina_sim_visa):
    from lumina_hal.drivers.instruments.visa_backends import reset_simulated_instruments

    with open_instrument(TEC) as tec:
        tec.setpoint_c = 40.0
    with open_instrument(TEC) as tec:
        assert tec.setpoint_c == pytest.approx(40.0)  # state persists within a process...
    reset_simulated_instruments()
    with open_instrument(TEC) as tec:
        assert tec.setpoint_c == pytest.approx(25.0)  # ...until the reset


def test_model_is_detected_from_idn(lumina_sim_visa):
    for uri, model in [
        (METER.replace("model=thorlabs-pm100d&", ""), "thorlabs-pm100d"),
        (TEC.replace("model=thorlabs-ted4015&", ""), "thorlabs-ted4015"),
        (LASER.replace("model=santec-tsl570&", ""), "santec-tsl570"),
    ]:
        with open_instrument(uri) as inst:
            assert inst.model_name == model


def test_simulated_instrument_errors_reach_the_caller(lumina_sim_visa):
    with open_instrument(LASER) as laser:
        with pytest.raises(InstrumentError) as info:
            _raw_write(laser, ":POW 20.00")  # above the model's +13 dBm: bypasses the driver check
        assert info.value.code == -100
        with pytest.raises(InstrumentError, match="-100"):
            _raw_write(laser, ":FOO 1")
        laser.power_dbm = 1.0  # still usable
        assert laser.power_dbm == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (LASER.replace("santec-tsl570", "santec-tsl57"), "did you mean 'santec-tsl570'"),
        (LASER.replace("backend=@sim", "backnd=@sim"), "did you mean 'backend'"),
        (LASER + "&timeout=0", "'timeout'"),
        ("visa://?model=santec-tsl570", "names no VISA resource"),
        ("mock://?rows=4&cols=4", "use lumina_hal.open_device"),
    ],
)
def test_uri_errors_name_the_problem(lumina_sim_visa, uri, message):
    with pytest.raises(ConfigurationError, match=message):
        open_instrument(uri)


def test_open_device_refuses_an_instrument_uri():
    with pytest.raises(ConfigurationError, match=r"use lumina_hal\.open_instrument"):
        lumina_hal.open_device(LASER)


def test_missing_resource_is_a_link_error(lumina_sim_visa):
    # pyvisa-sim opens any name and answers nothing; a real VISA library refuses the open.
    with pytest.raises(LinkError, match="empty reply to \\*IDN\\?"):
        open_instrument(METER.replace("P0009368", "NOPE"))


def test_unloadable_backend_is_a_link_error(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(LinkError, match="cannot be loaded"):
        open_instrument(METER.replace("backend=@sim", f"backend={missing}@sim"))


def test_wrong_model_for_the_resource(lumina_sim_visa):
    with pytest.raises(InstrumentError, match="not a thorlabs-ted4015"):
        open_instrument(METER.replace("thorlabs-pm100d", "thorlabs-ted4015"))


def _raw_write(instrument, command: str) -> None:
    """Past the safety gate on purpose, on the VISA handle itself: the instrument's own error."""
    instrument._resource.write(command)
    instrument.check_errors(command)
