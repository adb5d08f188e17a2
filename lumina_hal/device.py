"""The PhotonicDevice contract that the twin and every hardware backend implement.

Public methods validate their arguments, take the per-device lock and then call a small
set of ``_``-prefixed hooks that a backend overrides. Validation therefore behaves the same
on every backend, and a backend only deals with well-formed, float32, C-contiguous data.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import platform
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any, ClassVar

import numpy as np

from lumina_hal._version import __version__
from lumina_hal.crc import crc32, default_pieces
from lumina_hal.errors import (
    ConfigurationError,
    DeviceClosedError,
    InputError,
    UnsupportedOperationError,
)
from lumina_hal.params import Param
from lumina_hal.plugin_table import EntryPointTable
from lumina_hal.uri import DeviceURI

log = logging.getLogger(__name__)


def _check_operation(name: str, operation: Any) -> None:
    if not callable(operation):
        raise ConfigurationError(f"device operation {name!r} must be callable, got {operation!r}")


#: Operations an upper room provides on every device, by name, so that the core offers them
#: without importing that room: entry-point group ``lumina_hal.device_operations`` (the
#: package declares ``calibrate = lumina_hal.calibration.procedure:calibrate``) plus
#: run-time registrations (``OPERATIONS.register(name, fn)``). Called as ``fn(device, **kw)``.
OPERATIONS = EntryPointTable(
    "lumina_hal.device_operations", "device operation", _check_operation
)


class Capability(str, Enum):
    """What a backend can do; callers and tests ask ``cap in device.info.capabilities``."""

    SET_TEMPERATURE = "set_temperature"  # set_temperature() changes the chip temperature
    SEEDED = "seeded"  # identical seed, weights and inputs give identical outputs
    SIMULATED = "simulated"  # no real optics behind it (twin or emulator)
    HARDWARE = "hardware"  # drives a real chip
    OPTICAL_POWER = "optical_power"  # telemetry reports optical power
    # Several resident tiles sum on the detectors before one ADC conversion:
    # matmul_accumulate(weights_ids, x_blocks) (docs/tiling.md#analog-accumulation).
    ANALOG_ACCUMULATION = "analog_accumulation"
    # calibrate(): this is one chip whose cell model lumina_hal.calibration can measure
    # (docs/calibration.md); composites (tiled, pools) do not have it.
    CALIBRATE = "calibrate"
    # load_heater_codes(codes, weight_scale): program heater DAC codes directly, bypassing the
    # backend's weights-to-codes mapping (docs/calibration.md §8); ``heater_range_rad`` says
    # what phase the full-scale code gives.
    HEATER_CODES = "heater_codes"
    # call_index reads and seek_call_index moves the noise-stream position: with SEEDED,
    # moving back to n repeats call n (docs/conformance.md, check noise_position).
    NOISE_POSITION = "noise_position"


#: Largest noise-stream position (the 64-bit signed range every backend can carry).
MAX_CALL_INDEX = 2**63 - 1


@dataclass(frozen=True)
class DeviceInfo:
    """Identity and geometry of a device. Bit widths are the converters' (DAC/ADC) widths."""

    vendor: str
    model: str
    serial: str
    firmware: str
    rows: int
    cols: int
    weight_bits: int
    input_bits: int
    output_bits: int
    capabilities: frozenset[str]
    uri: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["capabilities"] = sorted(self.capabilities)
        return data


@dataclass(frozen=True)
class Telemetry:
    """A snapshot of device state. ``counters`` are cumulative since open or reset()."""

    temperature_c: float
    optical_power_dbm: float | None
    weights_id: str | None
    counters: dict[str, int] = field(default_factory=dict)
    timestamp_s: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def weights_checksum(codes: np.ndarray) -> str:
    """The id of a loaded matrix: its shape and the CRC-32 of its int32 little-endian codes.

    Backends that program the same codes report the same id, so it identifies what is on
    the chip, not the float matrix the user passed.
    """
    data = np.ascontiguousarray(codes, dtype="<i4")
    rows, cols = data.shape
    return f"{rows}x{cols}-{crc32(data.data):08x}"  # zlib's CRC-32, in threads if large


