"""MockDevice: the digital twin of a photonic tensor core, behind the PhotonicDevice API.

``mock://?rows=64&cols=64&preset=typical&seed=1``. Static physics is applied once per
weight load (and per temperature change); each call runs the fused C kernel, or the numpy
reference with ``kernel=reference`` / ``LUMINA_KERNEL=reference``. docs/physics.md.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np

from lumina_hal.board_timing import TIMING_NAMES, TIMING_PARAMS, BoardClock, BoardTiming
from lumina_hal.device import (
    Capability,
    DeviceInfo,
    PhotonicDevice,
    Telemetry,
    max_batch_in_memory,
    weights_checksum,
)
from lumina_hal.errors import ConfigurationError, SafetyLimitError
from lumina_hal.params import resolve_params
from lumina_hal.twin import physics
from lumina_hal.twin.chip import (
    TwinChip,
    chip_snapshot_of,
    config_from_snapshot,
    snapshot_call_index,
)
from lumina_hal.twin.config import TEMPERATURE_RANGE_C, TWIN_PARAMS, TwinConfig
from lumina_hal.twin.physics_v2 import V2_URI_PARAMS
from lumina_hal.twin.reference import ProgrammedArray
from lumina_hal.twin.snapshot import CalibrationSnapshot, measured_static_phase, twin_params
from lumina_hal.uri import DeviceURI

log = logging.getLogger(__name__)

FIRMWARE = "twin-0.2"
_CAPABILITIES = frozenset(
    {
        Capability.SET_TEMPERATURE.value,
        Capability.SEEDED.value,
        Capability.SIMULATED.value,
        Capability.OPTICAL_POWER.value,
        Capability.HEATER_CODES.value,
        Capability.CALIBRATE.value,
        Capability.NOISE_POSITION.value,
    }
)


class MockDevice(PhotonicDevice):
    """The digital twin. Accepts the parameters of ``mock://`` (see ``lumina-hal drivers``)."""

    uri_params = TWIN_PARAMS + TIMING_PARAMS
    _float32_weights = True  # heater_codes widens float32 rows exactly in the kernel
    summary = "digital twin: fused C kernel with the documented photonic model, no hardware"

    @classmethod
    def from_uri(cls, uri: DeviceURI, **params: Any) -> PhotonicDevice:
        """``physics_model=v2`` builds a TwinV2Device (docs/physics.md §7.9); else a MockDevice."""
        if params.get("physics_model") != "v2":
            return super().from_uri(uri, **params)
        from lumina_hal.twin.device_v2 import from_twin_params  # the v2 engine, only if asked

        if uri.location:
            raise ConfigurationError(f"mock:// takes no host or path, got {uri.location!r}")
        return from_twin_params(params)

    def __init__(self, **params: Any) -> None:
        super().__init__()
        #: A real board's time per RUN, off by default (lumina_hal.board_timing).
        self.board = BoardClock(BoardTiming.from_params(params, context="MockDevice"))
        params = {k: v for k, v in params.items() if k not in TIMING_NAMES}
        typed = resolve_params(TWIN_PARAMS, params, context="MockDevice")
        model = typed.pop("physics_model", None)
        v2_only = sorted(p.name for p in V2_URI_PARAMS if typed.pop(p.name, None) is not None)
        if model == "v2" or v2_only:
            raise ConfigurationError(
                "MockDevice computes physics v1; physics v2 parameters "
                f"{v2_only or ['physics_model']} need open_device('mock://?physics_model=v2')"
            )
        calibration: CalibrationSnapshot | None = None
        if typed.get("snapshot") is not None:  # a twin of a measured chip (docs/calibration.md)
            calibration = CalibrationSnapshot.load(typed["snapshot"])
            typed = twin_params(calibration, typed)
        self.config = TwinConfig.resolve(**typed)
        self._backend_checks_finite = self.config.kernel == "native"  # LK_ENONFINITE
        #: The chip model: codes, temperature, noise streams and physics (twin/chip.py).
        self.chip = TwinChip(self.config)
        if calibration is not None:
            measured = calibration

            def measured_phases(programmed: ProgrammedArray) -> ProgrammedArray:
                phase, arm_um = measured_static_phase(measured, programmed.codes, self.physics)
                return replace(programmed, phase_static=phase, arm_imbalance_um=arm_um)

            self.chip.static_override = measured_phases
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
        return self.chip.physics

    # ---- hooks -----------------------------------------------------------------------
    def _open(self) -> None:
        self._reset()

    def _close(self) -> None:
        self.chip.clear()

    def _info(self) -> DeviceInfo:
        # Built once: every field comes from the immutable config (the pool asks on each call).
        cached: DeviceInfo | None = self.__dict__.get("_info_cache")
        if cached is not None:
            return cached
        c, p = self.config, self.config.physics
        self._info_cache: DeviceInfo = DeviceInfo(
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
        return self._info_cache

    def _load_weights(self, weights: np.ndarray) -> str:
        codes = self.chip.load_weights(weights)
        self.board.load(self.chip.shape)
        self._install_fast_matmul()
        self._counters["weight_loads"] += 1
        return weights_checksum(codes)

    def _load_heater_codes(self, codes: np.ndarray, weight_scale: float) -> str:
        self.chip.program(codes, weight_scale)
        self.board.load(self.chip.shape)
        self._install_fast_matmul()
        self._counters["weight_loads"] += 1
        return weights_checksum(codes)

    def _install_fast_matmul(self) -> None:
        """Bind PhotonicDevice's fast path to the chip's engine as it is now (after every
        load and temperature change; twin/fast_call.py). None with the numpy reference, or
        when a subclass computes its own ``_matmul`` (it must see every call)."""
        engine = self.chip.engine
        if engine is None or type(self)._matmul is not MockDevice._matmul:
            self._fast_matmul = None
            return
        from lumina_hal.twin.fast_call import fast_matmul  # the native kernel is built

        max_batch = max_batch_in_memory(4 * (engine.rows + engine.cols))  # as _matmul_bytes
        self._fast_matmul = fast_matmul(self, engine, max_batch)

    def _matmul_bytes(self, batch: int) -> int:
        rows, cols = self.chip.shape or (0, 0)
        if self.chip.engine is not None:
            return 4 * batch * (rows + cols)
        return 8 * batch * (7 * rows + 3 * cols) + 16 * rows * cols  # numpy temporaries

    def _matmul(self, x: np.ndarray, out: np.ndarray) -> None:
        clipped = self.chip.forward(x, out)
        if self._fast_matmul is None and self.chip.engine is not None:
            self._install_fast_matmul()  # a failed load or temperature change restored one
        counters = self._counters
        counters["matmul_calls"] += 1
        counters["vectors"] += x.shape[0]
        self.board.run(x.shape[0], self.chip.shape)
        if clipped:
            counters["clipped_outputs"] += clipped
            log.debug("%d output(s) clipped at ADC full scale", clipped)

    @property
    def loss_steps_db(self) -> tuple[float, float]:
        """(k_row, k_col) dB per pitch that programming compensates (float32, as in HELLO)."""
        k_row, k_col = physics.loss_steps_db(self.physics, self.config.rows, self.config.cols)
        return float(np.float32(k_row)), float(np.float32(k_col))

    def _telemetry(self) -> Telemetry:
        return Telemetry(
            temperature_c=self.chip.temperature_c,
            optical_power_dbm=self.chip.optical_output_dbm(),
            weights_id=self.weights_id,
            counters={
                **self._counters,
                **self.board.counters(),
                "call_index": self.chip.call_index,
            },
        )

    def _set_temperature(self, temperature_c: float) -> None:
        lo, hi = TEMPERATURE_RANGE_C
        if not lo <= temperature_c <= hi:
            raise SafetyLimitError(
                f"temperature_c {temperature_c:g} °C is outside the chip's range "
                f"[{lo:g}, {hi:g}] °C"
            )
        self._fast_matmul = None
        self.chip.set_environment(temperature_c=temperature_c)
        self._install_fast_matmul()

    def _read_call_index(self) -> int:
        return self.chip.call_index

    def _seek_call_index(self, call_index: int) -> None:
        self.chip.call_index = call_index

    def _reset(self) -> None:
        self.chip.reset()
        self._counters = self._zero_counters()
        self.board.reset()

    def _snapshot(self) -> dict[str, Any]:
        return {"chip": self.chip.snapshot()}


def twin_from_snapshot(snapshot: dict[str, Any]) -> MockDevice:
    """An open twin configured as a device snapshot says (``PhotonicDevice.snapshot()``, as
    run records store it), with its noise streams at the snapshot's next call index.

    Every physics parameter comes from the snapshot (as in force when it was taken), so
    the twin computes what the recorded device computed for the same weights, inputs and
    call index. ConfigurationError if the snapshot has no chip model (real hardware).
    """
    chip = chip_snapshot_of(snapshot)
    c = config_from_snapshot(chip)
    call_index = snapshot_call_index(chip)
    twin = MockDevice(
        rows=c.rows, cols=c.cols, seed=c.seed, serial=c.serial, preset=c.preset,
        kernel=c.kernel, **c.physics.to_dict(),
    )  # fmt: skip
    twin.open()
    twin.seek_call_index(call_index)
    return twin
