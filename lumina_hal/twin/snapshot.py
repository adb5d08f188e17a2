"""Calibration snapshots: the measured cell model of one chip, its file format and its twin.

A snapshot holds what ``lumina_hal.calibration.calibrate`` measured (docs/calibration.md):
per-cell heater-gain error and phase offset, thermal crosstalk, detector offsets, optionally
arm imbalance, and the conditions of the measurement. It lives in the twin room because its
quantities are those of the chip model (docs/physics.md §2), and ``mock://?snapshot=PATH``
builds a twin of the measured chip from it (the fake-backend idea).

File format (version 1): one ``.npz`` archive (numpy, no pickle) whose entry ``header`` is
UTF-8 JSON as a uint8 array and whose other entries are the float64 arrays named in
``ARRAY_SHAPES``. Anything else is rejected with ``SnapshotFormatError``.
"""

from __future__ import annotations

import io
import json
import math
import time
import zipfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from lumina_hal.errors import ConfigurationError
from lumina_hal.twin.physics import PhysicsParams, drift_phase_per_um
from lumina_hal.twin.physics_v2 import V2_FIELDS
from lumina_hal.twin.reference import neighbour_sums

FORMAT_NAME = "lumina-calibration-snapshot"
FORMAT_VERSION = 1
MODES = ("quick", "full")
MAX_CELLS = 8192 * 8192
#: header keys and their JSON types
_HEADER_TYPES: dict[str, tuple[type, ...]] = {
    "format": (str,),
    "version": (int,),
    "serial": (str,),
    "rows": (int,),
    "cols": (int,),
    "weight_bits": (int,),
    "loss_steps_db": (list,),
    "temperature_c": (int, float),
    "created_s": (int, float),
    "mode": (str,),
    "probe_runs": (int,),
    "crosstalk_edge": (int, float),
    "crosstalk_diagonal": (int, float),
    "probe_noise_rms": (int, float),
    "physics": (dict, type(None)),
}


class SnapshotFormatError(ConfigurationError):
    """A snapshot file or object is malformed, of another version, or inconsistent."""


