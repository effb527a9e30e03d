"""Free block-diagonal adapter: CUA's block structure without its orthogonality (the control that isolates it).

At each target projection W the d-dim vector on the chosen side is cut into d/b slices of b features, as CUA cuts it
(qadapt/adapters/cua.py), and slice j is multiplied by its own unconstrained b x b matrix M_j, which starts at the
identity (the adapted model equals the base model at step 0, as CUA's does):

    side = input:  y = W (M x) + bias      side = output:  y = M (W x + bias)

Parameters per site: (d / b) b^2 = d b, against CUA's d (b - 1) / 2 for the same blocks (the dimension of the
orthogonal group). Same sites, same blocks, same training; but a gain this adapter keeps over CUA may be the price
of orthogonality or the worth of its extra parameters. ``parametrization=skew`` removes that second confound:
M_j = I - 2 S_j with S_j skew-symmetric, b (b - 1) / 2 parameters per block (CUA's count exactly), the first-order
term of the Cayley map CUA uses, (I - S)(I + S)^-1 = I - 2S + O(S^2); it starts where CUA starts, with the same
gradient, but is not orthogonal (M^T M = I + 4 S^T S). Source: the controls of issue 17 (CUA paper, arXiv
2605.05914, has no such control); OFT (Qiu et al. 2023, Sec. 3) argues the same comparison for its block rotations.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn

from .. import schema
from ..errors import ConfigError
from ..models.layers import find_targets
from ..quantum import num_skew_params, skew_symmetric
from .base import AdapterLayer, block_width, fold_blocks
from .options import BlockDiagAdapter


class BlockDiagLinear(AdapterLayer):
    """A frozen ``nn.Linear`` with b x b blocks M_j (identity at init) on its input or output: free entries
    (``blocks``, ``(d / b, b, b)``) or I - 2 S_j from skew generators (``generators``, ``(d / b, b (b - 1) / 2)``).

    Args:
        base: the frozen projection, weight ``(out_features, in_features)``.
        config: the validated ``adapter=blockdiag`` option (:class:`~qadapt.adapters.options.BlockDiagAdapter`).
    Raises:
        ConfigError: the adapted width is not divisible by the block size.
    Shapes: forward maps ``(..., in_features)`` to ``(..., out_features)``; ``block_matrices()`` is ``(d / b, b, b)``.
    """

    adapter_name = "blockdiag"

    def __init__(self, base: nn.Linear, config: BlockDiagAdapter, name: str = ""):
        super().__init__(base)
        b = config.block_size
        width = block_width(base, config.side, b, name, f"adapter.block_size={b}")
        self.config = config
        self.width = width
        w = base.weight
        if config.parametrization == "skew":
            self.generators = nn.Parameter(torch.zeros(width // b, num_skew_params(b), dtype=w.dtype, device=w.device))
        else:
            self.blocks = nn.Parameter(torch.eye(b, dtype=w.dtype, device=w.device).repeat(width // b, 1, 1))

    def block_matrices(self) -> torch.Tensor:
        """M_j: ``(d / b, b, b)``; the free parameters themselves, or I - 2 S_j."""
        if self.config.parametrization == "free":
            return self.blocks
        b = self.config.block_size
        eye = torch.eye(b, dtype=self.generators.dtype, device=self.generators.device)
        return eye - 2 * skew_symmetric(self.generators, b)

    def _apply_blocks(self, v: torch.Tensor) -> torch.Tensor:
        blocks = self.block_matrices()
        n, b, _ = blocks.shape
        out = torch.einsum("...nj,nij->...ni", v.reshape(*v.shape[:-1], n, b), blocks.to(v.dtype))
        return out.reshape(v.shape)

    def merged_weight(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """W' = W M (input side) or W' = M W, bias' = M bias (output side), M = diag(M_1, ..., M_n)."""
        return fold_blocks(self.base.weight, self.base.bias, self.block_matrices(), self.config.side)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return self.base(x)
        if self.merged is not None:
            return nn.functional.linear(x, *self.merged)
        if self.config.side == "input":
            return self.base(self._apply_blocks(x))
        return self._apply_blocks(self.base(x))

    def structure(self) -> dict:
        """``block_size``, ``side``, ``parametrization``, ``n_blocks`` and ``width`` (d = n_blocks * b)."""
        c = self.config
        return self.block_structure(c.block_size, c.side, parametrization=c.parametrization)

    def extra_repr(self) -> str:
        c = self.config
        return f"block_size={c.block_size}, side={c.side}, parametrization={c.parametrization}, width={self.width}"


def inject(model: nn.Module, cfg: DictConfig, device=None) -> list[str]:
    """Replace the configured projections by :class:`BlockDiagLinear`; return the adapted sites' names.

    Raises:
        ConfigError: unknown module name, layer index out of range, width not divisible by the block size.
    """
    config = schema.read(cfg, BlockDiagAdapter)
    names = []
    for name, parent, attr in find_targets(model, config.modules, config.layers):
        base = getattr(parent, attr)
        if not isinstance(base, nn.Linear):
            raise ConfigError(f"{name} is a {type(base).__name__}; adapter=blockdiag adapts nn.Linear projections")
        setattr(parent, attr, BlockDiagLinear(base, config, name))
        names.append(name)
    return names


def describe(cfg: DictConfig) -> str:
    """Short label, e.g. ``blockdiag(b=4, v_proj@input, layers=-6,...,-1)`` (``, skew`` after b for I - 2S blocks)."""
    config = schema.read(cfg, BlockDiagAdapter)
    layers = "all" if config.layers is None else ",".join(str(i) for i in config.layers)
    par = "" if config.parametrization == "free" else f", {config.parametrization}"
    return f"blockdiag(b={config.block_size}{par}, {'+'.join(config.modules)}@{config.side}, layers={layers})"
