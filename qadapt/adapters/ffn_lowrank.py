"""Classical control for QFFN: the same FFNs replaced by a low-rank classical block of about the same parameters.

The QFFN paper compares against a classically compressed model ("Distilled-4B", Table 1). Scaled down, the fair
control replaces exactly the FFNs QFFN replaces (same ``fraction``, ``layer_pattern``, ``layer_seed``) with

    y = B silu(A x) + c          A: (r, d), B: (d, r), c: (d,)          2 d r + d parameters per layer

and trains it with the same budget and procedure (local distillation, then cross-entropy + KL). ``rank: auto``
picks the r >= 0 whose total comes nearest to the QFFN config with the same fraction (its quantum FFNs and
quantum heads together); r = 0 is "FFN removed, a learned constant". B and c start at zero, so the block starts
as "FFN removed", as a QFFN does. Attention is left classical. The layer choice and the QFFN parameter budget
come from :mod:`qadapt.adapters.replacement`, shared with QFFN; this control imports no quantum adapter.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from .. import schema
from ..devices.base import Device
from ..errors import ConfigError
from ..models.layers import decoder_layers
from .base import AdapterLayer
from .options import FFNLowRankAdapter
from .replacement import ReplacementConfig, param_summary


def lowrank_params(width: int, rank: int) -> int:
    """2 d r + d."""
    return 2 * width * rank + width


def auto_rank(cfg: DictConfig, n_layers: int, hidden: int, n_heads: int, head_dim: int) -> int:
    """The rank whose total added parameters come nearest to the QFFN config with the same fraction (ties: smaller)."""
    target = param_summary(cfg, n_layers, hidden, n_heads, head_dim, FFNLowRankAdapter)
    m = len(target["layers"])
    per_layer = target["added_params"] / m
    candidates = [max(0, math.floor((per_layer - hidden) / (2 * hidden))) + k for k in (0, 1)]
    return min(candidates, key=lambda r: (abs(m * lowrank_params(hidden, r) - target["added_params"]), r))


class LowRankFFN(AdapterLayer):
    """``(..., d)`` -> ``(..., d)``: B silu(A x) + c (module docstring)."""

    adapter_name = "ffn_lowrank"

    def __init__(self, width: int, rank: int, dtype=torch.float32):
        super().__init__(None)
        self.width, self.rank = width, rank
        self.down = nn.Parameter(torch.randn(rank, width, dtype=dtype) / math.sqrt(width))  # A
        self.up = nn.Parameter(torch.zeros(width, rank, dtype=dtype))  # B
        self.bias = nn.Parameter(torch.zeros(width, dtype=dtype))  # c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.to(self.down.dtype)
        return (F.silu(h @ self.down.T) @ self.up.T + self.bias).to(x.dtype)

    def structure(self) -> dict:
        """``width`` (d) and ``rank`` (r)."""
        return {**super().structure(), "width": self.width, "rank": self.rank}

    def extra_repr(self) -> str:
        return f"width={self.width}, rank={self.rank}"


def resolve_rank(cfg: DictConfig, model_config) -> int:
    """``cfg.rank`` as an int (``auto`` resolved against the architecture). Raises: ConfigError for a bad rank."""
    rank = schema.read(cfg, FFNLowRankAdapter).rank
    if str(rank) == "auto":
        head_dim = (
            getattr(model_config, "head_dim", None) or model_config.hidden_size // model_config.num_attention_heads
        )
        return auto_rank(
            cfg, model_config.num_hidden_layers, model_config.hidden_size, model_config.num_attention_heads, head_dim
        )
    if int(rank) < 0:
        raise ConfigError(f"adapter.rank must be >= 0 or auto, got {rank}")
    return int(rank)


def inject(model: nn.Module, cfg: DictConfig, device: Device) -> list[str]:
    """Replace the FFNs QFFN would replace by :class:`LowRankFFN` (weights of the FFNs deleted).

    Raises: ConfigError for bad fraction/pattern/rank values.
    """
    config = ReplacementConfig.from_cfg(cfg, FFNLowRankAdapter)
    rank = resolve_rank(cfg, model.config)
    stack = decoder_layers(model)
    dtype = next(model.parameters()).dtype
    dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    sites = []
    for idx in config.layers(len(stack)):
        stack[idx].mlp = LowRankFFN(model.config.hidden_size, rank, dtype).to(next(stack[idx].parameters()).device)
        sites.append(f"layers.{idx}.mlp")
    return sites


def describe(cfg: DictConfig) -> str:
    c = ReplacementConfig.from_cfg(cfg, FFNLowRankAdapter)
    return f"ffn_lowrank({c.fraction}, rank={cfg.get('rank', 'auto')}, {c.layer_pattern})"
