"""The QFFN paper's Distilled baseline at SmolLM2 scale: a dense model of QFFN's parameter count, made by pruning
FFN neurons, then trained on the same budget as QFFN.

The paper's Table 1 sets QFFN (3.5B) beside "Distilled-4B", a classically compressed LLaMA-7B of about its size.
Scaled down, shrinking only the FFNs QFFN replaces to QFFN's count would leave no neuron at all (a QFFN-half FFN
has 1,272 parameters where SmolLM2's has 2,654,208): that is the "FFN removed" row (``adapter=ffn_lowrank
adapter.rank=0``). So the parameters QFFN removes are taken from every layer's FFN evenly instead, the way a
width-pruned dense model is made: each SwiGLU FFN ``down(silu(gate x) * up x)`` keeps k of its I neurons,

    k = round((L * 3 d I - removed + added) / (L * 3 d))        (1,536 -> 768 for QFFN-half on SmolLM2-135M)

with ``removed`` and ``added`` the parameters the QFFN config with the same ``fraction`` deletes and adds
(:func:`qadapt.adapters.replacement.param_summary`), so the total matches QFFN's to within one neuron per layer.
Which neurons: the k with the largest ||gate_j|| ||up_j|| ||down_{:,j}|| (weight magnitude, no data); then the
training budget's local distillation (``train.distill_steps``) fits each pruned FFN to the full one on real hidden
states, as it fits QFFN's blocks, and fine-tuning follows. Attention is untouched. Imports no quantum adapter.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn

from .. import schema
from ..devices.base import Device
from ..errors import ConfigError
from ..models.layers import decoder_layers
from .base import AdapterLayer
from .options import FFNPrunedAdapter
from .replacement import param_summary


class PrunedFFN(AdapterLayer):
    """``(..., d)`` -> ``(..., d)``: a SwiGLU FFN keeping ``k`` of its neurons (module docstring), initialised from the
    kept rows of gate and up and columns of down."""

    adapter_name = "ffn_pruned"

    def __init__(self, mlp: nn.Module, keep: torch.Tensor):
        super().__init__(None)
        self.width, self.neurons, self.original = mlp.gate_proj.in_features, len(keep), mlp.gate_proj.out_features
        self.gate_proj = _rows(mlp.gate_proj, keep)
        self.up_proj = _rows(mlp.up_proj, keep)
        down = mlp.down_proj
        self.down_proj = nn.Linear(len(keep), down.out_features, bias=down.bias is not None, dtype=down.weight.dtype)
        with torch.no_grad():
            self.down_proj.weight.copy_(down.weight[:, keep])
            if down.bias is not None:
                self.down_proj.bias.copy_(down.bias)
        self.act_fn = mlp.act_fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))

    def structure(self) -> dict:
        """``width`` (d), ``neurons`` (k kept) and ``original`` (I)."""
        return {**super().structure(), "width": self.width, "neurons": self.neurons, "original": self.original}

    def extra_repr(self) -> str:
        return f"width={self.width}, neurons={self.neurons} of {self.original}"


def _rows(linear: nn.Linear, keep: torch.Tensor) -> nn.Linear:
    out = nn.Linear(linear.in_features, len(keep), bias=linear.bias is not None, dtype=linear.weight.dtype)
    with torch.no_grad():
        out.weight.copy_(linear.weight[keep])
        if linear.bias is not None:
            out.bias.copy_(linear.bias[keep])
    return out


def neuron_importance(mlp: nn.Module) -> torch.Tensor:
    """``(I,)``: ||gate_j|| ||up_j|| ||down_{:,j}|| for each neuron j of a SwiGLU FFN (weight magnitude)."""
    w = [mlp.gate_proj.weight.float(), mlp.up_proj.weight.float(), mlp.down_proj.weight.float().T]
    return w[0].norm(dim=1) * w[1].norm(dim=1) * w[2].norm(dim=1)


def matched_neurons(cfg: DictConfig, model_config) -> int:
    """k, the neurons each FFN keeps: ``cfg.neurons`` or, for ``auto``, the count matching QFFN with the same
    ``fraction`` (module docstring).

    Raises:
        ConfigError: an unknown fraction, or neurons outside [1, I].
    """
    d, n_layers = int(model_config.hidden_size), int(model_config.num_hidden_layers)
    inter = int(model_config.intermediate_size)
    neurons = schema.read(cfg, FFNPrunedAdapter).neurons
    if str(neurons) == "auto":
        heads = int(model_config.num_attention_heads)
        head_dim = getattr(model_config, "head_dim", None) or d // heads
        qffn = param_summary(cfg, n_layers, d, heads, head_dim, FFNPrunedAdapter)
        removed = len(qffn["layers"]) * 3 * d * inter
        return max(1, round((n_layers * 3 * d * inter - removed + qffn["added_params"]) / (n_layers * 3 * d)))
    if not 1 <= int(neurons) <= inter:
        raise ConfigError(f"adapter.neurons must be auto or in [1, {inter}], got {neurons}")
    return int(neurons)


def inject(model: nn.Module, cfg: DictConfig, device: Device) -> list[str]:
    """Replace every decoder layer's FFN by a :class:`PrunedFFN` keeping its k most important neurons.

    Raises:
        ConfigError: bad fraction or neurons, or an FFN that is not SwiGLU (gate_proj, up_proj, down_proj).
    """
    k = matched_neurons(cfg, model.config)
    sites = []
    for idx, layer in enumerate(decoder_layers(model)):
        mlp = layer.mlp
        if not all(hasattr(mlp, name) for name in ("gate_proj", "up_proj", "down_proj", "act_fn")):
            raise ConfigError(
                f"adapter=ffn_pruned needs SwiGLU FFNs (gate_proj, up_proj, down_proj); layer {idx} has none"
            )
        keep = torch.sort(torch.topk(neuron_importance(mlp), k).indices).values
        layer.mlp = PrunedFFN(mlp, keep).to(mlp.gate_proj.weight.device)
        sites.append(f"layers.{idx}.mlp")
    return sites


def describe(cfg: DictConfig) -> str:
    return f"ffn_pruned(neurons={cfg.get('neurons', 'auto')}, matched to qffn {cfg.get('fraction', 'half')})"
