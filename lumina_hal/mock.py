"""MockDevice: the digital twin of a photonic tensor core, behind the PhotonicDevice API.

``mock://?rows=64&cols=64&preset=typical&seed=1``. The per-call work runs in the C kernel
(or the numpy reference with ``kernel=reference`` / ``LUMINA_KERNEL=reference``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from lumina_hal import reference
from lumina_hal.device import Capability, DeviceInfo, PhotonicDevice, Telemetry, weights_checksum
from lumina_hal.errors import SafetyLimitError
from lumina_hal.params import resolve_params
from lumina_hal.twin_config import TEMPERATURE_RANGE_C, TWIN_PARAMS, TwinConfig

log = logging.getLogger(__name__)

FIRMWARE = "twin-0.1"


class MockDevice(PhotonicDevice):
    """The digital twin. Accepts the parameters of ``mock://`` (see ``lumina-hal drivers``)."""

    uri_params = TWIN_PARAMS
    summary = "digital twin: C kernel with the documented chip model, no hardware"

    def __init__(self, **params: Any) -> None:
        super().__init__()
        typed = resolve_params(TWIN_PARAMS, params, context="MockDevice")
        self.config = TwinConfig.resolve(**typed)
        self._temperature_c = self.config.temperature_c
        self._programmed: reference.ProgrammedWeights | None = None
        self._layer: Any = None
        self._counters = self._zero_counters()

    @staticmethod
    def _zero_counters() -> dict[str, int]:
        return {"matmul_calls": 0, "vectors": 0, "weight_loads": 0, "clipped_outputs": 0}

    def __repr__(self) -> str:
        c = self.config
        return f"MockDevice({c.rows}x{c.cols}, preset={c.preset}, seed={c.seed})"

    # ---- hooks -----------------------------------------------------------------------
    def _open(self) -> None:
        self._counters = self._zero_counters()
        self._temperature_c = self.config.temperature_c

    def _close(self) -> None:
        self._programmed = None
        self._layer = None

    def _info(self) -> DeviceInfo:
        c = self.config
        return DeviceInfo(
            vendor="Lumina",
            model="PTC-twin",
            serial=c.serial,
            firmware=f"{FIRMWARE}/{c.kernel}",
            rows=c.rows,
            cols=c.cols,
            weight_bits=c.weight_bits,
            input_bits=c.input_bits,
            output_bits=c.output_bits,
            capabilities=frozenset(
                {
                    Capability.SET_TEMPERATURE.value,
                    Capability.SEEDED.value,
                    Capability.SIMULATED.value,
                }
            ),
        )

    def _load_weights(self, weights: np.ndarray) -> str:
        programmed = reference.program_weights(weights, self.config.weight_bits)
        layer = None
        if self.config.kernel == "native":
            from lumina_hal.kernel import KernelLayer

            layer = KernelLayer(
                programmed.normalized,
                input_bits=self.config.input_bits,
                output_bits=self.config.output_bits,
                full_scale=reference.output_full_scale(
                    self.config.adc_full_scale, weights.shape[1]
                ),
            )
        self._programmed, self._layer = programmed, layer
        self._counters["weight_loads"] += 1
        return weights_checksum(programmed.codes)

    def _matmul(self, x: np.ndarray, out: np.ndarray) -> None:
        assert self._programmed is not None
        if self._layer is not None:
            clipped = self._layer.forward(x, out)
            out *= np.float32(self._programmed.scale)
        else:
            y, clipped = reference.forward(
                x,
                self._programmed,
                input_bits=self.config.input_bits,
                output_bits=self.config.output_bits,
                adc_full_scale=self.config.adc_full_scale,
            )
            out[...] = y
        self._counters["matmul_calls"] += 1
        self._counters["vectors"] += x.shape[0]
        self._counters["clipped_outputs"] += clipped
        if clipped:
            log.debug("%d output(s) clipped at ADC full scale", clipped)

    def _telemetry(self) -> Telemetry:
        return Telemetry(
            temperature_c=self._temperature_c,
            optical_power_dbm=None,
            weights_id=self.weights_id,
            counters=dict(self._counters),
        )

    def _set_temperature(self, temperature_c: float) -> None:
        lo, hi = TEMPERATURE_RANGE_C
        if not lo <= temperature_c <= hi:
            raise SafetyLimitError(
                f"temperature_c {temperature_c:g} °C is outside the chip's range "
                f"[{lo:g}, {hi:g}] °C"
            )
        self._temperature_c = temperature_c

    def _reset(self) -> None:
        self._programmed = None
        self._layer = None
        self._counters = self._zero_counters()
        self._temperature_c = self.config.temperature_c
