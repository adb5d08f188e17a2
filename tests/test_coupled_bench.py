"""The coupled simulated bench, driven only through the real drivers (docs/hil.md §3)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lumina_hal
from lumina_hal.metrics import snr_db
from lumina_hal.sim.coupled_bench import CoupledBench, Coupling


@pytest.fixture(scope="module")
def coupled(tmp_path_factory):
    with CoupledBench() as sim:
        yield sim.write_bench(tmp_path_factory.mktemp("bench") / "bench.toml")


def test_raising_the_tec_setpoint_lowers_the_measured_snr(coupled):
    rng = np.random.default_rng(7)
    weights = rng.uniform(-1, 1, (16, 16))
    x = rng.uniform(-1, 1, (128, 16))
    ideal = x @ weights.T
    snr: dict[float, float] = {}
    with lumina_hal.open_bench(coupled) as bench:
        bench.laser.power_dbm = 10.0
        bench.laser.on()
        bench.tec.on()
        bench.chip.load_weights(weights)
        for setpoint_c in (25.0, 75.0):
            bench.tec.setpoint_c = setpoint_c
            measured = bench.tec.wait_settled(tolerance_c=0.1, timeout_s=30.0, poll_s=0.02)
            y = bench.chip.matmul(x)
            # The chip runs at the TEC's temperature (read back through PHL1 telemetry).
            assert bench.chip.telemetry().temperature_c == pytest.approx(measured, abs=0.2)
            snr[setpoint_c] = snr_db(y, ideal)
    assert snr[75.0] < snr[25.0] - 1.0, snr
    assert snr[25.0] > 45.0, snr


def test_power_meter_reads_the_chip_output_through_the_couplers(coupled):
    coupling = Coupling()
    with lumina_hal.open_bench(coupled) as bench:
        bench.laser.power_dbm = 10.0
        bench.laser.wavelength_nm = 1550.0
        bench.laser.on()
        bench.power_meter.averages = 100
        chip_out_dbm = bench.chip.telemetry().optical_power_dbm
        at_center = bench.power_meter.read_power_dbm()
        assert at_center == pytest.approx(chip_out_dbm - coupling.output_loss_db, abs=0.05)
        # Half the coupler's FWHM away: -3.01 dB at the input and again at the output.
        bench.laser.wavelength_nm = 1550.0 + coupling.fwhm_nm / 2
        detuned = bench.power_meter.read_power_dbm()
        assert detuned - at_center == pytest.approx(-2 * 10 * math.log10(2), abs=0.05)
        assert bench.chip.telemetry().optical_power_dbm == pytest.approx(
            chip_out_dbm - 10 * math.log10(2), abs=0.01
        )


def test_wait_settled_times_out_with_the_output_off(coupled):
    with lumina_hal.open_bench(coupled) as bench:
        bench.tec.off()
        bench.tec.setpoint_c = 60.0
        with pytest.raises(lumina_hal.InstrumentError, match=r"did not settle.*output off"):
            bench.tec.wait_settled(timeout_s=0.2, poll_s=0.05)


def test_laser_off_leaves_the_chip_dark(coupled):
    rng = np.random.default_rng(3)
    weights = rng.uniform(-1, 1, (16, 16))
    x = rng.uniform(-1, 1, (32, 16))
    with lumina_hal.open_bench(coupled) as bench:
        bench.chip.load_weights(weights)
        bench.laser.off()
        assert snr_db(bench.chip.matmul(x), x @ weights.T) < 0.0
        assert bench.power_meter.read_power_w() < 1e-9  # the meter's dark offset only


def test_coupler_passband_is_gaussian():
    c = Coupling(fwhm_nm=40.0)
    assert c.passband_db(1550.0) == 0.0
    assert c.passband_db(1570.0) == pytest.approx(-10 * math.log10(2))
    assert c.passband_db(1590.0) == pytest.approx(4 * -10 * math.log10(2))
    assert c.detector_dbm(None, 1550.0) == -60.0
    assert c.detector_dbm(10.0, 1550.0) == pytest.approx(0.0)


def test_sim_bench_command_serves_a_bench_the_drivers_open(tmp_path):
    import signal
    import subprocess
    import sys

    target = tmp_path / "served.toml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lumina_hal", "sim", "bench", "--write", str(target),
         "--param", "rows=8", "--param", "cols=8"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("serving the coupled simulated bench")
        assert proc.stdout.readline().strip() == f"bench file: {target}"
        with lumina_hal.open_bench(target) as bench:
            assert bench.chip.info.rows == 8
            bench.tec.on()
            assert 20.0 < bench.tec.temperature_c < 30.0
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
