"""Calibration (docs/calibration.md): recovery of the hidden chip, compensation, snapshot twins."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lumina_hal.calibration import (
    CALIBRATED,
    CalibratedDevice,
    CalibrationSnapshot,
    DriftTracker,
    SnapshotFormatError,
    calibrate,
    calibrated,
    compensated_weights,
    probe_runs,
    probe_vectors,
)
from lumina_hal.errors import ConfigurationError, InputError, LuminaError
from lumina_hal.metrics import reference_workload, snr_db
from lumina_hal.registry import open_device
from lumina_hal.twin import physics, reference
from lumina_hal.twin.snapshot import with_fields

RAW = "preset=typical&fab_sigma=0.01&crosstalk=0.01&arm_imbalance_um=2&seed=3"
WORK = reference_workload()


def hidden_scatter(serial: str, sigma: float, rows: int = 64, cols: int = 64) -> np.ndarray:
    """The twin's fabrication scatter ε_ij (docs/physics.md §2 step 5), drawn independently."""
    g = reference.cell_normals(reference.serial_key(serial), 0, rows, cols)
    return sigma * np.clip(g, -3.0, 3.0)


def rel_rms_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((estimate - truth) ** 2) / np.mean(truth**2)))


def workload_snr(dev) -> float:  # type: ignore[no-untyped-def]
    dev.load_weights(WORK.weights)
    return snr_db(dev.matmul(WORK.inputs), WORK.ideal)


@pytest.fixture(scope="module")
def full_run() -> tuple[CalibrationSnapshot, str, float, float]:
    """One full calibration of a raw twin: (snapshot, serial, raw SNR, calibrated SNR)."""
    with open_device(f"mock://?{RAW}") as dev:
        snap = calibrate(dev, mode="full")
        raw = workload_snr(dev)
        serial = dev.info.serial
        with CalibratedDevice(dev, snap) as chip:  # closing it closes the device
            cal = workload_snr(chip)
        assert not dev.is_open
        return snap, serial, raw, cal


def test_full_recovers_scatter_and_crosstalk_within_10_percent(full_run) -> None:  # type: ignore[no-untyped-def]
    snap, serial, _, _ = full_run
    assert rel_rms_error(snap.gain_error, hidden_scatter(serial, 0.01)) <= 0.10
    assert snap.crosstalk_edge == pytest.approx(0.01, rel=0.10)
    assert snap.crosstalk_diagonal == pytest.approx(
        0.01 * physics.CROSSTALK_DIAGONAL_RATIO, rel=0.10
    )
    assert snap.mode == "full" and snap.probe_runs == probe_runs("full")


def test_full_recovers_arm_imbalance_where_observable(full_run) -> None:  # type: ignore[no-untyped-def]
    snap, serial, _, _ = full_run
    truth = 2.0 * reference.cell_normals(reference.serial_key(serial), 1, 64, 64)
    assert snap.arm_imbalance_um is not None
    assert rel_rms_error(snap.arm_imbalance_um, truth) <= 0.25
    assert np.corrcoef(snap.arm_imbalance_um.ravel(), truth.ravel())[0, 1] > 0.95


def test_phase_offsets_match_the_twins_drift(full_run) -> None:  # type: ignore[no-untyped-def]
    snap, serial, _, _ = full_run
    p = physics.PRESETS["typical"]  # 45 °C, calibrated at 25 °C
    from dataclasses import replace

    drift = physics.drift_phase_per_um(replace(p, arm_imbalance_um=2.0))
    truth = drift * 2.0 * reference.cell_normals(reference.serial_key(serial), 1, 64, 64)
    assert rel_rms_error(snap.phase_offset_rad, truth) <= 0.10


def test_applying_the_snapshot_improves_snr(full_run) -> None:  # type: ignore[no-untyped-def]
    _, _, raw, cal = full_run
    with open_device("mock://?preset=typical&seed=3") as fresh:
        fresh_snr = workload_snr(fresh)
    assert raw < 20.0  # raw device parameters ruin the chip...
    assert cal > raw + 30.0  # ...calibration restores it
    assert cal == pytest.approx(fresh_snr, abs=1.0)  # close to the post-calibration preset


