"""Physics parameters of the twin and the temperature-dependent quantities derived from them.

The equations are docs/physics.md's; this module only evaluates them. Parameter names carry
their units. Presets are complete parameter sets; any single value can be overridden.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from lumina_hal.codes import envelopes_from_steps
from lumina_hal.params import Param

ELEMENTARY_CHARGE_C = 1.602176634e-19
KELVIN_OFFSET = 273.15
DN_DT_SLOPE_PER_K = 1.7e-3  # relative rise of the Si thermo-optic coefficient per K
CROSSTALK_DIAGONAL_RATIO = math.exp(-(math.sqrt(2.0) - 1.0))
DARK_CURRENT_DOUBLING_K = 10.0
THERMAL_FLUCTUATION_RISE_K = 15.0


@dataclass(frozen=True)
class PhysicsParams:
    """Every physics parameter of docs/physics.md, with its unit in its name."""

    temperature_c: float
    calibration_temperature_c: float
    weight_bits: int
    input_bits: int
    output_bits: int
    adc_full_scale: float
    wavelength_nm: float
    fab_sigma: float
    crosstalk: float
    arm_imbalance_um: float
    dn_dt_per_k: float
    mzi_loss_db: float
    waveguide_loss_db_cm: float
    die_size_mm: float
    laser_power_dbm: float
    responsivity_a_w: float
    bandwidth_hz: float
    dark_current_na: float
    tia_noise_pa_rthz: float
    rin_db_hz: float
    phase_noise_rad: float
    thermal_fluctuation_mk: float
    heater_length_um: float
    noise: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_temperature(self, temperature_c: float) -> PhysicsParams:
        return replace(self, temperature_c=temperature_c)


# Parameters shared by all presets (sourced values; see docs/physics.md section 5).
_COMMON: dict[str, Any] = {
    "calibration_temperature_c": 25.0,
    "adc_full_scale": 2.0,
    "wavelength_nm": 1550.0,
    "dn_dt_per_k": 1.86e-4,
    "mzi_loss_db": 0.25,
    "waveguide_loss_db_cm": 2.0,
    "die_size_mm": 10.0,
    "responsivity_a_w": 1.0,
    "heater_length_um": 200.0,
    "noise": True,
}

PRESETS: dict[str, PhysicsParams] = {
    "ideal": PhysicsParams(
        **_COMMON,
        temperature_c=25.0,
        weight_bits=20,
        input_bits=20,
        output_bits=20,
        fab_sigma=0.0,
        crosstalk=0.0,
        arm_imbalance_um=0.0,
        laser_power_dbm=10.0,
        bandwidth_hz=2.14e5,
        dark_current_na=0.0,
        tia_noise_pa_rthz=0.1,
        rin_db_hz=-170.0,
        phase_noise_rad=0.0,
        thermal_fluctuation_mk=0.0,
    ),
    "typical": PhysicsParams(
        **_COMMON,
        temperature_c=45.0,
        weight_bits=12,
        input_bits=12,
        output_bits=12,
        fab_sigma=3.0e-4,
        crosstalk=5.0e-5,
        arm_imbalance_um=0.02,
        laser_power_dbm=0.0,
        bandwidth_hz=6.04e7,
        dark_current_na=10.0,
        tia_noise_pa_rthz=15.0,
        rin_db_hz=-155.0,
        phase_noise_rad=5.0e-4,
        thermal_fluctuation_mk=2.0,
    ),
    "harsh": PhysicsParams(
        **_COMMON,
        temperature_c=85.0,
        weight_bits=10,
        input_bits=10,
        output_bits=10,
        fab_sigma=1.0e-3,
        crosstalk=1.0e-4,
        arm_imbalance_um=0.02,
        laser_power_dbm=0.0,
        bandwidth_hz=2.61e8,
        dark_current_na=10.0,
        tia_noise_pa_rthz=15.0,
        rin_db_hz=-150.0,
        phase_noise_rad=5.0e-4,
        thermal_fluctuation_mk=2.0,
    ),
}

_UNITS_AND_RANGES: dict[str, tuple[str, float | None, float | None, str]] = {
    "temperature_c": ("°C", -40.0, 125.0, "chip temperature"),
    "calibration_temperature_c": ("°C", -40.0, 125.0, "temperature of the factory calibration"),
    "weight_bits": ("bit", 2, 24, "heater DAC width"),
    "input_bits": ("bit", 2, 24, "input modulator DAC width"),
    "output_bits": ("bit", 2, 24, "detector ADC width"),
    "adc_full_scale": ("", 1e-3, 1e6, "ADC full scale in units of sqrt(cols) normalized output"),
    "wavelength_nm": ("nm", 1000.0, 2000.0, "laser wavelength"),
    "fab_sigma": ("", 0.0, 0.5, "relative scatter of heater efficiency (after calibration)"),
    "crosstalk": ("", 0.0, 0.2, "thermal crosstalk to each edge neighbour (kappa1)"),
    "arm_imbalance_um": ("um", 0.0, 100.0, "rms MZI arm-length imbalance (drift with T)"),
    "dn_dt_per_k": ("1/K", 0.0, 1e-2, "thermo-optic coefficient at 25 °C"),
    "mzi_loss_db": ("dB", 0.0, 3.0, "insertion loss of the cell's MZI"),
    "waveguide_loss_db_cm": ("dB/cm", 0.0, 20.0, "propagation loss"),
    "die_size_mm": ("mm", 0.1, 100.0, "edge of the (square) array on the die"),
    "laser_power_dbm": ("dBm", -60.0, 30.0, "optical power per detector at full scale"),
    "responsivity_a_w": ("A/W", 0.01, 2.0, "photodiode responsivity"),
    "bandwidth_hz": ("Hz", 1.0, 1e12, "detector integration bandwidth"),
    "dark_current_na": ("nA", 0.0, 1e6, "dark current at the calibration temperature"),
    "tia_noise_pa_rthz": ("pA/rtHz", 0.0, 1e6, "TIA input noise at calibration temperature"),
    "rin_db_hz": ("dB/Hz", -250.0, -80.0, "laser relative intensity noise"),
    "phase_noise_rad": ("rad", 0.0, 1.0, "rms heater-drive phase noise per cell per vector"),
    "thermal_fluctuation_mk": ("mK", 0.0, 1e4, "rms local temperature fluctuation at T_cal"),
    "heater_length_um": ("um", 0.0, 1e5, "heated arm length (phase noise from dT)"),
    "noise": ("", None, None, "per-call noise on (false: deterministic converters only)"),
}


def physics_uri_params() -> tuple[Param, ...]:
    """One Param per physics field; default None means 'the preset's value'."""
    out = []
    for f in fields(PhysicsParams):
        unit, lo, hi, doc = _UNITS_AND_RANGES[f.name]
        kind = {"int": int, "float": float, "bool": bool}[str(f.type)]
        out.append(
            Param(
                f.name,
                kind,
                None,
                f"{doc} (default: the preset's)",
                unit=unit,
                minimum=lo,
                maximum=hi,
            )
        )
    return tuple(out)


