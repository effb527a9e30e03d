"""Norm-gain (and optionally bias) tuning: the cheap domain-adaptation control for adapters on a frozen LM.

The normalisation layers named in ``modules`` (by default ``input_layernorm``, the RMSNorm whose output feeds
q/k/v_proj on Llama-family models) of the chosen decoder layers get a trainable per-feature gain g (ones at init) and,
with ``bias=true``, a bias c (zeros at init):

    y = norm(x) * g + c

so the adapted model equals the base model at step 0. Parameters per site: d (gain) or 2 d (gain and bias). A
multiplicative gain on the frozen norm's own weight w spans what tuning w spans (w g, w != 0). It is the BitFit-style
control (Ben Zaken et al. 2022) asked for in issue 17: any adapter trained on the same text gets domain adaptation,
and this is the smallest one that can.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn

from .. import schema
from ..errors import ConfigError
from ..models.layers import find_targets
from .base import AdapterLayer
from .options import NormTuningAdapter


def _width(norm: nn.Module, name: str) -> int:
    weight = getattr(norm, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 1:
        raise ConfigError(f"{name} ({type(norm).__name__}) has no per-feature weight; adapter=norm tunes norm layers")
    return weight.shape[0]


class NormGain(AdapterLayer):
    """A frozen normalisation layer followed by a trainable gain (and bias).

    Shapes: forward maps ``(..., d)`` to ``(..., d)``; ``gain`` and ``bias`` are ``(d,)``.
    Raises:
        ConfigError: the wrapped module has no 1-d ``weight`` (not a LayerNorm/RMSNorm).
    """

    adapter_name = "norm"

    def __init__(self, base: nn.Module, config: NormTuningAdapter, name: str = ""):
        super().__init__(base)
        width = _width(base, name)
        self.config = config
        self.width = width
        ref = base.weight
        self.gain = nn.Parameter(torch.ones(width, dtype=ref.dtype, device=ref.device))
        self.bias = nn.Parameter(torch.zeros(width, dtype=ref.dtype, device=ref.device)) if config.bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if not self.enabled:
            return y
        y = y * self.gain.to(y.dtype)
        return y + self.bias.to(y.dtype) if self.bias is not None else y

    def structure(self) -> dict:
        """``width`` and whether a ``bias`` is trained."""
        return {**super().structure(), "width": self.width, "bias": self.config.bias}

    def extra_repr(self) -> str:
        return f"width={self.width}, bias={self.config.bias}"


def inject(model: nn.Module, cfg: DictConfig, device=None) -> list[str]:
    """Wrap the configured norm layers in :class:`NormGain`; return the adapted sites' names.

    Raises:
        ConfigError: unknown module name, layer index out of range, a module without a per-feature weight.
    """
    config = schema.read(cfg, NormTuningAdapter)
    names = []
    for name, parent, attr in find_targets(model, config.modules, config.layers):
        setattr(parent, attr, NormGain(getattr(parent, attr), config, name))
        names.append(name)
    return names


def describe(cfg: DictConfig) -> str:
    """Short label, e.g. ``norm(input_layernorm gain, layers=-6,...,-1)``."""
    config = schema.read(cfg, NormTuningAdapter)
    layers = "all" if config.layers is None else ",".join(str(i) for i in config.layers)
    what = "gain+bias" if config.bias else "gain"
    return f"norm({'+'.join(config.modules)} {what}, layers={layers})"
