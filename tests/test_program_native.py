"""Programming in C (native/lk_program.c) against the numpy reference, bit for bit."""

from __future__ import annotations

import tracemalloc
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lumina_hal
from lumina_hal._lumina_kernel import ffi, lib
from lumina_hal.codes import heater_codes, heater_codes_numpy
from lumina_hal.errors import InputError
from lumina_hal.twin import physics, reference
from lumina_hal.twin.kernel import KernelModel, isa_name, pack_panels, select_isa


def test_the_ziggurat_tables_of_the_reference_are_the_kernels():
    widths, ks, _ = reference.ziggurat_tables()
    width, k = ffi.new("float *"), ffi.new("uint32_t *")
    for layer in range(256):
        assert lib.lk_zig_table(layer, width, k) == lib.LK_OK
        assert (np.float32(width[0]), int(k[0])) == (widths[layer], int(ks[layer]))
    assert lib.lk_zig_table(256, width, k) == lib.LK_EINVAL


def test_cell_normals_agree_with_the_kernel_including_the_slow_path():
    key, rows, cols = reference.serial_key("SER-42"), 70, 90
    fab, arm = np.empty((rows, cols)), np.empty((rows, cols))
    assert lib.lk_cell_normals(key, rows, cols, ffi.from_buffer("double[]", fab),
                               ffi.from_buffer("double[]", arm)) == lib.LK_OK  # fmt: skip
    ref_fab, ref_arm = reference.cell_normals(key, 0, rows, cols), reference.cell_normals(
        key, 1, rows, cols
    )
    np.testing.assert_array_equal(fab, ref_fab)
    np.testing.assert_array_equal(arm, ref_arm)
    # the slow path was exercised: some values lie outside every layer's rectangle
    _, ks, _ = reference.ziggurat_tables()
    h = reference.cell_hashes(key, rows, cols)
    w = (h & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    assert np.count_nonzero((w >> np.uint32(9)) >= ks[w & np.uint32(0xFF)]) > 10
    both = np.concatenate([fab.ravel(), arm.ravel()])
    assert abs(both.mean()) < 0.05 and both.std() == pytest.approx(1.0, abs=0.03)
    assert not np.array_equal(fab, arm)


@settings(max_examples=80, deadline=None)
@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 40),
    extra=st.integers(0, 8),
    preset=st.sampled_from(["ideal", "typical", "harsh"]),
    temperature_c=st.floats(-40, 125),
    fab_sigma=st.sampled_from([None, 0.0, 0.3]),
    crosstalk=st.sampled_from([None, 0.0, 0.05]),
    threads=st.integers(1, 3),
    seed=st.integers(0, 2**63 - 1),
    isa=st.sampled_from(["scalar", "avx2", "avx512", "avx512vnni", "amx"]),
)
def test_programmed_weights_equal_the_reference_bit_for_bit(
    rows, cols, extra, preset, temperature_c, fab_sigma, crosstalk, threads, seed, isa
):
    """Every ISA path (the best available when one is missing) gives the reference's bits."""
    best = isa_name()
    try:
        select_isa(isa)
        _check_programming(rows, cols, extra, preset, temperature_c, fab_sigma, crosstalk,
                           threads, seed)  # fmt: skip
    finally:
        select_isa(best)


def _check_programming(rows, cols, extra, preset, temperature_c, fab_sigma, crosstalk, threads,
                       seed):  # fmt: skip
    p = physics.PRESETS[preset].with_temperature(temperature_c)
    if fab_sigma is not None:
        p = replace(p, fab_sigma=fab_sigma)
    if crosstalk is not None:
        p = replace(p, crosstalk=crosstalk)
    array = (rows + extra, cols + extra)
    w = np.random.default_rng(seed).uniform(-1, 1, size=(rows, cols))
    steps = tuple(float(np.float32(k)) for k in physics.loss_steps_db(p, *array))
    codes, scale = heater_codes(w, p.weight_bits, steps, threads)
    ref_codes, ref_scale = heater_codes_numpy(w, p.weight_bits, steps)
    np.testing.assert_array_equal(codes, ref_codes)
    assert scale == ref_scale
    serial = f"S-{seed}"
    model = KernelModel.for_codes(codes, scale, p, serial, array, threads=threads)
    expected = reference.program_codes(codes, scale, p, serial, array).effective(p)
    np.testing.assert_array_equal(model._packed, pack_panels(expected.astype(np.float32)))


