"""``torch.ops.lumina.chip_linear``: a layer's product on the chip, as a torch custom op.

The op is opaque to torch.compile (a fake implementation gives its output's shape) and
differentiable with a straight-through backward: the gradients of ``x @ W.T`` (docs/torch.md
section 2). The chip behind each call is found by an integer handle in a registry of runners,
so graphs carry no Python objects. A runner re-programs its TiledDevice only when the weight
tensor changed (its storage, shape or version counter).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import weakref
import zlib
from typing import Any

import numpy as np
import torch

from lumina_hal.errors import InputError
from lumina_hal.tiling import TiledDevice

log = logging.getLogger(__name__)

_RUNNERS: weakref.WeakValueDictionary[int, ChipRunner] = weakref.WeakValueDictionary()
_HANDLES = itertools.count(1)


def _weight_key(weight: torch.Tensor) -> tuple[Any, ...]:
    """What identifies the weight's current values without reading them, when possible."""
    try:
        version: Any = weight._version
    except RuntimeError:  # an inference tensor has no version counter: hash its bytes
        data = weight.detach().contiguous().view(torch.uint8).numpy().tobytes()
        version = ("crc", zlib.crc32(data))
    return (weight.data_ptr(), tuple(weight.shape), weight.dtype, version)


class ChipRunner:
    """Runs one layer's products on a TiledDevice; programs it only when the weight changes."""

    def __init__(self, tiled: TiledDevice) -> None:
        self.tiled = tiled
        self.handle = next(_HANDLES)
        self._key: tuple[Any, ...] | None = None
        self._matrix_id: str | None = None
        self._lock = threading.Lock()
        self.programs = 0
        self.program_s = 0.0
        self.run_s = 0.0
        _RUNNERS[self.handle] = self

    def invalidate(self) -> None:
        """Forget what is programmed (the next call programs again)."""
        self._key = self._matrix_id = None

    def run(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        with self._lock:
            if not self.tiled.is_open:
                self.tiled.open()
            key = _weight_key(weight)
            # a TiledDevice shared by several layers may hold another layer's matrix
            if key != self._key or self.tiled.weights_id != self._matrix_id:
                t0 = time.perf_counter()
                w = weight.detach().float().contiguous().numpy()
                self._matrix_id = self.tiled.load_weights(w)
                self.program_s += time.perf_counter() - t0
                self.programs += 1
                self._key = key
                log.debug("programmed %s", self.tiled.plan.describe())
            t0 = time.perf_counter()
            flat = x.detach().reshape(-1, x.shape[-1]).float().contiguous().numpy()
            y = self.tiled.matmul(flat)
            self.run_s += time.perf_counter() - t0
        out = torch.from_numpy(np.asarray(y, dtype=np.float32))
        return out.reshape(*x.shape[:-1], weight.shape[0]).to(x.dtype)


def runner(handle: int) -> ChipRunner:
    try:
        return _RUNNERS[handle]
    except KeyError:
        raise InputError(f"no chip runner with handle {handle} (its layer was deleted)") from None


@torch.library.custom_op("lumina::chip_linear", mutates_args=())
def chip_linear(x: torch.Tensor, weight: torch.Tensor, handle: int) -> torch.Tensor:
    """``x @ weight.T`` computed by the chip registered under ``handle``."""
    return runner(handle).run(x, weight)


@chip_linear.register_fake
def _chip_linear_fake(x: torch.Tensor, weight: torch.Tensor, handle: int) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    x, weight, _ = inputs
    ctx.save_for_backward(x, weight)


def _backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """Straight-through: the gradients of the ideal product x @ W.T."""
    x, weight = ctx.saved_tensors
    grad_x = grad_w = None
    if ctx.needs_input_grad[0]:
        grad_x = grad @ weight.to(grad.dtype)
    if ctx.needs_input_grad[1]:
        g2 = grad.reshape(-1, grad.shape[-1])
        grad_w = g2.T.to(weight.dtype) @ x.reshape(-1, x.shape[-1]).to(weight.dtype)
    return grad_x, grad_w, None


chip_linear.register_autograd(_backward, setup_context=_setup_context)
