"""A physics-v2 twin of a chip measured by ``calibrate()`` (docs/physics.md §7.10).

``mock://?physics_model=v2&snapshot=PATH``: the true chip is the snapshot's cell model (plus
a drawn measurement error only if ``calibration_residual`` / ``calibration_phase_residual_rad``
are given); the host's calibration state is the snapshot itself, so the twin's
``load_weights`` is the measured chip driven through ``CalibratedDevice(chip, snapshot)``.
Noise parameters come from the physics the snapshot declares (v2 twins), else from the v2
preset; the noise itself from the twin's seed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lumina_hal.errors import ConfigurationError
from lumina_hal.twin import physics_v2, reference_v2
from lumina_hal.twin.device_v2 import MeasuredChip, with_overrides
from lumina_hal.twin.physics_v2 import PRESETS_V2
from lumina_hal.twin.reference import serial_key
from lumina_hal.twin.snapshot import CalibrationSnapshot, SnapshotFormatError

#: parameters that are the snapshot's; a given value must agree
_FROM_SNAPSHOT = ("rows", "cols", "serial", "weight_bits", "calibration_temperature_c")


def snapshot_twin_keys(serial: str) -> tuple[int, int]:
    """Keys of the drawn measurement error (§7.10), apart from the factory's (§7.3)."""
    return serial_key(serial + "/snapshot-twin"), serial_key(serial + "/snapshot-twin-crosstalk")


def twin_arguments(snapshot: CalibrationSnapshot, given: dict[str, Any]) -> dict[str, Any]:
    """``TwinV2Device`` keyword arguments for the twin of ``snapshot``; ``given`` are the
    explicit ``mock://`` parameters (they win, except over the snapshot's identity)."""
    if snapshot.heater_range_rad is None or abs(snapshot.heater_range_rad - 2 * math.pi) > 1e-9:
        raise SnapshotFormatError(
            f"a snapshot measured with heater range {snapshot.heater_range_rad!r} rad has no "
            "physics-v2 twin (its heater DAC spans 2π); use mock://?snapshot= (physics v1)"
        )
    rest = dict(given)
    own = {"rows": snapshot.rows, "cols": snapshot.cols, "serial": snapshot.serial,
           "weight_bits": snapshot.weight_bits,
           "calibration_temperature_c": snapshot.temperature_c}  # fmt: skip
    for name in _FROM_SNAPSHOT:
        if name in rest and rest.pop(name) != own[name]:
            raise ConfigurationError(
                f"{name} is the snapshot's ({own[name]!r}) for a snapshot twin; do not give another"
            )
    seed = int(rest.pop("seed", 0))
    preset = str(rest.pop("preset", "typical"))
    if preset not in PRESETS_V2:
        raise ConfigurationError(f"preset {preset!r} is not one of {tuple(PRESETS_V2)}")
    declared = dict(snapshot.physics or {})
    v = with_overrides(PRESETS_V2[preset], declared)
    # the measurement error is unknown: none is drawn unless ρ / σ_θ,res are given (§7.10)
    start = {"temperature_c": snapshot.temperature_c, "weight_bits": snapshot.weight_bits,
             "calibration_temperature_c": snapshot.temperature_c,
             "calibration_residual": 0.0, "calibration_phase_residual_rad": 0.0}  # fmt: skip
    v = with_overrides(v, {**start, **rest})
    return {
        "rows": snapshot.rows,
        "cols": snapshot.cols,
        "seed": seed,
        "preset": preset,
        "serial": snapshot.serial,
        "measured": measured_chip(snapshot, v, fab_sigma_known="fab_sigma" in declared | rest),
    }


def measured_chip(
    snapshot: CalibrationSnapshot, v: physics_v2.V2Params, fab_sigma_known: bool
) -> MeasuredChip:
    """True chip, calibration state and offsets of the twin of ``snapshot`` (§7.10)."""
    p, t_s = v.base, snapshot.temperature_c
    rows, cols = snapshot.rows, snapshot.cols
    # the measured gain error holds the heater efficiency at T_s; the chip model's does not
    eps_hat = (1.0 + snapshot.gain_error) / physics_v2.heater_efficiency(p, t_s) - 1.0
    sigma_gamma = p.fab_sigma if fab_sigma_known else float(np.std(eps_hat))
    keys = snapshot_twin_keys(snapshot.serial)
    r = reference_v2.calibration_residuals(v, keys, rows, cols, sigma_gamma)
    if snapshot.arm_imbalance_um is None:
        arm = np.zeros((rows, cols))
    else:
        arm = snapshot.arm_imbalance_um.copy()
    theta_true = snapshot.phase_offset_rad + r.phase_rad  # θ(T_s)
    bias = theta_true - physics_v2.imbalance_phase_per_um(p, t_s) * arm
    chip = reference_v2.RawChip(
        eps_hat + r.gain_error,
        arm,
        snapshot.crosstalk_edge * (1.0 + r.crosstalk),
        snapshot.crosstalk_diagonal * (1.0 + r.crosstalk),
        bias,
    )
    calibration = reference_v2.CalibrationState(
        t_s, eps_hat, snapshot.phase_offset_rad.copy(),
        snapshot.crosstalk_edge, snapshot.crosstalk_diagonal,
    )  # fmt: skip
    offset = snapshot.detector_offset.copy() if np.any(snapshot.detector_offset) else None
    return MeasuredChip(v, chip, calibration, offset)
