"""Swept transmission spectra (docs/instruments.md, "Swept transmission") on the coupled bench,
checked against the coupling's own passband formula computed independently here."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys

import numpy as np
import pytest

import lumina_hal
from lumina_hal.bench.spectra import swept_transmission, wavelength_grid
from lumina_hal.errors import ConfigurationError, InputError, LuminaError, SafetyLimitError
from lumina_hal.runs.record_load import load_run
from lumina_hal.sim.coupled_bench import CoupledBench, Coupling


@pytest.fixture(scope="module")
def coupled(tmp_path_factory):
    with CoupledBench(speed=1000.0) as sim:
        yield sim, sim.write_bench(tmp_path_factory.mktemp("spectra") / "bench.toml")


def expected_transmission_db(
    coupling: Coupling, wavelength_nm: np.ndarray, chip_db: float
) -> np.ndarray:
    """Laser -> input coupler -> chip -> output coupler -> meter, in dB (written from the doc)."""
    x = (wavelength_nm - coupling.center_nm) / coupling.fwhm_nm
    passband = -4.0 * math.log(2.0) * 10.0 * math.log10(math.e) * x * x
    return 2 * passband - coupling.input_loss_db - coupling.output_loss_db + chip_db


def test_the_coupled_bench_spectrum_shows_the_coupler_passband(coupled):
    sim, path = coupled
    with lumina_hal.open_bench(path) as bench:
        spectrum = bench.swept_transmission(1500.0, 1600.0, 5.0, power_dbm=10.0)
        assert not bench.laser.output  # off again after the sweep
    chip_db = sim.chip_output_dbm_at(10.0, 1550.0) - sim.coupling.detector_dbm(10.0, 1550.0)
    expected = expected_transmission_db(sim.coupling, spectrum.wavelength_nm, chip_db)
    np.testing.assert_allclose(spectrum.transmission_db, expected, atol=0.05)
    peak_nm, _ = spectrum.peak()
    assert peak_nm == pytest.approx(1550.0, abs=2.5)
    # two passes through a 40 nm (FWHM) Gaussian coupler: a 40/sqrt(2) = 28.3 nm wide band
    assert spectrum.bandwidth_nm(3.0) == pytest.approx(40.0 / math.sqrt(2.0), abs=1.0)


def test_a_spectrum_is_recorded_and_plotted_by_the_cli(coupled, tmp_path):
    _, path = coupled
    png, record = tmp_path / "s.png", tmp_path / "s.h5"
    out = subprocess.run(
        [sys.executable, "-m", "lumina_hal", "bench", "sweep", "--bench", str(path),
         "--start", "1530", "--stop", "1570", "--step", "10", "--power-dbm", "5",
         "--png", str(png), "--record", str(record), "--no-progress", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = load_run(record)
    table = run.results["spectrum"]
    assert run.result_units["spectrum"]["transmission_db"] == "dB"
    assert list(table["wavelength_nm"]) == [1530.0, 1540.0, 1550.0, 1560.0, 1570.0]
    assert np.argmax(table["transmission_db"]) == 2
    table_with_units = run.table("spectrum")  # records give analysis tools units too
    assert table_with_units.units["transmission_db"] == "dB"
    if importlib.util.find_spec("xarray") is not None:  # the 'xarray' extra (CI installs it)
        ds = table_with_units.to_xarray()
        assert ds["transmission_db"].attrs["units"] == "dB"
        assert list(ds["wavelength_nm"].values) == [1530.0, 1540.0, 1550.0, 1560.0, 1570.0]


def test_the_sweep_refuses_what_the_laser_may_not_do_before_sending(coupled):
    _, path = coupled
    with lumina_hal.open_bench(path) as bench:
        with pytest.raises(SafetyLimitError):
            bench.swept_transmission(1400.0, 1600.0, 5.0)
        with pytest.raises(SafetyLimitError):
            bench.swept_transmission(1540.0, 1560.0, 5.0, power_dbm=20.0)  # max_power_dbm 13
        assert not bench.laser.output
        with pytest.raises(ConfigurationError):
            swept_transmission(bench.laser, bench.power_meter, [1550.0])  # laser is off


@pytest.mark.parametrize(
    ("start", "stop", "step"),
    [(1500, 1600, 0), (1500, 1600, -1), (1500, math.nan, 1), (1500, 1600, 1e-9), ("a", 1, 1)],
)
def test_bad_grids_are_input_errors(start, stop, step):
    with pytest.raises(InputError):
        wavelength_grid(start, stop, step)


def test_grids_include_both_ends_in_either_direction():
    assert wavelength_grid(1500, 1510, 5) == [1500.0, 1505.0, 1510.0]
    assert wavelength_grid(1510, 1500, 5) == [1510.0, 1505.0, 1500.0]
    assert wavelength_grid(1550, 1550, 1) == [1550.0]


def test_cli_bench_sweep_errors_are_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "lumina_hal", "bench", "sweep", "--start", "1500"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1
    assert issubclass(SafetyLimitError, LuminaError)
