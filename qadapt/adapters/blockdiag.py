"""Free block-diagonal adapter: CUA's block structure without its orthogonality (the control that isolates it).

At each target projection W the d-dim vector on the chosen side is cut into d/b slices of b features, as CUA cuts it
(qadapt/adapters/cua.py), and slice j is multiplied by its own unconstrained b x b matrix M_j, which starts at the
identity (the adapted model equals the base model at step 0, as CUA's does):

    side = input:  y = W (M x) + bias      side = output:  y = M (W x + bias)

Parameters per site: (d / b) b^2 = d b, against CUA's d (b - 1) / 2 for the same blocks (the dimension of the
orthogonal group). Same sites, same blocks, same training: any gain CUA keeps over this adapter is the orthogonality's,
any gain this adapter keeps over CUA is the price of it. Source: the controls of issue 17 (CUA paper, arXiv
2605.05914, has no such control); OFT (Qiu et al. 2023, Sec. 3) argues the same comparison for its block rotations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import nn

from ..errors import ConfigError
from ..models.layers import find_targets
from .base import AdapterLayer, fold_blocks

SIDES = ("input", "output")


@dataclass(frozen=True)
class BlockDiagConfig:
    block_size: int = 4
    modules: tuple[str, ...] = ("v_proj",)
    layers: tuple[int, ...] | None = None
    side: str = "input"

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> BlockDiagConfig:
        side = str(cfg.get("side", "input"))
        if side not in SIDES:
            raise ConfigError(f"unknown adapter.side '{side}'; valid choices: {', '.join(SIDES)}")
        b = int(cfg.block_size)
        if b < 1:
            raise ConfigError(f"adapter.block_size must be >= 1, got {b}")
        layers = cfg.get("layers")
        return cls(b, tuple(cfg.modules), None if layers is None else tuple(int(i) for i in layers), side)


class BlockDiagLinear(AdapterLayer):
    """A frozen ``nn.Linear`` with free b x b blocks M_j (identity at init) on its input or output.

    Args:
        base: the frozen projection, weight ``(out_features, in_features)``.
        config: block size and side.
    Raises:
        ConfigError: the adapted width is not divisible by the block size.
    Shapes: forward maps ``(..., in_features)`` to ``(..., out_features)``; ``blocks`` is ``(d / b, b, b)``.
    """

    adapter_name = "blockdiag"

    def __init__(self, base: nn.Linear, config: BlockDiagConfig, name: str = ""):
        super().__init__(base)
        width = base.in_features if config.side == "input" else base.out_features
        b = config.block_size
        if width % b:
            raise ConfigError(
                f"{name or 'projection'}: {config.side} width {width} is not divisible by adapter.block_size={b}"
            )
        self.config = config
        self.width = width
        eye = torch.eye(b, dtype=base.weight.dtype, device=base.weight.device)
        self.blocks = nn.Parameter(eye.repeat(width // b, 1, 1))

    def _apply_blocks(self, v: torch.Tensor) -> torch.Tensor:
        n, b, _ = self.blocks.shape
        out = torch.einsum("...nj,nij->...ni", v.reshape(*v.shape[:-1], n, b), self.blocks.to(v.dtype))
        return out.reshape(v.shape)

    def merged_weight(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """W' = W M (input side) or W' = M W, bias' = M bias (output side), M = diag(M_1, ..., M_n)."""
        return fold_blocks(self.base.weight, self.base.bias, self.blocks, self.config.side)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return self.base(x)
        if self.merged is not None:
            return nn.functional.linear(x, *self.merged)
        if self.config.side == "input":
            return self.base(self._apply_blocks(x))
        return self._apply_blocks(self.base(x))

    def structure(self) -> dict:
        """``block_size``, ``side``, ``n_blocks`` and ``width`` (d = n_blocks * b)."""
        c = self.config
        return {
            **super().structure(),
            "block_size": c.block_size,
            "side": c.side,
            "n_blocks": int(self.blocks.shape[0]),
            "width": self.width,
        }

    def extra_repr(self) -> str:
        return f"block_size={self.config.block_size}, side={self.config.side}, width={self.width}"


def inject(model: nn.Module, cfg: DictConfig, device=None) -> list[str]:
    """Replace the configured projections by :class:`BlockDiagLinear`; return the adapted sites' names.

    Raises:
        ConfigError: unknown module name, layer index out of range, width not divisible by the block size.
    """
    config = BlockDiagConfig.from_cfg(cfg)
    names = []
    for name, parent, attr in find_targets(model, config.modules, config.layers):
        base = getattr(parent, attr)
        if not isinstance(base, nn.Linear):
            raise ConfigError(f"{name} is a {type(base).__name__}; adapter=blockdiag adapts nn.Linear projections")
        setattr(parent, attr, BlockDiagLinear(base, config, name))
        names.append(name)
    return names


def describe(cfg: DictConfig) -> str:
    """Short label, e.g. ``blockdiag(b=4, v_proj@input, layers=-6,...,-1)``."""
    config = BlockDiagConfig.from_cfg(cfg)
    layers = "all" if config.layers is None else ",".join(str(i) for i in config.layers)
    return f"blockdiag(b={config.block_size}, {'+'.join(config.modules)}@{config.side}, layers={layers})"
