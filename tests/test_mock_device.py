"""The twin against the documented ideal model, the contract's behaviour and its errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import lumina_hal
from lumina_hal.device import Capability
from lumina_hal.errors import (
    DeviceClosedError,
    InputError,
    LuminaError,
    SafetyLimitError,
)
from lumina_hal.twin import reference

# Converters only: no per-call noise, no fabrication scatter, crosstalk, drift or loss.
CONVERTERS_ONLY = "noise=false&fab_sigma=0&crosstalk=0&arm_imbalance_um=0&waveguide_loss_db_cm=0"


def quantization_bound(x, w, input_bits, weight_bits, output_bits, adc_full_scale):
    """Worst-case |y - x @ W.T| from the three converters (docs/physics.md sections 2-3)."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    sx = np.max(np.abs(x), axis=1, keepdims=True)
    sw = np.max(np.abs(w))
    dx = sx * 0.5 / reference.levels(input_bits)  # per input, absolute
    dac_max = 2**weight_bits - 1  # heater DAC: phase pi (q/M)^2, half a code -> |dphi|/2
    dw = sw * (np.pi / dac_max + np.pi / (4 * dac_max**2)) / 2
    cols = w.shape[1]
    products = dx * np.abs(w).sum(axis=1) + dw * np.abs(x).sum(axis=1, keepdims=True)
    products += cols * dx * dw
    adc_half_step = 0.5 * adc_full_scale * np.sqrt(cols) / reference.levels(output_bits) * sx * sw
    return products + adc_half_step + 1e-5 * (1 + np.abs(x @ w.T))


def test_open_load_multiply_matches_numpy_within_the_quantization_step(rng):
    w = rng.uniform(-1, 1, size=(8, 8))
    x = rng.uniform(-1, 1, size=(32, 8))
    with lumina_hal.open_device(f"mock://?rows=8&cols=8&seed=1&{CONVERTERS_ONLY}") as chip:
        info = chip.info
        chip.load_weights(w)
        y = chip.matmul(x)
    assert y.shape == (32, 8) and y.dtype == np.float32
    err = np.abs(y - x @ w.T)
    bound = quantization_bound(x, w, info.input_bits, info.weight_bits, info.output_bits, 2.0)
    assert np.all(err <= bound), float((err - bound).max())
    assert err.max() > 1e-6  # 12-bit converters leave a visible error


def test_default_twin_is_close_to_numpy(rng):
    w = rng.uniform(-1, 1, size=(8, 8))
    x = rng.uniform(-1, 1, size=(32, 8))
    with lumina_hal.open_device("mock://?rows=8&cols=8&seed=1") as chip:
        chip.load_weights(w)
        y = chip.matmul(x)
    rel = np.sqrt(np.mean((y - x @ w.T) ** 2) / np.mean((x @ w.T) ** 2))
    assert 1e-5 < rel < 1e-2


def test_twin_agrees_with_the_numpy_reference_model(rng):
    w = rng.normal(size=(24, 40))
    x = rng.normal(size=(64, 40)).astype(np.float32)
    with lumina_hal.open_device("mock://?rows=32&cols=48&preset=harsh&noise=false") as chip:
        chip.load_weights(w)
        y = chip.matmul(x)
        p, serial = chip.physics, chip.config.serial
    programmed = reference.program(w, p, serial, (32, 48))
    y_ref, _ = reference.forward(x, programmed, p, None)
    step = reference.full_scale(p, 40) / reference.levels(p.output_bits)
    step_abs = step * np.max(np.abs(x), axis=1, keepdims=True) * programmed.scale
    # Same codes except where float32 summation order flips a rounding tie: one code at most.
    assert np.all(np.abs(y - y_ref) <= step_abs * 1.0001)
    assert np.mean(y == y_ref) > 0.98