def test_heater_codes_refuse_non_finite_weights_with_an_input_error():
    w = np.ones((3, 3))
    w[1, 1] = np.inf
    with pytest.raises(InputError):
        heater_codes(w, 12, (0.1, 0.1))


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 300),
    weight_bits=st.integers(2, 12),
    threads=st.integers(1, 3),
    isa=st.sampled_from(["scalar", "avx2", "avx512", "avx512vnni", "amx"]),
    seed=st.integers(0, 2**32 - 1),
    special=st.sampled_from([None, 0.0, -0.0, np.nan, np.inf, -np.inf, 3e38, 1e-45]),
)
def test_float32_weights_give_the_codes_of_their_float64_copy(
    rows, cols, weight_bits, threads, isa, seed, special
):
    """lk_heater_codes_f32 widens each row in the kernel: the same codes and scale as the
    float64 entry, and the same refusal of NaN and Inf, on every ISA path."""
    w = np.random.default_rng(seed).uniform(-1, 1, (rows, cols)).astype(np.float32)
    if special is not None:
        w[rows // 2, cols // 2] = special
    best = isa_name()
    try:
        select_isa(isa)
        outcomes = []
        for matrix in (w, w.astype(np.float64)):
            try:
                outcomes.append(heater_codes(matrix, weight_bits, (0.01, 0.02), threads))
            except InputError:
                outcomes.append(None)
    finally:
        select_isa(best)
    single, double = outcomes
    assert (single is None) == (double is None) == (not np.isfinite(w).all())
    if single is not None and double is not None:
        np.testing.assert_array_equal(single[0], double[0])
        assert single[1] == double[1]


def test_a_loaded_twin_keeps_only_its_codes_and_packed_weights():
    """Resident memory of a load: int32 codes + float32 W_eff + 8-bit variance codes, 2.25x the
    float32 matrix (goal: <= 2.5x)."""
    n = 512
    w = np.random.default_rng(1).uniform(-1, 1, size=(n, n))
    with lumina_hal.open_device(f"mock://?rows={n}&cols={n}&preset=typical") as chip:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        chip.load_weights(w)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    matrix = n * n * 4
    assert (current - base) / matrix < 2.35
    assert (peak - base) / matrix < 3.0


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512", "avx512vnni", "amx"])
@pytest.mark.parametrize("preset", ["typical", "harsh"])
def test_large_blocks_take_the_table_and_vector_paths_with_the_same_bits(isa, preset):
    """At >= 2^16 cells the heater phases come from a table and, on AVX-512, 8 cells at once."""
    best = isa_name()
    try:
        select_isa(isa)
        _check_programming(260, 301, 7, preset, 70.0, None, None, 2, 11)
    finally:
        select_isa(best)


@pytest.mark.parametrize("isa", ["scalar", "avx512"])
def test_codes_and_programmed_weights_do_not_depend_on_the_thread_count(isa):
    """Threads 1, 2 and 7 give the same codes (float64 and float32 entries) and W_eff."""
    rng = np.random.default_rng(5)
    w = rng.uniform(-1, 1, size=(133, 517))
    w[3, :40] = 0.0
    p = physics.PRESETS["typical"]
    best = isa_name()
    try:
        select_isa(isa)
        runs = []
        for threads in (1, 2, 7):
            codes, scale = heater_codes(w, p.weight_bits, (0.01, 0.02), threads)
            codes32, scale32 = heater_codes(w.astype(np.float32), p.weight_bits, (0.01, 0.02),
                                            threads)  # fmt: skip
            model = KernelModel.for_codes(codes, scale, p, "S-7", (140, 520), threads=threads)
            runs.append((codes, scale, codes32, scale32, model._packed.copy()))
    finally:
        select_isa(best)
    ref_codes, ref_scale = heater_codes_numpy(w, p.weight_bits, (0.01, 0.02))
    for codes, scale, codes32, _, packed in runs:
        np.testing.assert_array_equal(codes, ref_codes)
        assert scale == ref_scale
        np.testing.assert_array_equal(packed, runs[0][4])
        np.testing.assert_array_equal(codes32, runs[0][2])


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 70),
    cols=st.integers(1, 90),
    single=st.booleans(),
    threads=st.sampled_from([1, 2, 7]),
    seed=st.integers(0, 2**32 - 1),
    special=st.sampled_from([None, 0.0, -0.0, np.nan, np.inf, -np.inf, 3e38, -1e-45]),
    isa=st.sampled_from(["scalar", "avx512"]),
)
def test_weight_range_is_numpys_min_and_max(rows, cols, single, threads, seed, special, isa):
    """lk_weight_range (the load's check) against numpy on both paths: NaN anywhere makes
    both NaN."""
    w = np.random.default_rng(seed).uniform(-5, 5, (rows, cols))
    w = w.astype(np.float32) if single else w
    if special is not None:
        w[(seed >> 3) % rows, seed % cols] = special
    lo, hi = ffi.new("double *"), ffi.new("double *")
    matrix = ffi.from_buffer("float[]" if single else "double[]", w)
    best = isa_name()
    try:
        select_isa(isa)
        rc = lib.lk_weight_range(
            ffi.NULL if single else matrix, matrix if single else ffi.NULL, rows, cols, threads,
            lo, hi,
        )  # fmt: skip
    finally:
        select_isa(best)
    assert rc == lib.LK_OK
    np.testing.assert_array_equal([lo[0], hi[0]], [float(w.min()), float(w.max())])


def test_weight_range_refuses_bad_arguments():
    w = np.ones((2, 2))
    lo, hi = ffi.new("double *"), ffi.new("double *")
    matrix = ffi.from_buffer("double[]", w)
    assert lib.lk_weight_range(ffi.NULL, ffi.NULL, 2, 2, 1, lo, hi) == lib.LK_EINVAL
    assert lib.lk_weight_range(matrix, ffi.NULL, 0, 2, 1, lo, hi) == lib.LK_EINVAL
    assert lib.lk_weight_range(matrix, ffi.NULL, 2, 2, 0, lo, hi) == lib.LK_EINVAL


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e39])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_large_matrix_with_a_bad_value_is_refused_like_a_small_one(bad, dtype):
    """The load's check in C (>= 2^16 entries) refuses what numpy's check refuses."""
    messages = []
    for n in (8, 300):
        w = np.zeros((n, n), dtype=dtype)
        with np.errstate(over="ignore"):
            w[n // 2, n // 3] = bad  # 1e39 is Inf in float32
        with lumina_hal.open_device(f"mock://?rows={n}&cols={n}") as chip:
            with pytest.raises(InputError) as err:
                chip.load_weights(w)
            messages.append(str(err.value))
    assert messages[0] == messages[1]
