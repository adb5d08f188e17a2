"""The passband of docs/physics.md ("Passband: the wavelength response seen on a bench"): the
formula against an independent computation, and the coupled bench's swept spectrum against it."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lumina_hal
from lumina_hal.sim.coupled_bench import CoupledBench
from lumina_hal.twin.passband import GROUP_INDEX, coupler_passband_db, mzi_passband_db

C_M_PER_S = 299_792_458.0


def mean_mzi_transmission(wavelength_nm: float, design_nm: float, sigma_um: float) -> float:
    """E[cos²(Φ/2)] over ΔL ~ N(0, σ²), by Gauss-Hermite quadrature, with the dispersive phase
    written in optical frequency: Φ = 2π n_g ΔL (ν - ν0) / c."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    delta_nu_hz = C_M_PER_S / (wavelength_nm * 1e-9) - C_M_PER_S / (design_nm * 1e-9)
    delta_l_m = sigma_um * 1e-6 * nodes
    phase = 2 * np.pi * GROUP_INDEX * delta_l_m * delta_nu_hz / C_M_PER_S
    return float(np.sum(weights * np.cos(phase / 2) ** 2) / math.sqrt(2 * math.pi))


@pytest.mark.parametrize("wavelength_nm", [1490.0, 1530.0, 1549.0, 1550.0, 1575.0, 1610.0])
@pytest.mark.parametrize("sigma_um", [0.02, 0.5, 2.0, 5.0])
def test_mzi_passband_matches_the_quadrature(wavelength_nm, sigma_um):
    expected_db = 10 * math.log10(mean_mzi_transmission(wavelength_nm, 1550.0, sigma_um))
    assert mzi_passband_db(wavelength_nm, 1550.0, sigma_um) == pytest.approx(expected_db, abs=1e-9)


def test_mzi_passband_shape():
    assert mzi_passband_db(1550.0, 1550.0, 2.0) == 0.0
    assert mzi_passband_db(1300.0, 1550.0, 50.0) == pytest.approx(-10 * math.log10(2), abs=1e-6)
    # linear in frequency: the same detuning costs more below λ0 than above it
    assert mzi_passband_db(1490.0, 1550.0, 2.0) < mzi_passband_db(1610.0, 1550.0, 2.0) < 0
    assert mzi_passband_db(1610.0, 1550.0, 0.0) == 0.0
    with pytest.raises(ValueError):
        mzi_passband_db(0.0, 1550.0, 2.0)


def test_coupler_passband_is_minus_3db_at_half_width():
    assert coupler_passband_db(1570.0, 1550.0, 40.0) == pytest.approx(-10 * math.log10(2))


def test_the_coupled_bench_spectrum_shows_couplers_and_mzis(tmp_path):
    """A swept spectrum of a chip with the raw 2 µm arm imbalance, relative to 1550 nm, is
    2 G(λ) + M(λ), computed here from the doc's formulas independently of the bench."""
    with CoupledBench({"arm_imbalance_um": 2.0}) as sim:
        path = sim.write_bench(tmp_path / "bench.toml")
        with lumina_hal.open_bench(path) as bench:
            bench.power_meter.zero()  # laser off: the dark offset (100 pW) is subtracted
            spectrum = bench.swept_transmission(1490.0, 1610.0, 10.0, power_dbm=10.0)
    wavelengths = spectrum.wavelength_nm
    relative = spectrum.transmission_db - spectrum.transmission_db[wavelengths == 1550.0]
    gaussian = [10 * math.log10(math.exp(-4 * math.log(2) * ((w - 1550.0) / 40.0) ** 2))
                for w in wavelengths]  # fmt: skip
    mzi = [10 * math.log10(mean_mzi_transmission(w, 1550.0, 2.0)) for w in wavelengths]
    np.testing.assert_allclose(relative, 2 * np.array(gaussian) + np.array(mzi), atol=0.01)
    # the MZIs are visible: more than 1 dB below the couplers alone at the band's edges
    edges = [0, -1]
    assert np.all(relative[edges] < (2 * np.array(gaussian))[edges] - 0.9)