def test_reference_kernel_switch_runs_the_numpy_model(rng, monkeypatch):
    w = rng.uniform(-1, 1, size=(6, 5))
    x = rng.uniform(-1, 1, size=(10, 5))
    monkeypatch.setenv("LUMINA_KERNEL", "reference")
    with lumina_hal.open_device("mock://?rows=6&cols=5&noise=false") as ref_chip:
        assert ref_chip.config.kernel == "reference"
        assert ref_chip.info.firmware.endswith("/reference")
        ref_chip.load_weights(w)
        y_ref = ref_chip.matmul(x)
    monkeypatch.setenv("LUMINA_KERNEL", "native")
    with lumina_hal.open_device("mock://?rows=6&cols=5&noise=false") as chip:
        chip.load_weights(w)
        y = chip.matmul(x)
    np.testing.assert_allclose(y, y_ref, atol=2e-3)
    monkeypatch.setenv("LUMINA_KERNEL", "fortran")
    with pytest.raises(LuminaError, match="LUMINA_KERNEL='fortran'"):
        lumina_hal.open_device("mock://")


def test_ideal_settings_equal_the_float_result(rng):
    w = rng.uniform(-1, 1, size=(16, 16))
    x = rng.uniform(-1, 1, size=(4, 16))
    uri = f"mock://?rows=16&cols=16&weight_bits=24&input_bits=24&output_bits=24&{CONVERTERS_ONLY}"
    with lumina_hal.open_device(uri) as chip:
        chip.load_weights(w)
        np.testing.assert_allclose(chip.matmul(x), x @ w.T, rtol=1e-5, atol=2e-5)


def test_single_vector_smaller_matrix_and_out_buffer(twin, rng):
    w = rng.uniform(-1, 1, size=(3, 5))  # top-left block of the 8x8 array
    weights_id = twin.load_weights(w)
    assert twin.weights_id == weights_id and twin.weights_shape == (3, 5)
    x = rng.uniform(-1, 1, size=5)
    y = twin.matmul(x)
    assert y.shape == (3,)
    out = np.empty(3, dtype=np.float32)
    result = twin.matmul(x, out=out)
    assert result is out
    np.testing.assert_array_equal(out, y)
    batch_out = np.empty((2, 3), dtype=np.float32)
    assert twin.matmul(np.stack([x, x]), out=batch_out) is batch_out
    np.testing.assert_array_equal(batch_out[1], y)
    assert twin.matmul(np.empty((0, 5))).shape == (0, 3)


def test_input_conversions_give_the_same_answer(rng):
    twin = lumina_hal.open_device("mock://?rows=8&cols=8&noise=false")
    w = rng.uniform(-1, 1, size=(8, 8))
    twin.load_weights(w)
    x = rng.uniform(-1, 1, size=(8, 16))[:, ::2]  # non-contiguous float64
    assert not x.flags.c_contiguous
    y = twin.matmul(x)
    np.testing.assert_array_equal(y, twin.matmul(np.ascontiguousarray(x, dtype=np.float32)))
    ints = np.arange(8).reshape(1, 8)
    np.testing.assert_array_equal(twin.matmul(ints), twin.matmul(ints.astype(np.float32)))


def test_zero_input_gives_zero_output(twin, rng):
    twin.load_weights(rng.uniform(-1, 1, size=(8, 8)))
    assert np.all(twin.matmul(np.zeros((2, 8))) == 0)


def test_weights_id_identifies_the_programmed_codes(twin, rng):
    w = rng.uniform(-1, 1, size=(8, 8))
    first = twin.load_weights(w)
    assert twin.load_weights(w.copy()) == first
    assert twin.load_weights(w * 1.5) == first  # same codes after normalization
    assert twin.load_weights(w[::-1]) != first
    assert first.startswith("8x8-")


