"""LuminaLinear and replace_linear_layers: nn.Linear on the chip (docs/torch.md)."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F

from lumina_hal.device import PhotonicDevice
from lumina_hal.errors import ConfigurationError, InputError
from lumina_hal.params import resolve_params
from lumina_hal.registry import default_uri
from lumina_hal.tiling import TiledDevice
from lumina_hal.torch.chip_op import ChipRunner, chip_linear
from lumina_hal.torch.noise_model import ChipGeometry, NoiseModel
from lumina_hal.twin.config import TWIN_PARAMS, TwinConfig
from lumina_hal.twin.device import MockDevice
from lumina_hal.twin.physics import PhysicsParams
from lumina_hal.uri import parse_uri

MODES = ("chip", "noise_model", "ideal")
NOISE_SERIALS = ("random", "chip")
#: Schemes whose URI parameters are the twin's (their physics is known from the URI).
TWIN_SCHEMES = ("mock", "fpga+sim")

ChipSpec = str | PhotonicDevice | Sequence[str | PhotonicDevice] | None


def _first(chip: ChipSpec) -> str | PhotonicDevice:
    if chip is None:
        return default_uri()
    if isinstance(chip, TiledDevice):
        if chip.devices:
            return chip.devices[0]
        raise ConfigurationError("open the TiledDevice before deriving its noise model")
    if isinstance(chip, (str, PhotonicDevice)):
        return chip
    items = list(chip)
    if not items:
        raise ConfigurationError("chip must not be an empty sequence")
    return items[0]


def _config_from_uri(uri: str) -> TwinConfig:
    parsed = parse_uri(uri)
    if parsed.scheme not in TWIN_SCHEMES:
        raise ConfigurationError(
            f"the noise model needs the chip's physics: {parsed.scheme}:// does not give it; "
            f"pass physics= (a PhysicsParams) and array= (rows, cols)"
        )
    names = {p.name for p in TWIN_PARAMS}
    query = {k: v for k, v in parsed.query.items() if k in names}
    return TwinConfig.resolve(**resolve_params(TWIN_PARAMS, query, context=parsed.scheme))


def chip_model(chip: ChipSpec) -> tuple[PhysicsParams, ChipGeometry]:
    """The physics and array of a chip given as a URI, a device or a list of them."""
    first = _first(chip)
    if isinstance(first, MockDevice):
        c = first.config
        return first.physics, ChipGeometry(c.rows, c.cols, c.serial)
    uri = first if isinstance(first, str) else first.uri
    if not uri:
        raise ConfigurationError(
            f"cannot tell the physics of {type(first).__name__}; pass physics= and array="
        )
    config = _config_from_uri(uri)
    return config.physics, ChipGeometry(config.rows, config.cols, config.serial)


class LuminaLinear(nn.Module):
    """nn.Linear whose product runs on a photonic chip, its noise model, or ideally.

    ``weight`` (out_features, in_features) and ``bias`` (out_features) are shaped and
    initialised like nn.Linear's. ``chip``: a URI (this layer opens its own device from it),
    a device or TiledDevice (shared; tiles re-programmed when another layer used it), or a
    list of them (tiles spread over them); None: ``$LUMINA_DEVICE`` or ``mock://``.
    ``mode``: ``chip`` | ``noise_model`` | ``ideal`` (docs/torch.md section 1).
    ``noise_serial``: ``random`` draws fabrication scatter afresh at every refresh (train for
    chips not seen), ``chip`` uses the chip's serial. ``physics``/``array`` override what is
    derived from the chip (needed for hardware URIs). ``noise_refresh_every``: forwards between
    two draws of the noise model's static errors (docs/torch.md section 3).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        chip: ChipSpec = None,
        mode: str = "chip",
        *,
        device: Any = None,
        dtype: Any = None,
        accumulate: str = "float32",
        noise_serial: str = "random",
        physics: PhysicsParams | None = None,
        array: tuple[int, int] | None = None,
        generator: torch.Generator | None = None,
        noise_refresh_every: int = 1,
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")
        self.in_features, self.out_features = in_features, out_features
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty((out_features, in_features), **factory))
        self.bias = nn.Parameter(torch.empty(out_features, **factory)) if bias else None
        self.reset_parameters()
        if noise_serial not in NOISE_SERIALS:
            raise ConfigurationError(f"noise_serial must be one of {NOISE_SERIALS}")
        self.chip = chip
        self.noise_serial = noise_serial
        self.accumulate = accumulate
        self.physics_override = physics
        self.array_override = array
        self.generator = generator
        self.noise_refresh_every = noise_refresh_every
        self._runner: ChipRunner | None = None
        self._noise: NoiseModel | None = None
        self._handle = self.chip_runner().handle  # built now: forward stays traceable
        self.mode = mode

    def reset_parameters(self) -> None:
        """nn.Linear's initialisation."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    @classmethod
    def from_linear(cls, linear: nn.Linear, chip: ChipSpec = None, **kwargs: Any) -> LuminaLinear:
        """A LuminaLinear sharing ``linear``'s weight and bias Parameters (no copy)."""
        layer = cls(
            linear.in_features,
            linear.out_features,
            bias=False,
            chip=chip,
            device="meta",
            dtype=linear.weight.dtype,
            **kwargs,
        )
        layer.weight = cast(nn.Parameter, linear.weight)
        layer.bias = cast("nn.Parameter | None", linear.bias)
        return layer

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ConfigurationError(f"mode must be one of {MODES}, got {value!r}")
        if value == "noise_model":
            self.noise_model()  # built outside forward, so that torch.compile traces no setup
        self._mode = value

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, mode={self.mode}"
        )

    # ---- the three paths -------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise InputError(
                f"input has {x.shape[-1]} features, the layer takes {self.in_features}"
            )
        if self._mode == "ideal":
            bias = None if self.bias is None else self.bias.to(x.dtype)
            return F.linear(x, self.weight.to(x.dtype), bias)
        if self._mode == "noise_model":
            flat = x.reshape(-1, self.in_features)
            bias = None if self.bias is None else self.bias.float()
            y = self.noise_model()(flat, self.weight, bias)
            return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)
        y = chip_linear(x, self.weight, self._handle).float()
        if self.bias is not None:
            y = y + self.bias.float()
        return y.to(x.dtype)

    def chip_runner(self) -> ChipRunner:
        """The runner of this layer's TiledDevice (opened on first use)."""
        if self._runner is None:
            chip = self.chip if self.chip is not None else default_uri()
            tiled = (
                chip
                if isinstance(chip, TiledDevice)
                else TiledDevice(chip, accumulate=self.accumulate)
            )
            self._runner = ChipRunner(tiled)
        return self._runner

    def noise_model(self) -> NoiseModel:
        """The layer's NoiseModel (built from the chip's physics on first use)."""
        if self._noise is None:
            physics, geometry = (
                chip_model(self.chip)
                if self.physics_override is None or self.array_override is None
                else (self.physics_override, ChipGeometry(*self.array_override))
            )
            physics = self.physics_override or physics
            if self.array_override is not None:
                geometry = ChipGeometry(*self.array_override, geometry.serial)
            if self.noise_serial == "random":
                geometry = ChipGeometry(geometry.rows, geometry.cols, None)
            self._noise = NoiseModel(
                self.out_features,
                self.in_features,
                physics,
                geometry,
                self.generator,
                self.noise_refresh_every,
            )
        return self._noise

    def close(self) -> None:
        """Close the devices this layer opened (a shared TiledDevice given by the user stays)."""
        if self._runner is not None and not isinstance(self.chip, TiledDevice):
            self._runner.tiled.close()
            self._runner.invalidate()