class PhotonicDevice(ABC):
    """A photonic matrix-multiplication chip: program a weight matrix, multiply vectors.

    Use it as a context manager. All public methods are thread-safe (one lock per device).
    ``matmul`` computes ``Y = X @ W.T`` for the loaded ``W`` of shape (r, c): X is (c,) or
    (batch, c), Y is (r,) or (batch, r), float32.
    """

    #: Parameters this backend accepts in its URI query / as keyword arguments.
    uri_params: ClassVar[tuple[Param, ...]] = ()
    #: One line for ``lumina-hal drivers``.
    summary: ClassVar[str] = ""
    #: _load_weights may receive float32 weights as given (else always float64): for backends
    #: whose programming widens each value exactly, so a float64 copy of the matrix is waste.
    _float32_weights: ClassVar[bool] = False

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._is_open = False
        self.uri = ""  # set by open_device/build_device; shown in info
        # A backend whose engine rejects NaN/Inf itself (InputError) sets this to skip the
        # Python-side scan, the largest cost of a small call.
        self._backend_checks_finite = False
        self._weights_shape: tuple[int, int] | None = None
        self._weights_id: str | None = None
        # A backend may set a fast path for the common call (an aligned float32 C-contiguous
        # ndarray, out= given or not): fast(x, out) returns the result when it did the whole
        # call with the checks the general path makes, None to decline (nothing done). It
        # runs under the lock; close, reset and every load clear it (a backend re-installs
        # it after a load).
        self._fast_matmul: Callable[[Any, np.ndarray | None], np.ndarray | None] | None = None

    # ---- construction by URI -------------------------------------------------------
    @classmethod
    def from_uri(cls, uri: DeviceURI, **params: Any) -> PhotonicDevice:
        """Build an (unopened) device from a parsed URI and typed parameters.

        The default accepts no host or path; backends that connect somewhere override it.
        """
        if uri.location:
            raise ConfigurationError(
                f"{uri.scheme}:// takes no host or path, got {uri.location!r} in {uri.uri!r}"
            )
        return cls(**params)

    # ---- lifecycle -------------------------------------------------------------------
    @property
    def lock(self) -> threading.RLock:
        """The per-device lock; hold it to run several calls as one atomic sequence."""
        return self._lock

    @property
    def is_open(self) -> bool:
        return self._is_open

    def open(self) -> PhotonicDevice:
        with self._lock:
            if not self._is_open:
                self._open()
                self._is_open = True
                log.debug("opened %s", self)
        return self

    def close(self) -> None:
        """Close the device; safe to call twice. Backends put hardware in its safe state."""
        with self._lock:
            if not self._is_open:
                return
            try:
                self._fast_matmul = None
                self._close()
            finally:
                self._is_open = False
                self._weights_shape = None
                self._weights_id = None
                log.debug("closed %s", self)

    def __enter__(self) -> PhotonicDevice:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- queries ---------------------------------------------------------------------
    @property
    def info(self) -> DeviceInfo:
        with self._lock:
            self._require_open()
            info = self._info()
            return replace(info, uri=self.uri) if self.uri else info

    @property
    def weights_id(self) -> str | None:
        """Checksum id of the loaded weights (see :func:`weights_checksum`), None if none."""
        return self._weights_id

    @property
    def weights_shape(self) -> tuple[int, int] | None:
        return self._weights_shape

    def telemetry(self) -> Telemetry:
        with self._lock:
            self._require_open()
            return self._telemetry()

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able description of the device as it is now, for run records.

        Always: ``info``, ``uri``, ``backend`` (class path), ``weights_id``,
        ``weights_shape`` and ``versions`` (of this package, numpy, Python). Backends add
        their own part through ``_snapshot``; one with a chip model adds ``chip``: every
        physics parameter in force, the kernel, seed, serial and next call index, from which
        ``lumina_hal.twin.twin_from_snapshot`` rebuilds a twin that repeats its calls.
        """
        with self._lock:
            self._require_open()
            shape = self._weights_shape
            data: dict[str, Any] = {
                "info": self.info.to_dict(),
                "uri": self.uri,
                "backend": f"{type(self).__module__}.{type(self).__qualname__}",
                "weights_id": self._weights_id,
                "weights_shape": list(shape) if shape is not None else None,
                "versions": {
                    "lumina_hal": __version__,
                    "numpy": np.__version__,
                    "python": platform.python_version(),
                },
            }
            data.update(self._snapshot())
            return data

    # ---- operations ------------------------------------------------------------------
    def load_weights(self, weights: Any) -> str:
        """Program ``weights`` (float matrix, at most rows x cols); return its weights id.

        A matrix smaller than the array uses its top-left block; the rest is dark.
        """
        w = _as_weight_matrix(weights, self._float32_weights)
        with self._lock:
            self._require_open()
            info = self._info()
            if w.shape[0] > info.rows or w.shape[1] > info.cols:
                raise InputError(
                    f"weights of shape {w.shape} do not fit the {info.rows}x{info.cols} array"
                )
            self._fast_matmul = None  # the backend re-installs it for the new weights
            weights_id = self._load_weights(w)
            self._weights_shape = (int(w.shape[0]), int(w.shape[1]))
            self._weights_id = weights_id
            return weights_id

    def matmul(self, x: Any, out: np.ndarray | None = None) -> np.ndarray:
        """Run input vectors through the loaded weights: ``X @ W.T`` as the chip computes it.

        ``x`` is (c,) or (batch, c) and is converted to aligned float32 C order once if
        needed (values beyond the float32 range are an InputError). ``out``, if given, must
        be float32, C-contiguous, writeable and of the result's shape; it may overlap ``x``
        (``x`` is then copied first) or be misaligned (the result is copied into it). A
        result too large for this machine's memory is refused up front (InputError naming
        the size).
        """
        # "with", not acquire()/try (0.15 µs less): a KeyboardInterrupt raised as acquire()
        # returns would skip the release; BEFORE_WITH has no such window.
        with self._lock:
            fast = self._fast_matmul
            if fast is not None:
                y = fast(x, out)
                if y is not None:
                    return y
            return self._matmul_checked(x, out)

    def _matmul_checked(self, x: Any, out: np.ndarray | None) -> np.ndarray:
        """``matmul``'s general path (under the lock): every check, then any conversion."""
        self._require_open()
        if self._weights_shape is None:
            raise InputError("no weights are loaded; call load_weights(W) first")
        rows, cols = self._weights_shape
        x2d, single = _as_input_batch(x, cols, check_finite=not self._backend_checks_finite)
        if out is None:
            _check_fits_memory(self._matmul_bytes(x2d.shape[0]), x2d.shape[0], rows)
        y2d = target = _output_buffer(out, x2d.shape[0], rows, single)
        if not y2d.flags.aligned:  # engines get aligned memory; copied back below
            y2d = np.empty(y2d.shape, dtype=np.float32)
        if x2d.shape[0]:
            if np.may_share_memory(x2d, y2d):
                x2d = x2d.copy()  # the engine reads x while it writes out
            fast = self._fast_matmul  # converted data: the backend's fast path takes it as is
            if fast is None or fast(x2d, y2d) is None:
                self._matmul(x2d, y2d)
            if y2d is not target:
                target[...] = y2d
        return y2d[0] if single and out is None else (out if out is not None else y2d)

    def _matmul_bytes(self, batch: int) -> int:
        """Memory one call of ``batch`` vectors needs (the output; engines may add scratch)."""
        rows = self._weights_shape[0] if self._weights_shape else 0
        return 4 * batch * rows

    def set_temperature(self, temperature_c: float) -> None:
        """Set the chip temperature setpoint in °C (backends with SET_TEMPERATURE)."""
        with self._lock:
            self._require_open()
            if Capability.SET_TEMPERATURE.value not in self._info().capabilities:
                raise UnsupportedOperationError(f"{type(self).__name__} cannot set its temperature")
            value = float(temperature_c)
            if not math.isfinite(value):
                raise InputError(f"temperature_c must be finite, got {temperature_c!r}")
            self._set_temperature(value)

    def calibrate(self, mode: str = "quick", progress: Any = None, **options: Any) -> Any:
        """Measure this chip and return its ``CalibrationSnapshot`` (docs/calibration.md).

        The ``calibrate`` device operation (``lumina_hal.calibration``), for backends with
        the CALIBRATE capability; ``mode`` "quick" or "full", ``progress(done, total, stage)``.
        The loaded weights are replaced by test patterns; reload yours afterwards.
        """
        with self._lock:
            self._require_open()
            if Capability.CALIBRATE.value not in self._info().capabilities:
                raise UnsupportedOperationError(f"{type(self).__name__} cannot be calibrated")
            operation = OPERATIONS.get("calibrate")
            return operation(self, mode=mode, progress=progress, **options)

    #: Heater phase of the full-scale DAC code at 25 °C (φ_q = range (q / q_max)²), rad.
    heater_range_rad: float = math.pi

    def load_heater_codes(self, codes: Any, weight_scale: float = 1.0) -> str:
        """Program heater DAC codes ``dac_code | negative << weight_bits`` (int, at most
        rows x cols) as they are; outputs are scaled by ``weight_scale`` as if a matrix of
        largest entry ``weight_scale`` were loaded. Backends with HEATER_CODES only.
        """
        c = np.asarray(codes)
        with self._lock:
            self._require_open()
            info = self._info()
            if Capability.HEATER_CODES.value not in info.capabilities:
                raise UnsupportedOperationError(f"{type(self).__name__} cannot load heater codes")
            if c.ndim != 2 or c.dtype.kind not in "iu" or min(c.shape) < 1:
                raise InputError(
                    f"heater codes must be a 2-D integer array, got {c.dtype} {c.shape}"
                )
            if c.shape[0] > info.rows or c.shape[1] > info.cols:
                raise InputError(
                    f"codes of shape {c.shape} do not fit the {info.rows}x{info.cols} array"
                )
            if c.min() < 0 or c.max() >= 1 << (info.weight_bits + 1):
                raise InputError(f"heater codes outside [0, 2^{info.weight_bits + 1})")
            scale = float(weight_scale)
            if not (math.isfinite(scale) and scale > 0):
                raise InputError(f"weight_scale must be finite and > 0, got {weight_scale!r}")
            self._fast_matmul = None
            weights_id = self._load_heater_codes(np.ascontiguousarray(c, dtype=np.int32), scale)
            self._weights_shape = (int(c.shape[0]), int(c.shape[1]))
            self._weights_id = weights_id
            return weights_id
    @property
    def call_index(self) -> int:
        """The noise-stream position (call index) the next ``matmul`` uses.

        A seeded device draws call n's noise from (seed, n); ``open`` and ``reset`` start at
        0 and each ``matmul`` advances it by one. UnsupportedOperationError without
        ``Capability.NOISE_POSITION``.
        """
        with self._lock:
            self._require_open()
            self._require_noise_position()
            return self._read_call_index()

    def seek_call_index(self, call_index: int) -> None:
        """Make the next ``matmul`` use noise-stream position ``call_index`` (0 ..
        MAX_CALL_INDEX; InputError otherwise). With the same weights and inputs it then
        repeats call ``call_index`` bit for bit: what lets a pool retry a call
        (docs/scale-out.md section 3). UnsupportedOperationError without
        ``Capability.NOISE_POSITION``.
        """
        if isinstance(call_index, bool) or not isinstance(call_index, (int, np.integer)):
            raise InputError(f"call_index must be an int, got {type(call_index).__name__}")
        value = int(call_index)
        if not 0 <= value <= MAX_CALL_INDEX:
            raise InputError(f"call_index must be in [0, 2**63 - 1], got {value}")
        with self._lock:
            self._require_open()
            self._require_noise_position()
            self._seek_call_index(value)

    def _require_noise_position(self) -> None:
        if Capability.NOISE_POSITION.value not in self._info().capabilities:
            raise UnsupportedOperationError(
                f"{type(self).__name__} has no noise-stream position to read or seek"
            )

    def reset(self) -> None:
        """Return to the state just after open: no weights, counters zeroed."""
        with self._lock:
            self._require_open()
            self._fast_matmul = None
            self._reset()
            self._weights_shape = None
            self._weights_id = None

    # ---- backend hooks ---------------------------------------------------------------
    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def _info(self) -> DeviceInfo: ...

    @abstractmethod
    def _load_weights(self, weights: np.ndarray) -> str:
        """Program a validated float64 (r, c) matrix; return its weights id."""

    @abstractmethod
    def _matmul(self, x: np.ndarray, out: np.ndarray) -> None:
        """Fill ``out`` (batch, r) float32 from ``x`` (batch, c) float32, both C-contiguous."""

    @abstractmethod
    def _telemetry(self) -> Telemetry: ...

    @abstractmethod
    def _reset(self) -> None: ...

    def _snapshot(self) -> dict[str, Any]:
        """The backend's part of :meth:`snapshot` (JSON-able); none by default."""
        return {}

    def _set_temperature(self, temperature_c: float) -> None:
        raise UnsupportedOperationError(f"{type(self).__name__} cannot set its temperature")

    def _load_heater_codes(self, codes: np.ndarray, weight_scale: float) -> str:
        raise UnsupportedOperationError(f"{type(self).__name__} cannot load heater codes")
    def _read_call_index(self) -> int:
        """The next call's noise-stream position (backends with NOISE_POSITION)."""
        raise UnsupportedOperationError(f"{type(self).__name__} has no noise-stream position")

    def _seek_call_index(self, call_index: int) -> None:
        """Set the next call's noise-stream position (backends with NOISE_POSITION)."""
        raise UnsupportedOperationError(f"{type(self).__name__} has no noise-stream position")

    def _require_open(self) -> None:
        if not self._is_open:
            raise DeviceClosedError(
                f"{type(self).__name__} is closed; call open() or use 'with' first"
            )