def test_quick_mode_estimates_sigma_and_crosstalk() -> None:
    with open_device(f"mock://?{RAW}") as dev:
        calls: list[tuple[int, int, str]] = []
        snap = calibrate(dev, mode="quick", progress=lambda d, t, s: calls.append((d, t, s)))
        serial = dev.info.serial
    truth = hidden_scatter(serial, 0.01)
    assert np.std(snap.gain_error) == pytest.approx(np.std(truth), rel=0.10)
    assert np.corrcoef(snap.gain_error.ravel(), truth.ravel())[0, 1] > 0.95
    assert snap.crosstalk_edge == pytest.approx(0.01, rel=0.10)
    assert snap.arm_imbalance_um is None
    total = probe_runs("quick")
    assert calls[-1] == (total, total, "cells") and snap.probe_runs == total == 7
    assert probe_vectors(64) == 128


def test_noiseless_chip_is_recovered_almost_exactly() -> None:
    uri = "mock://?preset=ideal&fab_sigma=0.02&crosstalk=0.005&noise=false&seed=5"
    with open_device(uri) as dev:
        snap = calibrate(dev)
        assert rel_rms_error(snap.gain_error, hidden_scatter(dev.info.serial, 0.02)) < 0.02
        assert snap.crosstalk_edge == pytest.approx(0.005, rel=1e-3)
        assert not np.any(snap.detector_offset)
        raw = workload_snr(dev)
        with CalibratedDevice(dev, snap) as chip:
            # not more: v1's heater DAC stops at π, so cells with ε < 0 cannot reach w = 0
            assert workload_snr(chip) > raw + 30.0


def test_calibration_through_the_fpga_driver() -> None:
    with open_device(f"fpga+sim://?{RAW}") as dev:
        raw = workload_snr(dev)
        chip = calibrated(dev, mode="quick")
        assert CALIBRATED in chip.info.capabilities
        assert workload_snr(chip) > raw + 30.0
        counters = chip.telemetry().counters
        assert counters["calibration_temperature_mk"] == 45000
        assert 0 <= counters["calibration_age_s"] < 60


