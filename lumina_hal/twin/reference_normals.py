"""Per-call noise normals of docs/physics.md section 4, in numpy: the kernel's oracle.

Written from the spec, independently of native/lk_rng.c: splitmix64 words on uint64, then
the float32 Box-Muller transform (Cephes logf, Taylor sine and cosine). numpy has no fused
multiply-add, so `_fma32` computes one exactly (the float64 sum rounded to odd, then to
float32; Boldo and Melquiond 2008), and every other step is a numpy float32 operation,
which rounds like the kernel's.
"""

from __future__ import annotations

import math

import numpy as np

F32 = np.float32
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M64 = (1 << 64) - 1

_LN = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
       1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
       3.3333331174e-1)  # fmt: skip
_SIN = tuple((-1) ** ((k - 1) // 2) / math.factorial(k) for k in (11, 9, 7, 5, 3))
_COS = tuple((-1) ** (k // 2) / math.factorial(k) for k in (12, 10, 8, 6, 4, 2))
_ANGLE = F32(math.pi / 2**31)  # binary32 0x30C90FDB


def splitmix64_int(z: int) -> int:
    """One splitmix64 step on a Python int (docs/physics.md §2, §4): the one definition the
    reference engine's per-cell and per-call draws share."""
    z = (z + int(_GOLDEN)) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def vector_key(seed: int, call_index: int, vector: int) -> int:
    """K_b = sm(sm(sm(seed) ^ call_index) ^ b)."""
    call_key = splitmix64_int(splitmix64_int(seed & _M64) ^ (call_index & _M64))
    return splitmix64_int(call_key ^ (vector & _M64))


def splitmix64(z: np.ndarray) -> np.ndarray:
    """splitmix64_int on every element of a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def words(key: int, first: int, n: int) -> np.ndarray:
    """The 64-bit words H_t = sm(key + t G), t = first .. first + n - 1."""
    t = np.arange(first, first + n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return splitmix64(np.uint64(key) + t * _GOLDEN)


def _fma32(a: np.ndarray, b: np.ndarray | float, c: np.ndarray | float) -> np.ndarray:
    """fma(a, b, c) of float32 operands, rounded once to float32."""
    a64 = np.asarray(a, np.float32).astype(np.float64)
    b64 = np.asarray(F32(b) if isinstance(b, float) else b, np.float32).astype(np.float64)
    c64 = np.asarray(F32(c) if isinstance(c, float) else c, np.float32).astype(np.float64)
    p = a64 * b64  # exact: 24 + 24 bits
    s = p + c64
    bb = s - p
    err = (p - (s - bb)) + (c64 - bb)  # TwoSum: s + err == p + c exactly
    bits = s.view(np.uint64)
    even = (bits & np.uint64(1)) == 0
    fix = (err != 0) & even  # inexact and even: step to the odd neighbour toward err
    s = np.where(fix, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    return s.astype(np.float32)


def _horner(v: np.ndarray, coefficients: tuple[float, ...]) -> np.ndarray:
    p = np.full(v.shape, F32(coefficients[0]), np.float32)
    for c in coefficients[1:]:
        p = _fma32(p, v, c)
    return p


def lnf(t: np.ndarray) -> np.ndarray:
    """The specified float32 natural log of normal positive float32 t (Cephes logf)."""
    t = np.asarray(t, np.float32)
    bits = t.view(np.uint32)
    e = (bits >> np.uint32(23)).astype(np.int32) - 127
    f = ((bits & np.uint32(0x007FFFFF)) | np.uint32(0x3F800000)).view(np.float32)
    big = f > F32(1.41421354)
    f = np.where(big, f * F32(0.5), f)
    e = e + big.astype(np.int32)
    y = f - F32(1)
    y2 = y * y
    r = (y * y2) * _horner(y, _LN)
    ef = e.astype(np.float32)
    r = _fma32(ef, -2.12194440e-4, r)
    r = _fma32(y2, -0.5, r)
    r = y + r
    return _fma32(ef, 0.693359375, r)


def normals_from_words(h: np.ndarray) -> np.ndarray:
    """Standard normals (float32), two per 64-bit word: out[2t], out[2t + 1] from h[t]
    (docs/physics.md section 4, steps 1-5)."""
    h = np.asarray(h, np.uint64)
    lo = (h & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    hi = (h >> np.uint64(32)).astype(np.uint32)
    q = _fma32((lo >> np.uint32(1)).astype(np.float32), 2.0**-31, 2.0**-32)  # 1. radius
    rho = np.sqrt(lnf(q) * F32(-2))
    a = (hi & np.uint32(0x3FFFFFFF)).astype(np.float32) * _ANGLE  # 2. angle in [0, pi/2)
    a2 = a * a  # 3. sine and cosine
    a3 = a * a2
    sine = _fma32(a3, _horner(a2, _SIN), a)
    cosine = _fma32(a2, _horner(a2, _COS), 1.0)
    swap = (hi & np.uint32(1 << 30)) != 0  # 4. quadrant
    c = np.where(swap, sine, cosine)
    s = np.where(swap, cosine, sine)
    c = np.where(((hi >> np.uint32(31)) ^ (hi >> np.uint32(30) & np.uint32(1))) != 0, -c, c)
    s = np.where((hi >> np.uint32(31)) != 0, -s, s)
    out = np.empty(2 * h.size, np.float32)  # 5. the pair, in output order
    out[0::2] = rho * c
    out[1::2] = rho * s
    return out


def call_normals(seed: int, call_index: int, vector: int, first_output: int, n: int) -> np.ndarray:
    """The normals of outputs first_output .. first_output + n - 1 of vector `vector` of call
    (seed, call_index): what the kernel adds, scaled, to those outputs."""
    t0 = first_output // 2
    t1 = (first_output + n + 1) // 2
    z = normals_from_words(words(vector_key(seed, call_index, vector), t0, t1 - t0))
    return z[first_output - 2 * t0 : first_output - 2 * t0 + n]


def batch_normals(
    seed: int, call_index: int, first_vector: int, batch: int, rows: int
) -> np.ndarray:
    """The normals (batch, rows) of vectors first_vector .. first_vector + batch - 1 of a call,
    all outputs from 0: call_normals row by row, in one numpy pass."""
    keys = np.array(
        [vector_key(seed, call_index, first_vector + b) for b in range(batch)], np.uint64
    )
    t = np.arange((rows + 1) // 2, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = splitmix64(keys[:, None] + t[None, :] * _GOLDEN)
    return normals_from_words(h.ravel()).reshape(batch, 2 * t.size)[:, :rows]