# ---- derived quantities (docs/physics.md sections 2 and 3) ------------------------------


def thermo_optic(p: PhysicsParams, temperature_c: float) -> float:
    """n_T(T) = dn/dT (1 + 1.7e-3 (T - 25))."""
    return p.dn_dt_per_k * (1.0 + DN_DT_SLOPE_PER_K * (temperature_c - 25.0))


def drift_phase_per_um(p: PhysicsParams) -> float:
    """Phase (rad) per micrometre of arm imbalance at p.temperature_c: (2π/λ) n_T ΔT."""
    wavelength_um = p.wavelength_nm * 1e-3
    delta_t = p.temperature_c - p.calibration_temperature_c
    return 2.0 * math.pi / wavelength_um * thermo_optic(p, p.temperature_c) * delta_t


def phase_noise_sigma_rad(p: PhysicsParams) -> float:
    """σφ(T) = sqrt(σ_drive² + (κ_T δT(T))²)."""
    rise = max(p.temperature_c - p.calibration_temperature_c, 0.0)
    delta_t_k = p.thermal_fluctuation_mk * 1e-3 * (1.0 + rise / THERMAL_FLUCTUATION_RISE_K)
    kappa_t = 2.0 * math.pi * p.heater_length_um / p.wavelength_nm * 1e3
    kappa_t *= thermo_optic(p, p.temperature_c)
    return math.hypot(p.phase_noise_rad, kappa_t * delta_t_k)


