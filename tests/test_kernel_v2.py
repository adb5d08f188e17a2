"""Physics v2 on the C kernel (native/lk_v2.c) against the numpy oracle (docs/physics.md §7.6).

The native engine must give the reference's ADC codes except at rounding ties (the only
arithmetic difference is the summation order and cos((φ+δ)/2) through the addition
formula); its results must not depend on the thread count; a call is a pure function of
(seed, call_index, vector), so seek_call_index repeats it; and the C entry point refuses
bad parameters with a LuminaError.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lumina_hal.errors import ConfigurationError, LuminaError
from lumina_hal.twin import physics_v2
from lumina_hal.twin.device_v2 import TwinV2Device
from lumina_hal.twin.kernel import ffi, lib

#: largest fraction of outputs whose ADC code may differ by one LSB between the engines
#: (rounding ties of float32(u); measured 0 over this file's cases, see docs/physics.md §7.8)
TIE_FRACTION = 1e-3


def _lsb(dev: TwinV2Device) -> float:
    p = dev.physics.base
    fs = np.float32(p.adc_full_scale * math.sqrt(dev.cols))
    return float(fs / np.float32((1 << (p.output_bits - 1)) - 1))


def _both(shape: tuple[int, int], block: tuple[int, int], batch: int, **kw: object):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(batch + 7 * shape[0] + block[1])
    w = rng.uniform(-1, 1, block)
    x = rng.uniform(-1, 1, (batch, block[1])).astype(np.float32)
    out = {}
    for kernel in ("native", "reference"):
        with TwinV2Device(rows=shape[0], cols=shape[1], seed=11, kernel=kernel, threads=2,
                          **kw) as dev:  # type: ignore[arg-type]  # fmt: skip
            dev.load_weights(w)
            dev.seek_call_index(5)
            out[kernel] = (dev.matmul(x), dev.matmul(x[: max(1, batch // 3)]))
            lsb = _lsb(dev) * float(np.max(np.abs(w)))
    return out, lsb, x


def _assert_agree(out: dict, lsb: float, x: np.ndarray) -> float:  # type: ignore[type-arg]
    """Identical except for one-LSB ties; returns the fraction of ties."""
    ties = total = 0
    for got, expected in zip(out["native"], out["reference"], strict=True):
        scale = np.max(np.abs(x[: got.shape[0]]), axis=1, keepdims=True)
        diff = np.abs(got.astype(np.float64) - expected) / (lsb * np.maximum(scale, 1e-30))
        assert np.all((diff < 1e-3) | (np.abs(diff - 1.0) < 1e-3)), diff.max()
        ties += int(np.count_nonzero(diff > 0.5))
        total += got.size
    assert ties <= TIE_FRACTION * total + 1, (ties, total)
    return ties / total


@pytest.mark.parametrize("preset", ["ideal", "typical", "harsh"])
@pytest.mark.parametrize("temperature_c", [25.0, 65.0])
@pytest.mark.parametrize(
    ("shape", "block", "batch"),
    [
        ((8, 8), (8, 8), 1),
        ((5, 13), (5, 13), 257),
        ((16, 12), (11, 7), 257),
        ((64, 64), (64, 64), 33),
    ],
)
def test_native_agrees_with_the_reference(preset, temperature_c, shape, block, batch) -> None:  # type: ignore[no-untyped-def]
    out, lsb, x = _both(shape, block, batch, preset=preset, temperature_c=temperature_c)
    _assert_agree(out, lsb, x)


@pytest.mark.parametrize(
    "extra",
    [
        {"shifter_bandwidth_hz": 1e9},  # white shortcut with phase noise
        {"noise": False},  # converters only
        {"phase_noise_rad": 0.8, "output_bits": 20},  # |δ/2| beyond the polynomial's range
    ],
)
def test_native_agrees_on_every_branch(extra: dict[str, object]) -> None:
    out, lsb, x = _both((9, 10), (9, 10), 64, preset="typical", **extra)
    _assert_agree(out, lsb, x)


def test_noise_stream_is_the_keyed_stream_of_section_4() -> None:
    """With only detector noise, y − y_noiseless is sqrt(var) times normal R C + i of §4."""
    from lumina_hal.twin import reference_normals

    kw = dict(rows=4, cols=6, seed=9, preset="typical", phase_noise_rad=0.0,
              thermal_fluctuation_mk=0.0, output_bits=24, input_bits=24,
              calibration_phase_residual_rad=0.0, laser_power_dbm=-10.0)  # fmt: skip
    w = np.random.default_rng(0).uniform(-1, 1, (4, 6))
    x = np.ones((3, 6), dtype=np.float32)
    for kernel in ("native", "reference"):
        with TwinV2Device(kernel=kernel, **kw) as dev:  # type: ignore[arg-type]
            dev.load_weights(w)
            dev.seek_call_index(2)
            y = dev.matmul(x).astype(np.float64)
        with TwinV2Device(kernel=kernel, noise=False, **kw) as quiet:  # type: ignore[arg-type]
            quiet.load_weights(w)
            y0 = quiet.matmul(x).astype(np.float64)
        z = np.stack([reference_normals.call_normals(9, 2, b, 4 * 6, 4) for b in range(3)])
        ratio = (y - y0) / z  # the same sqrt(var) * s_w for every vector (x is the same)
        np.testing.assert_allclose(ratio, ratio[:1].repeat(3, axis=0), rtol=1e-3)


def test_results_do_not_depend_on_the_thread_count() -> None:
    rng = np.random.default_rng(3)
    w = rng.uniform(-1, 1, (64, 64))
    x = rng.uniform(-1, 1, (128, 64)).astype(np.float32)
    outs = []
    for threads in (1, 2, 7):
        with TwinV2Device(seed=4, preset="harsh", kernel="native", threads=threads) as dev:
            dev.load_weights(w)
            outs.append(dev.matmul(x))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_every_isa_path_gives_the_same_bits() -> None:
    """The scalar build of the row kernel and the AVX2 one (when the CPU has it) agree."""
    from lumina_hal.twin.kernel import isa_name, select_isa

    rng = np.random.default_rng(5)
    w = rng.uniform(-1, 1, (24, 37))
    x = rng.uniform(-1, 1, (20, 37)).astype(np.float32)
    best = isa_name()
    outs = []
    try:
        for isa in ("scalar", best):
            select_isa(isa)
            with TwinV2Device(rows=24, cols=37, seed=6, preset="harsh", kernel="native") as d:
                d.load_weights(w)
                outs.append(d.matmul(x))
    finally:
        select_isa(best)
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.parametrize("kernel", ["native", "reference"])
def test_seek_call_index_repeats_a_call_on_a_fresh_device(kernel: str) -> None:
    rng = np.random.default_rng(8)
    w = rng.uniform(-1, 1, (8, 8))
    calls = [rng.uniform(-1, 1, (n, 8)).astype(np.float32) for n in (3, 20, 7)]
    with TwinV2Device(rows=8, cols=8, seed=1, kernel=kernel) as dev:
        dev.load_weights(w)
        ys = [dev.matmul(x) for x in calls]
        assert dev.call_index == 3
    assert not np.array_equal(ys[1][:3], ys[0])  # calls draw different noise
    for n in (2, 1):
        with TwinV2Device(rows=8, cols=8, seed=1, kernel=kernel) as fresh:
            fresh.load_weights(w)
            fresh.seek_call_index(n)
            np.testing.assert_array_equal(fresh.matmul(calls[n]), ys[n])


def _ar1_device(kernel: str, a: float) -> TwinV2Device:
    f_s = 100e6
    return TwinV2Device(
        rows=6, cols=4, seed=3, preset="typical", kernel=kernel, fab_sigma=0.0, crosstalk=0.0,
        arm_imbalance_um=0.0, calibration_phase_residual_rad=0.0, tia_noise_pa_rthz=0.0,
        dark_current_na=0.0, rin_db_hz=-250.0, laser_power_dbm=30.0, weight_bits=24,
        input_bits=24, output_bits=24, phase_noise_rad=0.05, thermal_fluctuation_mk=0.0,
        symbol_rate_hz=f_s, shifter_bandwidth_hz=-math.log(a) * f_s / (2 * math.pi),
    )  # fmt: skip


@pytest.mark.parametrize("kernel", ["native", "reference"])
def test_phase_noise_is_ar1_within_one_call(kernel: str) -> None:
    """ρ(1), ρ(10) of every output within 3σ (Bartlett) of a, a^10 over one call of 4e4."""
    a, n = 0.9, 40000
    w = np.tile([0.5, -0.5], (6, 2))
    x = np.ones((n, 4), dtype=np.float32)
    with _ar1_device(kernel, a) as dev:
        dev.load_weights(w)
        y = dev.matmul(x).astype(np.float64)
        assert physics_v2.ar1_coefficient(dev.physics) == pytest.approx(a)
    e = y - y.mean(axis=0)
    var = (e * e).mean(axis=0)
    for k in (1, 10):
        rho = ((e[k:] * e[:-k]).mean(axis=0) / var).mean()  # 6 independent outputs
        bartlett = ((1 + a * a) * (1 - a ** (2 * k)) / (1 - a * a) - 2 * k * a ** (2 * k)) / n
        assert abs(rho - a**k) < 3 * math.sqrt(bartlett / 6), (k, rho)


@pytest.mark.parametrize("kernel", ["native", "reference"])
def test_the_filter_restarts_at_each_call(kernel: str) -> None:
    """Vector 0 of every call is stationary: the first outputs of many calls are uncorrelated
    with the last of the previous one, although a is 0.999 within a call."""
    w = np.tile([0.5, -0.5], (6, 2))
    x = np.ones((2, 4), dtype=np.float32)
    with _ar1_device(kernel, 0.999) as dev:
        dev.load_weights(w)
        y = np.stack([dev.matmul(x) for _ in range(600)]).astype(np.float64)
    e = y - y.mean(axis=(0, 1))
    within = (e[:, 0] * e[:, 1]).mean() / e.var()
    across = (e[1:, 0] * e[:-1, 1]).mean() / e.var()
    assert within > 0.9
    assert abs(across) < 4 / math.sqrt(600 * 6)


def test_engine_parameters_are_checked() -> None:
    for bad in ({"kernel": "gpu"}, {"threads": 0}, {"threads": 2.5}, {"threads": True}):
        with pytest.raises(ConfigurationError):
            TwinV2Device(rows=2, cols=2, **bad)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(
    kernel=st.one_of(st.text(max_size=8), st.none(), st.integers()),
    threads=st.one_of(st.integers(-5, 2000), st.none(), st.floats(), st.booleans()),
)
def test_fuzz_engine_parameters(kernel: object, threads: object) -> None:
    """Any kernel / threads value either builds a twin or raises ConfigurationError."""
    try:
        dev = TwinV2Device(rows=2, cols=2, kernel=kernel, threads=threads)  # type: ignore[arg-type]
    except ConfigurationError:
        return
    assert dev.kernel in ("native", "reference") and 1 <= dev.threads <= 1024


_INT_FIELDS = ("rows", "cols", "array_rows", "array_cols", "correlated", "noise",
               "input_bits", "output_bits")  # fmt: skip
_FLOAT_FIELDS = ("ar1", "sigma", "innovation", "mean_factor", "var_a", "var_b", "det_c0",
                 "det_c1", "det_c2", "full_scale", "output_scale")  # fmt: skip


@pytest.fixture(scope="module")
def engine():  # type: ignore[no-untyped-def]
    """The C model of a 4 x 5 harsh twin (AR(1) phase noise and detector noise on)."""
    dev = TwinV2Device(rows=4, cols=5, seed=2, preset="harsh", kernel="native", threads=1)
    dev.open()
    dev.load_weights(np.random.default_rng(0).uniform(-1, 1, (4, 5)))
    yield dev._engine
    dev.close()


def _valid(field: str, v: float, output_bits: int) -> bool:
    """The documented range of each lk_v2_model field (lumina_kernel.h), for this model."""
    if field in ("full_scale", "output_scale"):  # float fields: the value rounded to float32
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            f = np.float32(v)
            levels = np.float32((1 << (output_bits - 1)) - 1)
            to_code, from_code = levels / f, f / levels  # the ADC's constants (docs/kernel.md)
        scale_ok = field == "output_scale" or (math.isfinite(to_code) and from_code > 0)
        return bool(f > 0) and math.isfinite(f) and scale_ok
    limits = {"rows": (1, 4), "cols": (1, 5), "array_rows": (4, 2**31),
              "array_cols": (5, 2**31), "correlated": (0, 1), "noise": (1, 1),
              "input_bits": (2, 24), "output_bits": (2, 24)}  # fmt: skip
    if field in limits:
        lo, hi = limits[field]
        return lo <= v <= hi
    if field == "ar1":
        return 0 <= v < 1
    return v >= 0 and math.isfinite(v)


def _probe(engine, field: str, value: float) -> None:  # type: ignore[no-untyped-def]
    m = engine.struct
    old, old_bits = getattr(m, field), m.output_bits
    x = np.random.default_rng(1).uniform(-1, 1, (3, 5)).astype(np.float32)
    y = np.full((3, 4), np.nan, np.float32)  # the largest output the model can ask for
    clipped = ffi.new("int64_t *")
    try:
        setattr(m, field, value)
        rc = lib.lk_v2_forward(m, ffi.from_buffer("float[]", x), 3,
                               ffi.from_buffer("float[]", y, True), 1, 0, 1, clipped)  # fmt: skip
    finally:
        setattr(m, field, old)
    if _valid(field, value, old_bits):
        assert rc == lib.LK_OK, (field, value, rc)
    else:
        assert rc == lib.LK_EINVAL, (field, value, rc)
        from lumina_hal.twin.kernel import raise_for

        with pytest.raises(LuminaError):
            raise_for(rc)


@settings(max_examples=120, deadline=None)
@given(field=st.sampled_from(_INT_FIELDS), value=st.integers(-(2**31), 2**31 - 1))
def test_fuzz_c_model_int_fields(engine, field: str, value: int) -> None:  # type: ignore[no-untyped-def]
    """Any value of an integer field runs (in range) or is LK_EINVAL: never a crash."""
    _probe(engine, field, value)


@settings(max_examples=120, deadline=None)
@given(field=st.sampled_from(_FLOAT_FIELDS), value=st.floats())
@example(field="full_scale", value=1.4e-45)  # subnormal: L / FS overflows, so LK_EINVAL
def test_fuzz_c_model_float_fields(engine, field: str, value: float) -> None:  # type: ignore[no-untyped-def]
    """Any value (NaN, ±inf, negative) of a real field runs (in range) or is LK_EINVAL."""
    _probe(engine, field, value)


def test_c_entry_point_refuses_bad_calls(engine) -> None:  # type: ignore[no-untyped-def]
    from lumina_hal.errors import InputError

    m = engine.struct
    x = np.zeros((2, 5), np.float32)
    y = np.empty((2, 4), np.float32)
    clipped = ffi.new("int64_t *")
    fx, fy = ffi.from_buffer("float[]", x), ffi.from_buffer("float[]", y, True)
    assert lib.lk_v2_forward(m, fx, 2, fy, 0, 0, 1, clipped) == lib.LK_OK
    assert lib.lk_v2_forward(ffi.NULL, fx, 2, fy, 0, 0, 1, clipped) == lib.LK_EINVAL
    assert lib.lk_v2_forward(m, fx, 0, fy, 0, 0, 1, clipped) == lib.LK_EINVAL
    assert lib.lk_v2_forward(m, fx, 2, fy, 0, 0, 0, clipped) == lib.LK_EINVAL
    assert lib.lk_v2_forward(m, fx, 2, fx, 0, 0, 1, clipped) == lib.LK_EOVERLAP
    raw = np.zeros(2 * 5 + 1, np.float32)
    odd = ffi.cast("float *", int(ffi.cast("uintptr_t", ffi.from_buffer("float[]", raw))) + 2)
    assert lib.lk_v2_forward(m, odd, 2, fy, 0, 0, 1, clipped) == lib.LK_EALIGN
    x[1, 2] = np.nan
    assert lib.lk_v2_forward(m, fx, 2, fy, 0, 0, 1, clipped) == lib.LK_ENONFINITE
    with TwinV2Device(rows=4, cols=5, kernel="native") as dev:
        dev.load_weights(np.ones((4, 5)))
        with pytest.raises(InputError):
            dev.matmul(x)
