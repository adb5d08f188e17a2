"""TwinChip: the one model of the photonic chip that every simulated backend holds.

It owns what a real chip holds — the programmed heater codes, its temperature, the light
reaching its detectors — plus the twin's noise streams (seed, call index) and the physics
of docs/physics.md. ``MockDevice`` (``mock://``), the FPGA firmware emulator and the coupled
bench each hold one, so every formula of the chip exists once: programming (host side
``load_weights``, chip side ``program``), the per-call engine (``forward``, or
``forward_codes`` for integer codes as a wire carries them), the optical output power and
the snapshot a twin is rebuilt from (``snapshot`` / ``TwinChip.from_snapshot``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

import numpy as np

from lumina_hal._version import __version__
from lumina_hal.codes import HEATER_RANGE_RAD, heater_codes, levels
from lumina_hal.errors import ConfigurationError, InputError
from lumina_hal.twin import physics, reference
from lumina_hal.twin.config import TwinConfig
from lumina_hal.twin.physics import PhysicsParams

log = logging.getLogger(__name__)

#: Format of the dict ``TwinChip.snapshot`` returns (bumped when its meaning changes).
SNAPSHOT_FORMAT = 1
SNAPSHOT_KIND = "lumina-twin-chip"


class TwinChip:
    """A simulated chip: programmed codes, temperature, light, noise streams and physics.

    Not thread-safe by itself: its holder (a PhotonicDevice, the emulator) serializes calls.
    """

    #: Heater phase of the full-scale DAC code at 25 °C, rad: the v1 mapping's π (the FPGA
    #: emulator reports it in HELLO, docs/protocol.md §6).
    heater_range_rad: float = HEATER_RANGE_RAD

    def __init__(self, config: TwinConfig) -> None:
        self.config = config
        self.temperature_c = config.physics.temperature_c
        #: Optical power per detector at full scale (dBm); None: the configured value.
        self.laser_power_dbm: float | None = None
        #: Index of the next call that draws its own index (``forward`` without one).
        self.call_index = 0
        self.codes: np.ndarray | None = None  # int32 (r, c) heater codes on the chip
        self.scale = 1.0  # s_w multiplied into every float output
        self._engine: Any = None  # KernelModel (native) or None (numpy reference)
        self._programmed: reference.ProgrammedArray | None = None
        #: Replaces the computed static phases of a programmed array with measured ones (a
        #: twin of a calibrated chip, docs/calibration.md); such a chip programs through the
        #: numpy reference's arrays instead of lk_program.
        self.static_override: (
            Callable[[reference.ProgrammedArray], reference.ProgrammedArray] | None
        ) = None

    def __repr__(self) -> str:
        c = self.config
        return f"TwinChip({c.rows}x{c.cols}, serial={c.serial}, seed={c.seed}, {c.kernel})"

    # ---- state ---------------------------------------------------------------------------
    @property
    def physics(self) -> PhysicsParams:
        """The physics in force now: the configured set at the current temperature and light."""
        p = self.config.physics.with_temperature(self.temperature_c)
        if self.laser_power_dbm is not None:
            p = replace(p, laser_power_dbm=self.laser_power_dbm)
        return p

    @property
    def array_shape(self) -> tuple[int, int]:
        return self.config.rows, self.config.cols

    @property
    def shape(self) -> tuple[int, int] | None:
        """(r, c) of the programmed block, None when nothing is programmed."""
        return None if self.codes is None else (int(self.codes.shape[0]), int(self.codes.shape[1]))

    @property
    def programmed(self) -> reference.ProgrammedArray | None:
        """The numpy reference's view of what is programmed (built on demand for ``native``)."""
        if self.codes is None:
            return None
        if self._programmed is None:
            built = reference.program_codes(
                self.codes, self.scale, self.physics, self.config.serial, self.array_shape
            )
            if self.static_override is not None:
                built = self.static_override(built)
            self._programmed = built
        return self._programmed

    @property
    def engine(self) -> Any:
        """The per-call C engine (KernelModel) for the current state; None for ``reference``."""
        return self._engine

    def loss_steps_db(self) -> tuple[float, float]:
        """(k_row, k_col) dB per row and column pitch, rounded to float32 as HELLO carries them."""
        k_row, k_col = physics.loss_steps_db(self.physics, *self.array_shape)
        return float(np.float32(k_row)), float(np.float32(k_col))

    def full_scale(self) -> float:
        """ADC full scale FS of the programmed block (float32-rounded, as the kernel holds it)."""
        cols = self.shape[1] if self.shape is not None else self.config.cols
        return reference.full_scale(self.physics, cols)

    def optical_output_dbm(self, laser_power_dbm: float | None = None) -> float:
        """Optical power (dBm) at a detector through the lossiest programmed cell.

        ``laser_power_dbm`` overrides the light in force (the coupled bench's meter asks what
        a given laser level gives). With nothing programmed the whole array counts.
        """
        p = self.physics
        if laser_power_dbm is not None:
            p = replace(p, laser_power_dbm=laser_power_dbm)
        shape = self.shape or self.array_shape
        return physics.optical_output_dbm(p, *shape, *self.array_shape)

    # ---- programming ---------------------------------------------------------------------
    def load_weights(self, weights: np.ndarray) -> np.ndarray:
        """Host side then chip side (docs/physics.md §2): weights -> codes -> programmed.

        Returns the int32 heater codes (what the weights id checksums); they live in the
        chip's memory and are overwritten by the next load.
        """
        # The programmed codes' memory is reused (no fresh pages to fault in), so if this
        # fails (out of memory) the chip is left with nothing programmed.
        reuse = self.codes if self.codes is not None and self.codes.flags.writeable else None
        try:
            codes, scale = heater_codes(
                weights, self.physics.weight_bits, self.loss_steps_db(), self.config.threads, reuse
            )
            self.program(codes, scale)
        except BaseException:
            if reuse is not None:
                self.clear()
            raise
        return codes

    def program(self, codes: np.ndarray, scale: float = 1.0) -> None:
        """Chip side of programming (steps 4-7): these wire codes become the active weights.

        ``scale`` (s_w) multiplies float outputs; a chip behind a link keeps 1 (the host
        applies it). On failure the previous weights stay active.
        """
        codes = np.ascontiguousarray(codes, dtype=np.int32)
        rows, cols = codes.shape
        if not (1 <= rows <= self.config.rows and 1 <= cols <= self.config.cols):
            raise InputError(
                f"codes of shape {codes.shape} do not fit the {self.array_shape} array"
            )
        previous = self.codes, self.scale
        buffer = self._engine_buffer()
        self.clear()  # the old engine goes (its buffer is reused): a load peaks at 2 matrices
        self.codes, self.scale = codes, float(scale)
        try:
            self._engine = self._build_engine(buffer)
        except BaseException:
            self.clear()
            if previous[0] is not None:
                self.codes, self.scale = previous
                self._engine = self._build_engine(buffer)
            raise

    def clear(self) -> None:
        """Forget the programmed weights (a power cycle or a reset of the array)."""
        self.codes, self._engine, self._programmed, self.scale = None, None, None, 1.0

    def set_environment(
        self, temperature_c: float | None = None, laser_power_dbm: float | None = None
    ) -> None:
        """Change the temperature and/or the light; the engine follows (restored on failure).

        Range checks belong to the holder (a device raises SafetyLimitError, firmware refuses
        with OUT_OF_RANGE); a ``None`` leaves that quantity as it is.
        """
        new_t = self.temperature_c if temperature_c is None else float(temperature_c)
        new_p = self.laser_power_dbm if laser_power_dbm is None else float(laser_power_dbm)
        if (new_t, new_p) == (self.temperature_c, self.laser_power_dbm):
            return
        previous = self.temperature_c, self.laser_power_dbm
        self.temperature_c, self.laser_power_dbm = new_t, new_p
        if self.codes is None:
            return
        buffer = self._engine_buffer()  # recomputed in place
        try:
            self._engine = self._build_engine(buffer)
        except BaseException:
            self.temperature_c, self.laser_power_dbm = previous
            self._engine = self._build_engine(buffer)
            raise

    def reset(self) -> None:
        """Back to power-up: nothing programmed, configured temperature and light, call 0."""
        self.clear()
        self.call_index = 0
        self.temperature_c = self.config.physics.temperature_c
        self.laser_power_dbm = None

    def _engine_buffer(self) -> np.ndarray | None:
        """The current engine's packed weights, for the next engine to reuse."""
        return getattr(self._engine, "packed", None)

    def _build_engine(self, buffer: np.ndarray | None = None) -> Any:
        """The per-call engine for the programmed codes at the physics in force (computed
        into ``buffer``, the replaced engine's weights, when it has the right shape)."""
        if self.config.kernel != "native":
            self.programmed  # noqa: B018 - the reference engine runs on the numpy arrays
            return None
        from lumina_hal.twin.kernel import KernelModel

        if self.static_override is not None:
            programmed = self.programmed
            if programmed is None:
                raise InputError("no weights are programmed on the chip")
            return KernelModel.for_array(programmed, self.physics, self.scale)
        return KernelModel.for_codes(
            self._require_programmed(),
            self.scale,
            self.physics,
            self.config.serial,
            self.array_shape,
            threads=self.config.threads,
            out=buffer,
        )

    # ---- per call --------------------------------------------------------------------------
    def _require_programmed(self) -> np.ndarray:
        if self.codes is None:
            raise InputError("no weights are programmed on the chip")
        return self.codes

    def forward(
        self,
        x: np.ndarray,
        out: np.ndarray,
        *,
        call_index: int | None = None,
        first_vector: int = 0,
    ) -> int:
        """One call: float32 ``x`` (batch, c) into ``out`` (batch, r); returns the clipped count.

        Without ``call_index`` the chip uses its own counter and advances it (the twin); a
        link names the index (and where a split batch starts, ``first_vector``).
        """
        self._require_programmed()
        index = self.call_index if call_index is None else int(call_index)
        if self._engine is not None:
            clipped = int(
                self._engine.forward(
                    x,
                    out,
                    seed=self.config.seed,
                    call_index=index,
                    threads=self.config.threads,
                    first_vector=first_vector,
                )
            )
        else:
            programmed = self.programmed
            if programmed is None:  # cannot happen after _require_programmed
                raise InputError("no weights are programmed on the chip")
            noise = reference.KernelNoise(self.config.seed, index, first_vector)
            y, clipped = reference.forward(x, programmed, self.physics, noise)
            out[...] = y
        if call_index is None:
            self.call_index = index + 1
        return clipped

    def forward_codes(
        self, x_codes: np.ndarray, *, call_index: int, first_vector: int = 0
    ) -> tuple[np.ndarray, int]:
        """One call on integer input codes as a wire carries them (int32, each vector peaking
        at ±L_x or all zero): returns (int32 ADC codes (batch, r), clipped count).

        The single place where the firmware path meets the engine: the native engine takes
        the codes as they are (``lk_forward_codes``, one conversion each way, bit-identical to
        the float path at the same seed and call index); the numpy reference goes through
        floats.
        """
        rows = self._require_programmed().shape[0]
        if self._engine is not None:
            return self._engine.forward_codes(
                x_codes, seed=self.config.seed, call_index=call_index,
                threads=self.config.threads, first_vector=first_vector,
            )  # fmt: skip
        p = self.physics
        x = (x_codes.astype(np.float32) / np.float32(levels(p.input_bits))).astype(np.float32)
        y = np.empty((x_codes.shape[0], rows), dtype=np.float32)
        clipped = self.forward(x, y, call_index=call_index, first_vector=first_vector)
        from_code = np.float32(self.full_scale()) / np.float32(levels(p.output_bits))
        return np.rint(y / from_code).astype(np.int32), clipped

    # ---- snapshot ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Everything needed to rebuild this chip as a twin, JSON-able (docs/physics.md §6b).

        ``physics`` is every parameter in force now (preset-derived or not, at the current
        temperature and light); ``call_index`` is the next call's index.
        """
        c = self.config
        return {
            "kind": SNAPSHOT_KIND,
            "format": SNAPSHOT_FORMAT,
            "rows": c.rows,
            "cols": c.cols,
            "seed": c.seed,
            "serial": c.serial,
            "preset": c.preset,
            "kernel": c.kernel,
            "threads": c.threads,
            "call_index": self.call_index,
            "physics": self.physics.to_dict(),
            "versions": versions(c.kernel),
        }

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> TwinChip:
        """A chip configured as ``snapshot`` says (no weights programmed)."""
        chip = cls(config_from_snapshot(snapshot))
        chip.call_index = snapshot_call_index(snapshot)
        return chip


_PHYSICS_NAMES = tuple(f.name for f in fields(PhysicsParams))


def versions(kernel: str) -> dict[str, Any]:
    """Library versions that decide a twin's bits."""
    out: dict[str, Any] = {"lumina_hal": __version__, "numpy": np.__version__}
    if kernel == "native":
        from lumina_hal.twin.kernel import isa_name, kernel_version

        out["kernel_version"] = kernel_version()
        out["isa"] = isa_name()
    return out


