"""PyTorch extra: photonic linear layers, their noise model and noise-aware training.

``pip install lumina-hal[torch]``; docs/torch.md. Importing this package registers the custom
op ``torch.ops.lumina.chip_linear``.
"""

from __future__ import annotations

from lumina_hal.torch.chip_op import ChipRunner, chip_linear
from lumina_hal.torch.layers import (
    MODES,
    LuminaLinear,
    Replacement,
    chip_model,
    lumina_layers,
    replace_linear_layers,
)
from lumina_hal.torch.noise_model import ChipGeometry, NoiseModel

__all__ = [
    "MODES",
    "ChipGeometry",
    "ChipRunner",
    "LuminaLinear",
    "NoiseModel",
    "Replacement",
    "chip_linear",
    "chip_model",
    "lumina_layers",
    "replace_linear_layers",
]
