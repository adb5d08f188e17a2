"""The native kernel and the numpy reference engine agree on what they refuse and return.

Hypothesis drives ``matmul`` and ``load_weights`` of two twins that differ only in their
per-call engine (``kernel=native`` / ``kernel=reference``, noise off so results are
comparable) with shapes, dtypes, NaN/Inf, values beyond float32, subnormals, strided,
misaligned and overlapping buffers. Every failure must be a LuminaError of the same class
on both engines; every result must agree within one ADC step (float32 against float64
sums). Pinned cases for issue 10 follow the fuzz.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lumina_hal
from lumina_hal.errors import InputError, LuminaError
from lumina_hal.twin import reference

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
ROWS, COLS = 24, 20
SPECIAL = [0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e-40, -3e-39, 1e-310, 3.5e38, 1e300,
           -1e300, 1e-45, 65504.0, 1e30]  # fmt: skip


@contextlib.contextmanager
def twins(rows: int = ROWS, cols: int = COLS) -> Iterator[dict]:
    devices = {}
    try:
        for engine in ("native", "reference"):
            uri = f"mock://?rows={rows}&cols={cols}&preset=typical&noise=false&kernel={engine}"
            devices[engine] = lumina_hal.open_device(uri)
        yield devices
    finally:
        for d in devices.values():
            d.close()


def outcome(fn) -> tuple[str, object]:
    """("ok", value) or ("error", exception class); anything not a LuminaError fails."""
    try:
        return "ok", fn()
    except LuminaError as exc:
        return "error", type(exc)


def lsb(chip, weights: np.ndarray) -> float:
    p = chip.physics
    scale = float(np.max(np.abs(weights))) or 1.0
    return reference.full_scale(p, weights.shape[1]) / reference.levels(p.output_bits) * scale


def assert_agree(native, ref, weights, x_used, chip) -> None:
    assert native[0] == ref[0], (native, ref)
    if native[0] == "error":
        assert native[1] is ref[1]
        return
    yn, yr = np.asarray(native[1]), np.asarray(ref[1])
    assert yn.dtype == np.float32 and yr.dtype == np.float32 and yn.shape == yr.shape
    assert np.array_equal(np.isfinite(yn), np.isfinite(yr))
    s_x = np.max(np.abs(np.atleast_2d(x_used).astype(np.float32)), axis=1)
    tol = 1.01 * lsb(chip, weights) * s_x  # one ADC step per vector
    finite = np.isfinite(yn)
    diff = np.abs(np.atleast_2d(yn).astype(np.float64) - np.atleast_2d(yr))
    assert np.all(np.where(np.atleast_2d(finite), diff <= tol[:, None] + 1e-30, True))


def values(shape_strategy) -> st.SearchStrategy:
    elements = st.one_of(st.sampled_from(SPECIAL), st.floats(-4, 4, width=32))
    return shape_strategy.flatmap(
        lambda shape: st.lists(
            elements, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))
        ).map(lambda v: np.array(v, dtype=np.float64).reshape(shape))
    )


DTYPES = st.sampled_from(
    [
        np.float32,
        np.float64,
        np.float16,
        np.int8,
        np.int32,
        np.int64,
        np.uint16,
        np.bool_,
        np.complex64,
    ]
)
LAYOUTS = st.sampled_from(["plain", "strided", "fortran", "misaligned", "list", "readonly"])


def layout(a: np.ndarray, how: str):
    if how == "strided":
        big = np.zeros((a.shape[0] * 2, *a.shape[1:]), dtype=a.dtype) if a.ndim else a
        if a.ndim:
            big[::2] = a
            return big[::2]
        return a
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "misaligned" and a.dtype.itemsize > 1:
        raw = np.zeros(a.nbytes + 1, dtype=np.uint8)
        out = np.ndarray(a.shape, dtype=a.dtype, buffer=raw.data, offset=1)
        out[...] = a
        return out
    if how == "list":
        return a.tolist()
    if how == "readonly":
        a = a.copy()
        a.flags.writeable = False
        return a
    return a


@FUZZ
@given(
    shape=st.one_of(
        st.just((COLS,)),
        st.tuples(st.integers(0, 5), st.just(COLS)),
        st.tuples(st.integers(0, 3), st.integers(0, 25)),
        st.tuples(st.integers(1, 2), st.integers(1, 2), st.just(COLS)),
    ),
    data=st.data(),
    dtype=DTYPES,
    how=LAYOUTS,
    with_out=st.sampled_from(["none", "fresh", "misaligned", "wrong"]),
)
def test_matmul_fuzz_engines_agree(shape, data, dtype, how, with_out):
    base = data.draw(values(st.just(shape)))
    with np.errstate(all="ignore"):
        x = base.astype(dtype)
    x = layout(x, how)
    rng = np.random.default_rng(0)
    weights = rng.uniform(-1, 1, (ROWS, COLS))
    with twins() as chips:
        results = {}
        for engine, chip in chips.items():
            chip.load_weights(weights)
            out = None
            if with_out != "none" and len(shape) == 2:
                out = np.full((shape[0], ROWS), np.nan, np.float32)
                if with_out == "misaligned":
                    raw = np.zeros(out.nbytes + 1, np.uint8)
                    out = np.ndarray(out.shape, np.float32, buffer=raw.data, offset=1)
                elif with_out == "wrong":
                    out = np.zeros((shape[0] + 1, ROWS), np.float32)
            results[engine] = outcome(lambda c=chip, o=out: np.array(c.matmul(x, out=o)))
        assert_agree(
            results["native"], results["reference"], weights, np.asarray(x), chips["native"]
        )


@FUZZ
@given(
    shape=st.tuples(st.integers(0, ROWS + 1), st.integers(0, COLS + 1)),
    data=st.data(),
    dtype=DTYPES,
    how=LAYOUTS,
    scale=st.sampled_from([1.0, 1e-300, 1e-40, 1e30, 1e39, 1e300]),
)
def test_load_weights_fuzz_engines_agree(shape, data, dtype, how, scale):
    base = data.draw(values(st.just(shape)))
    with np.errstate(all="ignore"):
        w = layout((base * scale).astype(dtype), how)
    x = np.random.default_rng(1).uniform(-1, 1, (3, COLS)).astype(np.float32)
    with twins() as chips:
        results = {}
        for engine, chip in chips.items():

            def run(c=chip):
                c.load_weights(w)
                return c.matmul(x[:, : c.weights_shape[1]])

            results[engine] = outcome(run)
        loaded = np.asarray(w, dtype=np.float64) if results["native"][0] == "ok" else None
        if loaded is not None:
            xs = x[:, : loaded.shape[1]]
            assert_agree(results["native"], results["reference"], loaded, xs, chips["native"])
        else:
            assert results["native"] == results["reference"]


# ---- pinned cases ------------------------------------------------------------------------


def test_out_overlapping_the_input_gives_the_right_result():
    rng = np.random.default_rng(2)
    w = rng.uniform(-1, 1, (COLS, COLS))
    x = rng.uniform(-1, 1, (4, COLS)).astype(np.float32)
    with twins(COLS, COLS) as chips:
        for chip in chips.values():
            chip.load_weights(w)
            expected = chip.matmul(x)
            chip.reset()
            chip.load_weights(w)
            buf = x.copy()
            got = chip.matmul(buf, out=buf)  # out is x itself
            assert got is buf
            np.testing.assert_array_equal(buf, expected)
            chip.reset()
            chip.load_weights(w)
            big = np.zeros(5 * COLS, np.float32)
            big[: 4 * COLS] = x.ravel()
            xin, out = big[: 4 * COLS].reshape(4, COLS), big[COLS:].reshape(4, COLS)
            chip.matmul(xin, out=out)  # shifted overlap
            np.testing.assert_array_equal(out, expected)


def test_misaligned_buffers_are_copied_and_give_the_aligned_result():
    rng = np.random.default_rng(3)
    w = rng.uniform(-1, 1, (ROWS, COLS))
    x = rng.uniform(-1, 1, (3, COLS)).astype(np.float32)
    raw = np.zeros(x.nbytes + 1, np.uint8)
    xm = np.ndarray(x.shape, np.float32, buffer=raw.data, offset=1)
    xm[...] = x
    assert not xm.flags.aligned
    with twins() as chips:
        for chip in chips.values():
            chip.load_weights(w)
            expected = chip.matmul(x)
            chip.reset()
            chip.load_weights(w)
            np.testing.assert_array_equal(chip.matmul(xm), expected)


def test_subnormal_inputs_and_float32_overflow_are_treated_alike():
    rng = np.random.default_rng(4)
    w = rng.uniform(-1, 1, (ROWS, COLS))
    tiny = (rng.uniform(-1, 1, (2, COLS)) * 1e-40).astype(np.float32)
    assert np.all(np.abs(tiny) < np.finfo(np.float32).tiny)
    with twins() as chips:
        ys = {}
        for name, chip in chips.items():
            chip.load_weights(w)
            ys[name] = chip.matmul(tiny)
            assert np.all(np.isfinite(ys[name])) and np.any(ys[name] != 0)
            with pytest.raises(InputError, match="float32 range"):
                chip.matmul(np.full((1, COLS), 1e300))
            with pytest.raises(InputError, match="NaN or Inf"):
                chip.matmul(np.full((1, COLS), np.inf, np.float32))
            with pytest.raises(InputError, match="float32 range"):
                chip.load_weights(np.full((2, 2), 1e300))
        np.testing.assert_allclose(ys["native"], ys["reference"], rtol=0, atol=1e-44)


def test_a_result_too_large_for_memory_is_refused_up_front_with_its_size(monkeypatch):
    from lumina_hal import device

    monkeypatch.setattr(device, "_physical_memory_bytes", lambda: 1 << 20)
    with twins() as chips:
        for chip in chips.values():
            chip.load_weights(np.eye(ROWS, COLS))
            with pytest.raises(InputError, match=r"GiB.*split the batch"):
                chip.matmul(np.zeros((20_000, COLS), np.float32))
            assert chip.matmul(np.zeros((2, COLS), np.float32)).shape == (2, ROWS)


def test_kernel_model_forward_codes_matches_the_float_path():
    """KernelModel.forward_codes (lk_forward_codes): the chip's int32 codes in and out."""
    from lumina_hal.codes import levels
    from lumina_hal.twin.kernel import KernelModel

    rng = np.random.default_rng(5)
    with lumina_hal.open_device(f"mock://?rows={ROWS}&cols={COLS}&preset=typical") as chip:
        chip.load_weights(rng.uniform(-1, 1, (ROWS, COLS)))
        p = chip.physics
        model = KernelModel.for_array(chip.chip.programmed, p, output_scale=1.0)
        lx = levels(p.input_bits)
        codes = rng.integers(-lx, lx + 1, (5, COLS)).astype(np.int32)
        codes[:, 3] = lx
        x = (codes / np.float32(lx)).astype(np.float32)
        y = np.empty((5, ROWS), np.float32)
        clipped = model.forward(x, y, seed=3, call_index=7, threads=2)
        from_code = np.float32(reference.full_scale(p, COLS)) / np.float32(levels(p.output_bits))
        got, got_clipped = model.forward_codes(codes, seed=3, call_index=7, threads=1)
        np.testing.assert_array_equal(got, np.rint(y / from_code).astype(np.int32))
        assert got_clipped == clipped
        codes[1, 1] = -(2**31)
        with pytest.raises(InputError, match="outside"):
            model.forward_codes(codes, seed=3, call_index=7, threads=1)
        with pytest.raises(InputError, match="shape"):
            model.forward_codes(codes[:, 1:], seed=3, call_index=7, threads=1)


