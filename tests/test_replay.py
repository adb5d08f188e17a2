"""Records that replay: a record's device snapshot rebuilds a twin that repeats its calls."""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lumina_hal
from lumina_hal import load_run, record_run
from lumina_hal.errors import ConfigurationError, LuminaError
from lumina_hal.runs.replay import replay_run
from lumina_hal.twin.device import twin_from_snapshot
from lumina_hal.twin.physics import PhysicsParams

PHYSICS = {f.name for f in fields(PhysicsParams)}
CHIP_KEYS = ["rows", "cols", "seed", "serial", "kernel", "kind", "format", "call_index"]
CHIP_KEYS += ["physics", "preset", "threads", "unknown"]


def _record(path, uri: str, *, temperature_c: float | None = None):
    rng = np.random.default_rng(21)
    w1, w2 = rng.uniform(-1, 1, (12, 10)), rng.uniform(-1, 1, (7, 10))
    x = rng.uniform(-1, 1, (5, 10)).astype(np.float32)
    with lumina_hal.open_device(uri) as chip, record_run(path, chip) as run:
        run.load_weights(w1)
        run.matmul(x)
        run.matmul(x[0])  # a single vector advances the streams too
        if temperature_c is not None:
            chip.set_temperature(temperature_c)
        run.load_weights(w2)
        run.matmul(x)
    return load_run(path)


@pytest.mark.parametrize(
    "uri,temperature_c",
    [
        ("mock://?rows=16&cols=12&preset=typical&seed=7", 60.0),
        ("mock://?rows=16&cols=12&preset=harsh&seed=2&kernel=reference", None),
        ("fpga+sim://?rows=16&cols=12&preset=typical&seed=7&serial=EMU-9", 55.0),
    ],
)
def test_a_record_rebuilds_a_twin_that_repeats_its_calls_bit_for_bit(tmp_path, uri, temperature_c):
    record = _record(tmp_path / "run.h5", uri, temperature_c=temperature_c)
    assert len(record.calls) == 3
    replayed = list(replay_run(record))
    assert len(replayed) == 3
    for call, y in replayed:
        np.testing.assert_array_equal(y, call.outputs)


def test_the_snapshot_holds_every_physics_parameter_in_force_and_params_have_no_nulls(tmp_path):
    record = _record(tmp_path / "run.h5", "mock://?rows=16&cols=12&preset=harsh&crosstalk=0")
    chip = record.device_snapshot["chip"]
    assert set(chip["physics"]) == PHYSICS
    assert chip["physics"]["bandwidth_hz"] == 2.61e8  # from the preset, not the URI
    assert chip["physics"]["crosstalk"] == 0.0  # given in the URI
    assert chip["physics"]["temperature_c"] == 85.0
    assert chip["kernel"] in ("native", "reference") and chip["serial"].startswith("TWIN-")
    assert record.device_snapshot["versions"]["lumina_hal"] == lumina_hal.__version__
    assert all(record.params[name] is not None for name in PHYSICS)
    assert record.params["bandwidth_hz"] == 2.61e8


def test_a_replay_notices_a_changed_record(tmp_path):
    record = _record(tmp_path / "run.h5", "mock://?rows=16&cols=12&seed=4")
    snapshot = json.loads(json.dumps(record.device_snapshot))
    snapshot["chip"]["seed"] = 5  # another noise stream: the replay must differ
    with twin_from_snapshot(snapshot) as twin:
        twin.load_weights(record.weights[0].matrix)
        assert not np.array_equal(twin.matmul(record.calls[0].inputs), record.calls[0].outputs)


def test_an_fpga_snapshot_holds_what_hello_reported(tmp_path):
    record = _record(tmp_path / "run.h5", "fpga+sim://?rows=16&cols=12&preset=harsh&seed=1")
    hello = record.device_snapshot["hello"]
    assert (hello["rows"], hello["cols"], hello["weight_bits"]) == (16, 12, 10)
    assert hello["loss_row_db"] == pytest.approx(2.0 / 16)
    assert record.device_snapshot["call_index"] == 0  # taken at the start of the run


def test_a_snapshot_without_a_chip_model_is_refused_clearly():
    with lumina_hal.open_device("mock://?rows=4&cols=4") as chip:
        snapshot = chip.snapshot()
    del snapshot["chip"]
    with pytest.raises(ConfigurationError, match="no twin chip"):
        twin_from_snapshot(snapshot)


def _base_snapshot() -> dict:
    with lumina_hal.open_device("mock://?rows=4&cols=4&preset=harsh") as chip:
        return chip.snapshot()


_BASE = _base_snapshot()
_junk = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=4), st.integers()),
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    where=st.sampled_from(["chip", "physics"]),
    key=st.sampled_from([*sorted(PHYSICS), *CHIP_KEYS]),
    value=_junk,
    delete=st.booleans(),
)
def test_fuzzed_snapshots_rebuild_a_twin_or_raise_a_lumina_error(where, key, value, delete):
    snapshot = json.loads(json.dumps(_BASE))
    target = snapshot["chip"] if where == "chip" else snapshot["chip"]["physics"]
    if delete:
        target.pop(key, None)
    else:
        target[key] = value
    try:
        twin = twin_from_snapshot(snapshot)
    except LuminaError:
        return
    with twin:
        twin.load_weights(np.eye(2))
        assert twin.matmul(np.ones(2, dtype=np.float32)).shape == (2,)