_F32_MAX = float(np.finfo(np.float32).max)
_F32_TINY = float(np.finfo(np.float32).tiny)  # smallest normal float32


@functools.lru_cache(maxsize=1)
def _physical_memory_bytes() -> int | None:
    """The machine's physical memory, read once (two sysconf calls cost ~1 µs per matmul)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def max_batch_in_memory(bytes_per_vector: int) -> int:
    """The largest batch ``_check_fits_memory`` lets through at ``bytes_per_vector`` (>= 1),
    for a backend's fast path to decline larger ones to the general path's refusal."""
    total = _physical_memory_bytes()
    return sys.maxsize if total is None else max(1, total // max(1, bytes_per_vector))


def _check_fits_memory(nbytes: int, batch: int, rows: int) -> None:
    """Refuse a call whose result and scratch exceed the machine's physical memory."""
    total = _physical_memory_bytes()
    if total is not None and nbytes > total:
        raise InputError(
            f"a call of {batch} vectors x {rows} outputs needs about {nbytes / 2**30:.1f} GiB, "
            f"more than this machine's {total / 2**30:.1f} GiB of memory; split the batch"
        )


def _check_real_numeric(arr: np.ndarray, what: str, check_finite: bool = True) -> None:
    if arr.dtype.kind not in "fiu":
        raise InputError(f"{what} must be a real numeric array, got dtype {arr.dtype}")
    if check_finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise InputError(f"{what} contains {bad} NaN or Inf value(s)")


