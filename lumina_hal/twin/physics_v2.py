"""Physics v2 parameters and formulas (docs/physics.md §7): raw chip, calibration state, noise.

Opt-in and separate from v1: v1's ``PhysicsParams`` carries the shared parameters (the raw
device values go into its ``fab_sigma``, ``crosstalk`` and ``arm_imbalance_um``); ``V2Params``
adds what v2 introduces. The engines are ``kernel_v2`` (C, native/lk_v2.c) and the numpy
oracle ``reference_v2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from lumina_hal.params import Param
from lumina_hal.twin import physics
from lumina_hal.twin.physics import (
    ELEMENTARY_CHARGE_C,
    KELVIN_OFFSET,
    PRESETS,
    DetectorNoise,
    PhysicsParams,
)

REFERENCE_TEMPERATURE_C = 25.0
DARK_CURRENT_FACTOR_PER_10K = 1.6  # Ge photodiodes, Colace et al., JLT 26, 2211 (2008)
LINEARISATION_LIMIT_RAD = 0.28  # σ above which the linearised variance errs by > 1 %


@dataclass(frozen=True)
class V2Params:
    """A v2 chip: v1's shared parameters (raw values) plus what v2 adds, units in names."""

    base: PhysicsParams
    symbol_rate_hz: float
    shifter_bandwidth_hz: float
    calibration_residual: float  # ρ: fraction of the raw scatter/crosstalk left by calibration
    calibration_phase_residual_rad: float

    @property
    def bandwidth_hz(self) -> float:
        """Integrate-and-dump over one symbol: noise bandwidth f_s / 2 (§7.4)."""
        return self.symbol_rate_hz / 2.0

    @property
    def temperature_c(self) -> float:
        return self.base.temperature_c

    def with_temperature(self, temperature_c: float) -> V2Params:
        return replace(self, base=self.base.with_temperature(temperature_c))

    def with_base(self, **changes: object) -> V2Params:
        return replace(self, base=replace(self.base, **changes))  # type: ignore[arg-type]


#: ρ of the raw presets: the scatter/crosstalk accuracy ``calibrate()`` reaches (§7.3)
CALIBRATION_RESIDUAL = 0.02

#: The one fitted knob per preset (§7.7): the ideal read-out's symbol rate (Hz), the phase
#: accuracy σ_θ,res (rad) of typical and harsh. Written by
#: ``python -m lumina_hal.twin.preset_fit_v2 --write lumina_hal/twin/physics_v2.py``.
FITTED_KNOBS: dict[str, float] = {
    "ideal": 11000.0,  # fitted
    "typical": 0.000876,  # fitted
    "harsh": 0.00309,  # fitted
}


def _v2_preset(name: str, symbol_rate_hz: float, raw: bool) -> V2Params:
    p = PRESETS[name]
    changes: dict[str, float] = {"calibration_temperature_c": p.temperature_c}
    if raw:
        changes.update(fab_sigma=0.01, crosstalk=0.01, arm_imbalance_um=2.0)
        changes.update(laser_power_dbm=10.0, bandwidth_hz=symbol_rate_hz / 2.0)
    changes["waveguide_loss_db_cm"] = 3.0
    return V2Params(
        base=replace(p, **changes),  # type: ignore[arg-type]
        symbol_rate_hz=symbol_rate_hz,
        shifter_bandwidth_hz=130e3,
        calibration_residual=CALIBRATION_RESIDUAL if raw else 0.0,
        calibration_phase_residual_rad=FITTED_KNOBS[name] if raw else 0.0,
    )


#: Freshly calibrated chips (§7.7).
PRESETS_V2: dict[str, V2Params] = {
    "ideal": _v2_preset("ideal", FITTED_KNOBS["ideal"], raw=False),
    "typical": _v2_preset("typical", 100e6, raw=True),
    "harsh": _v2_preset("harsh", 100e6, raw=True),
}


#: The fields V2Params adds to v1's (URI parameters, declared in snapshots' ``physics``).
V2_FIELDS = ("symbol_rate_hz", "shifter_bandwidth_hz", "calibration_residual",
             "calibration_phase_residual_rad")  # fmt: skip

