"""Thin Python side of the C kernel (lumina_hal._lumina_kernel, built by cffi).

Arrays cross into C zero-copy through ``ffi.from_buffer``. Callers (PhotonicDevice) have
already made them float32 and C-contiguous; the checks here guard memory safety.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from lumina_hal.errors import ConfigurationError, InputError, LuminaError
from lumina_hal.twin import physics, reference

try:
    from lumina_hal._lumina_kernel import ffi, lib
except ImportError as exc:  # pragma: no cover - only when the package was not built
    raise ImportError(
        "the C kernel lumina_hal._lumina_kernel is not built; install the package with "
        "'pip install -e .' (a C compiler is required)"
    ) from exc

PANEL = int(lib.LK_PANEL)
SIMD_ENV = "LUMINA_SIMD"
ISA_NAMES = {
    "scalar": lib.LK_ISA_SCALAR,
    "avx2": lib.LK_ISA_AVX2,
    "avx512": lib.LK_ISA_AVX512,
    "avx512vnni": lib.LK_ISA_AVX512VNNI,
    "amx": lib.LK_ISA_AMX,
}


def kernel_version() -> int:
    return int(lib.lk_version())


def isa_name() -> str:
    code = int(lib.lk_isa())
    return next(name for name, value in ISA_NAMES.items() if value == code)


def select_isa(name: str) -> str:
    """Force an ISA path (scalar, avx2, avx512, avx512vnni, amx); returns the one in use."""
    if name not in ISA_NAMES:
        raise ConfigurationError(
            f"unknown SIMD path {name!r}; expected one of " + ", ".join(ISA_NAMES)
        )
    lib.lk_select_isa(ISA_NAMES[name])
    return isa_name()


if os.environ.get(SIMD_ENV, "").strip():
    select_isa(os.environ[SIMD_ENV].strip())


def pack_panels(weights: np.ndarray) -> np.ndarray:
    """(r, c) -> panel layout: ceil(r/16) panels of (c, 16), zero padded (lumina_kernel.h)."""
    w = np.ascontiguousarray(weights, dtype=np.float32)
    rows, cols = w.shape
    packed = np.empty(int(lib.lk_packed_floats(rows, cols)), dtype=np.float32)
    rc = lib.lk_pack_model(
        _ptr(w), rows, cols, ffi.NULL, ffi.NULL, 0.0, _ptr(packed), ffi.NULL, ffi.NULL, ffi.NULL
    )
    if rc != lib.LK_OK:
        raise_for(rc)
    return packed.reshape(-(-rows // PANEL), cols, PANEL)


_CTYPES = {
    np.dtype(np.float32): "float[]",
    np.dtype(np.uint8): "uint8_t[]",
    np.dtype(np.int32): "int32_t[]",
}


def _ptr(a: np.ndarray) -> object:
    """A typed zero-copy pointer into a C-contiguous array (kept alive by the cdata)."""
    return ffi.from_buffer(_CTYPES[a.dtype], a, require_writable=a.flags.writeable)


_EALIGN, _EOVERLAP = int(lib.LK_EALIGN), int(lib.LK_EOVERLAP)
_INT32 = np.dtype(np.int32)


def _c_aligned(flags: Any) -> bool:
    """C-contiguous and aligned: what the kernel takes as is (cheaper than np.require)."""
    return bool(flags.c_contiguous and flags.aligned)


def decline_codes() -> frozenset[int]:
    """lk_forward_from's codes for buffers a caller should copy and retry (align, overlap)."""
    return frozenset((_EALIGN, _EOVERLAP))


def raise_for(rc: int) -> None:
    """Raise the LuminaError for a kernel return code ``rc`` (nonzero)."""
    if rc == lib.LK_ENONFINITE:
        raise InputError("input contains NaN or Inf")
    if rc == lib.LK_ERANGE:
        raise InputError("an input code is outside the input DAC's range")
    if rc in (lib.LK_EALIGN, lib.LK_EOVERLAP):
        raise InputError("kernel needs aligned, non-overlapping x and out")
    if rc == lib.LK_ENOMEM:
        raise InputError("request too large: the kernel could not allocate its scratch memory")
    raise LuminaError(f"kernel rejected its arguments (code {rc})")