def _as_weight_matrix(weights: Any, keep_float32: bool = False) -> np.ndarray:
    """The weights as a checked C-contiguous float64 matrix (float32 kept as it is when the
    backend asks: ``PhotonicDevice._float32_weights``; widening it is exact, so the backend
    computes what it would from the float64 copy, without the copy)."""
    try:
        w = np.asarray(weights)
    except Exception as exc:  # ragged lists and the like
        raise InputError(f"weights cannot be read as an array: {exc}") from None
    if w.ndim != 2:
        raise InputError(f"weights must be a 2-D matrix (rows, cols), got shape {w.shape}")
    if w.shape[0] == 0 or w.shape[1] == 0:
        raise InputError(f"weights must not be empty, got shape {w.shape}")
    _check_real_numeric(w, "weights", check_finite=False)
    low, high = _weight_range(w)  # NaN propagates; ±Inf shows at an end
    if not (math.isfinite(high) and math.isfinite(low)):
        _check_real_numeric(w, "weights")  # raises, counting the bad values
    scale = max(high, -low)  # max |w| without a temporary |w| array
    single = keep_float32 and w.dtype == np.float32
    w64 = np.ascontiguousarray(w, dtype=np.float32 if single else np.float64)
    if scale > _F32_MAX or 0.0 < scale < _F32_TINY:
        raise InputError(
            f"weights' largest magnitude {scale:g} is outside the float32 range the chip "
            f"reads out in ({_F32_TINY:g} to {_F32_MAX:g}, or all zero)"
        )
    return w64