@pytest.mark.parametrize(
    ("weights", "fragment"),
    [
        (np.zeros(8), "2-D matrix"),
        (np.zeros((9, 8)), "do not fit the 8x8 array"),
        (np.zeros((8, 9)), "do not fit the 8x8 array"),
        (np.zeros((0, 8)), "must not be empty"),
        (np.array([[1.0, np.nan]]), "NaN or Inf"),
        (np.array([[1 + 2j]]), "real numeric"),
        (np.array([["a"]]), "real numeric"),
        ([[1.0, 2.0], [3.0]], "cannot be read as an array"),
    ],
)
def test_bad_weights_are_refused_and_the_device_stays_usable(twin, weights, fragment):
    twin.load_weights(np.eye(8))
    with pytest.raises(InputError, match=fragment):
        twin.load_weights(weights)
    np.testing.assert_allclose(twin.matmul(np.ones(8)), np.ones(8), atol=0.01)


@pytest.mark.parametrize(
    ("x", "fragment"),
    [
        (np.ones(7), r"has 7 columns but the loaded weights take 8"),
        (np.ones((2, 9)), "has 9 columns"),
        (np.ones((2, 2, 8)), r"expected shape \(8,\) or \(batch, 8\)"),
        (np.float64(1.0), r"expected shape"),
        (np.array([np.inf] * 8), "NaN or Inf"),
        (np.array([[np.nan] * 8]), "NaN or Inf"),
        (np.array([True] * 8), "real numeric"),
    ],
)
def test_bad_inputs_are_refused_and_the_device_stays_usable(twin, x, fragment):
    twin.load_weights(np.eye(8))
    with pytest.raises(InputError, match=fragment):
        twin.matmul(x)
    np.testing.assert_allclose(twin.matmul(np.ones(8)), np.ones(8), atol=0.01)


@pytest.mark.parametrize(
    ("out", "fragment"),
    [
        (np.empty((4,), np.float32), r"shape \(4,\), expected \(8,\)"),
        (np.empty((8,), np.float64), "must be float32"),
        (np.empty((16,), np.float32)[::2], "C-contiguous"),
        ([0.0] * 8, "numpy array"),
    ],
)
def test_bad_out_buffers_are_refused(twin, out, fragment):
    twin.load_weights(np.eye(8))
    with pytest.raises(InputError, match=fragment):
        twin.matmul(np.ones(8), out=out)


def test_matmul_before_load_and_after_close_are_clear_errors():
    chip = lumina_hal.open_device("mock://?rows=4&cols=4")
    with pytest.raises(InputError, match="no weights are loaded"):
        chip.matmul(np.ones(4))
    chip.close()
    chip.close()  # idempotent
    for call in (
        lambda: chip.matmul(np.ones(4)),
        lambda: chip.load_weights(np.eye(4)),
        chip.telemetry,
        lambda: chip.info,
    ):
        with pytest.raises(DeviceClosedError, match="closed"):
            call()
    with chip:  # reopens
        chip.load_weights(np.eye(4))
        assert chip.matmul(np.ones(4)).shape == (4,)
    assert not chip.is_open


def test_telemetry_counters_temperature_and_reset(twin, rng):
    assert Capability.SET_TEMPERATURE.value in twin.info.capabilities
    twin.load_weights(rng.uniform(-1, 1, size=(8, 8)))
    twin.matmul(rng.uniform(-1, 1, size=(5, 8)))
    twin.matmul(rng.uniform(-1, 1, size=8))
    t = twin.telemetry()
    assert t.counters["matmul_calls"] == 2 and t.counters["vectors"] == 6
    assert t.counters["weight_loads"] == 1 and t.weights_id == twin.weights_id
    twin.set_temperature(60.0)
    assert twin.telemetry().temperature_c == 60.0
    with pytest.raises(SafetyLimitError, match="outside the chip's range"):
        twin.set_temperature(400.0)
    with pytest.raises(InputError, match="finite"):
        twin.set_temperature(float("nan"))
    assert twin.telemetry().temperature_c == 60.0
    twin.reset()
    t = twin.telemetry()
    assert t.counters["matmul_calls"] == 0 and t.weights_id is None
    assert t.temperature_c == twin.config.physics.temperature_c
    with pytest.raises(InputError, match="no weights"):
        twin.matmul(np.ones(8))


