"""TwinV2Device: a twin running physics v2 on the numpy reference (docs/physics.md §7).

Opt-in: ``mock://?physics_model=v2&preset=typical`` (``open_device`` builds it through
``from_twin_params``; ``mock://`` without it stays v1 on the native kernel), or
``TwinV2Device(preset="typical", temperature_c=25, calibration_temperature_c=25)``. It
programs with its factory calibration state; ``set_temperature`` moves the chip away from it,
``recalibrate()`` takes a fresh factory calibration at the present temperature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from lumina_hal.device import Capability, DeviceInfo, PhotonicDevice, Telemetry, weights_checksum
from lumina_hal.errors import ConfigurationError, SafetyLimitError
from lumina_hal.twin import physics, reference_v2
from lumina_hal.twin.config import TEMPERATURE_RANGE_C
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

    summary = "digital twin with physics v2 (numpy reference; opt-in)"

    def __init__(
        self,
        rows: int = 64,
        cols: int = 64,
        seed: int = 0,
        preset: str = "typical",
        serial: str | None = None,
        *,
        measured: MeasuredChip | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        if preset not in PRESETS_V2:
            raise ConfigurationError(f"preset {preset!r} is not one of {tuple(PRESETS_V2)}")
        v = with_overrides(PRESETS_V2[preset] if measured is None else measured.params, overrides)
        self.params = v
        self.rows, self.cols, self.seed, self.preset = rows, cols, seed, preset
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
        self._noise = reference_v2.PhaseNoiseState()
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
        self._programmed = self._phase = None

    def _info(self) -> DeviceInfo:
        p = self.params.base
        caps = {Capability.SET_TEMPERATURE, Capability.SEEDED, Capability.SIMULATED,
                Capability.HEATER_CODES, Capability.CALIBRATE}  # fmt: skip
        return DeviceInfo("Lumina", "PTC-twin-v2", self.serial, "twin-v2/reference",
                          self.rows, self.cols, p.weight_bits, p.input_bits, p.output_bits,
                          frozenset(c.value for c in caps))  # fmt: skip

    def _load_weights(self, weights: np.ndarray) -> str:
        shape = (self.rows, self.cols)
        self._programmed = reference_v2.program(weights, self.physics, self._calibration, shape)
        self._phase = reference_v2.static_phase(self._programmed, self._chip, self.physics)
        self._counters["weight_loads"] += 1
        return weights_checksum(self._programmed.codes)

    heater_range_rad = reference_v2.HEATER_RANGE_RAD

    def _load_heater_codes(self, codes: np.ndarray, weight_scale: float) -> str:
        prog = reference_v2.program_codes(codes, weight_scale, self.physics, (self.rows, self.cols))
        self._programmed = prog
        self._phase = reference_v2.static_phase(prog, self._chip, self.physics)
        self._counters["weight_loads"] += 1
        return weights_checksum(codes)

    def _matmul(self, x: np.ndarray, out: np.ndarray) -> None:
        if self._programmed is None or self._phase is None:
            raise ConfigurationError("no weights loaded")
        y, clipped = reference_v2.forward(
            x, self._programmed, self._phase, self.physics, self.seed, self._noise,
            (self.rows, self.cols), self._offset,
        )  # fmt: skip
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

    def _reset(self) -> None:
        self._programmed = self._phase = None
        self._noise = reference_v2.PhaseNoiseState()
        self._counters = dict.fromkeys(self._counters, 0)
        self._temperature_c = self.params.temperature_c


def from_twin_params(params: dict[str, Any]) -> TwinV2Device:
    """A TwinV2Device from ``mock://``'s typed parameters with ``physics_model=v2`` (§7.9).

    v2 runs on the numpy reference (``kernel=native`` is refused), its results do not depend
    on ``threads`` (ignored), its detector bandwidth is the symbol rate's (giving
    ``bandwidth_hz`` is a ConfigurationError, §7.4), and ``snapshot=PATH`` makes the twin of
    a measured chip (§7.10, ``snapshot_v2``).
    """
    given = {k: v for k, v in params.items() if v is not None}
    given.pop("physics_model", None)
    given.pop("threads", None)
    if given.pop("kernel", "reference") != "reference":
        raise ConfigurationError("physics_model=v2 runs on kernel=reference only (no C engine)")
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