#: Below this many entries numpy's min and max check a weight matrix (no thread start-up).
_RANGE_IN_C_MIN_SIZE = 1 << 16


def _weight_range(w: np.ndarray) -> tuple[float, float]:
    """(min, max) of a weight matrix (both NaN if it holds a NaN): one threaded pass of the
    compiled kernel (lk_weight_range) for large C-contiguous float32/float64 matrices, else
    numpy's ``min`` and ``max``; the same values either way."""
    if w.size >= _RANGE_IN_C_MIN_SIZE and w.flags.c_contiguous and w.flags.aligned:
        single = w.dtype == np.float32
        if single or w.dtype == np.float64:
            try:
                from lumina_hal._lumina_kernel import ffi, lib
            except ImportError:  # a source tree without the compiled kernel
                pass
            else:
                lo, hi = ffi.new("double *"), ffi.new("double *")
                matrix = ffi.from_buffer("float[]" if single else "double[]", w)
                rc = lib.lk_weight_range(
                    ffi.NULL if single else matrix, matrix if single else ffi.NULL,
                    w.shape[0], w.shape[1], default_pieces(), lo, hi,
                )  # fmt: skip
                if rc == lib.LK_OK:
                    return float(lo[0]), float(hi[0])
    return float(w.min()), float(w.max())


