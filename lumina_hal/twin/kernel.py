"""Thin Python side of the C kernel (lumina_hal._lumina_kernel, built by cffi).

Arrays cross into C zero-copy through ``ffi.from_buffer``. Callers (PhotonicDevice) have
already made them float32 and C-contiguous; the checks here guard memory safety.
"""

from __future__ import annotations

import os

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
ISA_NAMES = {"scalar": lib.LK_ISA_SCALAR, "avx2": lib.LK_ISA_AVX2, "avx512": lib.LK_ISA_AVX512}


def kernel_version() -> int:
    return int(lib.lk_version())


def isa_name() -> str:
    code = int(lib.lk_isa())
    return next(name for name, value in ISA_NAMES.items() if value == code)


def select_isa(name: str) -> str:
    """Force an ISA path (scalar, avx2, avx512); returns the one actually in use."""
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
    rows, cols = weights.shape
    panels = -(-rows // PANEL)
    padded = np.zeros((panels * PANEL, cols), dtype=np.float32)
    padded[:rows] = weights
    return np.ascontiguousarray(padded.reshape(panels, PANEL, cols).transpose(0, 2, 1))


_ERRORS = {
    "LK_EINVAL": "kernel rejected its arguments",
    "LK_ENONFINITE": "input contains NaN or Inf",
    "LK_ENOMEM": "kernel could not allocate its scratch memory",
}


def _raise_for(rc: int) -> None:
    if rc == lib.LK_ENONFINITE:
        raise InputError(_ERRORS["LK_ENONFINITE"])
    if rc == lib.LK_ENOMEM:
        raise MemoryError(_ERRORS["LK_ENOMEM"])
    raise LuminaError(f"{_ERRORS['LK_EINVAL']} (code {rc})")


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
    ) -> None:
        self.rows, self.cols = rows, packed.shape[1]
        self._packed = packed  # pack_panels layout, float32
        self._row_sq = np.ascontiguousarray(row_envelope_sq, dtype=np.float32)
        self._col_sq = np.ascontiguousarray(col_envelope_sq, dtype=np.float32)
        m = ffi.new("lk_model *")
        m.rows, m.cols = self.rows, self.cols
        m.weights = ffi.from_buffer("float[]", self._packed)
        m.row_envelope_sq = ffi.from_buffer("float[]", self._row_sq)
        m.col_envelope_sq = ffi.from_buffer("float[]", self._col_sq)
        m.input_bits, m.output_bits = input_bits, output_bits
        m.full_scale, m.output_scale = full_scale, output_scale
        m.phase_var = phase_var
        m.det_c0, m.det_c1, m.det_c2 = detector
        m.noise = 1 if noise else 0
        self._struct = m
        self._clipped = ffi.new("int64_t *")

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
            _raise_for(rc)
        return cls._at(packed, row_env, col_env, a_min, p, scale)

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

        ``first_vector`` places these vectors within call ``call_index`` (noise streams).
        """
        batch = x.shape[0]
        if x.dtype != np.float32 or not x.flags.c_contiguous or x.shape != (batch, self.cols):
            raise InputError(f"kernel needs x as C-contiguous float32 (batch, {self.cols})")
        if out.dtype != np.float32 or not out.flags.c_contiguous or out.shape != (batch, self.rows):
            raise InputError(f"kernel needs out as C-contiguous float32 ({batch}, {self.rows})")
        rc = lib.lk_forward_from(
            self._struct,
            ffi.from_buffer("float[]", x),
            batch,
            first_vector,
            ffi.from_buffer("float[]", out, require_writable=True),
            seed,
            call_index,
            threads,
            self._clipped,
        )
        if rc != lib.LK_OK:
            _raise_for(rc)
        return int(self._clipped[0])