#: ``physics_model`` of ``mock://`` (docs/physics.md §7.9)
PHYSICS_MODELS = ("v1", "v2")
#: What v2 adds to the twin's URI parameters; default None means "the preset's".
V2_URI_PARAMS: tuple[Param, ...] = (
    Param("physics_model", str, None, "chip model: v1 (sections 1-6, native kernel) or v2 "
          "(section 7; kernel native or reference); default v1", choices=PHYSICS_MODELS),
    Param("symbol_rate_hz", float, None, "v2: symbol rate f_s; the detector bandwidth is f_s/2",
          unit="Hz", minimum=1.0, maximum=1e11),
    Param("shifter_bandwidth_hz", float, None, "v2: phase shifter bandwidth f_phi (AR(1) noise)",
          unit="Hz", minimum=1.0, maximum=1e9),
    Param("calibration_residual", float, None, "v2: rho, fraction of scatter/crosstalk left "
          "by the factory calibration", minimum=0.0, maximum=1.0),
    Param("calibration_phase_residual_rad", float, None, "v2: rms phase error of the factory "
          "calibration", unit="rad", minimum=0.0, maximum=math.pi),
)  # fmt: skip


def heater_efficiency(p: PhysicsParams, temperature_c: float) -> float:
    """n_T(T) / n_T(25 °C): the phase a fixed heater drive gives, relative to 25 °C (§7.2)."""
    return physics.thermo_optic(p, temperature_c) / physics.thermo_optic(p, 25.0)


def index_change(p: PhysicsParams, temperature_c: float) -> float:
    """N(T) = ∫_25^T n_T dT' (exact integral of the linear n_T law)."""
    d = temperature_c - 25.0
    return p.dn_dt_per_k * (d + 0.5 * physics.DN_DT_SLOPE_PER_K * d * d)


def imbalance_phase_per_um(p: PhysicsParams, temperature_c: float) -> float:
    """θ(T) / ΔL in rad per µm: (2π/λ) N(T), zero at 25 °C (bias trimmed there)."""
    return 2.0 * math.pi / (p.wavelength_nm * 1e-3) * index_change(p, temperature_c)


def phase_noise_sigma_rad(p: PhysicsParams) -> float:
    """σφ(T) of v1 §3 step 3 with the fluctuation rise referred to 25 °C, not to T_cal.

    A chip's thermal fluctuations do not know when it was calibrated (v1 ties them to T_cal).
    """
    return physics.phase_noise_sigma_rad(
        replace(p, calibration_temperature_c=REFERENCE_TEMPERATURE_C)
    )


def ar1_coefficient(v: V2Params) -> float:
    """a = exp(−2π f_φ / f_s): correlation of successive vectors' phase noise (§7.6)."""
    return math.exp(-2.0 * math.pi * v.shifter_bandwidth_hz / v.symbol_rate_hz)


def phase_noise_mean_factor(sigma_rad: float) -> float:
    """E[cos((φ+δ)/2)] / cos(φ/2) = exp(−σ²/8) for δ ~ N(0, σ²)."""
    return math.exp(-sigma_rad * sigma_rad / 8.0)


def phase_noise_variance_terms(sigma_rad: float) -> tuple[float, float]:
    """(A, B) with Var[cos((φ+δ)/2)] = A − B cos²(φ/2), exactly (§7.6)."""
    s2 = sigma_rad * sigma_rad
    return 0.5 * (1.0 - math.exp(-s2 / 2.0)), math.exp(-s2 / 4.0) - math.exp(-s2 / 2.0)


def balanced_detector_noise(v: V2Params, cols: int, min_amplitude: float) -> DetectorNoise:
    """§7.5: shot noise from I+ + I−, two dark currents, two TIAs, RIN on the total.

    The variance is c0 + c1 a + c2 a² with a = I_Σ in normalized output units (v1's fields,
    but v1's a is |u|).
    """
    p = v.base
    full_scale = p.adc_full_scale * math.sqrt(cols)
    p_fs_w = 10.0 ** (p.laser_power_dbm / 10.0) * 1e-3
    i_fs = p.responsivity_a_w * p_fs_w * min_amplitude**2
    rise = (p.temperature_c - REFERENCE_TEMPERATURE_C) / 10.0
    i_dark = p.dark_current_na * 1e-9 * DARK_CURRENT_FACTOR_PER_10K**rise
    t_ratio = (p.temperature_c + KELVIN_OFFSET) / (REFERENCE_TEMPERATURE_C + KELVIN_OFFSET)
    i_n = p.tia_noise_pa_rthz * 1e-12 * math.sqrt(t_ratio)
    b = v.bandwidth_hz
    to_norm = full_scale / i_fs
    c0 = (4.0 * ELEMENTARY_CHARGE_C * i_dark * b + 2.0 * i_n * i_n * b) * to_norm**2
    c1 = 2.0 * ELEMENTARY_CHARGE_C * b * to_norm
    c2 = 10.0 ** (p.rin_db_hz / 10.0) * b / 2.0
    return DetectorNoise(c0, c1, c2)
