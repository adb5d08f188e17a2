"""When is a calibration stale? (docs/calibration.md §6)

The phase offsets drift with temperature through the arm imbalance, ≈ (2π/λ) n_T ΔL per
kelvin (docs/physics.md §7.3), and slowly with time. ``DriftTracker`` compares the device's
state with the snapshot's and says whether and why recalibration is due.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from lumina_hal.device import PhotonicDevice
from lumina_hal.errors import ConfigurationError
from lumina_hal.twin.snapshot import CalibrationSnapshot

from .procedure import NOMINAL_DN_DT_PER_K, NOMINAL_WAVELENGTH_NM

DEFAULT_MAX_PHASE_DRIFT_RAD = 0.005
DEFAULT_MAX_TEMPERATURE_DELTA_K = 2.0
DEFAULT_MAX_AGE_S = 24 * 3600.0


@dataclass(frozen=True)
class DriftStatus:
    """The state of a calibration against the device now."""

    age_s: float
    temperature_delta_k: float
    phase_drift_rad: float  # predicted rms phase drift (nan without an imbalance map)
    due: bool
    reasons: tuple[str, ...]


class DriftTracker:
    """Decides when ``snapshot`` is due for renewal on ``device``."""

    def __init__(
        self,
        snapshot: CalibrationSnapshot,
        max_temperature_delta_k: float = DEFAULT_MAX_TEMPERATURE_DELTA_K,
        max_phase_drift_rad: float = DEFAULT_MAX_PHASE_DRIFT_RAD,
        max_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        for name, value in (
            ("max_temperature_delta_k", max_temperature_delta_k),
            ("max_phase_drift_rad", max_phase_drift_rad),
            ("max_age_s", max_age_s),
        ):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
        self.snapshot = snapshot
        self.max_temperature_delta_k = float(max_temperature_delta_k)
        self.max_phase_drift_rad = float(max_phase_drift_rad)
        self.max_age_s = float(max_age_s)

    def status(self, device: PhotonicDevice, now_s: float | None = None) -> DriftStatus:
        """Compare the device's temperature and the clock with the snapshot."""
        now_s = time.time() if now_s is None else now_s
        return self.status_at(device.telemetry().temperature_c, now_s)

    def status_at(self, temperature_c: float, now_s: float) -> DriftStatus:
        """The status at a given temperature and time."""
        s = self.snapshot
        age = s.age_s(now_s)
        delta = temperature_c - s.temperature_c
        drift = math.nan
        if s.arm_imbalance_um is not None and s.arm_imbalance_um.size:
            rms_um = math.sqrt(float((s.arm_imbalance_um**2).mean()))
            per_um_k = 2.0 * math.pi / (NOMINAL_WAVELENGTH_NM * 1e-3) * NOMINAL_DN_DT_PER_K
            drift = per_um_k * rms_um * abs(delta)
        reasons = []
        if abs(delta) > self.max_temperature_delta_k:
            reasons.append(f"temperature moved {delta:+.2f} K since calibration")
        if drift > self.max_phase_drift_rad:
            reasons.append(f"predicted phase drift {drift:.2e} rad rms")
        if age > self.max_age_s:
            reasons.append(f"calibration is {age:.0f} s old")
        return DriftStatus(age, delta, drift, bool(reasons), tuple(reasons))