def test_noise_on_engines_draw_the_same_normals():
    """With noise on, the reference draws the kernel's normals (docs/physics.md section 4,
    reference.KernelNoise), so the engines differ only by arithmetic (float64 sums, the
    variance in 8-bit codes): far less than the noise itself, which independent draws
    would double instead. Also for a batch split (first_vector)."""
    rows, cols, batch = 64, 48, 12
    rng = np.random.default_rng(11)
    weights = rng.uniform(-1, 1, (rows, cols))
    x = rng.uniform(-1, 1, (batch, cols)).astype(np.float32)
    y = {}
    for engine in ("native", "reference"):
        for noise in ("true", "false"):
            uri = f"mock://?rows={rows}&cols={cols}&preset=typical&noise={noise}&kernel={engine}"
            with lumina_hal.open_device(uri) as chip:
                chip.load_weights(weights)
                whole = np.array(chip.matmul(x))
                if noise == "true":
                    part = np.empty((batch - 5, rows), np.float32)
                    chip.chip.forward(x[5:], part, call_index=0, first_vector=5)
                    np.testing.assert_array_equal(part, whole[5:])
                y[engine, noise] = whole
    noise_rms = float(np.sqrt(np.mean((y["native", "true"] - y["native", "false"]) ** 2)))
    gap_rms = float(np.sqrt(np.mean((y["native", "true"] - y["reference", "true"]) ** 2)))
    assert noise_rms > 0
    assert gap_rms < 0.1 * noise_rms, (gap_rms, noise_rms)