def test_clipping_at_adc_full_scale_is_counted(rng):
    with lumina_hal.open_device("mock://?rows=4&cols=64") as chip:
        chip.load_weights(np.ones((4, 64)))
        y = chip.matmul(np.ones(64))  # 64 >> full scale of 2*sqrt(64) = 16
        assert np.allclose(y, 16.0, rtol=1e-6)
        assert chip.telemetry().counters["clipped_outputs"] == 4


def test_presets_set_converter_widths_and_explicit_values_win():
    with lumina_hal.open_device("mock://?preset=ideal") as chip:
        assert chip.info.output_bits == 20 and chip.telemetry().temperature_c == 25.0
    with lumina_hal.open_device("mock://?preset=harsh&output_bits=12") as chip:
        assert chip.info.output_bits == 12 and chip.info.weight_bits == 10


def test_one_device_shared_between_threads_gives_consistent_results(rng):
    w = rng.uniform(-1, 1, size=(16, 16))
    inputs = [rng.uniform(-1, 1, size=(8, 16)) for _ in range(8)]
    with lumina_hal.open_device("mock://?rows=16&cols=16&noise=false") as chip:
        chip.load_weights(w)
        expected = [chip.matmul(x) for x in inputs]
        results: dict[int, list[np.ndarray]] = {}
        errors: list[BaseException] = []

        def worker(k: int) -> None:
            try:
                results[k] = [chip.matmul(inputs[(k + i) % 8]) for i in range(50)]
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        for k, outs in results.items():
            for i, y in enumerate(outs):
                np.testing.assert_array_equal(y, expected[(k + i) % 8])
        assert chip.telemetry().counters["matmul_calls"] == 8 + 4 * 50


def test_simd_path_can_be_forced_and_gives_the_same_bits(rng):
    from lumina_hal.twin import kernel

    w = rng.uniform(-1, 1, size=(40, 33))
    x = rng.uniform(-1, 1, size=(7, 33))
    best = kernel.isa_name()
    results = {}
    try:
        for name in ("scalar", "avx2", "avx512", "avx512vnni", "amx"):
            used = kernel.select_isa(name)
            with lumina_hal.open_device("mock://?rows=40&cols=33&seed=4") as chip:
                chip.load_weights(w)
                results[used] = chip.matmul(x)
        with pytest.raises(LuminaError, match="unknown SIMD path 'sse9'"):
            kernel.select_isa("sse9")
    finally:
        kernel.select_isa(best)
    assert "scalar" in results
    for y in results.values():
        np.testing.assert_array_equal(y, results["scalar"])


def test_a_batch_split_with_vector_offsets_gives_the_same_bits(rng):
    """kernel.forward(first_vector=...) lets a link split one call over several frames."""
    w = rng.uniform(-1, 1, size=(20, 30))
    x = rng.uniform(-1, 1, size=(11, 30)).astype(np.float32)
    with lumina_hal.open_device("mock://?rows=20&cols=30&seed=8") as chip:
        chip.load_weights(w)
        whole = chip.matmul(x)
        engine, seed = chip.chip.engine, chip.config.seed
        parts = np.empty_like(whole)
        for start, stop in [(0, 4), (4, 5), (5, 11)]:
            engine.forward(
                x[start:stop],
                parts[start:stop],
                seed=seed,
                call_index=0,
                threads=1,
                first_vector=start,
            )
        shifted = np.empty_like(whole)
        engine.forward(x, shifted, seed=seed, call_index=0, threads=1, first_vector=1)
    np.testing.assert_array_equal(parts, whole)
    assert not np.array_equal(shifted, whole)  # the offset really moves the noise streams