def loss_steps_db(p: PhysicsParams, array_rows: int, array_cols: int) -> tuple[float, float]:
    """(k_row, k_col): dB of propagation loss per row and per column of the array.

    The array spans a fixed die edge, so a larger array has a finer pitch and the same
    total path length: k = α L_die / n.
    """
    die_cm = p.die_size_mm * 0.1
    return (
        p.waveguide_loss_db_cm * die_cm / array_rows,
        p.waveguide_loss_db_cm * die_cm / array_cols,
    )


def envelopes(
    p: PhysicsParams, rows: int, cols: int, array_rows: int, array_cols: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """(R_i, C_j, A_min) for an (rows, cols) block on an (array_rows, array_cols) array."""
    k_row, k_col = loss_steps_db(p, array_rows, array_cols)
    row_env, col_env = envelopes_from_steps(rows, cols, k_row, k_col)
    loss_db = p.mzi_loss_db + (rows - 1) * k_row + (cols - 1) * k_col
    return row_env, col_env, 10.0 ** (-loss_db / 20.0)


def optical_output_dbm(
    p: PhysicsParams, rows: int, cols: int, array_rows: int, array_cols: int
) -> float:
    """Optical power (dBm) reaching a detector through the lossiest cell of an (rows, cols)
    block: the laser's power per detector times the field transmission A_min squared.

    The one formula behind the twin's, the emulator's and the coupled bench's telemetry.
    """
    amplitude = envelopes(p, rows, cols, array_rows, array_cols)[2]
    return p.laser_power_dbm + 20.0 * math.log10(amplitude)


@dataclass(frozen=True)
class DetectorNoise:
    """Detector variance c0 + c1 |u| + c2 u² in normalized output units²."""

    c0: float
    c1: float
    c2: float


def detector_noise(p: PhysicsParams, cols: int, min_amplitude: float) -> DetectorNoise:
    """Coefficients for a block of ``cols`` inputs whose lossiest cell transmits A_min."""
    full_scale = p.adc_full_scale * math.sqrt(cols)
    p_fs_w = 10.0 ** (p.laser_power_dbm / 10.0) * 1e-3
    i_fs = p.responsivity_a_w * p_fs_w * min_amplitude**2
    delta_t = p.temperature_c - p.calibration_temperature_c
    i_dark = p.dark_current_na * 1e-9 * 2.0 ** (delta_t / DARK_CURRENT_DOUBLING_K)
    t_ratio = (p.temperature_c + KELVIN_OFFSET) / (p.calibration_temperature_c + KELVIN_OFFSET)
    i_n = p.tia_noise_pa_rthz * 1e-12 * math.sqrt(t_ratio)
    b = p.bandwidth_hz
    to_norm = full_scale / i_fs
    c0 = (2.0 * ELEMENTARY_CHARGE_C * i_dark * b + i_n * i_n * b) * to_norm**2
    c1 = 2.0 * ELEMENTARY_CHARGE_C * b * to_norm
    c2 = 10.0 ** (p.rin_db_hz / 10.0) * b
    return DetectorNoise(c0, c1, c2)
