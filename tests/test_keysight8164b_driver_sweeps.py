"""Our 8164B driver's laser sweep (the TSL-570 driver's API, shared in
drivers/instruments/laser_sweep.py): exact strings, the safety gate, a logged sweep on the
simulator, and a swept transmission spectrum on a coupled bench whose laser is the 8164B."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lumina_hal
from lumina_hal.bench.limits import LaserLimits
from lumina_hal.drivers.instruments.keysight_8164b import Keysight8164B
from lumina_hal.errors import InputError, SafetyLimitError
from lumina_hal.sim.coupled_bench import CoupledBench
from lumina_hal.sim.scpi.keysight8164b import Keysight8164B as SimKeysight
from lumina_hal.sim.scpi.server import ScpiTcpServer
from lumina_hal.testing.expected_protocol import expected_protocol

OK = ("SYST:ERR?", '+0,"No error"')
OPEN = [
    ("*IDN?", "Keysight Technologies,8164B,MY48100000,V5.25(72637)"), OK,
    ("SOUR0:POW:UNIT 0", None), OK,
    ("SOUR0:WAV? MIN", "+1.46000000E-006"), ("SOUR0:WAV? MAX", "+1.64000000E-006"),
    ("SOUR0:POW? MIN", "-1.00000000E+001"), ("SOUR0:POW? MAX", "+1.00000000E+001"),
]  # fmt: skip


def test_configure_sweep_sends_the_programming_guide_strings():
    """Continuous and logged: LLOG needs MODE CONT and TRIG0:OUTP STF (8163A/B/8164A/B
    programming guide; the step width is the logging interval)."""
    exchanges = [
        *OPEN,
        ("SOUR0:WAV:SWE:STAR 1.52000000E-06", None), OK,
        ("SOUR0:WAV:SWE:STOP 1.58000000E-06", None), OK,
        ("SOUR0:WAV:SWE:SPE 5.000000E-08", None), OK,
        ("SOUR0:WAV:SWE:REP ONEW", None), OK,
        ("SOUR0:WAV:SWE:MODE CONT", None), OK,
        ("SOUR0:WAV:SWE:STEP 1.00000000E-09", None), OK,
        ("TRIG0:OUTP STF", None), OK,
        ("SOUR0:WAV:SWE:LLOG 1", None), OK,
    ]  # fmt: skip
    with expected_protocol(Keysight8164B, exchanges) as laser:
        laser.configure_sweep(1520.0, 1580.0, speed_nm_s=50, trigger_step_nm=1.0)


def test_a_stepped_sweep_and_the_refusals_before_sending():
    exchanges = [
        *OPEN,
        ("SOUR0:WAV:SWE:STAR 1.53000000E-06", None), OK,
        ("SOUR0:WAV:SWE:STOP 1.54000000E-06", None), OK,
        ("SOUR0:WAV:SWE:SPE 1.000000E-08", None), OK,
        ("SOUR0:WAV:SWE:REP TWOW", None), OK,
        ("SOUR0:WAV:SWE:MODE STEP", None), OK,
        ("SOUR0:WAV:SWE:STEP 5.00000000E-10", None), OK,
        ("TRIG0:OUTP DIS", None), OK,
        ("SOUR0:WAV:SWE:LLOG 0", None), OK,
    ]  # fmt: skip
    with expected_protocol(Keysight8164B, exchanges) as laser:
        laser.configure_sweep(1530.0, 1540.0, step_nm=0.5, two_way=True)
        with pytest.raises(InputError, match="continuous"):
            laser.configure_sweep(1530.0, 1540.0, step_nm=0.5, trigger_step_nm=0.5)
        with pytest.raises(InputError):
            laser._sweep_speed_nm_s = 500.0  # above the module's 200 nm/s


def test_sweep_ends_outside_the_limits_are_refused_and_a_sweep_cannot_start_towards_them():
    limits = LaserLimits(min_wavelength_nm=1530.0, max_wavelength_nm=1570.0, max_power_dbm=10.0)
    with (
        expected_protocol(Keysight8164B, OPEN, limits=limits) as laser,
        pytest.raises(SafetyLimitError),
    ):
        laser.configure_sweep(1520.0, 1560.0)  # start below the window: nothing sent
    exchanges = [
        *OPEN,
        ("SOUR0:POW?", "+0.00000000E+000"),
        ("SOUR0:WAV:SWE:STAR?", "+1.51000000E-006"),  # *RST leaves 1510 nm stored
    ]
    with (
        expected_protocol(Keysight8164B, exchanges, limits=limits) as laser,
        pytest.raises(SafetyLimitError, match="sweep_start_nm"),
    ):
        laser.start_sweep()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_a_logged_sweep_on_the_simulated_8164b():
    clock = FakeClock()
    model = SimKeysight(clock=clock)
    with ScpiTcpServer(model) as server, lumina_hal.open_instrument(
        f"visa://{server.resource}?model=keysight-8164b&backend=@py&timeout=2",
        limits={"max_power_dbm": 10.0},
    ) as laser:
        laser.configure_sweep(1540.0, 1560.0, speed_nm_s=40, trigger_step_nm=5.0)
        laser.start_sweep()
        assert laser.sweep_status() == 1
        clock.advance(0.25)  # 10 nm into a 20 nm sweep at 40 nm/s
        with model.lock:
            assert model.emitted_wavelength_nm == pytest.approx(1550.0)
        laser.wait_for_sweep(timeout_s=10.0, sleep=clock.advance)  # the model's clock
        assert laser.sweep_status() == 0
        logged = laser.logged_wavelengths_nm()
        settings = laser.snapshot()["settings"]
    np.testing.assert_allclose(logged, [1540.0, 1545.0, 1550.0, 1555.0, 1560.0], atol=1e-9)
    assert (settings["sweep_start_nm"], settings["sweep_stop_nm"]) == (1540.0, 1560.0)
    assert settings["lambda_logging"] and not settings["sweep_stepped"]


def test_swept_transmission_on_a_coupled_bench_whose_laser_is_the_8164b(tmp_path):
    """The same passband as with the TSL-570 (tests/test_spectra.py), written from the doc:
    two passes through the Gaussian coupler. 5 dBm is within what the 8164B model gives over
    1500-1600 nm (its gain curve: 10 - 0.002·(λ-1550)² dBm), so the setpoint is emitted."""
    with CoupledBench(speed=1000.0, laser="keysight-8164b") as sim:
        path = sim.write_bench(tmp_path / "bench.toml")
        with lumina_hal.open_bench(path) as bench:
            assert type(bench.laser).__name__ == "Keysight8164B"
            spectrum = bench.swept_transmission(1500.0, 1600.0, 5.0, power_dbm=5.0)
            assert not bench.laser.output
        chip_db = sim.chip_output_dbm_at(5.0, 1550.0) - sim.coupling.detector_dbm(5.0, 1550.0)
        coupling = sim.coupling
    x = (spectrum.wavelength_nm - coupling.center_nm) / coupling.fwhm_nm
    passband_db = -4.0 * math.log(2.0) * 10.0 * math.log10(math.e) * x * x
    expected = 2 * passband_db - coupling.input_loss_db - coupling.output_loss_db + chip_db
    np.testing.assert_allclose(spectrum.transmission_db, expected, atol=0.05)
    assert spectrum.bandwidth_nm(3.0) == pytest.approx(40.0 / math.sqrt(2.0), abs=1.0)
