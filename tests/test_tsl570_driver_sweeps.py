"""Our TSL-570 driver's sweeps: exact strings, the safety gate, and a sweep on the simulator."""

from __future__ import annotations

import numpy as np
import pytest

import lumina_hal
from lumina_hal.bench.limits import LaserLimits
from lumina_hal.drivers.instruments.santec_tsl570 import SantecTsl570
from lumina_hal.errors import InputError, SafetyLimitError
from lumina_hal.sim.scpi.server import ScpiTcpServer
from lumina_hal.sim.scpi.tsl570 import SantecTsl570 as SimTsl570
from lumina_hal.testing.expected_protocol import expected_protocol

OPEN = [
    ("*IDN?", "SANTEC,TSL-570,00001,0026.0026.0011"), (":SYST:ERR?", '0,"No error"'),
    (":SYST:COMM:COD 1", None), (":SYST:ERR?", '0,"No error"'),
    (":POW:UNIT 0", None), (":SYST:ERR?", '0,"No error"'),
    (":WAV? MIN", "+1.48000000E-006"), (":WAV? MAX", "+1.64000000E-006"),
    (":POW? MIN", "-1.50000000E+001"), (":POW? MAX", "+1.30000000E+001"),
]  # fmt: skip
OK = (":SYST:ERR?", '0,"No error"')


def test_configure_sweep_sends_the_manual_strings():
    exchanges = [
        *OPEN,
        (":WAV:SWE:STAR 1.52000000E-06", None), OK,
        (":WAV:SWE:STOP 1.58000000E-06", None), OK,
        (":WAV:SWE:SPE 50", None), OK,
        (":WAV:SWE:MOD 1", None), OK,
        (":TRIG:OUTP:STEP 1.00000000E-09", None), OK,
        (":TRIG:OUTP 3", None), OK,
    ]  # fmt: skip
    with expected_protocol(SantecTsl570, exchanges) as laser:
        laser.configure_sweep(1520.0, 1580.0, speed_nm_s=50, trigger_step_nm=1.0)


def test_sweep_ends_outside_the_wavelength_limits_are_refused_before_sending():
    limits = LaserLimits(min_wavelength_nm=1530.0, max_wavelength_nm=1570.0, max_power_dbm=10.0)
    with expected_protocol(SantecTsl570, OPEN, limits=limits) as laser:
        with pytest.raises(SafetyLimitError):
            laser.configure_sweep(1520.0, 1560.0)  # start below the window: nothing sent
        with pytest.raises(InputError):
            laser._sweep_speed_nm_s = 7  # not a TSL-570 speed: refused, nothing sent


def test_a_sweep_cannot_start_towards_ends_stored_outside_the_limits():
    limits = LaserLimits(min_wavelength_nm=1530.0, max_wavelength_nm=1570.0, max_power_dbm=10.0)
    exchanges = [
        *OPEN,
        (":POW?", "+0.00000000E+000"),
        (":WAV:SWE:STAR?", "+1.50000000E-006"),  # left by an earlier session: 1500 nm
    ]
    with (
        expected_protocol(SantecTsl570, exchanges, limits=limits) as laser,
        pytest.raises(SafetyLimitError, match="sweep_start_nm"),
    ):
        laser.start_sweep()


def test_a_sweep_on_the_simulated_laser_logs_its_trigger_points():
    model = SimTsl570()
    model.time_scale = 0.0
    with ScpiTcpServer(model) as server, lumina_hal.open_instrument(
        f"visa://{server.resource}?model=santec-tsl570&backend=@py",
        limits={"max_power_dbm": 10.0},
    ) as laser:
        laser.configure_sweep(1540.0, 1560.0, speed_nm_s=200, trigger_step_nm=5.0)
        laser.start_sweep()
        assert laser.sweep_status() in (1, 4)
        laser.wait_for_sweep(timeout_s=10.0)
        logged = laser.logged_wavelengths_nm()
    np.testing.assert_allclose(logged, [1540.0, 1545.0, 1550.0, 1555.0, 1560.0], atol=1e-3)
