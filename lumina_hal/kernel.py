"""Thin Python side of the C kernel (lumina_hal._lumina_kernel, built by cffi).

Arrays cross into C zero-copy through ``ffi.from_buffer``; callers (PhotonicDevice) have
already made them float32 and C-contiguous, and this module checks that again because a
wrong buffer here would be memory corruption, not a wrong answer.
"""

from __future__ import annotations

import numpy as np

from lumina_hal.errors import InputError, LuminaError

try:
    from lumina_hal._lumina_kernel import ffi, lib
except ImportError as exc:  # pragma: no cover - only when the package was not built
    raise ImportError(
        "the C kernel lumina_hal._lumina_kernel is not built; install the package with "
        "'pip install .' (a C compiler is required)"
    ) from exc


def kernel_version() -> int:
    return int(lib.lk_version())


def _check_f32(arr: np.ndarray, name: str, shape: tuple[int, ...]) -> None:
    if arr.dtype != np.float32 or not arr.flags.c_contiguous or arr.shape != shape:
        raise InputError(
            f"kernel needs {name} as C-contiguous float32 of shape {shape}, "
            f"got {arr.dtype} {arr.shape} (contiguous={arr.flags.c_contiguous})"
        )


class KernelLayer:
    """Programmed weights held for the kernel: the struct and the arrays it points into."""

    def __init__(
        self, normalized: np.ndarray, *, input_bits: int, output_bits: int, full_scale: float
    ) -> None:
        rows, cols = normalized.shape
        _check_f32(normalized, "weights", (rows, cols))
        self.rows, self.cols = rows, cols
        self._weights = normalized  # kept alive while the struct points into it
        self._struct = ffi.new("lk_layer *")
        self._struct.rows = rows
        self._struct.cols = cols
        self._struct.weights = ffi.from_buffer("float[]", normalized)
        self._struct.input_bits = input_bits
        self._struct.output_bits = output_bits
        self._struct.output_full_scale = full_scale
        self._clipped = ffi.new("int64_t *")

    def forward(self, x: np.ndarray, out: np.ndarray) -> int:
        """Run ``x`` (batch, cols) into ``out`` (batch, rows); return the clipped count."""
        batch = x.shape[0]
        _check_f32(x, "x", (batch, self.cols))
        _check_f32(out, "out", (batch, self.rows))
        rc = lib.lk_forward(
            self._struct,
            ffi.from_buffer("float[]", x),
            batch,
            ffi.from_buffer("float[]", out, require_writable=True),
            self._clipped,
        )
        if rc == lib.LK_ENONFINITE:
            raise InputError("input contains NaN or Inf")
        if rc != lib.LK_OK:
            raise LuminaError(f"kernel rejected its arguments (code {rc})")
        return int(self._clipped[0])
