"""Physics v2's per-call engine in C (native/lk_v2.c, docs/physics.md §7.6).

Programming stays in numpy (``reference_v2.program`` / ``static_phase``); ``V2KernelModel``
holds the per-cell constants A cos(φ/2), A sin(φ/2) of one programmed block at one
temperature, and ``forward`` runs one call on the C kernel (GIL released).
"""

from __future__ import annotations

import numpy as np

from lumina_hal.errors import InputError
from lumina_hal.twin.kernel import ffi, lib, raise_for
from lumina_hal.twin.physics_v2 import V2Params
from lumina_hal.twin.reference_v2 import ProgrammedV2, amplitudes, call_constants


def _f64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


class V2KernelModel:
    """An lk_v2_model struct and the arrays it points into (kept alive together)."""

    def __init__(
        self,
        prog: ProgrammedV2,
        phase: np.ndarray,
        v: V2Params,
        array_shape: tuple[int, int],
        detector_offset: np.ndarray | None = None,
    ) -> None:
        rows, cols = prog.codes.shape
        k = call_constants(prog, v)
        amp = amplitudes(prog)
        half = np.asarray(phase, dtype=np.float64) / 2.0
        self._cos = _f64(amp * np.cos(half))
        self._sin = _f64(amp * np.sin(half))
        if not (np.all(np.isfinite(self._cos)) and np.all(np.isfinite(self._sin))):
            raise InputError("the programmed phases or amplitudes are not finite")
        self._row = _f64(prog.row_envelope)
        self._col = _f64(prog.col_envelope)
        self._offset = None if detector_offset is None else _f64(detector_offset[:rows])
        if self._offset is not None and not np.all(np.isfinite(self._offset)):
            raise InputError("the detector offsets are not finite")
        self.rows, self.cols = rows, cols
        m = ffi.new("lk_v2_model *")
        m.rows, m.cols = rows, cols
        m.array_rows, m.array_cols = array_shape
        m.amp_cos = ffi.from_buffer("double[]", self._cos)
        m.amp_sin = ffi.from_buffer("double[]", self._sin)
        m.row_envelope = ffi.from_buffer("double[]", self._row)
        m.col_envelope = ffi.from_buffer("double[]", self._col)
        m.offset = ffi.NULL if self._offset is None else ffi.from_buffer("double[]", self._offset)
        m.ar1, m.sigma, m.innovation = k.ar1, k.sigma_rad, k.innovation_rad
        m.mean_factor, m.var_a, m.var_b = k.mean_factor, k.var_a, k.var_b
        m.det_c0, m.det_c1, m.det_c2 = k.detector.c0, k.detector.c1, k.detector.c2
        m.correlated = 1 if k.correlated else 0
        m.noise = 1 if k.noise else 0
        m.input_bits, m.output_bits = v.base.input_bits, v.base.output_bits
        m.full_scale, m.output_scale = k.full_scale, prog.scale
        self._struct = m
        self._clipped = ffi.new("int64_t *")

    @property
    def struct(self) -> object:
        """The lk_v2_model cdata (tests change its fields to probe the C checks)."""
        return self._struct

    def forward(
        self, x: np.ndarray, *, seed: int, call_index: int, threads: int
    ) -> tuple[np.ndarray, int]:
        """Call ``call_index`` on ``x`` (batch, cols): (y float32 (batch, rows), clipped)."""
        xs = np.require(x, dtype=np.float32, requirements=("C", "A"))
        if xs.ndim != 2 or xs.shape[1] != self.cols or xs.shape[0] < 1:
            raise InputError(f"x must be (batch, {self.cols}), got {xs.shape}")
        out = np.empty((xs.shape[0], self.rows), dtype=np.float32)
        rc = lib.lk_v2_forward(
            self._struct, ffi.from_buffer("float[]", xs), xs.shape[0],
            ffi.from_buffer("float[]", out, require_writable=True),
            seed, call_index, threads, self._clipped,
        )  # fmt: skip
        if rc != lib.LK_OK:
            raise_for(rc)
        return out, int(self._clipped[0])