class KernelModel:
    """An lk_model struct and the arrays it points into (kept alive together)."""

    def __init__(
        self,
        packed: np.ndarray,
        rows: int,
        row_envelope_sq: np.ndarray,
        col_envelope_sq: np.ndarray,
        *,
        input_bits: int,
        output_bits: int,
        full_scale: float,
        output_scale: float,
        phase_var: float,
        detector: tuple[float, float, float],
        noise: bool,
        threads: int = 1,
    ) -> None:
        """``packed``: W_eff in the panel layout (pack_panels), float32, C-contiguous;
        ``threads``: for building the variance codes (the bytes do not depend on it)."""
        self.rows, self.cols = rows, cols = rows, packed.shape[1]
        self._packed = np.require(packed, dtype=np.float32, requirements=("C", "A"))
        if self._packed.size != int(lib.lk_packed_floats(rows, cols)):
            raise InputError(f"packed weights do not hold {rows} x {cols} in panels")
        self._row_sq = np.ascontiguousarray(row_envelope_sq, dtype=np.float32)
        self._col_sq = np.ascontiguousarray(col_envelope_sq, dtype=np.float32)
        codes, inv, scale = ffi.NULL, ffi.NULL, ffi.NULL
        if noise:  # the variance codes (docs/kernel.md "Variance term")
            self._codes = np.empty(int(lib.lk_var_code_bytes(rows, cols)), dtype=np.uint8)
            self._var_inv = np.empty(rows, dtype=np.float32)
            self._var_scale = np.empty(rows, dtype=np.float32)
            codes, inv, scale = _ptr(self._codes), _ptr(self._var_inv), _ptr(self._var_scale)
            rc = lib.lk_pack_var_codes(
                _ptr(self._packed), rows, cols, _ptr(self._row_sq), _ptr(self._col_sq),
                phase_var, codes, inv, scale, max(1, int(threads)),
            )  # fmt: skip
            if rc != lib.LK_OK:
                raise_for(rc)
        m = ffi.new("lk_model *")
        m.rows, m.cols = rows, cols
        m.weights = _ptr(self._packed)
        m.row_envelope_sq = _ptr(self._row_sq)
        m.col_envelope_sq = _ptr(self._col_sq)
        m.var_codes, m.row_var_inv, m.row_var_scale = codes, inv, scale
        m.input_bits, m.output_bits = input_bits, output_bits
        m.full_scale, m.output_scale = full_scale, output_scale
        m.det_c0, m.det_c1, m.det_c2 = detector
        m.noise = 1 if noise else 0
        self._struct = m
        self._clipped = ffi.new("int64_t *")
        self._forward_from = lib.lk_forward_from
        self._from_buffer = ffi.from_buffer

    @classmethod
    def for_array(
        cls, programmed: reference.ProgrammedArray, p: physics.PhysicsParams, output_scale: float
    ) -> KernelModel:
        """The kernel's model of a programmed array at ``p`` (docs/physics.md §2-3)."""
        effective = programmed.effective(p).astype(np.float32)
        return cls._at(
            pack_panels(effective), programmed.row_envelope, programmed.col_envelope,
            programmed.min_amplitude, p, output_scale,
        )  # fmt: skip

    @classmethod
    def _at(
        cls,
        packed: np.ndarray,
        row_envelope: np.ndarray,
        col_envelope: np.ndarray,
        min_amplitude: float,
        p: physics.PhysicsParams,
        output_scale: float,
        threads: int = 1,
    ) -> KernelModel:
        """The model of packed W_eff with the per-call constants of ``p`` (§3)."""
        cols = len(col_envelope)
        det = physics.detector_noise(p, cols, min_amplitude)
        return cls(
            packed,
            len(row_envelope),
            row_envelope**2,
            col_envelope**2,
            input_bits=p.input_bits,
            output_bits=p.output_bits,
            full_scale=reference.full_scale(p, cols),
            output_scale=output_scale,
            phase_var=physics.phase_noise_sigma_rad(p) ** 2 / 4.0,
            detector=(det.c0, det.c1, det.c2),
            noise=p.noise,
            threads=threads,
        )

    @classmethod
    def for_codes(
        cls,
        codes: np.ndarray,
        scale: float,
        p: physics.PhysicsParams,
        serial: str,
        array_shape: tuple[int, int],
        *,
        threads: int = 1,
        out: np.ndarray | None = None,
    ) -> KernelModel:
        """The kernel's model of heater ``codes`` programmed on chip ``serial`` at ``p``:
        W_eff computed by lk_program straight into the packed layout (no other array of the
        block's size is made), equal to ``reference.program_codes(...).effective(p)``.

        ``out``: a packed buffer of the right shape to reuse (an engine being replaced), which
        saves the operating system's zeroing of fresh pages; its old contents are lost."""
        codes = np.ascontiguousarray(codes, dtype=np.int32)
        rows, cols = codes.shape
        row_env, col_env, a_min = physics.envelopes(p, rows, cols, *array_shape)
        row_env = np.ascontiguousarray(row_env, dtype=np.float64)
        col_env = np.ascontiguousarray(col_env, dtype=np.float64)
        params = ffi.new("lk_program_params *")
        params.rows, params.cols, params.weight_bits = rows, cols, p.weight_bits
        params.fab_sigma, params.crosstalk = p.fab_sigma, p.crosstalk
        params.crosstalk_diag = p.crosstalk * physics.CROSSTALK_DIAGONAL_RATIO
        params.drift_rad_per_um = physics.drift_phase_per_um(p)
        params.arm_imbalance_um = p.arm_imbalance_um
        params.row_envelope = ffi.from_buffer("double[]", row_env)
        params.col_envelope = ffi.from_buffer("double[]", col_env)
        params.serial_key = reference.serial_key(serial)
        shape = (-(-rows // PANEL), cols, PANEL)
        packed = (
            out
            if out is not None and out.shape == shape and out.dtype == np.float32
            else np.empty(shape, dtype=np.float32)
        )
        rc = lib.lk_program(
            params,
            ffi.from_buffer("int32_t[]", codes),
            ffi.from_buffer("float[]", packed, require_writable=True),
            threads,
        )
        if rc != lib.LK_OK:
            raise_for(rc)
        return cls._at(packed, row_env, col_env, a_min, p, scale, threads)

    def call_entry(self) -> tuple[Any, Any, Any]:
        """(lk_forward_from, the lk_model struct, the int64_t clipped-count cell): what a
        caller that fuses its own per-call path binds once (twin/fast_call.py)."""
        return self._forward_from, self._struct, self._clipped

    @property
    def packed(self) -> np.ndarray:
        """The packed W_eff this model reads (pack_panels layout)."""
        return self._packed

    def forward(
        self,
        x: np.ndarray,
        out: np.ndarray,
        *,
        seed: int,
        call_index: int,
        threads: int,
        first_vector: int = 0,
    ) -> int:
        """Run ``x`` (batch, cols) into ``out`` (batch, rows); return the clipped count.

        Both must be aligned, C-contiguous float32 and must not overlap (the caller,
        PhotonicDevice.matmul, guarantees it; checked here too, for memory safety).
        ``first_vector`` places these vectors within call ``call_index`` (noise streams).
        """
        batch = x.shape[0]
        if (
            x.dtype != np.float32
            or not x.flags.c_contiguous
            or not x.flags.aligned
            or x.shape != (batch, self.cols)
        ):
            raise InputError(f"kernel needs x as aligned C-contiguous float32 (batch, {self.cols})")
        if (
            out.dtype != np.float32
            or not out.flags.c_contiguous
            or not out.flags.aligned
            or out.shape != (batch, self.rows)
        ):
            raise InputError(
                f"kernel needs out as aligned C-contiguous float32 ({batch}, {self.rows})"
            )
        if np.may_share_memory(x, out):
            raise InputError("kernel needs out and x in separate memory")
        fb = self._from_buffer
        rc = self._forward_from(
            self._struct, fb("float[]", x), batch, first_vector, fb("float[]", out, True),
            seed, call_index, threads, self._clipped,
        )  # fmt: skip
        if rc != 0:
            raise_for(rc)
        return int(self._clipped[0])

    def forward_codes(
        self,
        codes: np.ndarray,
        *,
        seed: int,
        call_index: int,
        threads: int,
        first_vector: int = 0,
    ) -> tuple[np.ndarray, int]:
        """Input DAC codes (batch, cols) int32 in, ADC codes (batch, rows) int32 out.

        The chip's view (lk_forward_codes): x_n = code / L_x, s_x = 1, no output scale; one
        conversion each way for a firmware emulator that holds the codes from the wire.
        A code outside ±L_x is an InputError.
        """
        c = codes
        if type(c) is not np.ndarray or c.dtype is not _INT32 or not _c_aligned(c.flags):
            c = np.require(codes, dtype=np.int32, requirements=("C", "A"))
        if c.ndim != 2 or c.shape[1] != self.cols or c.shape[0] < 1:
            raise InputError(f"codes must be int32 of shape (batch, {self.cols}), got {c.shape}")
        out = np.empty((c.shape[0], self.rows), dtype=np.int32)
        rc = lib.lk_forward_codes(
            self._struct, _ptr(c), c.shape[0], first_vector, _ptr(out),
            seed, call_index, threads, self._clipped,
        )  # fmt: skip
        if rc != 0:
            raise_for(rc)
        return out, int(self._clipped[0])
