"""Referenced swept spectra (docs/instruments.md, "Reference sweep"): normalising by a reference
sweep removes the laser's own power roll-off, which dividing by the setpoint does not."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lumina_hal
from lumina_hal.bench.spectra import reference_sweep, swept_transmission
from lumina_hal.errors import InputError, LuminaError
from lumina_hal.runs.record_load import load_run
from lumina_hal.runs.records import record_run
from lumina_hal.sim.coupled_bench import CoupledBench
from lumina_hal.twin.passband import coupler_passband_db, mzi_passband_db

POWER_DBM = 10.0  # above what the 8164B model gives away from 1550 nm (5 dBm at 1500/1600)
SPAN = (1500.0, 1600.0, 5.0)


@pytest.fixture(scope="module")
def keysight_bench(tmp_path_factory):
    chip = {"arm_imbalance_um": 2.0}  # a visible MZI passband as well
    with CoupledBench(speed=1000.0, laser="keysight-8164b", chip=chip) as sim:
        yield sim, sim.write_bench(tmp_path_factory.mktemp("reference") / "bench.toml")


def chip_passband_db(sim: CoupledBench, wavelength_nm: np.ndarray) -> np.ndarray:
    """Laser -> coupler -> chip (MZIs) -> coupler -> meter, relative to no chip (dB)."""
    c, physics = sim.coupling, sim.emulator.chip.physics
    at_1550 = sim.chip_output_dbm_at(POWER_DBM, 1550.0) - sim.coupling.detector_dbm(
        POWER_DBM, 1550.0
    )  # the chip's own gain at its calibration wavelength
    return np.array([
        2 * coupler_passband_db(w, c.center_nm, c.fwhm_nm)
        + mzi_passband_db(w, physics.wavelength_nm, physics.arm_imbalance_um)
        - c.input_loss_db - c.output_loss_db + at_1550
        for w in wavelength_nm
    ])  # fmt: skip


def test_a_referenced_spectrum_is_the_chips_passband_where_the_setpoint_one_is_not(
    keysight_bench, tmp_path
):
    sim, path = keysight_bench
    with lumina_hal.open_bench(path) as bench:
        bench.power_meter.zero()  # laser off: the dark reading (1e-10 W) becomes the offset
        sim.chip_bypassed = True
        try:
            ref = reference_sweep(bench, *SPAN, power_dbm=POWER_DBM)
        finally:
            sim.chip_bypassed = False
        with record_run(tmp_path / "r.h5", bench.chip, bench=bench) as run:
            spectrum = bench.swept_transmission(
                *SPAN, power_dbm=POWER_DBM, reference=ref, run=run
            )
        plain = bench.swept_transmission(*SPAN, power_dbm=POWER_DBM)
    expected = chip_passband_db(sim, spectrum.wavelength_nm)
    # the laser really does fall away from 1550 nm at this setpoint
    emitted_dbm = 10.0 * np.log10(ref.power_w / 1e-3)
    assert emitted_dbm.max() - emitted_dbm.min() > 3.0
    np.testing.assert_allclose(spectrum.transmission_db, expected, atol=0.05)
    assert np.max(np.abs(plain.transmission_db - expected)) > 1.0
    assert spectrum.normalisation == "reference" and plain.normalisation == "setpoint"
    np.testing.assert_array_equal(spectrum.reference_power_w, ref.power_w)
    table = load_run(tmp_path / "r.h5").table("spectrum")
    assert table.units["reference_power_w"] == "W"
    np.testing.assert_allclose(table.columns["reference_power_w"], ref.power_w)
    np.testing.assert_allclose(table.columns["transmission_db"], spectrum.transmission_db)
    assert spectrum.to_dict()["normalisation"] == "reference"


def test_a_reference_on_another_grid_is_refused_before_anything_is_sent(keysight_bench):
    _, path = keysight_bench
    with lumina_hal.open_bench(path) as bench:
        ref = reference_sweep(bench, 1540.0, 1560.0, 10.0, power_dbm=0.0)
        wavelength = bench.laser.wavelength_nm
        for span in [(1540.0, 1560.0, 5.0), (1541.0, 1561.0, 10.0)]:
            with pytest.raises(InputError, match="grid"):
                bench.swept_transmission(*span, power_dbm=1.0, reference=ref)
        assert bench.laser.wavelength_nm == wavelength  # nothing was sent
        assert not bench.laser.output
        bench.laser.on()
        with pytest.raises(LuminaError, match="grid"):
            swept_transmission(bench.laser, bench.power_meter, [1540.0, 1550.0], reference=ref)
        bench.laser.off()
        with pytest.raises(InputError):
            reference_sweep(bench, 1540.0, 1560.0, 10.0, reference=ref)


def test_a_dark_reference_point_gives_nan_not_a_division_by_zero(keysight_bench):
    _, path = keysight_bench
    with lumina_hal.open_bench(path) as bench:
        ref = reference_sweep(bench, 1545.0, 1555.0, 5.0, power_dbm=0.0)
        dark = type(ref)(ref.wavelength_nm, np.array([ref.power_w[0], 0.0, math.nan]),
                         ref.transmission_db, ref.laser_power_dbm)  # fmt: skip
        spectrum = bench.swept_transmission(1545.0, 1555.0, 5.0, power_dbm=0.0, reference=dark)
    assert math.isfinite(spectrum.transmission_db[0])
    assert np.isnan(spectrum.transmission_db[1:]).all()
