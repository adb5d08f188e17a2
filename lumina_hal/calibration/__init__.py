"""Calibration of a photonic chip through its public API (docs/calibration.md).

``calibrate(device, mode="quick"|"full")`` measures the chip's cell model and returns a
versioned ``CalibrationSnapshot`` (``.save`` / ``.load``); ``CalibratedDevice`` applies it
when programming; ``DriftTracker`` says when to calibrate again; ``mock://?snapshot=PATH``
is a twin of the measured chip.
"""

from lumina_hal.twin.snapshot import CalibrationSnapshot, SnapshotFormatError

from .calibrated_device import CALIBRATED, CalibratedDevice, calibrated
from .compensate import compensated_weights
from .drift import DriftStatus, DriftTracker
from .procedure import PLANS, calibrate, probe_runs, probe_vectors

__all__ = [
    "CALIBRATED",
    "PLANS",
    "CalibratedDevice",
    "CalibrationSnapshot",
    "DriftStatus",
    "DriftTracker",
    "SnapshotFormatError",
    "calibrate",
    "calibrated",
    "compensated_weights",
    "probe_runs",
    "probe_vectors",
]