@dataclass(frozen=True)
class CalibrationSnapshot:
    """One calibration of one chip (docs/calibration.md §2). Arrays are float64.

    ``gain_error`` ε̂ (rows, cols): relative heater-efficiency error; ``phase_offset_rad`` θ̂
    (rows, cols): phase added to every cell at ``temperature_c``; ``crosstalk_edge`` /
    ``crosstalk_diagonal``: κ̂1 / κ̂2; ``detector_offset`` (rows,): additive output offset in
    normalized units (per unit of weight scale and input scale); ``arm_imbalance_um``
    (rows, cols) or None where not measured; ``probe_noise_rms``: output noise measured on the
    probes (normalized units); ``physics``: the parameters the device declares about itself
    (twins only; None for hardware), used by snapshot twins for what is not measured;
    ``heater_range_rad``: None when measured through ``load_weights`` (φ_q of the v1 wire
    mapping, range π), else the range of the heater codes it was measured with
    (``load_heater_codes``; optional header key, absent = None).
    """

    serial: str
    rows: int
    cols: int
    weight_bits: int
    loss_steps_db: tuple[float, float]
    temperature_c: float
    created_s: float
    mode: str
    probe_runs: int
    gain_error: np.ndarray
    phase_offset_rad: np.ndarray
    crosstalk_edge: float
    crosstalk_diagonal: float
    detector_offset: np.ndarray
    probe_noise_rms: float
    arm_imbalance_um: np.ndarray | None = None
    physics: dict[str, Any] | None = None
    version: int = field(default=FORMAT_VERSION)
    heater_range_rad: float | None = None  # set: measured through load_heater_codes (§8)

    def __post_init__(self) -> None:
        _validate(self)

    def age_s(self, now_s: float | None = None) -> float:
        """Seconds since the calibration was taken."""
        return (time.time() if now_s is None else now_s) - self.created_s

    # ---- file format ----------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the snapshot as one .npz file (format version 1); returns the path."""
        header = {
            "format": FORMAT_NAME,
            "version": self.version,
            "serial": self.serial,
            "rows": self.rows,
            "cols": self.cols,
            "weight_bits": self.weight_bits,
            "loss_steps_db": list(self.loss_steps_db),
            "temperature_c": self.temperature_c,
            "created_s": self.created_s,
            "mode": self.mode,
            "probe_runs": self.probe_runs,
            "crosstalk_edge": self.crosstalk_edge,
            "crosstalk_diagonal": self.crosstalk_diagonal,
            "probe_noise_rms": self.probe_noise_rms,
            "physics": self.physics,
        }
        if self.heater_range_rad is not None:
            header["heater_range_rad"] = self.heater_range_rad
        arrays = {
            "gain_error": self.gain_error,
            "phase_offset_rad": self.phase_offset_rad,
            "detector_offset": self.detector_offset,
        }
        if self.arm_imbalance_um is not None:
            arrays["arm_imbalance_um"] = self.arm_imbalance_um
        entries: dict[str, Any] = {
            "header": np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), np.uint8)
        }
        entries.update({k: np.asarray(v, dtype="<f8") for k, v in arrays.items()})
        path = Path(path)
        with path.open("wb") as fh:
            np.savez(fh, **entries)
        return path

    @classmethod
    def load(cls, path: str | Path) -> CalibrationSnapshot:
        """Read a snapshot file; any malformed content raises SnapshotFormatError."""
        try:
            data = Path(path).read_bytes()
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
            raise SnapshotFormatError(f"cannot read calibration snapshot {path}: {exc}") from exc
        return cls.from_bytes(data, source=str(path))

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> CalibrationSnapshot:
        """Parse the bytes of a snapshot file (see ``load``)."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                entries = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, TypeError) as exc:
            raise SnapshotFormatError(f"{source}: not a calibration snapshot ({exc})") from exc
        except Exception as exc:  # zipfile/zlib raise assorted errors on damaged archives
            raise SnapshotFormatError(f"{source}: damaged calibration snapshot ({exc})") from exc
        header = _parse_header(entries.pop("header", None), source)
        allowed = {"gain_error", "phase_offset_rad", "detector_offset", "arm_imbalance_um"}
        unknown = set(entries) - allowed
        if unknown:
            raise SnapshotFormatError(f"{source}: unknown entries {sorted(unknown)}")
        for name in ("gain_error", "phase_offset_rad", "detector_offset"):
            if name not in entries:
                raise SnapshotFormatError(f"{source}: entry {name!r} is missing")
        arrays = {k: _float_array(v, k, source) for k, v in entries.items()}
        steps = header["loss_steps_db"]
        if len(steps) != 2 or not all(_is_number(s) for s in steps):
            raise SnapshotFormatError(f"{source}: loss_steps_db must be two numbers")
        try:
            return cls(
                serial=header["serial"],
                rows=header["rows"],
                cols=header["cols"],
                weight_bits=header["weight_bits"],
                loss_steps_db=(float(steps[0]), float(steps[1])),
                temperature_c=float(header["temperature_c"]),
                created_s=float(header["created_s"]),
                mode=header["mode"],
                probe_runs=header["probe_runs"],
                gain_error=arrays["gain_error"],
                phase_offset_rad=arrays["phase_offset_rad"],
                crosstalk_edge=float(header["crosstalk_edge"]),
                crosstalk_diagonal=float(header["crosstalk_diagonal"]),
                detector_offset=arrays["detector_offset"],
                probe_noise_rms=float(header["probe_noise_rms"]),
                arm_imbalance_um=arrays.get("arm_imbalance_um"),
                physics=header["physics"],
                version=header["version"],
                heater_range_rad=_optional_range(header.get("heater_range_rad"), source),
            )
        except SnapshotFormatError as exc:
            raise SnapshotFormatError(f"{source}: {exc}") from exc


def _optional_range(value: Any, source: str) -> float | None:
    if value is None:
        return None
    if not _is_number(value):
        raise SnapshotFormatError(f"{source}: header field 'heater_range_rad' is mistyped")
    return float(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _float_array(value: np.ndarray, name: str, source: str) -> np.ndarray:
    if value.dtype.kind not in "fiu":
        raise SnapshotFormatError(f"{source}: entry {name!r} is not numeric ({value.dtype})")
    return np.array(value, dtype=np.float64)


def _parse_header(raw: np.ndarray | None, source: str) -> dict[str, Any]:
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise SnapshotFormatError(f"{source}: the JSON header is missing or not bytes")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SnapshotFormatError(f"{source}: the header is not JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise SnapshotFormatError(f"{source}: the header is not a JSON object")
    if header.get("format") != FORMAT_NAME:
        found = header.get("format")
        raise SnapshotFormatError(f"{source}: not a {FORMAT_NAME} (format {found!r})")
    if header.get("version") != FORMAT_VERSION:
        raise SnapshotFormatError(
            f"{source}: snapshot version {header.get('version')!r} is not supported "
            f"(this release reads version {FORMAT_VERSION})"
        )
    for key, types in _HEADER_TYPES.items():
        value = header.get(key, ...)
        if value is ... or not isinstance(value, types) or isinstance(value, bool):
            raise SnapshotFormatError(f"{source}: header field {key!r} is missing or mistyped")
    return header


def _validate(s: CalibrationSnapshot) -> None:
    """Consistency checks of a snapshot; raises SnapshotFormatError."""
    if s.version != FORMAT_VERSION:
        raise SnapshotFormatError(f"snapshot version {s.version} is not {FORMAT_VERSION}")
    if not (isinstance(s.rows, int) and isinstance(s.cols, int)) or min(s.rows, s.cols) < 1:
        raise SnapshotFormatError(f"bad array size {s.rows!r}x{s.cols!r}")
    if s.rows * s.cols > MAX_CELLS:
        raise SnapshotFormatError(f"array {s.rows}x{s.cols} is larger than any chip")
    if not isinstance(s.weight_bits, int) or not 2 <= s.weight_bits <= 24:
        raise SnapshotFormatError(f"weight_bits {s.weight_bits!r} outside 2..24")
    if s.mode not in MODES:
        raise SnapshotFormatError(f"mode {s.mode!r} is not one of {MODES}")
    if not isinstance(s.probe_runs, int) or s.probe_runs < 0:
        raise SnapshotFormatError(f"probe_runs {s.probe_runs!r} is not a count")
    scalars = {
        "temperature_c": s.temperature_c,
        "created_s": s.created_s,
        "crosstalk_edge": s.crosstalk_edge,
        "crosstalk_diagonal": s.crosstalk_diagonal,
        "probe_noise_rms": s.probe_noise_rms,
        "loss_steps_db[0]": s.loss_steps_db[0],
        "loss_steps_db[1]": s.loss_steps_db[1],
    }
    for name, value in scalars.items():
        if not math.isfinite(value):
            raise SnapshotFormatError(f"{name} is not finite")
    if not -273.15 < s.temperature_c < 1000.0:
        raise SnapshotFormatError(f"temperature_c {s.temperature_c} is not a chip temperature")
    if not (abs(s.crosstalk_edge) < 1.0 / 8 and abs(s.crosstalk_diagonal) < 1.0 / 8):
        raise SnapshotFormatError("crosstalk must be below 1/8 (the phase model diverges)")
    if s.probe_noise_rms < 0:
        raise SnapshotFormatError("probe_noise_rms is negative")
    if s.heater_range_rad is not None and not 0 < s.heater_range_rad <= 4 * math.pi:
        raise SnapshotFormatError(f"heater_range_rad {s.heater_range_rad} outside (0, 4π]")
    cells = (s.rows, s.cols)
    expected = {
        "gain_error": (s.gain_error, cells),
        "phase_offset_rad": (s.phase_offset_rad, cells),
        "detector_offset": (s.detector_offset, (s.rows,)),
    }
    if s.arm_imbalance_um is not None:
        expected["arm_imbalance_um"] = (s.arm_imbalance_um, cells)
    for name, (arr, shape) in expected.items():
        if not isinstance(arr, np.ndarray) or arr.shape != shape:
            got = getattr(arr, "shape", type(arr).__name__)
            raise SnapshotFormatError(f"{name} has shape {got}, expected {shape}")
        if not np.all(np.isfinite(arr)):
            raise SnapshotFormatError(f"{name} has non-finite values")
    if np.any(s.gain_error <= -0.5) or np.any(s.gain_error >= 0.5):
        raise SnapshotFormatError("gain_error outside (-0.5, 0.5)")
    if s.physics is not None:
        names = {f.name for f in fields(PhysicsParams)} | set(V2_FIELDS)
        if set(s.physics) - names:
            raise SnapshotFormatError(f"unknown physics fields {sorted(set(s.physics) - names)}")


# ---- the cell model the snapshot parameterizes (docs/calibration.md §1) ------------------


def cell_phases(
    heater_phase: np.ndarray,
    gain_error: np.ndarray,
    phase_offset_rad: np.ndarray,
    crosstalk_edge: float,
    crosstalk_diagonal: float,
) -> np.ndarray:
    """φ = (1+ε) φ_q + κ1 E((1+ε) φ_q) + κ2 D((1+ε) φ_q) + θ: the phase the light sees."""
    heated = (1.0 + gain_error) * heater_phase
    edge, diag = neighbour_sums(heated)
    return heated + crosstalk_edge * edge + crosstalk_diagonal * diag + phase_offset_rad


def twin_params(snapshot: CalibrationSnapshot, given: dict[str, Any]) -> dict[str, Any]:
    """Twin parameters for ``mock://?snapshot=``: the snapshot's, where not given explicitly.

    The measured cell model replaces the twin's drawn scatter, crosstalk and imbalance, so
    those are set to zero; noise parameters come from the physics the device declared
    (twins), else from the preset.
    """
    if snapshot.heater_range_rad not in (None, math.pi):
        raise SnapshotFormatError(
            f"a snapshot measured with heater range {snapshot.heater_range_rad:.4g} rad "
            "has no physics-v1 twin (its heater range is π); a 2π snapshot makes a v2 twin: "
            "mock://?physics_model=v2&snapshot=PATH"
        )
    out = dict(given)
    defaults: dict[str, Any] = dict(snapshot.physics or {})
    defaults.setdefault("calibration_temperature_c", snapshot.temperature_c)
    defaults.update(
        rows=snapshot.rows,
        cols=snapshot.cols,
        serial=snapshot.serial,
        weight_bits=snapshot.weight_bits,
        temperature_c=snapshot.temperature_c,
        fab_sigma=0.0,
        crosstalk=0.0,
        arm_imbalance_um=0.0,  # the drift source is the snapshot's map, if measured
    )
    for key, value in defaults.items():
        if out.get(key) is None:
            out[key] = value
    return out


def heater_phase_of_codes(
    codes: np.ndarray, weight_bits: int, range_rad: float = math.pi
) -> np.ndarray:
    """φ_q = range (q / (2^b - 1))² of wire codes (docs/physics.md §2 step 4: range π)."""
    dac_max = (1 << weight_bits) - 1
    return range_rad * ((np.asarray(codes) & dac_max) / dac_max) ** 2


def measured_static_phase(
    snapshot: CalibrationSnapshot, codes: np.ndarray, p: PhysicsParams
) -> tuple[np.ndarray, np.ndarray]:
    """(static phase, arm imbalance µm) of the loaded block as the snapshot describes it.

    The measured phase holds the drift at the snapshot's temperature; the twin adds
    ``drift_phase_per_um(T) ΔL`` itself, so that share is taken out here and the twin's
    phase at temperature T is θ̂ + (drift(T) − drift(T_snapshot)) ΔL.
    """
    r, c = np.shape(codes)
    if r > snapshot.rows or c > snapshot.cols:
        raise SnapshotFormatError(
            f"a {r}x{c} matrix does not fit the {snapshot.rows}x{snapshot.cols} snapshot"
        )
    phase = cell_phases(
        heater_phase_of_codes(codes, p.weight_bits),
        snapshot.gain_error[:r, :c],
        snapshot.phase_offset_rad[:r, :c],
        snapshot.crosstalk_edge,
        snapshot.crosstalk_diagonal,
    )
    if snapshot.arm_imbalance_um is None:
        return phase, np.zeros((r, c))
    arm = snapshot.arm_imbalance_um[:r, :c].copy()
    at_snapshot = drift_phase_per_um(p.with_temperature(snapshot.temperature_c))
    return phase - at_snapshot * arm, arm


def with_fields(snapshot: CalibrationSnapshot, **changes: Any) -> CalibrationSnapshot:
    """A copy with some fields changed (validated again)."""
    return replace(snapshot, **changes)