Selector = Sequence[str] | Callable[[str, nn.Module], bool] | None


def _matches(selector: Selector, name: str, module: nn.Module, default: bool) -> bool:
    if selector is None:
        return default
    if callable(selector):
        return bool(selector(name, module))
    if isinstance(selector, str):
        selector = [selector]
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in selector)


@dataclass
class Replacement:
    """What replace_linear_layers did; call it (or ``restore()``) to put the nn.Linear back."""

    model: nn.Module
    layers: dict[str, LuminaLinear] = field(default_factory=dict)
    _originals: list[tuple[nn.Module, str, nn.Module]] = field(default_factory=list)

    def set_mode(self, mode: str) -> None:
        """Switch every replaced layer to ``mode``."""
        for layer in self.layers.values():
            layer.mode = mode

    def restore(self) -> nn.Module:
        """Put every original nn.Linear back (they share the trained Parameters)."""
        for parent, attr, original in reversed(self._originals):
            replaced = getattr(parent, attr)
            if isinstance(replaced, LuminaLinear):
                replaced.close()
            setattr(parent, attr, original)
        self._originals.clear()
        self.layers.clear()
        return self.model

    __call__ = restore


def replace_linear_layers(
    model: nn.Module,
    chip: ChipSpec = None,
    *,
    mode: str = "chip",
    include: Selector = None,
    exclude: Selector = None,
    **layer_kwargs: Any,
) -> tuple[nn.Module, Replacement]:
    """Swap every selected nn.Linear of ``model`` for a LuminaLinear sharing its Parameters.

    ``include``/``exclude``: glob patterns over qualified module names (``"model.layers.*"``)
    or a predicate ``(name, module) -> bool``; a layer is replaced if included and not
    excluded. Returns ``(model, replacement)``; ``replacement()`` restores the nn.Linear.
    """
    if mode not in MODES:
        raise ConfigurationError(f"mode must be one of {MODES}, got {mode!r}")
    replacement = Replacement(model)
    targets: list[tuple[str, nn.Linear]] = [
        (name, module)
        for name, module in model.named_modules()
        if type(module) is nn.Linear
        and _matches(include, name, module, True)
        and not _matches(exclude, name, module, False)
    ]
    for name, linear in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = LuminaLinear.from_linear(linear, chip=chip, mode=mode, **layer_kwargs)
        setattr(parent, attr, layer)
        replacement._originals.append((parent, attr, linear))
        replacement.layers[name] = layer
    return model, replacement


def lumina_layers(model: nn.Module) -> Iterable[tuple[str, LuminaLinear]]:
    """Every LuminaLinear of ``model`` with its qualified name."""
    return ((n, m) for n, m in model.named_modules() if isinstance(m, LuminaLinear))
