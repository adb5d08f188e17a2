"""Preset calibration: SNR budgets per effect, and the bandwidth that meets a target SNR.

Every preset parameter is fixed from sources or engineering choice except the detector
integration bandwidth, which is solved so that the reference workload reproduces the SNR
of the system this project succeeds (docs/physics.md section 6). Uses the numpy reference.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from lumina_hal.metrics import Workload, reference_workload, snr_db
from lumina_hal.twin import reference
from lumina_hal.twin.physics import PRESETS, PhysicsParams

TARGET_SNR_DB = {"ideal": 100.0, "typical": 51.87, "harsh": 43.63}

# Parameter changes that switch one effect off, used to isolate each effect in a budget.
_OFF: dict[str, dict[str, object]] = {
    "heater DAC": {"weight_bits": 24},
    "input DAC": {"input_bits": 24},
    "ADC": {"output_bits": 24},
    "fabrication scatter": {"fab_sigma": 0.0},
    "crosstalk": {"crosstalk": 0.0},
    "temperature drift": {"arm_imbalance_um": 0.0},
    "phase noise": {"phase_noise_rad": 0.0, "thermal_fluctuation_mk": 0.0},
    "detector noise": {
        "bandwidth_hz": 1.0,
        "dark_current_na": 0.0,
        "tia_noise_pa_rthz": 0.0,
        "rin_db_hz": -250.0,
    },
}


def measure_snr_db(
    p: PhysicsParams,
    work: Workload | None = None,
    seed: int = 1,
    serial: str = "TWIN-0000000000000001",
) -> float:
    """SNR of the reference model on the reference workload (64x64, batch 256)."""
    work = work if work is not None else reference_workload()
    programmed = reference.program(work.weights, p, serial)
    y, _ = reference.forward(work.inputs, programmed, p, np.random.default_rng(seed))
    return snr_db(y, work.ideal)


def _only(p: PhysicsParams, effect: str) -> PhysicsParams:
    """p with every effect switched off except ``effect``."""
    changes: dict[str, object] = {}
    for name, off in _OFF.items():
        if name != effect:
            changes.update(off)
    return replace(p, **changes)  # type: ignore[arg-type]


def snr_budget(p: PhysicsParams) -> dict[str, float]:
    """SNR (dB) with each effect alone, and with all of them ('total')."""
    budget = {effect: measure_snr_db(_only(p, effect)) for effect in _OFF}
    budget["total"] = measure_snr_db(p)
    return budget


def solve_bandwidth_hz(
    p: PhysicsParams,
    target_db: float,
    lo_hz: float = 1.0,
    hi_hz: float = 1e11,
    iterations: int = 40,
) -> float:
    """Bandwidth at which the reference workload gives ``target_db`` (bisection in log B)."""
    lo, hi = math.log10(lo_hz), math.log10(hi_hz)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if measure_snr_db(replace(p, bandwidth_hz=10.0**mid)) > target_db:
            lo = mid
        else:
            hi = mid
    return 10.0 ** (0.5 * (lo + hi))


def main() -> None:  # pragma: no cover - a maintenance tool, run by hand
    for name, p in PRESETS.items():
        budget = snr_budget(p)
        print(name, {k: round(v, 2) for k, v in budget.items()})
        print("  bandwidth for target:", solve_bandwidth_hz(p, TARGET_SNR_DB[name]))


if __name__ == "__main__":  # pragma: no cover
    main()
