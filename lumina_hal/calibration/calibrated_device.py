"""A device that applies a calibration snapshot: pre-compensated weights, offset-corrected outputs.

docs/calibration.md §4-5. ``CalibratedDevice(inner, snapshot)`` is itself a PhotonicDevice,
so every caller (tiling, torch, runs, the CLI) gets the compensation without knowing of it.
Telemetry adds ``calibration_age_s`` and ``calibration_temperature_mk`` (the calibration's
temperature in millikelvin above 0 °C, an integer like every counter).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from lumina_hal.device import DeviceInfo, PhotonicDevice, Telemetry
from lumina_hal.errors import ConfigurationError
from lumina_hal.twin.snapshot import CalibrationSnapshot

from .compensate import compensated_codes, compensated_weights
from .procedure import ProgressCallback, calibrate

CALIBRATED = "calibrated"  # capability added to the wrapped device's


class CalibratedDevice(PhotonicDevice):
    """``inner`` with ``snapshot`` applied. Opening/closing it opens/closes ``inner``."""

    summary = "a device with a calibration snapshot applied"

    def __init__(self, inner: PhotonicDevice, snapshot: CalibrationSnapshot) -> None:
        super().__init__()
        self.inner = inner
        self.calibration = snapshot
        self.uri = inner.uri
        self._scale = 1.0

    def __repr__(self) -> str:
        return f"CalibratedDevice({self.inner!r})"

    def calibrate(
        self, mode: str = "quick", progress: Any = None, **options: Any
    ) -> CalibrationSnapshot:
        """Measure the inner chip again and apply the new snapshot (reload weights after)."""
        snapshot = calibrate(self.inner, mode=mode, progress=progress, **options)
        self.recalibrated(snapshot)
        return snapshot

    def recalibrated(self, snapshot: CalibrationSnapshot) -> None:
        """Use a new snapshot from now on (reload the weights to apply it)."""
        self._check_fits(snapshot)
        self.calibration = snapshot

    def _check_fits(self, snapshot: CalibrationSnapshot) -> None:
        info = self.inner.info
        if (info.rows, info.cols) != (snapshot.rows, snapshot.cols):
            raise ConfigurationError(
                f"snapshot of a {snapshot.rows}x{snapshot.cols} chip does not fit "
                f"{info.rows}x{info.cols} device {info.serial}"
            )
        if info.serial != snapshot.serial:
            raise ConfigurationError(
                f"snapshot of chip {snapshot.serial} applied to chip {info.serial}"
            )

    @property
    def loss_steps_db(self) -> tuple[float, float]:
        return self.calibration.loss_steps_db

    @property  # a plain attribute on backends; here the inner device's
    def heater_range_rad(self) -> float:  # type: ignore[override]
        """The inner device's heater span: codes pass through to it unchanged."""
        return self.inner.heater_range_rad

    def _open(self) -> None:
        self.inner.open()
        self._check_fits(self.calibration)

    def _close(self) -> None:
        self.inner.close()

    def _info(self) -> DeviceInfo:
        info = self.inner.info
        return replace(info, capabilities=info.capabilities | {CALIBRATED})

    def _load_weights(self, weights: np.ndarray) -> str:
        if self.calibration.heater_range_rad is not None:  # measured through heater codes
            codes, self._scale = compensated_codes(weights, self.calibration)
            return self.inner.load_heater_codes(codes, self._scale)
        compensated = compensated_weights(weights, self.calibration)
        self._scale = float(np.max(np.abs(compensated))) or 1.0
        return self.inner.load_weights(compensated)

    def _load_heater_codes(self, codes: np.ndarray, weight_scale: float) -> str:
        self._scale = weight_scale  # codes go as they are: no compensation
        return self.inner.load_heater_codes(codes, weight_scale)

    def _matmul(self, x: np.ndarray, out: np.ndarray) -> None:
        y = self.inner.matmul(x)
        offset = self.calibration.detector_offset[: out.shape[1]]
        if np.any(offset):
            s_x = np.max(np.abs(x), axis=1, keepdims=True)
            y = y - (offset[None, :] * self._scale * s_x).astype(np.float32)
        out[...] = y

    def _telemetry(self) -> Telemetry:
        t = self.inner.telemetry()
        counters = {
            **t.counters,
            "calibration_age_s": int(self.calibration.age_s()),
            "calibration_temperature_mk": round(self.calibration.temperature_c * 1000.0),
        }
        return replace(t, counters=counters)

    def _set_temperature(self, temperature_c: float) -> None:
        self.inner.set_temperature(temperature_c)

    def _reset(self) -> None:
        self.inner.reset()


def calibrated(
    device: PhotonicDevice, mode: str = "quick", progress: ProgressCallback | None = None
) -> CalibratedDevice:
    """Calibrate an open ``device`` and return it, opened, wrapped with the new snapshot."""
    wrapped = CalibratedDevice(device, calibrate(device, mode=mode, progress=progress))
    wrapped.open()
    return wrapped
