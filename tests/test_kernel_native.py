"""The C kernel called directly through cffi (lumina_hal._lumina_kernel), no Python wrapper.

Covers native/lumina_kernel.h: the fused forward pass against numpy references (an exact
float32 emulation of docs/physics.md section 3 and a float64 one), the converters bit for
bit, determinism across threads and ISA paths, the RNG keying, the statistics of the
normals and of the forward-pass noise, and the error codes. See docs/kernel.md.
"""

from __future__ import annotations

import itertools
import math
import os
import signal
import threading

import numpy as np
import pytest

from lumina_hal._lumina_kernel import ffi, lib
from lumina_hal.twin import reference_normals

PANEL = 16
F32 = np.float32


# ----------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------


def levels(bits: int) -> F32:
    return F32((1 << (bits - 1)) - 1)


def fptr(a: np.ndarray):
    assert a.dtype == np.float32 and a.flags.c_contiguous
    return ffi.from_buffer("float[]", a, require_writable=a.flags.writeable)


def pack_panels(w: np.ndarray) -> np.ndarray:
    """(r, c) -> ceil(r/16) panels of c x 16: element (i, j) at [(i//16)*c*16 + j*16 + i%16]."""
    r, c = w.shape
    npan = -(-r // PANEL)
    padded = np.zeros((npan * PANEL, c), dtype=F32)
    padded[:r] = w
    return np.ascontiguousarray(padded.reshape(npan, PANEL, c).transpose(0, 2, 1)).ravel()


class Model:
    """An lk_model and the numpy arrays it points into (kept alive as attributes)."""

    def __init__(
        self,
        w,
        *,
        r2=None,
        c2=None,
        input_bits=8,
        output_bits=8,
        full_scale=None,
        output_scale=1.0,
        phase_var=0.0,
        det=(0.0, 0.0, 0.0),
        noise=False,
    ):
        self.w = np.ascontiguousarray(w, dtype=F32)
        rows, cols = self.w.shape
        self.packed = pack_panels(self.w)
        self.r2 = np.ones(rows, F32) if r2 is None else np.ascontiguousarray(r2, dtype=F32)
        self.c2 = np.ones(cols, F32) if c2 is None else np.ascontiguousarray(c2, dtype=F32)
        if full_scale is None:
            full_scale = 2.0 * math.sqrt(cols)
        self.codes = np.zeros(lib.lk_var_code_bytes(rows, cols), np.uint8)
        self.var_inv = np.zeros(rows, F32)
        self.var_scale = np.zeros(rows, F32)
        self.set_phase_var(phase_var)
        self.s = ffi.new("lk_model *")
        s = self.s
        s.rows, s.cols = rows, cols
        s.weights = fptr(self.packed)
        s.row_envelope_sq = fptr(self.r2)
        s.col_envelope_sq = fptr(self.c2)
        s.var_codes = ffi.from_buffer("uint8_t[]", self.codes)
        s.row_var_inv = fptr(self.var_inv)
        s.row_var_scale = fptr(self.var_scale)
        s.input_bits, s.output_bits = input_bits, output_bits
        s.full_scale = full_scale
        s.output_scale = output_scale
        s.det_c0, s.det_c1, s.det_c2 = det
        s.noise = 1 if noise else 0

    def set_phase_var(self, phase_var: float) -> None:
        """(Re)compute the variance codes and scales with lk_pack_model."""
        self.phase_var = F32(phase_var)
        rows, cols = self.w.shape
        self.packed[:] = pack_panels(self.w)
        kpacked = np.zeros(lib.lk_packed_floats(rows, cols), F32)
        rc = lib.lk_pack_model(
            fptr(self.w), rows, cols, fptr(self.r2), fptr(self.c2), phase_var, fptr(kpacked),
            ffi.from_buffer("uint8_t[]", self.codes, require_writable=True),
            fptr(self.var_inv), fptr(self.var_scale),
        )  # fmt: skip
        assert rc == lib.LK_OK
        assert np.array_equal(kpacked, self.packed)

    @property
    def rows(self) -> int:
        return self.s.rows

    @property
    def cols(self) -> int:
        return self.s.cols

    def forward(self, x, *, seed=0, call=0, threads=1, y=None):
        """(return code, y, clipped count)."""
        x = np.ascontiguousarray(x, dtype=F32)
        if y is None:
            y = np.full((x.shape[0], self.rows), np.nan, dtype=F32)
        clipped = ffi.new("int64_t *", -1)
        rc = lib.lk_forward(self.s, fptr(x), x.shape[0], fptr(y), seed, call, threads, clipped)
        return rc, y, int(clipped[0])

    def run(self, x, **kw):
        rc, y, clipped = self.forward(x, **kw)
        assert rc == lib.LK_OK
        return y, clipped


def np_dac(x: np.ndarray, bits: int):
    """Input DAC in numpy float32: (x_n, s_x). Where L / s_x overflows, x and s_x are
    scaled by 2^64 first (exact), as the kernel does."""
    x = np.asarray(x, dtype=F32)
    lx = levels(bits)
    sx = np.max(np.abs(x), axis=1)
    up = np.ones_like(sx)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        up[np.isinf(lx / sx) & (sx > 0)] = F32(2.0**64)
        to_code = (lx / (sx * up)).astype(F32)
        xn = (np.rint((x * up[:, None]) * to_code[:, None]) / lx).astype(F32)
    xn[sx == 0] = 0
    return xn, sx


def np_adc(v: np.ndarray, bits: int, full_scale: float):
    """ADC in numpy float32: (codes, count of codes at +-L)."""
    ly = levels(bits)
    to_code = ly / F32(full_scale)
    codes = np.rint(np.asarray(v, dtype=F32) * to_code)
    codes = np.clip(codes, -ly, ly).astype(F32)
    return codes, int(np.count_nonzero(np.abs(codes) == ly))


def fma32(a, b, c):
    """Correctly rounded float32 fma(a, b, c), elementwise, without double rounding.

    a*b is exact in float64; s = a*b + c is rounded once (error e recovered by TwoSum).
    Rounding s to float32 is then correct except when s lies exactly halfway between two
    float32 values and e != 0, where e decides the direction."""
    a64 = np.asarray(a, dtype=np.float64)
    p = a64 * np.asarray(b, dtype=np.float64)
    c64 = np.asarray(c, dtype=np.float64)
    s = p + c64
    bb = s - p
    e = (p - (s - bb)) + (c64 - bb)
    r = s.astype(F32)
    d = s - r.astype(np.float64)  # exact
    lo = np.nextafter(r, F32(-np.inf)).astype(np.float64)
    hi = np.nextafter(r, F32(np.inf)).astype(np.float64)
    half_dn = (r.astype(np.float64) - lo) / 2
    half_up = (hi - r.astype(np.float64)) / 2
    fix_up = (d == half_up) & (e > 0)  # s rounded down to r; the exact value is above the tie
    fix_dn = (d == -half_dn) & (e < 0)
    r = np.where(fix_up, np.nextafter(r, F32(np.inf)), r)
    r = np.where(fix_dn, np.nextafter(r, F32(-np.inf)), r)
    return r.astype(F32)


def np_var_codes(m: Model):
    """The variance codes of docs/kernel.md in numpy float32: (dq (r, c) int, dinv, vscale)."""
    with np.errstate(over="ignore"):
        d = np.maximum(m.r2[:, None] * m.c2[None, :] - m.w * m.w, F32(0)).astype(F32)
    dmax = d.max(axis=1)
    dmax[dmax < F32(1e-30)] = 0
    with np.errstate(divide="ignore"):
        inv = np.where(dmax > 0, F32(255) / dmax, F32(0)).astype(F32)
    dq = np.minimum(np.rint(d * inv[:, None]), F32(255)).astype(np.int64)
    vscale = (np.float64(m.phase_var) * dmax.astype(np.float64) / (255.0 * 127.0)).astype(F32)
    return dq, inv, vscale


def np_x2_codes(xn: np.ndarray) -> np.ndarray:
    return np.rint((xn * xn).astype(F32) * F32(127)).astype(np.int64)


def exact_reference(m: Model, x, *, seed=0, call=0):
    """Bit-exact float32 emulation of docs/physics.md section 3 as the kernel evaluates it
    (docs/kernel.md), with the normals from the numpy reference of docs/physics.md section 4.
    Returns (y, clipped count, v before the ADC)."""
    s = m.s
    x = np.asarray(x, dtype=F32)
    batch = x.shape[0]
    rows, cols = m.rows, m.cols
    xn, sx = np_dac(x, s.input_bits)
    w = m.w
    u = np.zeros((batch, rows), F32)
    for j in range(cols):
        u = fma32(xn[:, j : j + 1], w[None, :, j], u)
    if s.noise:
        dq, _, vscale = np_var_codes(m)
        s_int = np_x2_codes(xn) @ dq.T  # exact integers
        z = np.stack([reference_normals.call_normals(seed, call, b, 0, rows) for b in range(batch)])
        vphi = vscale[None, :] * s_int.astype(F32)
        det = (F32(s.det_c0) + F32(s.det_c1) * np.abs(u)) + F32(s.det_c2) * (u * u)
        v = u + np.sqrt(vphi + det) * z
    else:
        v = u
    codes, clipped = np_adc(v, s.output_bits, s.full_scale)
    clipped -= int(np.count_nonzero(np.abs(codes[sx == 0]) == levels(s.output_bits)))
    from_code = F32(s.full_scale) / levels(s.output_bits)
    y = ((codes * from_code) * sx[:, None]) * F32(s.output_scale)
    y[sx == 0] = 0
    return y.astype(F32), clipped, v


def available_isas() -> list[int]:
    """Every ISA path the CPU supports (selecting above the best one gives the best one)."""
    best = lib.lk_select_isa(lib.LK_ISA_AMX)
    return list(range(best + 1))


@pytest.fixture
def restore_isa():
    before = lib.lk_isa()
    yield
    lib.lk_select_isa(before)


def random_model(rng, rows, cols, *, noise=True, **kw):
    """Weights |w| <= R_i C_j as the physics guarantees, envelopes in [0.5, 1]."""
    r2 = rng.uniform(0.5, 1.0, rows).astype(F32)
    c2 = rng.uniform(0.5, 1.0, cols).astype(F32)
    env = np.sqrt(r2.astype(np.float64))[:, None] * np.sqrt(c2.astype(np.float64))[None, :]
    w = (env * rng.uniform(-1, 1, (rows, cols))).astype(F32)
    kw.setdefault("phase_var", 2e-3)
    kw.setdefault("det", (1e-3, 5e-4, 2e-4))
    return Model(w, r2=r2, c2=c2, noise=noise, **kw)


# ----------------------------------------------------------------------------------------
# Basics
# ----------------------------------------------------------------------------------------


def test_version_and_isa_selection(restore_isa):
    assert lib.lk_version() >= 2
    isas = available_isas()
    assert lib.LK_ISA_SCALAR in isas
    for isa in isas:
        assert lib.lk_select_isa(isa) == isa
        assert lib.lk_isa() == isa
    assert lib.lk_select_isa(-5) == lib.LK_ISA_SCALAR
    assert lib.lk_select_isa(99) == isas[-1]


def test_panel_packing_helper_matches_the_header_formula():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(37, 5)).astype(F32)
    packed = pack_panels(w)
    assert packed.size == 3 * 5 * PANEL
    for i in range(37):
        for j in range(5):
            assert packed[(i // 16) * 5 * 16 + j * 16 + i % 16] == w[i, j]
    assert np.all(packed.reshape(3, 5, 16)[2, :, 5:] == 0)


# ----------------------------------------------------------------------------------------
# Forward pass against numpy
# ----------------------------------------------------------------------------------------


def test_noiseless_wide_converters_equal_the_matrix_product():
    rng = np.random.default_rng(1)
    rows, cols, batch = 45, 70, 9
    w = (rng.integers(-8, 9, size=(rows, cols)) / 8).astype(F32)  # multiples of 1/8
    x = rng.integers(-3, 4, size=(batch, cols)).astype(F32)
    x[:, 0] = 4  # s_x = 4 in every row
    m = Model(w, input_bits=24, output_bits=24, full_scale=cols, output_scale=1.0)
    y, clipped = m.run(x)
    expect = x.astype(np.float64) @ w.T.astype(np.float64)
    assert clipped == 0
    np.testing.assert_allclose(y, expect, rtol=2e-6, atol=4 * 4 * cols / levels(24))
    # the output scale multiplies every output
    m2 = Model(w, input_bits=24, output_bits=24, full_scale=cols, output_scale=2.5)
    y2, _ = m2.run(x)
    np.testing.assert_allclose(y2, 2.5 * expect, rtol=2e-6, atol=10 * 4 * cols / levels(24))


@pytest.mark.parametrize(
    ("rows", "cols", "batch", "threads"),
    [(77, 131, 23, 1), (50, 200, 130, 2), (20, 30001, 30, 2)],  # 130: 3 blocks; 30001: short
)
def test_noiseless_generic_data_within_one_adc_code_of_a_float64_reference(
    rows, cols, batch, threads, restore_isa
):
    rng = np.random.default_rng(2)
    w = rng.uniform(-1, 1, (rows, cols)).astype(F32)
    x = rng.normal(size=(batch, cols)).astype(F32) * rng.uniform(0.1, 10, (batch, 1)).astype(F32)
    fs = 0.25 * math.sqrt(cols)  # small enough that some outputs clip
    m = Model(w, input_bits=8, output_bits=8, full_scale=fs, output_scale=1.7)
    xn, sx = np_dac(x, 8)
    u = xn.astype(np.float64) @ w.T.astype(np.float64)
    ly = float(levels(8))
    codes = np.clip(np.rint(u * ly / fs), -ly, ly)
    step = (fs / ly) * sx[:, None].astype(np.float64) * 1.7
    y_ref = codes * step
    for isa in available_isas():
        lib.lk_select_isa(isa)
        y, clipped = m.run(x, threads=threads)
        err = np.abs(y - y_ref) / step
        assert err.max() <= 1.0 + 1e-5, (isa, err.max())
        assert abs(clipped - np.count_nonzero(np.abs(codes) == ly)) <= 3
        assert clipped > 0


@pytest.mark.parametrize(
    ("noise", "tight"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_forward_is_bit_exact_against_a_float32_emulation(noise, tight, restore_isa):
    """Sequential fma chains over j, the epilogue's evaluation order and the RNG keying
    (one stream per vector and panel, draws in output order), checked bit for bit.

    tight: a 24-bit ADC whose full scale is just above max |v|, so that one code step is
    about one float32 ulp of the largest outputs: a 1-ulp difference anywhere upstream of
    the ADC (accumulation order, fusing, the variance's evaluation order) shows."""
    rng = np.random.default_rng(3)
    m = random_model(
        rng,
        40,
        77,
        noise=noise,
        input_bits=6,
        output_bits=12,
        output_scale=0.75,
        phase_var=0.02,
        det=(0.01, 0.02, 0.005),
    )
    x = rng.normal(size=(7, 77)).astype(F32)
    x[3] = 0  # a zero vector gives y = 0
    x[5] *= F32(1e-38)  # tiny scale: L / s_x overflows float
    if tight:
        # noise comparable to the signal, every variance term of similar size
        m.set_phase_var(0.3)
        m.s.det_c0, m.s.det_c1, m.s.det_c2 = 0.3, 0.3, 0.3
        _, _, v = exact_reference(m, x, seed=11, call=5)
        m.s.output_bits = 24
        m.s.full_scale = float(np.max(np.abs(v[[0, 1, 2, 4, 5, 6]]))) * 1.0001
    y_ref, clipped_ref, _ = exact_reference(m, x, seed=11, call=5)
    assert np.all(y_ref[3] == 0) and np.any(y_ref[5] != 0)
    for isa in available_isas():
        lib.lk_select_isa(isa)
        y, clipped = m.run(x, seed=11, call=5)
        np.testing.assert_array_equal(y.view(np.uint32), y_ref.view(np.uint32), err_msg=str(isa))
        assert clipped == clipped_ref


def test_zero_vector_gives_zero_row_and_no_noise():
    rng = np.random.default_rng(4)
    m = random_model(rng, 20, 30, det=(1.0, 1.0, 1.0))
    x = rng.normal(size=(3, 30)).astype(F32)
    x[1] = 0
    y, _ = m.run(x, seed=1)
    assert np.all(y[1] == 0)
    np.testing.assert_array_equal(y, exact_reference(m, x, seed=1)[0])
    # the other rows are noisy: (almost) every output differs from the noise-free one
    m.s.noise = False
    quiet, _ = m.run(x, seed=1)
    assert np.mean(y[[0, 2]] != quiet[[0, 2]]) > 0.8


def test_clipped_count_counts_outputs_at_full_scale():
    w = np.ones((20, 8), F32)
    m = Model(w, input_bits=8, output_bits=4, full_scale=4.0)
    x = np.ones((3, 8), F32)
    x[2] = 0.0
    y, clipped = m.run(x)
    assert clipped == 40  # u = 8 > FS in the two non-zero rows
    np.testing.assert_array_equal(y[:2], np.full((2, 20), 4.0, F32))
    y1, none_clipped = m.run(np.eye(1, 8, dtype=F32))  # u = 1: code rint(1 * 7/4) = 2
    assert none_clipped == 0
    np.testing.assert_array_equal(y1, np.full((1, 20), F32(2) * (F32(4) / F32(7))))


# ----------------------------------------------------------------------------------------
# Converters alone
# ----------------------------------------------------------------------------------------


def test_quantize_inputs_bit_exact_with_ties_and_zero_rows(restore_isa):
    rng = np.random.default_rng(5)
    ties = np.array([7.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, -3.5, 6.5, -7.0, 0.0], F32)
    more = np.concatenate([np.arange(-6.5, 7.0, 1.0), rng.integers(-7, 8, 11)]).astype(F32)
    n = ties.size + more.size  # 37: vector paths get full blocks and a remainder
    x = np.vstack(
        [
            np.concatenate([ties, more]),  # bits=4: L = 7 = s_x, so x * (L / s_x) = x: ties
            np.zeros(n, F32),
            rng.normal(size=n).astype(F32),
            rng.uniform(-1e-3, 1e-3, n).astype(F32),
            np.full(n, -3.0, F32),
            (rng.normal(size=n) * 1e-39).astype(F32),  # subnormal scale
        ]
    )
    for isa, bits in itertools.product(available_isas(), (2, 4, 8, 13, 24)):
        lib.lk_select_isa(isa)  # lk_quantize_inputs runs the selected ISA's DAC
        xn = np.empty_like(x)
        scales = np.empty(x.shape[0], F32)
        rc = lib.lk_quantize_inputs(fptr(x), x.shape[0], x.shape[1], bits, fptr(xn), fptr(scales))
        assert rc == lib.LK_OK
        ref, sx = np_dac(x, bits)
        np.testing.assert_array_equal(scales, sx)
        np.testing.assert_array_equal(xn.view(np.uint32), ref.view(np.uint32))
        assert np.all(xn[1] == 0)
        assert np.all(np.abs(xn[5]) <= 1) and np.abs(xn[5]).max() == 1
        if bits == 4:
            expect = np.array([7, 0, 2, 2, -0.0, -2, -2, 4, -4, 6, -7, 0], F32) / F32(7)
            np.testing.assert_array_equal(xn[0, :12].view(np.uint32), expect.view(np.uint32))
            np.testing.assert_array_equal(xn[0, 12:] * 7, np.rint(more))


def test_quantize_inputs_every_code_of_every_width_is_the_exact_quotient(restore_isa):
    """x = -L .. L (so s_x = L and L / s_x = 1): x_n = code / L correctly rounded, for every
    code of every width and on every path (the AVX-512 DAC divides by a multiply and two
    fmas, exact by enumeration: this is the enumeration). -0 stays -0."""
    for bits in range(2, 25):
        lx = int(levels(bits))
        x = np.arange(-lx, lx + 1, dtype=F32)[None, :]
        x[0, lx] = F32(-0.0)
        ref = (x / levels(bits)).astype(F32)
        for isa in available_isas():
            lib.lk_select_isa(isa)
            xn = np.empty_like(x)
            scales = np.empty(1, F32)
            rc = lib.lk_quantize_inputs(fptr(x), 1, x.shape[1], bits, fptr(xn), fptr(scales))
            assert rc == lib.LK_OK and scales[0] == lx
            np.testing.assert_array_equal(
                xn.view(np.uint32), ref.view(np.uint32), err_msg=f"bits {bits} isa {isa}"
            )


def test_adc_bit_exact_with_ties_and_clipping(restore_isa):
    rng = np.random.default_rng(6)
    ly = float(levels(5))  # 15
    ties = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 14.5, 14.49, 15.5, -14.5, -15.5], F32)
    big = np.array([100.0, -100.0, 15.0, -15.0, 14.0, 0.0, -0.0], F32)
    cases = [
        (ly, np.concatenate([ties, big])),
        (3.3, rng.normal(0, 3, 5001).astype(F32)),  # odd length: vector remainders
        (1.0, np.array([0.7], F32)),
    ]
    for isa in available_isas():  # lk_adc runs the selected ISA's converter
        lib.lk_select_isa(isa)
        for fs, u in cases:
            codes = np.full_like(u, 7.0)
            clipped = ffi.new("int64_t *")
            assert lib.lk_adc(fptr(u), u.size, 5, fs, fptr(codes), clipped) == lib.LK_OK
            ref, ref_clipped = np_adc(u, 5, fs)
            np.testing.assert_array_equal(codes.view(np.uint32), ref.view(np.uint32), str(isa))
            assert clipped[0] == ref_clipped, isa
        # ties to even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 14.5 -> 14, 15.5 -> clipped to 15
        codes = np.empty_like(ties)
        assert lib.lk_adc(fptr(ties), ties.size, 5, ly, fptr(codes), ffi.NULL) == lib.LK_OK
        np.testing.assert_array_equal(codes, [0, 2, 2, -0.0, -2, -2, 14, 14, 15, -14, -15])
        assert np.signbit(codes[3])


# ----------------------------------------------------------------------------------------
# Determinism
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "rows", "cols"),
    [(37, 300, 1031), (100, 300, 520), (2, 1000, 2101)],  # all big enough to be threaded
)
def test_bit_identical_for_any_thread_count_and_isa(batch, rows, cols, restore_isa):
    """24-bit ADC: a code step is a few float32 ulps, so any difference in accumulation
    order, fusing or noise between splits and paths would show in the output bits."""
    rng = np.random.default_rng(7)
    m = random_model(rng, rows, cols, output_bits=24, phase_var=1e-2, det=(1e-2, 1e-2, 1e-3))
    x = rng.uniform(-1, 1, (batch, cols)).astype(F32)
    x[batch // 2] = 0
    results = {}
    for isa in available_isas():
        assert lib.lk_select_isa(isa) == isa
        for threads in (1, 2, 3, 8):
            results[(isa, threads)] = m.run(x, seed=99, call=3, threads=threads)
    (y0, c0), *_ = results.values()
    assert np.isfinite(y0).all() and np.any(y0 != 0)
    for key, (y, c) in results.items():
        np.testing.assert_array_equal(y.view(np.uint32), y0.view(np.uint32), err_msg=str(key))
        assert c == c0, key


def test_concurrent_callers_get_the_same_bits():
    """Several Python threads call the kernel at once (cffi releases the GIL): the pool
    serves one caller at a time and the others run on their own thread; no result changes."""
    rng = np.random.default_rng(12)
    m = random_model(rng, 200, 300)
    x = rng.uniform(-1, 1, (40, 300)).astype(F32)
    expect, _ = m.run(x, seed=4, call=1, threads=1)
    failures = []

    def hammer():
        for _ in range(15):
            y, _ = m.run(x, seed=4, call=1, threads=2)
            if not np.array_equal(y, expect):
                failures.append(1)

    pool = [threading.Thread(target=hammer) for _ in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not failures


def test_threaded_forward_works_in_a_forked_child():
    """The helper threads do not survive fork(): the child must start a fresh pool."""
    rng = np.random.default_rng(13)
    m = random_model(rng, 200, 300)
    x = rng.uniform(-1, 1, (40, 300)).astype(F32)
    expect, _ = m.run(x, seed=4, call=1, threads=2)  # the parent's pool is running
    pid = os.fork()
    if pid == 0:  # child: exit 0 only if the threaded call finishes with the same bits
        code = 1
        try:
            signal.alarm(20)  # a deadlock kills the child instead of hanging the test
            y, _ = m.run(x, seed=4, call=1, threads=2)
            y2, _ = m.run(x, seed=4, call=1, threads=2)
            code = 0 if np.array_equal(y, expect) and np.array_equal(y2, expect) else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    again, _ = m.run(x, seed=4, call=1, threads=2)  # and the parent's pool still works
    np.testing.assert_array_equal(again, expect)


def test_same_seed_same_output_and_any_key_change_changes_it():
    rng = np.random.default_rng(8)
    m = random_model(rng, 33, 40, output_bits=16)
    x = np.tile(rng.uniform(-1, 1, (1, 40)).astype(F32), (4, 1))  # identical vectors
    y, _ = m.run(x, seed=5, call=7)
    again, _ = m.run(x, seed=5, call=7)
    np.testing.assert_array_equal(y, again)
    other_seed, _ = m.run(x, seed=6, call=7)
    other_call, _ = m.run(x, seed=5, call=8)
    assert np.mean(other_seed != y) > 0.9
    assert np.mean(other_call != y) > 0.9
    for b in range(1, 4):  # each vector has its own stream
        assert np.mean(y[b] != y[0]) > 0.9
    # noise off: no draws, the seed is irrelevant
    quiet = random_model(np.random.default_rng(8), 33, 40, noise=False)
    a, _ = quiet.run(x, seed=1, call=1)
    b, _ = quiet.run(x, seed=2, call=9)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[0], a[3])


def test_normals_stream_keying():
    def draw(*key, n=64):
        out = np.empty(n, F32)
        assert lib.lk_normals(*key, n, fptr(out)) == lib.LK_OK
        return out

    base = draw(1, 2, 3, 4)
    np.testing.assert_array_equal(base, draw(1, 2, 3, 4))
    np.testing.assert_array_equal(base[:10], draw(1, 2, 3, 4, n=10))  # a prefix is a prefix
    # counter-based: output i is the same normal whatever the first output drawn
    np.testing.assert_array_equal(base[1:], draw(1, 2, 3, 5, n=63))
    np.testing.assert_array_equal(base[16:], draw(1, 2, 3, 20, n=48))
    for key in [(2, 2, 3, 4), (1, 3, 3, 4), (1, 2, 4, 4), (2**64 - 1, 0, 0, 4)]:
        assert np.count_nonzero(draw(*key) == base) <= 1, key


@pytest.mark.parametrize(
    ("seed", "call", "vector", "first", "n"),
    [
        (0, 0, 0, 0, 4096),
        (12345, 7, 3, 5, 333),
        (2**64 - 1, 2**64 - 1, 2**40, 16, 17),
        (1, 2, 3, 1, 1),
        (9, 9, 9, 2**40 + 3, 70),
    ],
)
def test_normals_are_the_spec_on_every_isa(restore_isa, seed, call, vector, first, n):
    """Every path (scalar, AVX2, AVX-512) gives the bits of the numpy reference written from
    docs/physics.md section 4, for odd and even starts and lengths not a multiple of 16."""
    want = reference_normals.call_normals(seed, call, vector, first, n)
    out = np.empty(n, F32)
    for isa in available_isas():
        lib.lk_select_isa(isa)
        assert lib.lk_normals(seed, call, vector, first, n, fptr(out)) == lib.LK_OK
        np.testing.assert_array_equal(out.view(np.uint32), want.view(np.uint32), err_msg=str(isa))


def test_normal_transform_edges_follow_the_spec():
    """Words at the ends of the ranges, expected values recomputed from the formulas of
    docs/physics.md section 4: lo = 0 gives q = 2^-32 and the largest radius sqrt(64 ln 2);
    lo = 2^32 - 1 gives q = 1 and z = +-0; the top two bits of hi pick the quadrant."""
    rho_max = math.sqrt(-2.0 * math.log(2.0**-32))
    word = np.array(
        [0, 0x4000_0000 << 32, 0x8000_0000 << 32, 0xC000_0000 << 32, 0xFFFF_FFFF,
         (0x2000_0000 << 32) | (1 << 31)],
        np.uint64,
    )  # fmt: skip
    z = reference_normals.normals_from_words(word).astype(np.float64).reshape(-1, 2)
    quadrants = [(1, 0), (0, 1), (-1, 0), (0, -1)]  # (cos, sin) at a = 0 + k pi/2
    for k, (c, s) in enumerate(quadrants):
        assert abs(z[k, 0] - rho_max * c) < 1e-5 and abs(z[k, 1] - rho_max * s) < 1e-5, k
    assert np.all(z[4] == 0.0)
    # q = 0.5 (m = 2^30), angle pi/4: both are sqrt(2 ln 2) / sqrt(2) = sqrt(ln 2)
    np.testing.assert_allclose(z[5], math.sqrt(math.log(2.0)), rtol=1e-6)


# ----------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------


def normal_cdf(z: np.ndarray) -> np.ndarray:
    erf = np.frompyfunc(math.erf, 1, 1)
    return 0.5 * (1.0 + erf(np.asarray(z, dtype=np.float64) / math.sqrt(2.0)).astype(float))


def normal_ppf(p: float) -> float:
    lo, hi = -10.0, 10.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p else (lo, mid)
    return 0.5 * (lo + hi)


def test_normals_moments_ks_chi_square_and_tails():
    n = 2_000_000
    z32 = np.empty(n, F32)
    assert lib.lk_normals(12345, 0, 0, 0, n, fptr(z32)) == lib.LK_OK
    z = z32.astype(np.float64)
    assert np.isfinite(z).all()
    k = 5.0  # bounds in standard errors
    mean, var = z.mean(), z.var()
    skew = np.mean((z - mean) ** 3) / var**1.5
    kurt = np.mean((z - mean) ** 4) / var**2 - 3.0
    assert abs(mean) < k / math.sqrt(n)
    assert abs(var - 1) < k * math.sqrt(2 / n)
    assert abs(skew) < k * math.sqrt(6 / n)
    assert abs(kurt) < k * math.sqrt(24 / n)
    # Kolmogorov-Smirnov against the normal CDF (critical value 1.95/sqrt(n) at 0.1 %)
    zs = np.sort(z)
    cdf = normal_cdf(zs)
    ecdf_hi = np.arange(1, n + 1) / n
    d = max(np.max(ecdf_hi - cdf), np.max(cdf - (ecdf_hi - 1.0 / n)))
    assert d < 1.95 / math.sqrt(n), d
    # chi-square on 256 equiprobable bins (catches local defects, e.g. at quadrant seams)
    nbins = 256
    edges = np.array([normal_ppf(i / nbins) for i in range(1, nbins)])
    counts = np.bincount(np.searchsorted(edges, z), minlength=nbins)
    expected = n / nbins
    chi2 = float(np.sum((counts - expected) ** 2) / expected)
    dof = nbins - 1
    assert chi2 < dof + k * math.sqrt(2 * dof), chi2
    # tails
    for t in (2.5, 3.0, 3.5, 4.5):
        p = math.erfc(t / math.sqrt(2))
        seen = int(np.count_nonzero(np.abs(z) > t))
        assert abs(seen - n * p) < k * math.sqrt(n * p) + 1, (t, seen, n * p)
    assert np.abs(z).max() > 4.8  # the tail is reached


def test_normals_tail_beyond_three_sigma_follows_the_normal_tail():
    """Beyond |z| = 3 (the radius from q below 1.1e-2, the angle anywhere): how often, and
    with what shape, on 2e7 draws from 20 vectors."""
    r = 3.0
    n_per, streams = 1_000_000, 20
    buf = np.empty(n_per, F32)
    tails = []
    for p in range(streams):
        assert lib.lk_normals(777, 0, p, 0, n_per, fptr(buf)) == lib.LK_OK
        a = np.abs(buf.astype(np.float64))
        tails.append(a[a > r])
    t = np.concatenate(tails)
    n = n_per * streams
    q_r = math.erfc(r / math.sqrt(2))  # P(|z| > r)
    assert abs(t.size - n * q_r) < 5 * math.sqrt(n * q_r), (t.size, n * q_r)
    # mean excess over r: E[|z| - r | |z| > r] = phi(r) / Q(r) - r, Q the upper tail
    phi = math.exp(-r * r / 2) / math.sqrt(2 * math.pi)
    excess = phi / (q_r / 2) - r
    sd = float(np.std(t - r))
    assert abs(np.mean(t - r) - excess) < 5 * sd / math.sqrt(t.size), (np.mean(t - r), excess)
    # Kolmogorov-Smirnov against the conditional tail P(|z| <= x | |z| > r)
    ts = np.sort(t)
    erfc = np.frompyfunc(math.erfc, 1, 1)
    cdf = 1.0 - erfc(ts / math.sqrt(2)).astype(float) / q_r
    m = ts.size
    ecdf = np.arange(1, m + 1) / m
    d = max(np.max(ecdf - cdf), np.max(cdf - (ecdf - 1.0 / m)))
    assert d < 1.95 / math.sqrt(m), d


def test_normals_are_independent_between_neighbouring_streams():
    n = 200_000
    a = np.empty(n, F32)
    b = np.empty(n, F32)
    lib.lk_normals(0, 0, 0, 0, n, fptr(a))
    lib.lk_normals(0, 0, 1, 0, n, fptr(b))
    corr = np.corrcoef(a, b)[0, 1]
    lag1 = np.corrcoef(a[:-1], a[1:])[0, 1]
    assert abs(corr) < 5 / math.sqrt(n) and abs(lag1) < 5 / math.sqrt(n)


@pytest.mark.parametrize(
    ("phase_var", "det"),
    [(2e-3, (0.0, 0.0, 0.0)), (0.0, (2e-3, 1e-3, 1e-3)), (1e-3, (1e-3, 1e-3, 5e-4))],
)
def test_forward_noise_variance_matches_the_model(phase_var, det):
    rng = np.random.default_rng(9)
    rows, cols = 16, 32
    m = random_model(
        rng,
        rows,
        cols,
        phase_var=phase_var,
        det=det,
        input_bits=10,
        output_bits=24,
        full_scale=4 * cols,
        output_scale=1.0,
    )
    x = rng.uniform(-1, 1, (1, cols)).astype(F32)
    reps, calls = 1_000, 100  # 1e5 samples per output: 100 calls x 1000 vector streams
    xb = np.repeat(x, reps, axis=0)
    xn, sx = np_dac(x, 10)
    xn64 = xn[0].astype(np.float64)
    w64 = m.w.astype(np.float64)
    u = w64 @ xn64
    s2 = (w64**2) @ (xn64**2)
    q = float(m.c2.astype(np.float64) @ (xn64**2))
    c0, c1, c2 = det
    exact_phase = phase_var * (m.r2 * q - s2)
    # the kernel's variance codes (docs/kernel.md "Variance term") and their bound
    dq, _, vscale = np_var_codes(m)
    x2q = np_x2_codes(xn[0])
    kernel_phase = vscale.astype(np.float64) * (dq @ x2q).astype(np.float64)
    d = np.maximum(m.r2[:, None].astype(np.float64) * m.c2[None, :] - w64**2, 0)
    bound = phase_var * d.max(axis=1) * ((x2q / 127.0).sum() / 510 + np.count_nonzero(x2q) / 254)
    assert np.all(np.abs(kernel_phase - exact_phase) <= bound * 1.001 + 1e-6 * exact_phase)
    var = kernel_phase + c0 + c1 * np.abs(u) + c2 * u**2
    samples = np.concatenate(
        [m.run(xb, seed=3, call=k, threads=2)[0] for k in range(calls)], axis=0
    ).astype(np.float64) / float(sx[0])
    n = samples.shape[0]
    emp_var = samples.var(axis=0)
    emp_mean = samples.mean(axis=0)
    np.testing.assert_array_less(np.abs(emp_mean - u), 5 * np.sqrt(var / n))
    np.testing.assert_array_less(np.abs(emp_var / var - 1), 5 * math.sqrt(2 / n))
    # and the variance depends on the output as the model says (not a constant)
    assert var.max() / var.min() > 1.2


# ----------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------


def test_forward_rejects_bad_arguments_with_einval():
    rng = np.random.default_rng(10)
    m = random_model(rng, 20, 12)
    x = rng.normal(size=(3, 12)).astype(F32)
    y = np.zeros((3, 20), F32)
    clipped = ffi.new("int64_t *")

    def call(model=None, xp=None, batch=3, yp=None, threads=1):
        return lib.lk_forward(
            m.s if model is None else model,
            fptr(x) if xp is None else xp,
            batch,
            fptr(y) if yp is None else yp,
            0,
            0,
            threads,
            clipped,
        )

    assert call() == lib.LK_OK
    assert call(model=ffi.NULL) == lib.LK_EINVAL
    assert call(xp=ffi.NULL) == lib.LK_EINVAL
    assert call(yp=ffi.NULL) == lib.LK_EINVAL
    assert call(batch=0) == lib.LK_EINVAL
    assert call(batch=-1) == lib.LK_EINVAL
    assert call(threads=0) == lib.LK_EINVAL

    def broken(**fields):
        bad = ffi.new("lk_model *", m.s[0])
        for name, value in fields.items():
            setattr(bad, name, value)
        return call(model=bad)

    assert broken() == lib.LK_OK
    for fields in [
        {"weights": ffi.NULL},
        {"rows": 0},
        {"cols": -3},
        {"input_bits": 1},
        {"input_bits": 25},
        {"output_bits": 1},
        {"output_bits": 25},
        {"full_scale": 0.0},
        {"full_scale": -1.0},
        {"full_scale": math.inf},
        {"full_scale": math.nan},
        {"full_scale": 1e-44},
        {"output_scale": 0.0},
        {"output_scale": math.nan},
        {"var_codes": ffi.NULL},
        {"row_var_inv": ffi.NULL},
        {"row_var_scale": ffi.NULL},
        {"cols": 65537},
        {"det_c0": -1.0},
        {"det_c1": math.nan},
        {"det_c2": math.inf},
        {"row_envelope_sq": ffi.NULL},
        {"col_envelope_sq": ffi.NULL},
    ]:
        assert broken(**fields) == lib.LK_EINVAL, fields
    # noise off: the noise fields are not used, so they are not checked
    assert broken(noise=0, row_envelope_sq=ffi.NULL, var_codes=ffi.NULL) == lib.LK_OK
    # envelope values must be finite and >= 0: lk_pack_model checks them
    for arr, pos in ((m.r2, 4), (m.c2, 0)):
        for value in (np.nan, -1.0, np.inf):
            saved = arr[pos]
            arr[pos] = value
            rc = lib.lk_pack_model(
                fptr(m.w), m.rows, m.cols, fptr(m.r2), fptr(m.c2), 1e-3,
                fptr(np.zeros(lib.lk_packed_floats(m.rows, m.cols), F32)),
                ffi.from_buffer("uint8_t[]", np.zeros(m.codes.size, np.uint8)),
                fptr(np.zeros(m.rows, F32)), fptr(np.zeros(m.rows, F32)),
            )  # fmt: skip
            arr[pos] = saved
            assert rc == lib.LK_EINVAL
    assert call() == lib.LK_OK


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_forward_nonfinite_input_leaves_y_untouched(bad, restore_isa):
    rng = np.random.default_rng(11)
    m = random_model(rng, 20, 50)
    x0 = rng.normal(size=(3, 50)).astype(F32)
    for isa, pos in itertools.product(available_isas(), (0, 40, 70, 149)):
        lib.lk_select_isa(isa)  # the scan runs the selected ISA's code: body and remainder
        x = x0.copy()
        x.flat[pos] = bad
        y = np.full((3, 20), 123.0, F32)
        rc, y, clipped = m.forward(x, y=y, threads=4)
        assert rc == lib.LK_ENONFINITE, (isa, pos)
        assert np.all(y == 123.0)
        assert clipped == -1


def test_converters_and_normals_reject_bad_arguments():
    x = np.ones((2, 3), F32)
    out = np.empty((2, 3), F32)
    sc = np.empty(2, F32)
    q = lib.lk_quantize_inputs
    assert q(fptr(x), 2, 3, 8, fptr(out), fptr(sc)) == lib.LK_OK
    assert q(ffi.NULL, 2, 3, 8, fptr(out), fptr(sc)) == lib.LK_EINVAL
    assert q(fptr(x), 2, 3, 8, ffi.NULL, fptr(sc)) == lib.LK_EINVAL
    assert q(fptr(x), 2, 3, 8, fptr(out), ffi.NULL) == lib.LK_EINVAL
    assert q(fptr(x), 0, 3, 8, fptr(out), fptr(sc)) == lib.LK_EINVAL
    assert q(fptr(x), 2, -3, 8, fptr(out), fptr(sc)) == lib.LK_EINVAL
    assert q(fptr(x), 2, 3, 1, fptr(out), fptr(sc)) == lib.LK_EINVAL
    assert q(fptr(x), 2, 3, 25, fptr(out), fptr(sc)) == lib.LK_EINVAL
    out[:] = 7
    x[1, 2] = np.nan
    assert q(fptr(x), 2, 3, 8, fptr(out), fptr(sc)) == lib.LK_ENONFINITE
    assert np.all(out == 7)

    u = np.ones(5, F32)
    codes = np.empty(5, F32)
    a = lib.lk_adc
    assert a(fptr(u), 5, 8, 1.0, fptr(codes), ffi.NULL) == lib.LK_OK
    assert a(ffi.NULL, 5, 8, 1.0, fptr(codes), ffi.NULL) == lib.LK_EINVAL
    assert a(fptr(u), 5, 8, 1.0, ffi.NULL, ffi.NULL) == lib.LK_EINVAL
    assert a(fptr(u), 0, 8, 1.0, fptr(codes), ffi.NULL) == lib.LK_EINVAL
    assert a(fptr(u), 5, 1, 1.0, fptr(codes), ffi.NULL) == lib.LK_EINVAL
    assert a(fptr(u), 5, 25, 1.0, fptr(codes), ffi.NULL) == lib.LK_EINVAL
    for fs in (0.0, -2.0, math.inf, math.nan):
        assert a(fptr(u), 5, 8, fs, fptr(codes), ffi.NULL) == lib.LK_EINVAL
    u[3] = np.inf
    codes[:] = 7
    assert a(fptr(u), 5, 8, 1.0, fptr(codes), ffi.NULL) == lib.LK_ENONFINITE
    assert np.all(codes == 7)

    z = np.empty(4, F32)
    n = lib.lk_normals
    assert n(0, 0, 0, 0, 4, fptr(z)) == lib.LK_OK
    assert n(0, 0, 0, 0, 4, ffi.NULL) == lib.LK_EINVAL
    assert n(0, 0, 0, 0, 0, fptr(z)) == lib.LK_EINVAL
    assert n(0, 0, -1, 0, 4, fptr(z)) == lib.LK_EINVAL
    assert n(0, 0, 0, -1, 4, fptr(z)) == lib.LK_EINVAL


# ----------------------------------------------------------------------------------------
# Variance codes: on-the-fly narrow tiles, batch splits, integer codes in and out
# ----------------------------------------------------------------------------------------


def forward_from(m: Model, x, first_vector, *, seed=0, call=0, threads=1):
    x = np.ascontiguousarray(x, dtype=F32)
    y = np.full((x.shape[0], m.rows), np.nan, dtype=F32)
    clipped = ffi.new("int64_t *", -1)
    rc = lib.lk_forward_from(
        m.s, fptr(x), x.shape[0], first_vector, fptr(y), seed, call, threads, clipped
    )
    assert rc == lib.LK_OK
    return y


def test_packed_variance_codes_match_the_documented_formula():
    rng = np.random.default_rng(21)
    m = random_model(rng, 37, 23, phase_var=3e-3)
    m.w[5], m.r2[5] = 0, 0  # a row with D = 0 everywhere: scale 0
    m.set_phase_var(3e-3)
    dq, inv, vscale = np_var_codes(m)
    c4 = 64  # code rows padded to 64 columns
    codes = m.codes.reshape(-(-37 // PANEL), c4 // 4, PANEL, 4)
    unpacked = codes.transpose(0, 2, 1, 3).reshape(-(-37 // PANEL) * PANEL, c4)
    np.testing.assert_array_equal(unpacked[:37, :23], dq)
    assert not unpacked[:37, 23:].any() and not unpacked[37:].any()
    np.testing.assert_array_equal(m.var_inv, inv)
    np.testing.assert_array_equal(m.var_scale, vscale)
    assert m.var_scale[5] == 0 and dq.max() == 255


@pytest.mark.parametrize("noise", [True, False])
def test_big_matrix_narrow_batches_give_the_bits_of_wide_ones(noise, restore_isa):
    """Past 8 MB of weights, blocks of 1-2 vectors compute the variance codes on the fly
    (AVX-512); the integers, hence the outputs, equal those of the packed codes."""
    rng = np.random.default_rng(22)
    m = random_model(rng, 1030, 2050, noise=noise, phase_var=0.05, output_bits=16)
    x = rng.uniform(-1, 1, (7, 2050)).astype(F32)
    wide = forward_from(m, x, 0, seed=4, call=2, threads=2)
    for isa in available_isas():
        lib.lk_select_isa(isa)
        for b0, b1 in ((0, 1), (1, 3), (3, 7)):
            part = forward_from(m, x[b0:b1], b0, seed=4, call=2, threads=1 + b0 % 2)
            np.testing.assert_array_equal(part.view(np.uint32), wide[b0:b1].view(np.uint32))


def test_forward_codes_equals_the_float_path_on_the_same_codes(restore_isa):
    rng = np.random.default_rng(23)
    m = random_model(rng, 33, 45, input_bits=9, output_bits=10)
    lx = int(levels(9))
    codes = rng.integers(-lx, lx + 1, (6, 45)).astype(np.int32)
    codes[:, 0] = lx  # each vector peaks at L_x, as the host's DAC makes it
    codes[4] = 0
    x = (codes / F32(lx)).astype(F32)
    y, clipped = m.run(x, seed=8, call=3)
    from_code = F32(m.s.full_scale) / levels(10)
    expected = np.rint(y / (from_code * F32(m.s.output_scale))).astype(np.int32)
    for isa in available_isas():
        lib.lk_select_isa(isa)
        out = np.full((6, 33), -7, np.int32)
        got_clipped = ffi.new("int64_t *")
        rc = lib.lk_forward_codes(
            m.s, ffi.from_buffer("int32_t[]", codes), 6, 0,
            ffi.from_buffer("int32_t[]", out, require_writable=True), 8, 3, 2, got_clipped,
        )  # fmt: skip
        assert rc == lib.LK_OK
        np.testing.assert_array_equal(out, expected)
        assert got_clipped[0] == clipped
    bad = codes.copy()
    bad[2, 3] = lx + 1
    out = np.zeros((6, 33), np.int32)
    for value in (lx + 1, -lx - 1, -(2**31)):
        bad[2, 3] = value
        rc = lib.lk_forward_codes(
            m.s, ffi.from_buffer("int32_t[]", bad), 6, 0,
            ffi.from_buffer("int32_t[]", out, require_writable=True), 8, 3, 1, ffi.NULL,
        )  # fmt: skip
        assert rc == lib.LK_ERANGE
    assert not out.any()  # nothing written


@pytest.mark.parametrize(
    ("rows", "cols", "threads"), [(45, 70, 1), (45, 70, 3), (2100, 70, 2), (4200, 70, 7)]
)
def test_variance_codes_from_packed_weights_equal_those_of_lk_pack_model(rows, cols, threads):
    """Any thread count gives the same bytes (one worker per 2^16 cells: 2100 x 70 makes two)."""
    rng = np.random.default_rng(24)
    m = random_model(rng, rows, cols, phase_var=7e-3)
    codes = np.full(m.codes.size, 99, np.uint8)
    inv, scale = np.zeros(rows, F32), np.zeros(rows, F32)
    rc = lib.lk_pack_var_codes(
        fptr(m.packed), rows, cols, fptr(m.r2), fptr(m.c2), 7e-3,
        ffi.from_buffer("uint8_t[]", codes, require_writable=True), fptr(inv), fptr(scale),
        threads,
    )  # fmt: skip
    assert rc == lib.LK_OK
    np.testing.assert_array_equal(codes, m.codes)
    np.testing.assert_array_equal(inv, m.var_inv)
    np.testing.assert_array_equal(scale, m.var_scale)
