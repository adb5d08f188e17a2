"""TwinV2Device: a twin running physics v2 (docs/physics.md §7).

Opt-in: ``mock://?physics_model=v2&preset=typical`` (``open_device`` builds it through
``from_twin_params``; ``mock://`` without it stays v1), or
``TwinV2Device(preset="typical", temperature_c=25, calibration_temperature_c=25)``. Its
per-call engine is the C kernel (``kernel="native"``, default) or the numpy oracle
(``kernel="reference"``); programming is numpy for both (§7.6 "Engines"). It
programs with its factory calibration state; ``set_temperature`` moves the chip away from it,
``recalibrate()`` takes a fresh factory calibration at the present temperature.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from lumina_hal.device import Capability, DeviceInfo, PhotonicDevice, Telemetry, weights_checksum
from lumina_hal.errors import ConfigurationError, SafetyLimitError
from lumina_hal.twin import physics, reference_v2
from lumina_hal.twin.config import KERNEL_ENV, KERNELS, TEMPERATURE_RANGE_C, default_threads
from lumina_hal.twin.physics_v2 import PRESETS_V2, V2_FIELDS, V2Params


@dataclass(frozen=True)
class MeasuredChip:
    """A chip given instead of drawn from the serial (a snapshot twin, docs/physics.md §7.10):
    its parameters (before overrides), true cell model, calibration state, detector offsets."""

    params: V2Params
    chip: reference_v2.RawChip
    calibration: reference_v2.CalibrationState
    detector_offset: np.ndarray | None


def with_overrides(v: V2Params, overrides: dict[str, Any]) -> V2Params:
    """``v`` with v1 (base) or v2 fields replaced; ConfigurationError for unknown names."""
    rest = dict(overrides)
    v2 = {k: rest.pop(k) for k in V2_FIELDS if k in rest}
    try:
        return replace(v, base=replace(v.base, **rest), **v2)
    except TypeError as exc:
        raise ConfigurationError(f"unknown TwinV2Device parameter: {exc}") from exc


class TwinV2Device(PhotonicDevice):
    """A v2 twin; keyword arguments override the preset's v1 or v2 fields."""

    summary = "digital twin with physics v2 (C kernel or numpy reference; opt-in)"

    def __init__(
        self,
        rows: int = 64,
        cols: int = 64,
        seed: int = 0,
        preset: str = "typical",
        serial: str | None = None,
        *,
        kernel: str | None = None,
        threads: int | None = None,
        measured: MeasuredChip | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        if preset not in PRESETS_V2:
            raise ConfigurationError(f"preset {preset!r} is not one of {tuple(PRESETS_V2)}")
        v = with_overrides(PRESETS_V2[preset] if measured is None else measured.params, overrides)
        self.params = v
        self.rows, self.cols, self.seed, self.preset = rows, cols, seed, preset
        self.kernel, self.threads = _engine(kernel, threads)
        self.serial = serial or f"TWIN-{seed:016X}"
        #: detector offsets added to the outputs (normalised units; a snapshot twin's, §7.10)
        self._offset: np.ndarray | None = None
        if measured is None:
            self._chip = reference_v2.raw_chip(v, self.serial, rows, cols)
            self._calibration = reference_v2.factory_calibration(v, self._chip, self.serial)
        else:
            self._chip, self._calibration = measured.chip, measured.calibration
            self._offset = measured.detector_offset
        self._temperature_c = v.temperature_c
        self._programmed: reference_v2.ProgrammedV2 | None = None
        self._phase: np.ndarray | None = None
        self._engine: Any = None  # kernel_v2.V2KernelModel of the loaded block (native)
        self._call_index = 0
        self._counters = {"matmul_calls": 0, "vectors": 0, "weight_loads": 0, "clipped_outputs": 0}

    @property
    def physics(self) -> V2Params:
        return self.params.with_temperature(self._temperature_c)

    @property
    def loss_steps_db(self) -> tuple[float, float]:
        k_row, k_col = physics.loss_steps_db(self.params.base, self.rows, self.cols)
        return float(np.float32(k_row)), float(np.float32(k_col))

    def recalibrate(self) -> None:
        """A fresh factory calibration at the present temperature (reload weights after)."""
        with self.lock:
            v = self.params.with_base(calibration_temperature_c=self._temperature_c)
            self._calibration = reference_v2.factory_calibration(v, self._chip, self.serial)

    def _open(self) -> None:
        self._reset()

    def _close(self) -> None:
        self._programmed = self._phase = self._engine = None

    def _info(self) -> DeviceInfo:
        p = self.params.base
        caps = {Capability.SET_TEMPERATURE, Capability.SEEDED, Capability.SIMULATED,
                Capability.HEATER_CODES, Capability.CALIBRATE,
                Capability.NOISE_POSITION}  # fmt: skip
        return DeviceInfo("Lumina", "PTC-twin-v2", self.serial, f"twin-v2/{self.kernel}",
                          self.rows, self.cols, p.weight_bits, p.input_bits, p.output_bits,
                          frozenset(c.value for c in caps))  # fmt: skip

    def _load_weights(self, weights: np.ndarray) -> str:
        shape = (self.rows, self.cols)
        self._programmed = reference_v2.program(weights, self.physics, self._calibration, shape)
        self._phase = reference_v2.static_phase(self._programmed, self._chip, self.physics)
        self._build_engine()
        self._counters["weight_loads"] += 1
        return weights_checksum(self._programmed.codes)

    def _build_engine(self) -> None:
        """The C model of the loaded block at the present temperature (kernel=native)."""
        self._engine = None
        if self.kernel == "native" and self._programmed is not None and self._phase is not None:
            from lumina_hal.twin.kernel_v2 import V2KernelModel  # the C engine, only if used

            self._engine = V2KernelModel(
                self._programmed, self._phase, self.physics, (self.rows, self.cols), self._offset
            )

    heater_range_rad = reference_v2.HEATER_RANGE_RAD

    def _load_heater_codes(self, codes: np.ndarray, weight_scale: float) -> str:
        prog = reference_v2.program_codes(codes, weight_scale, self.physics, (self.rows, self.cols))
        self._programmed = prog
        self._phase = reference_v2.static_phase(prog, self._chip, self.physics)
        self._build_engine()
        self._counters["weight_loads"] += 1
        return weights_checksum(codes)

    def _matmul(self, x: np.ndarray, out: np.ndarray) -> None:
        if self._programmed is None or self._phase is None:
            raise ConfigurationError("no weights loaded")
        index = self._call_index
        if self._engine is not None:
            y, clipped = self._engine.forward(
                x, seed=self.seed, call_index=index, threads=self.threads
            )
        else:
            y, clipped = reference_v2.forward(
                x, self._programmed, self._phase, self.physics, self.seed, index,
                (self.rows, self.cols), self._offset,
            )  # fmt: skip
        self._call_index = index + 1
        out[...] = y
        self._counters["matmul_calls"] += 1
        self._counters["vectors"] += x.shape[0]
        self._counters["clipped_outputs"] += clipped

    def _telemetry(self) -> Telemetry:
        return Telemetry(
            temperature_c=self._temperature_c,
            optical_power_dbm=None,
            weights_id=self.weights_id,
            counters={**self._counters, "calibration_temperature_mk":
                      round(self._calibration.temperature_c * 1000)},
        )  # fmt: skip

    def _set_temperature(self, temperature_c: float) -> None:
        lo, hi = TEMPERATURE_RANGE_C
        if not (math.isfinite(temperature_c) and lo <= temperature_c <= hi):
            raise SafetyLimitError(f"temperature_c {temperature_c:g} °C outside [{lo}, {hi}] °C")
        self._temperature_c = temperature_c
        if self._programmed is not None:
            self._phase = reference_v2.static_phase(self._programmed, self._chip, self.physics)
            self._build_engine()

    def _read_call_index(self) -> int:
        return self._call_index

    def _seek_call_index(self, call_index: int) -> None:
        self._call_index = call_index

    def _reset(self) -> None:
        self._programmed = self._phase = self._engine = None
        self._call_index = 0
        self._counters = dict.fromkeys(self._counters, 0)
        self._temperature_c = self.params.temperature_c


def _engine(kernel: str | None, threads: int | None) -> tuple[str, int]:
    """(kernel, threads) resolved like v1's (``$LUMINA_KERNEL``, ``$LUMINA_NUM_THREADS``)."""
    if kernel is None:
        kernel = os.environ.get(KERNEL_ENV, "").strip() or "native"
    if kernel not in KERNELS:
        raise ConfigurationError(f"kernel {kernel!r} is not one of {KERNELS}")
    if threads is None:
        threads = default_threads()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise ConfigurationError(f"threads must be an int, got {type(threads).__name__}")
    if not 1 <= int(threads) <= 1024:
        raise ConfigurationError(f"threads must be in [1, 1024], got {threads}")
    return kernel, int(threads)


def from_twin_params(params: dict[str, Any]) -> TwinV2Device:
    """A TwinV2Device from ``mock://``'s typed parameters with ``physics_model=v2`` (§7.9).

    ``kernel`` (native default, or reference) and ``threads`` choose the per-call engine
    (results do not depend on ``threads``), its detector bandwidth is the symbol rate's (giving
    ``bandwidth_hz`` is a ConfigurationError, §7.4), and ``snapshot=PATH`` makes the twin of
    a measured chip (§7.10, ``snapshot_v2``).
    """
    given = {k: v for k, v in params.items() if v is not None}
    given.pop("physics_model", None)
    if "bandwidth_hz" in given:
        raise ConfigurationError(
            "physics_model=v2 takes symbol_rate_hz; its detector bandwidth is symbol_rate_hz / 2"
        )
    path = given.pop("snapshot", None)
    if path is not None:
        from lumina_hal.twin.snapshot import CalibrationSnapshot
        from lumina_hal.twin.snapshot_v2 import twin_arguments

        return TwinV2Device(**twin_arguments(CalibrationSnapshot.load(path), given))
    return TwinV2Device(**given)
