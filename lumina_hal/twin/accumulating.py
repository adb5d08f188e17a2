"""An option of the twin: analog accumulation of several resident tiles (docs/tiling.md §5).

``AccumulatingTwin`` is a MockDevice that keeps up to ``banks`` programmed tiles resident
(keyed by weights id) and whose detectors can sum the photocurrents of several of them before
one ADC conversion: ``matmul_accumulate(weights_ids, x_blocks)``. It reuses the twin's physics
(docs/physics.md) unchanged; only what sharing the detectors implies differs:

- the tiles share one input DAC scale (max |x| over all blocks of a vector) and one weight
  scale (the largest tile scale; a tile with a smaller scale is attenuated optically);
- phase noise adds over every cell of every tile; detector noise, ADC full scale
  (``adc_full_scale * sqrt(total columns)``) and quantization are paid once.

The per-call engine is the numpy reference (sums in float64); ordinary ``matmul`` calls still
run the configured engine on the most recently loaded tile.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from lumina_hal.codes import levels
from lumina_hal.device import Capability, DeviceInfo
from lumina_hal.errors import ConfigurationError, InputError
from lumina_hal.twin import physics, reference
from lumina_hal.twin.device import MockDevice

#: Stream tag of the accumulated calls' noise, apart from the ordinary calls' streams.
_ACCUMULATE_STREAM = 0xACC
MAX_BANKS = 4096


class AccumulatingTwin(MockDevice):
    """The twin with ``banks`` resident tiles summed on its detectors (docs/tiling.md §5)."""

    summary = "digital twin with analog accumulation over resident tiles"

    def __init__(self, banks: int = 8, **params: Any) -> None:
        if isinstance(banks, bool) or not isinstance(banks, int) or not 1 <= banks <= MAX_BANKS:
            raise ConfigurationError(f"banks must be an int in [1, {MAX_BANKS}], got {banks!r}")
        super().__init__(**params)
        self.resident_capacity = banks
        self._banks: OrderedDict[str, reference.ProgrammedArray] = OrderedDict()

    def __repr__(self) -> str:
        return f"AccumulatingTwin(banks={self.resident_capacity}, {super().__repr__()})"

    @property
    def resident_weights_ids(self) -> tuple[str, ...]:
        """Weights ids of the resident tiles, least recently loaded first."""
        return tuple(self._banks)

    def _info(self) -> DeviceInfo:
        info = super()._info()
        caps = info.capabilities | {Capability.ANALOG_ACCUMULATION.value}
        return replace(info, capabilities=caps)

    def _load_weights(self, weights: np.ndarray) -> str:
        return self._make_resident(super()._load_weights(weights))

    def _load_heater_codes(self, codes: np.ndarray, weight_scale: float) -> str:
        return self._make_resident(super()._load_heater_codes(codes, weight_scale))

    def _make_resident(self, weights_id: str) -> str:
        """The block just programmed becomes the most recent resident tile."""
        programmed = self.chip.programmed
        if programmed is None:  # pragma: no cover - set by the load above
            raise InputError("programming failed")
        self._banks.pop(weights_id, None)
        self._banks[weights_id] = programmed
        while len(self._banks) > self.resident_capacity:
            self._banks.popitem(last=False)
        return weights_id

    def _reset(self) -> None:
        super()._reset()
        if hasattr(self, "_banks"):
            self._banks.clear()

    def _close(self) -> None:
        super()._close()
        self._banks.clear()

    def matmul_accumulate(self, weights_ids: Sequence[str], x_blocks: Sequence[Any]) -> np.ndarray:
        """Sum ``x_k @ W_k.T`` over resident tiles on the detectors; one ADC conversion.

        Every tile must have the same number of rows; ``x_blocks[k]`` is (batch, cols_k).
        Returns (batch, rows) float32 in float units.
        """
        with self._lock:
            self._require_open()
            tiles, x = self._check_accumulate(weights_ids, x_blocks)
            y, clipped = self._accumulate(tiles, x)
            self.chip.call_index += 1
            self._counters["matmul_calls"] += 1
            self._counters["vectors"] += x.shape[0]
            self._counters["clipped_outputs"] += clipped
            return y

    def _check_accumulate(
        self, weights_ids: Sequence[str], x_blocks: Sequence[Any]
    ) -> tuple[list[reference.ProgrammedArray], np.ndarray]:
        ids, blocks = list(weights_ids), list(x_blocks)
        if not ids or len(ids) != len(blocks):
            raise InputError(
                f"need as many input blocks as weights ids (>= 1), got {len(ids)} ids and "
                f"{len(blocks)} blocks"
            )
        missing = [i for i in ids if i not in self._banks]
        if missing:
            raise InputError(f"weights not resident on this device: {', '.join(map(str, missing))}")
        tiles = [self._banks[i] for i in ids]
        if len({t.shape[0] for t in tiles}) != 1:
            raise InputError("tiles summed on the same detectors must have the same rows")
        arrays = []
        for tile, block in zip(tiles, blocks, strict=True):
            arr = np.asarray(block, dtype=np.float32)
            if arr.ndim != 2 or arr.shape[1] != tile.shape[1]:
                raise InputError(
                    f"input block of shape {arr.shape} does not match tile {tile.shape}"
                )
            arrays.append(arr)
        if len({a.shape[0] for a in arrays}) != 1:
            raise InputError("input blocks must have the same batch size")
        x = np.ascontiguousarray(np.concatenate(arrays, axis=1))
        if not np.isfinite(x).all():
            raise InputError("input contains NaN or Inf values")
        return tiles, x

    def _accumulate(
        self, tiles: list[reference.ProgrammedArray], x: np.ndarray
    ) -> tuple[np.ndarray, int]:
        p = self.physics
        total_cols = x.shape[1]
        scale = max(t.scale for t in tiles)
        x_n, s_x = reference.quantize_inputs(x, p.input_bits)  # one shared input DAC scale
        x_n64 = x_n.astype(np.float64)
        rows = tiles[0].shape[0]
        u = np.zeros((x.shape[0], rows))
        var_phase = np.zeros_like(u)
        sigma_phi = physics.phase_noise_sigma_rad(p)
        start = 0
        for tile in tiles:
            cols = tile.shape[1]
            xk = x_n64[:, start : start + cols]
            start += cols
            w_eff = tile.effective(p) * (tile.scale / scale)  # optical attenuation per tile
            u += xk @ w_eff.T
            envelope = (tile.row_envelope[:, None] * tile.col_envelope[None, :]) ** 2
            envelope *= (tile.scale / scale) ** 2
            var_phase += sigma_phi**2 / 4.0 * np.maximum(xk**2 @ (envelope - w_eff**2).T, 0.0)
        fs = reference.full_scale(p, total_cols)
        v = u
        if p.noise:
            a_min = min(t.min_amplitude for t in tiles)
            det = physics.detector_noise(p, total_cols, a_min)
            var = var_phase + det.c0 + det.c1 * np.abs(u) + det.c2 * u * u
            key = [self.config.seed, self.chip.call_index, _ACCUMULATE_STREAM]
            rng = np.random.default_rng(key)
            v = u + np.sqrt(var) * rng.standard_normal(u.shape)
        codes, clipped = reference.adc(v, p.output_bits, fs)
        from_code = np.float32(fs) / np.float32(levels(p.output_bits))
        y = (codes * from_code) * s_x[:, None] * np.float32(scale)
        y[s_x == 0] = 0.0
        return y.astype(np.float32), clipped
