"""MockDevice: the digital twin of a photonic tensor core, behind the PhotonicDevice API.

``mock://?rows=64&cols=64&preset=typical&seed=1``. Static physics is applied once per
weight load (and per temperature change); each call runs the fused C kernel, or the numpy
reference with ``kernel=reference`` / ``LUMINA_KERNEL=reference``. docs/physics.md.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Any

import numpy as np

from lumina_hal.device import Capability, DeviceInfo, PhotonicDevice, Telemetry, weights_checksum
from lumina_hal.errors import SafetyLimitError
from lumina_hal.params import resolve_params
from lumina_hal.twin import physics, reference
from lumina_hal.twin.config import TEMPERATURE_RANGE_C, TWIN_PARAMS, TwinConfig
from lumina_hal.twin.snapshot import CalibrationSnapshot, measured_static_phase, twin_params

log = logging.getLogger(__name__)

FIRMWARE = "twin-0.2"
_CAPABILITIES = frozenset(
    {
        Capability.SET_TEMPERATURE.value,
        Capability.SEEDED.value,
        Capability.SIMULATED.value,
        Capability.OPTICAL_POWER.value,
    }
)


class MockDevice(PhotonicDevice):
    """The digital twin. Accepts the parameters of ``mock://`` (see ``lumina-hal drivers``)."""

    uri_params = TWIN_PARAMS
    summary = "digital twin: fused C kernel with the documented photonic model, no hardware"

    def __init__(self, **params: Any) -> None:
        super().__init__()
        typed = resolve_params(TWIN_PARAMS, params, context="MockDevice")
        self._snapshot: CalibrationSnapshot | None = None
        if typed.get("snapshot") is not None:  # a twin of a measured chip (docs/calibration.md)
            self._snapshot = CalibrationSnapshot.load(typed["snapshot"])
            typed = twin_params(self._snapshot, typed)
        self.config = TwinConfig.resolve(**typed)
        self._backend_checks_finite = self.config.kernel == "native"  # LK_ENONFINITE
        self._temperature_c = self.config.physics.temperature_c
        self._programmed: reference.ProgrammedArray | None = None
        self._engine: Any = None
        self._call_index = 0
        self._counters = self._zero_counters()

    @staticmethod
    def _zero_counters() -> dict[str, int]:
        return {"matmul_calls": 0, "vectors": 0, "weight_loads": 0, "clipped_outputs": 0}

    def __repr__(self) -> str:
        c = self.config
        return f"MockDevice({c.rows}x{c.cols}, preset={c.preset}, seed={c.seed})"

    @property
    def physics(self) -> physics.PhysicsParams:
        """The physics in force now (the configured set at the current temperature)."""
        return self.config.physics.with_temperature(self._temperature_c)

    # ---- hooks -----------------------------------------------------------------------
    def _open(self) -> None:
        self._reset()

    def _close(self) -> None:
        self._programmed = None
        self._engine = None

    def _info(self) -> DeviceInfo:
        c, p = self.config, self.config.physics
        return DeviceInfo(
            vendor="Lumina",
            model="PTC-twin",
            serial=c.serial,
            firmware=f"{FIRMWARE}/{c.kernel}",
            rows=c.rows,
            cols=c.cols,
            weight_bits=p.weight_bits,
            input_bits=p.input_bits,
            output_bits=p.output_bits,
            capabilities=_CAPABILITIES,
        )

    def _load_weights(self, weights: np.ndarray) -> str:
        programmed = reference.program(
            weights, self.physics, self.config.serial, (self.config.rows, self.config.cols)
        )
        if self._snapshot is not None:
            phase, arm_um = measured_static_phase(self._snapshot, programmed.codes, self.physics)
            programmed = replace(programmed, phase_static=phase, arm_imbalance_um=arm_um)
        self._engine = self._build_engine(programmed)
        self._programmed = programmed
        self._counters["weight_loads"] += 1
        return weights_checksum(programmed.codes)

    def _build_engine(self, programmed: reference.ProgrammedArray) -> Any:
        """The per-call engine for the current temperature: a KernelModel, or None (numpy)."""
        if self.config.kernel != "native":
            return None
        from lumina_hal.twin.kernel import KernelModel

        return KernelModel.for_array(programmed, self.physics, programmed.scale)

    def _matmul(self, x: np.ndarray, out: np.ndarray) -> None:
        assert self._programmed is not None
        call_index = self._call_index
        if self._engine is not None:
            clipped = self._engine.forward(
                x, out, seed=self.config.seed, call_index=call_index, threads=self.config.threads
            )
        else:
            rng = np.random.default_rng([self.config.seed, call_index])
            y, clipped = reference.forward(x, self._programmed, self.physics, rng)
            out[...] = y
        self._call_index = call_index + 1
        counters = self._counters
        counters["matmul_calls"] += 1
        counters["vectors"] += x.shape[0]
        if clipped:
            counters["clipped_outputs"] += clipped
            log.debug("%d output(s) clipped at ADC full scale", clipped)

    @property
    def loss_steps_db(self) -> tuple[float, float]:
        """(k_row, k_col) dB per pitch that programming compensates (float32, as in HELLO)."""
        k_row, k_col = physics.loss_steps_db(self.physics, self.config.rows, self.config.cols)
        return float(np.float32(k_row)), float(np.float32(k_col))

    def _telemetry(self) -> Telemetry:
        p = self.physics
        array = (self.config.rows, self.config.cols)
        shape = self._programmed.shape if self._programmed is not None else array
        amplitude = physics.envelopes(p, *shape, *array)[2]
        return Telemetry(
            temperature_c=self._temperature_c,
            optical_power_dbm=p.laser_power_dbm + 20.0 * math.log10(amplitude),
            weights_id=self.weights_id,
            counters={**self._counters, "call_index": self._call_index},
        )

    def _set_temperature(self, temperature_c: float) -> None:
        lo, hi = TEMPERATURE_RANGE_C
        if not lo <= temperature_c <= hi:
            raise SafetyLimitError(
                f"temperature_c {temperature_c:g} °C is outside the chip's range "
                f"[{lo:g}, {hi:g}] °C"
            )
        previous = self._temperature_c
        self._temperature_c = temperature_c
        if self._programmed is not None:
            try:
                self._engine = self._build_engine(self._programmed)
            except BaseException:
                self._temperature_c = previous
                raise

    def _reset(self) -> None:
        self._programmed = None
        self._engine = None
        self._call_index = 0
        self._counters = self._zero_counters()
        self._temperature_c = self.config.physics.temperature_c
