"""Replay a run record on a twin rebuilt from the record's device snapshot.

A record stores ``device.snapshot()`` (every physics parameter in force, the kernel, seed and
serial) and, per call, the inputs, the outputs and the telemetry read right after the call
(its ``call_index`` counter names the call's noise streams, its ``temperature_c`` the chip
temperature). ``replay_run`` rebuilds the twin, loads each recorded matrix and repeats every
call at its recorded call index and temperature, yielding the twin's outputs next to the
recorded ones: for a record of a twin or of the FPGA emulator they are equal bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from lumina_hal.errors import ConfigurationError
from lumina_hal.runs.record_load import CallRecord, RunRecord
from lumina_hal.twin.device import MockDevice, twin_from_snapshot


def twin_for_record(record: RunRecord) -> MockDevice:
    """An open twin configured as the record's device was at the start of the run."""
    if not record.device_snapshot:
        raise ConfigurationError(
            f"{str(record.path)!r} has no device snapshot (written before snapshots were "
            "recorded), so no twin can be rebuilt from it"
        )
    return twin_from_snapshot(record.device_snapshot)


def replay_run(record: RunRecord) -> Iterator[tuple[CallRecord, np.ndarray]]:
    """(recorded call, the rebuilt twin's output for it), call by call."""
    twin = twin_for_record(record)
    try:
        loaded = -1
        for call in record.calls:
            if call.weights_index != loaded:
                twin.load_weights(record.weights[call.weights_index].matrix)
                loaded = call.weights_index
            telemetry = call.telemetry
            temperature_c = telemetry.get("temperature_c")
            if temperature_c is not None and temperature_c != twin.chip.temperature_c:
                twin.set_temperature(float(temperature_c))
            call_index = telemetry.get("counters", {}).get("call_index")
            if call_index is not None:
                twin.seek_call_index(int(call_index) - 1)  # counted after the call
            yield call, twin.matmul(call.inputs)
    finally:
        twin.close()