def _as_input_batch(x: Any, cols: int, check_finite: bool = True) -> tuple[np.ndarray, bool]:
    if (
        type(x) is np.ndarray
        and x.dtype == np.float32
        and x.flags.c_contiguous
        and x.flags.aligned
        and 1 <= x.ndim <= 2
        and x.shape[-1] == cols
    ):  # fast path: use as is
        if check_finite and not np.isfinite(x).all():
            _check_real_numeric(x, "input")
        return (x.reshape(1, cols), True) if x.ndim == 1 else (x, False)
    try:
        arr = np.asarray(x)
    except Exception as exc:
        raise InputError(f"input cannot be read as an array: {exc}") from None
    if arr.ndim not in (1, 2):
        raise InputError(
            f"input has {arr.ndim} dimensions: expected shape ({cols},) or (batch, {cols}), "
            f"got {arr.shape}"
        )
    single = arr.ndim == 1
    x2d = arr.reshape(1, -1) if single else arr
    if x2d.shape[1] != cols:
        raise InputError(
            f"input has {x2d.shape[1]} columns but the loaded weights take {cols}: "
            f"expected shape ({cols},) or (batch, {cols}), got {arr.shape}"
        )
    _check_real_numeric(x2d, "input", check_finite)
    with np.errstate(over="ignore"):
        # aligned, C order, float32: a misaligned buffer is copied, never read as is
        x32 = np.require(x2d, dtype=np.float32, requirements=("C", "A"))
    if x2d.dtype != np.float32 and x2d.size and not np.isfinite(x32).all():
        if np.isfinite(x2d).all():
            raise InputError(
                f"input values up to {float(np.max(np.abs(x2d))):g} exceed the float32 range "
                f"(±{_F32_MAX:g}) the chip's DAC takes"
            )
        _check_real_numeric(x2d, "input")
    return x32, single


def _output_buffer(out: np.ndarray | None, batch: int, rows: int, single: bool) -> np.ndarray:
    if out is None:
        return np.empty((batch, rows), dtype=np.float32)
    if not isinstance(out, np.ndarray):
        raise InputError(f"out must be a numpy array, got {type(out).__name__}")
    expected = (rows,) if single else (batch, rows)
    if out.shape != expected:
        raise InputError(f"out has shape {out.shape}, expected {expected}")
    if out.dtype != np.float32:
        raise InputError(f"out must be float32, got {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise InputError("out must be a writeable C-contiguous array")
    return out.reshape(batch, rows)