def chip_snapshot_of(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The twin-chip part of a device snapshot (or the snapshot itself if it is one)."""
    if not isinstance(snapshot, dict):
        raise ConfigurationError(f"a snapshot is a dict, got {type(snapshot).__name__}")
    chip = snapshot.get("chip", snapshot)
    if not isinstance(chip, dict) or chip.get("kind") != SNAPSHOT_KIND:
        raise ConfigurationError(
            "this snapshot has no twin chip (a device without a chip model, e.g. real "
            "hardware, cannot be rebuilt as a twin)"
        )
    if chip.get("format") != SNAPSHOT_FORMAT:
        raise ConfigurationError(
            f"twin chip snapshot format {chip.get('format')!r} is not supported "
            f"(this version reads {SNAPSHOT_FORMAT})"
        )
    return chip


def snapshot_call_index(snapshot: dict[str, Any]) -> int:
    """The next call index a (device or chip) snapshot names: an int in [0, 2^64)."""
    value = chip_snapshot_of(snapshot).get("call_index", 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise ConfigurationError(
            f"twin chip snapshot: call_index must be an integer in [0, 2^64), got {value!r}"
        )
    return value


def config_from_snapshot(snapshot: dict[str, Any]) -> TwinConfig:
    """The TwinConfig a (device or chip) snapshot describes; ConfigurationError if it is not one."""
    from lumina_hal.params import resolve_params
    from lumina_hal.twin.config import TWIN_PARAMS

    chip = chip_snapshot_of(snapshot)
    phys = chip.get("physics")
    if not isinstance(phys, dict) or set(phys) != set(_PHYSICS_NAMES):
        raise ConfigurationError("twin chip snapshot: 'physics' must name every physics parameter")
    params = {k: chip.get(k) for k in ("rows", "cols", "seed", "serial", "preset", "kernel")}
    params.update(phys)
    typed = resolve_params(TWIN_PARAMS, params, context="twin snapshot", source="snapshot")
    return TwinConfig.resolve(**typed)