@pytest.mark.parametrize("range_pi", [1.0, 1.5])
def test_calibration_through_the_fpga_driver_records_the_range_the_board_reported(
    range_pi: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PHL1 v1.2 (docs/protocol.md §6): the host takes the heater range from HELLO, so an
    emulated chip of another range (1.5π here) is probed and recorded over that range."""
    from lumina_hal.twin.chip import TwinChip

    monkeypatch.setattr(TwinChip, "heater_range_rad", range_pi * math.pi)
    with open_device("fpga+sim://?rows=8&cols=8&seed=2") as dev:
        assert dev._snapshot()["hello"]["heater_range_pi"] == range_pi  # what the board sent
        snap = dev.calibrate(mode="quick")
    assert snap.heater_range_rad == range_pi * math.pi


def test_a_calibrated_device_reports_its_inner_devices_heater_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Codes pass through CalibratedDevice unchanged, so its span is the board's (1.5π here),
    not the contract's default π."""
    from lumina_hal.twin.chip import TwinChip

    monkeypatch.setattr(TwinChip, "heater_range_rad", 1.5 * math.pi)
    with open_device("fpga+sim://?rows=8&cols=8&seed=2") as dev:
        snap = dev.calibrate(mode="quick")
        assert CalibratedDevice(dev, snap).heater_range_rad == 1.5 * math.pi


def test_the_fpga_emulator_refuses_physics_v2_parameters_clearly() -> None:
    """The emulated board computes physics v1: v2 names are a ConfigurationError, not a crash."""
    for name in ("physics_model", "symbol_rate_hz", "snapshot"):
        with pytest.raises(ConfigurationError, match=f"unknown parameter '{name}'"):
            open_device(f"fpga+sim://?rows=4&cols=4&{name}=1")


def test_snapshot_twin_reproduces_the_measured_snr(full_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    snap, _, raw, _ = full_run
    path = snap.save(tmp_path / "chip.lcal.npz")
    with open_device(f"mock://?snapshot={path}&seed=3") as twin:
        assert twin.info.serial == snap.serial
        assert workload_snr(twin) == pytest.approx(raw, abs=0.5)
        # ... and calibrating the twin finds the snapshot again
        again = calibrate(twin, mode="quick")
    assert again.crosstalk_edge == pytest.approx(snap.crosstalk_edge, rel=0.05)


def test_exact_snapshot_twin_equals_the_twin(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Independent check of the cell model: a snapshot of the true parameters is the chip."""
    uri = "mock://?preset=ideal&fab_sigma=0.01&crosstalk=0.01&noise=false&seed=2&kernel=reference"
    with open_device(uri) as dev:
        dev.load_weights(WORK.weights)
        truth = dev.matmul(WORK.inputs)
        snap = calibrate(dev)
        exact = with_fields(
            snap,
            gain_error=hidden_scatter(dev.info.serial, 0.01),
            phase_offset_rad=np.zeros((64, 64)),
            crosstalk_edge=0.01,
            crosstalk_diagonal=0.01 * physics.CROSSTALK_DIAGONAL_RATIO,
        )
    path = exact.save(tmp_path / "exact.lcal.npz")
    with open_device(f"mock://?snapshot={path}&noise=false&kernel=reference") as twin:
        twin.load_weights(WORK.weights)
        np.testing.assert_allclose(twin.matmul(WORK.inputs), truth, rtol=0, atol=1e-4)


def test_save_load_round_trip(full_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    snap = full_run[0]
    back = CalibrationSnapshot.load(snap.save(tmp_path / "a.npz"))
    for name in ("serial", "rows", "cols", "weight_bits", "loss_steps_db", "temperature_c",
                 "created_s", "mode", "probe_runs", "crosstalk_edge", "crosstalk_diagonal",
                 "probe_noise_rms", "physics", "version"):  # fmt: skip
        assert getattr(back, name) == getattr(snap, name), name
    for name in ("gain_error", "phase_offset_rad", "detector_offset", "arm_imbalance_um"):
        np.testing.assert_array_equal(getattr(back, name), getattr(snap, name))


def test_calibrated_device_refuses_another_chip(full_run) -> None:  # type: ignore[no-untyped-def]
    snap = full_run[0]
    with open_device("mock://?preset=typical&seed=4") as other, pytest.raises(ConfigurationError):
        CalibratedDevice(other, snap).open()
    with pytest.raises(InputError):
        compensated_weights(np.ones((65, 64)), snap)


def test_drift_tracker(full_run) -> None:  # type: ignore[no-untyped-def]
    snap = full_run[0]
    tracker = DriftTracker(snap, max_temperature_delta_k=2.0, max_phase_drift_rad=1.0)
    now = snap.created_s + 10.0
    assert not tracker.status_at(snap.temperature_c + 1.0, now).due
    late = tracker.status_at(snap.temperature_c + 3.0, now)
    assert late.due and "temperature" in late.reasons[0]
    drift = DriftTracker(snap, max_temperature_delta_k=100.0, max_phase_drift_rad=0.005)
    status = drift.status_at(snap.temperature_c + 1.0, now)  # 2 µm: 0.0015 rad/K
    assert status.phase_drift_rad == pytest.approx(2 * math.pi / 1.55 * 1.86e-4 * 2.0, rel=0.3)
    assert drift.status_at(snap.temperature_c + 5.0, now).due
    assert tracker.status_at(snap.temperature_c, snap.created_s + 2 * 86400).due
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ConfigurationError):
            DriftTracker(snap, max_age_s=bad)


def test_unknown_mode_is_refused() -> None:
    with open_device("mock://?seed=1") as dev, pytest.raises(ConfigurationError):
        calibrate(dev, mode="fast")


# ---- damaged files: only SnapshotFormatError (a LuminaError), never anything else ----------


@pytest.fixture(scope="module")
def valid_bytes(full_run, tmp_path_factory) -> bytes:  # type: ignore[no-untyped-def]
    path = full_run[0].save(tmp_path_factory.mktemp("snap") / "valid.lcal.npz")
    return path.read_bytes()


def _reject(data: bytes) -> None:
    try:
        CalibrationSnapshot.from_bytes(data)
    except SnapshotFormatError:
        return
    except LuminaError as exc:  # pragma: no cover - must be the format error
        raise AssertionError(f"wrong LuminaError {type(exc).__name__}") from exc


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2000))
def test_fuzz_random_bytes(data: bytes) -> None:
    with pytest.raises(SnapshotFormatError):
        CalibrationSnapshot.from_bytes(data)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_fuzz_damaged_files(valid_bytes: bytes, data: st.DataObject) -> None:
    raw = bytearray(valid_bytes)
    cut = data.draw(st.integers(0, len(raw)))
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=8)
    )
    for pos, value in flips:
        raw[pos] = value
    damaged = bytes(raw[:cut]) if data.draw(st.booleans()) else bytes(raw)
    _reject(damaged)  # either parses (a harmless flip) or raises SnapshotFormatError


def _with_header(valid: bytes, **changes: object) -> bytes:
    with np.load(io.BytesIO(valid), allow_pickle=False) as archive:
        entries = {k: archive[k] for k in archive.files}
    header = json.loads(entries["header"].tobytes())
    header.update(changes)
    for k, v in list(header.items()):
        if v is Ellipsis:
            del header[k]
    entries["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    out = io.BytesIO()
    np.savez(out, **entries)
    return out.getvalue()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    key=st.sampled_from(["format", "version", "serial", "rows", "cols", "weight_bits",
                         "loss_steps_db", "temperature_c", "created_s", "mode", "probe_runs",
                         "crosstalk_edge", "crosstalk_diagonal", "probe_noise_rms", "physics"]),
    value=JSON_VALUES | st.just(Ellipsis),
)  # fmt: skip
def test_fuzz_header_fields(valid_bytes: bytes, key: str, value: object) -> None:
    _reject(_with_header(valid_bytes, **{key: value}))


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2},
        {"format": "something-else"},
        {"rows": 32},
        {"crosstalk_edge": 0.2},
        {"temperature_c": 5000.0},
        {"loss_steps_db": [1.0]},
        {"physics": {"no_such_field": 1}},
        {"mode": "slow"},
    ],
)
def test_inconsistent_headers_are_refused(valid_bytes: bytes, change: dict[str, object]) -> None:
    with pytest.raises(SnapshotFormatError):
        CalibrationSnapshot.from_bytes(_with_header(valid_bytes, **change))


def test_pickled_and_foreign_entries_are_refused(valid_bytes: bytes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with np.load(io.BytesIO(valid_bytes), allow_pickle=False) as archive:
        entries = {k: archive[k] for k in archive.files}
    for extra in ({"gain_error": np.array([{"a": 1}], dtype=object)}, {"other": np.zeros(3)},
                  {"gain_error": np.full((64, 64), np.nan)}, {"detector_offset": np.zeros(3)},
                  {"gain_error": np.array(["x"] * 4)}):  # fmt: skip
        out = io.BytesIO()
        np.savez(out, **{**entries, **extra})
        with pytest.raises(SnapshotFormatError):
            CalibrationSnapshot.from_bytes(out.getvalue())
    with pytest.raises(SnapshotFormatError):
        CalibrationSnapshot.load(tmp_path / "missing.npz")
    with pytest.raises(ConfigurationError):  # via the URI too
        open_device(f"mock://?snapshot={tmp_path / 'missing.npz'}")


def test_snapshot_of_the_fpga_emulator_makes_a_matching_twin(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Through the real driver no physics is declared: the twin uses the preset's noise."""
    with open_device(f"fpga+sim://?{RAW}") as dev:
        snap = calibrate(dev, mode="full")
        measured = workload_snr(dev)
    assert snap.physics is None and snap.arm_imbalance_um is not None
    path = snap.save(tmp_path / "sim.lcal.npz")
    with open_device(f"mock://?snapshot={path}&seed=3") as twin:
        assert workload_snr(twin) == pytest.approx(measured, abs=0.5)
    with pytest.raises(ConfigurationError):  # the emulator draws its own chip
        open_device(f"fpga+sim://?snapshot={path}")


@pytest.mark.parametrize("scheme", ["mock", "fpga+sim"])
def test_heated_chip_loses_6_db_and_recalibration_restores_it(scheme: str) -> None:
    """Issue 15 on the v1 twin and through PHL1: a snapshot taken at 25 °C is ≥ 6 dB off at
    65 °C; calibrate() at 65 °C (heater codes, docs/calibration.md §8) comes within 0.5 dB
    of the same chip calibrated at 65 °C without ever having been calibrated at 25 °C."""
    uri = f"{scheme}://?{RAW}&calibration_temperature_c=25"
    with open_device(f"{uri}&temperature_c=25") as dev:
        snap_25 = calibrate(dev, mode="full")
        assert snap_25.heater_range_rad == pytest.approx(math.pi)
        with CalibratedDevice(dev, snap_25) as chip:
            fresh_25 = workload_snr(chip)
            chip.set_temperature(65.0)
            stale = workload_snr(chip)
            chip.calibrate(mode="full")  # measures the chip again and applies it
            recalibrated = workload_snr(chip)
    with open_device(f"{uri}&temperature_c=65") as dev:
        snap_65 = dev.calibrate(mode="full")  # the device operation (docs/calibration.md §9)
        with CalibratedDevice(dev, snap_65) as chip:
            fresh_65 = workload_snr(chip)
    assert stale <= fresh_25 - 6.0
    assert recalibrated == pytest.approx(fresh_65, abs=0.5)


def test_heater_codes_need_the_capability() -> None:
    from lumina_hal.device import Capability
    from lumina_hal.errors import UnsupportedOperationError
    from lumina_hal.tiling import TiledDevice

    with open_device("mock://?rows=8&cols=8") as dev:
        tiled = TiledDevice(dev)
        with tiled:
            assert Capability.HEATER_CODES.value not in tiled.info.capabilities
            with pytest.raises(UnsupportedOperationError):
                tiled.load_heater_codes(np.zeros((2, 2), np.int32))


def test_calibrate_is_a_device_operation() -> None:
    """device.calibrate() on every backend with the capability, via the operations table."""
    from lumina_hal.device import OPERATIONS, Capability
    from lumina_hal.errors import UnsupportedOperationError
    from lumina_hal.tiling import TiledDevice

    calls: list[tuple[str, object]] = []

    def fake(device, mode, progress):  # type: ignore[no-untyped-def]
        calls.append((mode, progress))
        return "snapshot"

    with open_device("mock://?rows=8&cols=8&seed=2") as dev:
        snap = dev.calibrate(mode="quick")
        assert isinstance(snap, CalibrationSnapshot) and snap.serial == dev.info.serial
        OPERATIONS.register("calibrate", fake)
        try:
            assert dev.calibrate(mode="full") == "snapshot" and calls == [("full", None)]
        finally:
            OPERATIONS.unregister("calibrate")
        with TiledDevice(dev) as tiled:
            assert Capability.CALIBRATE.value not in tiled.info.capabilities
            with pytest.raises(UnsupportedOperationError):
                tiled.calibrate()
    with pytest.raises(ConfigurationError):
        OPERATIONS.register("calibrate", 42)


def test_a_v2_snapshot_has_no_v1_twin(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A snapshot measured with the v2 heater range (2π) is refused by mock://?snapshot= and
    makes a v2 twin; a π-range (v1) snapshot has no v2 twin (docs/physics.md §7.10)."""
    with open_device("mock://?physics_model=v2&rows=8&cols=8&seed=1") as dev:
        path = dev.calibrate(mode="quick").save(tmp_path / "v2.lcal.npz")
    back = CalibrationSnapshot.load(path)
    assert back.heater_range_rad == pytest.approx(2 * math.pi)
    assert back.physics is not None and back.physics["symbol_rate_hz"] == 100e6  # declared
    with pytest.raises(SnapshotFormatError, match="heater range"):
        open_device(f"mock://?snapshot={path}")
    with open_device(f"mock://?physics_model=v2&snapshot={path}") as twin:
        assert (twin.info.serial, twin.info.rows) == (back.serial, 8)
    for bad in ("rows=4", "serial=OTHER", "calibration_temperature_c=30"):
        with pytest.raises(ConfigurationError):
            open_device(f"mock://?physics_model=v2&snapshot={path}&{bad}")
    with open_device("mock://?rows=8&cols=8&seed=1") as v1:
        v1_path = v1.calibrate(mode="quick").save(tmp_path / "v1.lcal.npz")
    with pytest.raises(SnapshotFormatError, match="heater range"):
        open_device(f"mock://?physics_model=v2&snapshot={v1_path}")


def _v2_truth(serial: str, temperature_c: float, rows: int, cols: int) -> dict[str, np.ndarray]:
    """The v2 typical chip's (1+ε)η(T) − 1, θ(T) and ΔL at T, from §7.1-7.2 independently."""
    key = reference.serial_key(serial)
    eps = 0.01 * np.clip(reference.cell_normals(key, 0, rows, cols), -3.0, 3.0)
    arm = 2.0 * reference.cell_normals(key, 1, rows, cols)
    d = temperature_c - 25.0
    eta = 1.0 + 1.7e-3 * d
    theta = 2 * math.pi / 1.55 * 1.86e-4 * (d + 0.85e-3 * d * d) * arm
    return {"gain_error": (1.0 + eps) * eta - 1.0, "phase_offset_rad": theta,
            "arm_imbalance_um": arm}  # fmt: skip


def test_v2_snapshot_twin_of_the_exact_model_is_the_chip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Independent check of §7.10: a snapshot holding a noiseless v2 chip's true parameters
    makes a twin whose outputs equal the chip's at T_s and after heating (drift, η(T)), and
    whose detector offsets add to the outputs."""
    uri = "mock://?physics_model=v2&preset=typical&rows=8&cols=8&seed=2&noise=false&output_bits=20"
    codes = np.random.default_rng(5).integers(200, 3800, (8, 8)).astype(np.int32)
    codes |= np.random.default_rng(6).integers(0, 2, (8, 8)).astype(np.int32) << 12
    x = np.random.default_rng(7).uniform(-0.3, 0.3, (16, 8)).astype(np.float32)
    x[:, 0] = 1.0  # max|x| = 1 in every vector: offsets show unscaled; no output clips
    with open_device(uri) as chip:
        exact = with_fields(
            chip.calibrate(mode="quick"),
            **_v2_truth(chip.info.serial, 45.0, 8, 8),
            crosstalk_edge=0.01,
            crosstalk_diagonal=0.01 * physics.CROSSTALK_DIAGONAL_RATIO,
            detector_offset=np.zeros(8),
        )
        truth = []
        for temperature_c in (45.0, 70.0):
            chip.set_temperature(temperature_c)
            chip.load_heater_codes(codes)
            truth.append(chip.matmul(x))
    path = exact.save(tmp_path / "exact.lcal.npz")
    offset = np.linspace(-0.02, 0.02, 8)
    off_path = with_fields(exact, detector_offset=offset).save(tmp_path / "offset.lcal.npz")
    with (
        open_device(f"mock://?physics_model=v2&snapshot={path}") as twin,
        open_device(f"mock://?physics_model=v2&snapshot={off_path}") as shifted,
    ):
        for temperature_c, expected in zip((45.0, 70.0), truth, strict=True):
            twin.set_temperature(temperature_c)
            twin.load_heater_codes(codes)
            y = twin.matmul(x)
            np.testing.assert_allclose(y, expected, rtol=0, atol=1e-4)
        shifted.set_temperature(70.0)
        shifted.load_heater_codes(codes)
        np.testing.assert_allclose(shifted.matmul(x) - y, np.tile(offset, (16, 1)), atol=1e-4)


def test_v2_snapshot_twin_reproduces_the_calibrated_chip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 15 for physics v2 (docs/physics.md §7.10): calibrate a v2 chip (full mode),
    save; the snapshot twin's SNR equals the chip's driven with that snapshot within 0.5 dB,
    at the calibration temperature (45 °C) and 20 K above it (stale)."""
    with open_device("mock://?physics_model=v2&preset=typical&seed=1") as dev:
        snap = dev.calibrate(mode="full")
        with CalibratedDevice(dev, snap) as chip:
            chip_snr = {45.0: workload_snr(chip)}
            chip.set_temperature(65.0)
            chip_snr[65.0] = workload_snr(chip)
    path = snap.save(tmp_path / "v2chip.lcal.npz")
    twin_snr = {}
    with open_device(f"mock://?physics_model=v2&snapshot={path}") as twin:
        assert twin.telemetry().temperature_c == 45.0
        for temperature_c in (45.0, 65.0):
            twin.set_temperature(temperature_c)
            twin_snr[temperature_c] = workload_snr(twin)
    assert chip_snr[65.0] <= chip_snr[45.0] - 6.0  # the comparison covers a stale chip
    for temperature_c, expected in chip_snr.items():
        assert twin_snr[temperature_c] == pytest.approx(expected, abs=0.5), temperature_c


def test_v2_snapshot_twin_draws_the_measurement_error_when_asked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """§7.10: no error by default; ρ and σ_θ,res given draw it with the sizes of §7.3."""
    with open_device("mock://?physics_model=v2&preset=typical&rows=32&cols=32&seed=1") as dev:
        path = dev.calibrate(mode="quick").save(tmp_path / "v2.lcal.npz")
    snap = CalibrationSnapshot.load(path)
    eta = 1.0 + 1.7e-3 * (45.0 - 25.0)
    eps_hat = (1.0 + snap.gain_error) / eta - 1.0
    uri = f"mock://?physics_model=v2&snapshot={path}"
    with open_device(uri) as exact:
        np.testing.assert_allclose(exact._chip.gain_error, eps_hat, rtol=0, atol=1e-15)
        np.testing.assert_array_equal(exact._calibration.phase_offset_rad, snap.phase_offset_rad)
    with open_device(f"{uri}&calibration_residual=0.5&calibration_phase_residual_rad=0.01") as d:
        r_eps = d._chip.gain_error - eps_hat
        assert r_eps.std() == pytest.approx(0.5 * 0.01, rel=0.1)  # ρ σ_γ, σ_γ declared 0.01
        np.testing.assert_array_equal(d._calibration.gain_error, eps_hat)  # what the host knows
        assert snap.arm_imbalance_um is None  # quick mode: θ0 = θ̂ + r_θ, no drift term
        r_theta = d._chip.phase_bias_rad - snap.phase_offset_rad
        assert r_theta.std() == pytest.approx(0.01, rel=0.1)


@pytest.mark.parametrize("scheme", ["mock", "fpga+sim"])
def test_heater_codes_of_the_weights_mapping_equal_load_weights(scheme: str) -> None:
    """With π range, loading heater_codes(W) and s_w is load_weights(W), output for output."""
    from lumina_hal.codes import heater_codes

    w = np.random.default_rng(4).uniform(-1, 1, (12, 16))
    x = np.random.default_rng(5).uniform(-1, 1, (32, 16)).astype(np.float32)
    outs, ids = [], []
    for by_codes in (False, True):
        with open_device(f"{scheme}://?rows=16&cols=16&seed=7") as dev:
            assert dev.heater_range_rad == math.pi
            if by_codes:
                codes, scale = heater_codes(w, dev.info.weight_bits, dev.loss_steps_db)
                ids.append(dev.load_heater_codes(codes, scale))
            else:
                ids.append(dev.load_weights(w))
            outs.append(dev.matmul(x))
    assert ids[0] == ids[1]
    np.testing.assert_array_equal(outs[0], outs[1])
