"""The passband a swept spectrum of the chip shows: grating couplers and MZIs (docs/physics.md,
"Passband: the wavelength response seen on a bench"). The one place these formulas live; the
coupled simulated bench applies them."""

from __future__ import annotations

import math

#: Group index of the chip's silicon waveguides (flaport/sax's default straight waveguide).
GROUP_INDEX = 3.4
_DB_PER_NEPER_POWER = 10.0 * math.log10(math.e)


def coupler_passband_db(wavelength_nm: float, center_nm: float, fwhm_nm: float) -> float:
    """One pass through a Gaussian grating coupler: G = 10 log10(exp(-4 ln2 ((λ-λc)/w)²)) dB."""
    x = (wavelength_nm - center_nm) / fwhm_nm
    return -_DB_PER_NEPER_POWER * 4.0 * math.log(2.0) * x * x


def mzi_passband_db(
    wavelength_nm: float,
    design_wavelength_nm: float,
    arm_imbalance_um: float,
    group_index: float = GROUP_INDEX,
) -> float:
    """The cells' mean transmission relative to the calibration wavelength λ0 (dB):
    M = 10 log10((1 + exp(-σΦ²/2)) / 2), σΦ = 2π n_g σ_ΔL |1/λ - 1/λ0| (µm)."""
    if wavelength_nm <= 0 or design_wavelength_nm <= 0:
        raise ValueError("wavelengths must be > 0 nm")
    inverse_um = abs(1e3 / wavelength_nm - 1e3 / design_wavelength_nm)
    sigma_rad = 2.0 * math.pi * group_index * arm_imbalance_um * inverse_um
    return 10.0 * math.log10((1.0 + math.exp(-0.5 * sigma_rad * sigma_rad)) / 2.0)
