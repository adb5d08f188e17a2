"""The main job: a scripted chip run that measures accuracy against the ideal float result.

Programs the reference workload's weight matrix, runs its batch of inputs at each
temperature and reports error and SNR. Works on any URI; the default is the twin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lumina_hal.device import Capability
from lumina_hal.metrics import reference_workload
from lumina_hal.registry import default_uri, open_device
from lumina_hal.runs.sweeps import workload_rows

DEMO_COLUMNS = ("temperature_c", "snr_db", "max_abs_error", "rms_error", "rms_signal", "seconds")


def run_demo(
    uri: str | None = None,
    *,
    batch: int = 256,
    temperatures_c: Sequence[float] = (25.0, 45.0, 85.0),
    seed: int = 0,
) -> dict[str, Any]:
    """Run the demo on ``uri`` and return a JSON-ready report."""
    uri = uri if uri is not None else default_uri()
    with open_device(uri) as chip:
        info = chip.info
        work = reference_workload(info.rows, info.cols, batch, seed)
        weights_id = chip.load_weights(work.weights)
        can_heat = Capability.SET_TEMPERATURE.value in info.capabilities
        temps: list[float | None] = list(temperatures_c) if can_heat else [None]
        runs = [
            {name: row[name] for name in DEMO_COLUMNS} for row in workload_rows(chip, work, temps)
        ]
        return {
            "uri": uri,
            "device": info.to_dict(),
            "weights_id": weights_id,
            "workload": {"rows": info.rows, "cols": info.cols, "batch": batch, "seed": seed},
            "runs": runs,
        }
