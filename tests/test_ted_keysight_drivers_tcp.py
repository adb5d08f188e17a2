"""The TED4015 and 8164B drivers against their SCPI models over loopback TCP (pyvisa-py):
the new settings go through the gate and reach the model, and the model's physics answers."""

from __future__ import annotations

import pytest

import lumina_hal
from lumina_hal.errors import InstrumentError, SafetyLimitError
from lumina_hal.sim.scpi.keysight8164b import Keysight8164B as SimKeysight
from lumina_hal.sim.scpi.server import ScpiTcpServer
from lumina_hal.sim.scpi.ted4015 import ThorlabsTed4015 as SimTed4015


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _uri(server: ScpiTcpServer, model: str) -> str:
    return f"visa://{server.resource}?model={model}&backend=@py&timeout=2"


def test_ted_driver_pid_current_limit_window_and_readings_reach_the_model():
    clock = FakeClock()
    model = SimTed4015(clock=clock, tau_s=4.0, ambient_c=22.0)
    limits = {"min_c": 15.0, "max_c": 60.0, "max_current_a": 5.0}
    with (
        ScpiTcpServer(model) as server,
        lumina_hal.open_instrument(_uri(server, "thorlabs-ted4015"), limits=limits) as tec,
    ):
        assert tec.current_limit_range_a == (0.0, 15.0)
        with pytest.raises(SafetyLimitError, match="cannot switch output on"):
            tec.on()  # the model's default limit (10 A) is above max_current_a: nothing sent
        assert model.output_on is False
        tec.current_limit_a = 1.5
        with pytest.raises(SafetyLimitError, match="soft limit 5 A"):
            tec.current_limit_a = 6.0
        tec.configure_pid(2.0, 0.5, 0.0, period_s=4.0)
        tec.configure_window(0.5, 1.0, protection=False)
        assert (model.current_limit_a, model.gains.p_a_per_k, model.window_k) == (1.5, 2.0, 0.5)
        tec.setpoint_c = 40.0
        tec.on()
        clock.now = 200.0  # 18 K above ambient needs 1.8 A: the 1.5 A limit holds it at 37 degC
        assert tec.temperature_c == pytest.approx(22.0 + 10.0 * 1.5, abs=1e-6)
        assert tec.tec_current_a == pytest.approx(1.5)
        assert tec.tec_voltage_v == pytest.approx(1.5)
        assert not tec.temperature_ok and tec.condition["window_failure"]
        tec.current_limit_a = 3.0
        clock.now = 400.0
        assert tec.temperature_c == pytest.approx(40.0, abs=1e-6) and tec.temperature_ok
        snapshot = tec.snapshot()["settings"]
        assert snapshot["current_limit_a"] == 3.0 and snapshot["pid"]["p_a_per_k"] == 2.0
        assert tec.snapshot()["limits"]["max_current_a"] == 5.0


def test_ted_driver_autotune_waits_on_the_model_clock():
    clock = FakeClock()
    model = SimTed4015(clock=clock, tau_s=4.0)
    with (
        ScpiTcpServer(model) as server,
        lumina_hal.open_instrument(_uri(server, "thorlabs-ted4015")) as tec,
    ):
        with pytest.raises(InstrumentError, match="-221"):
            tec.start_autotune()  # output off: the instrument refuses
        tec.on()
        tec.start_autotune()
        assert tec.autotune_state() == "running"

        def advance(seconds: float) -> None:
            clock.now += 10.0  # each poll: 10 s of model time

        tec.sleep = advance
        assert tec.wait_for_autotune(timeout_s=5.0, poll_s=0.0).p_a_per_k == pytest.approx(0.5)


def test_keysight_driver_lock_setpoint_and_actual_power_over_tcp():
    model = SimKeysight()
    with (
        ScpiTcpServer(model) as server,
        lumina_hal.open_instrument(_uri(server, "keysight-8164b"), limits={
            "max_power_dbm": 8.0}) as laser,
    ):
        laser.wavelength_nm = 1630.0
        laser.power_dbm = 7.0
        laser.on()
        assert laser.power_dbm == pytest.approx(7.0)  # the setpoint
        assert laser.actual_power_dbm() == pytest.approx(10.0 - 0.002 * 80.0**2)  # band edge
        settings = laser.snapshot()["settings"]
        assert (settings["power_dbm"], settings["locked"]) == (7.0, False)
        assert settings["actual_power_dbm"] == pytest.approx(laser.actual_power_dbm())
        laser.lock_laser()
        assert laser.locked and not laser.output and model.locked
        with pytest.raises(InstrumentError, match="locked"):
            laser.on()
        laser.unlock_laser()
        laser.on()
        assert model.output_on
        with pytest.raises(SafetyLimitError):
            laser.power_dbm = 9.0
    assert model.output_on is False
