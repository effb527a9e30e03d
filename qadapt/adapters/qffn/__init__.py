"""QFFN: quantum feed-forward networks and quantum attention heads ("Less Bits, More Qubits").

Source: QFFN paper (../shared/papers/002_*.txt; NOTES.md), Section 3.2 (QFFN, quantum attention heads), Section 3.3
/ Algorithm 1 (the hybrid block) and Section 4.5 / Table 2 (fractions). The paper leaves the readout and the kernel
open; what we implement, exactly, is in the modules:

- :mod:`.ffn`: :class:`QuantumFFN` replaces a decoder layer's ``mlp`` (its weights are deleted):
  y_i = ||x|| w_i (2^n p_i - 1) + b_i with p = |U(theta) |x>|^2; 3 n D + 2 d parameters
  (SmolLM2: d = 576, n = 10, D = 4 -> 1,272, replacing 3 * 576 * 1536 = 2,654,208).
- :mod:`.heads`: :class:`QuantumHeads` score h heads of every layer with tau |<q_t| V(phi) |k_s>|^2;
  3 n_h D_h + 1 parameters per head (SmolLM2: 73). The q/k projections are kept, so quantum heads remove no
  parameters: unlike the paper's wording, they do not lower the parameter count.
- :mod:`.attention`: the transformers attention function that routes those heads (classical heads: SDPA).
- :mod:`qadapt.adapters.replacement`: which layers (``fraction``: quarter / half / full replace round(f L) FFNs and
  make floor(min(f, 1/2) H) heads per layer quantum; ``layer_pattern``: spread / last / random) and the parameter
  counts, shared with the classical control (qadapt/adapters/ffn_lowrank.py).

This module: the config (:class:`QFFNConfig`), :func:`inject` and :func:`describe`.
"""

from __future__ import annotations

import dataclasses

import torch
from omegaconf import DictConfig
from torch import nn

from ... import schema
from ...devices.base import Device
from ...errors import ConfigError
from ...models.layers import decoder_layers
from ..options import QFFNAdapter
from ..replacement import (
    FRACTIONS,
    PATTERNS,
    ReplacementConfig,
    heads_per_layer,
    param_summary,
    qffn_params,
    quantum_head_params,
    select_layers,
)
from .attention import ATTENTION_NAME, allowed_mask, quantum_heads_attention, register_attention
from .ffn import QuantumFFN
from .heads import QuantumHeads  # its tuning constants (QUERY_BLOCK, ...) live in .heads, patch them there

# the old private names (qadapt/adapters/qffn.py before the split)
_allowed_mask, _register_attention = allowed_mask, register_attention


@dataclasses.dataclass(frozen=True)
class QFFNConfig(ReplacementConfig):
    """The ``adapter=qffn`` config: :class:`~qadapt.adapters.replacement.ReplacementConfig` (fraction, depth,
    head_depth, quantum_heads, layer_pattern, layer_seed), ``tau_init``, the quantum heads' initial temperature, and
    ``quantum_ffn``: whether the selected layers' FFNs are replaced (false: the heads alone, FFNs kept; the
    component isolation of the QFFN tables)."""

    tau_init: float = 10.0
    quantum_ffn: bool = True

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> QFFNConfig:
        """Raises: ConfigError for a value the option does not accept (the key and what it accepts), or neither
        component on (quantum_ffn and quantum_heads both false)."""
        own = schema.read(cfg, QFFNAdapter)
        shared = ReplacementConfig.from_cfg(cfg)
        config = cls(**dataclasses.asdict(shared), tau_init=float(own.tau_init), quantum_ffn=own.quantum_ffn)
        if not (config.quantum_ffn or config.quantum_heads):
            raise ConfigError("adapter.quantum_ffn=false and adapter.quantum_heads=false leave nothing quantum")
        return config


def _attention_module(layer: nn.Module) -> nn.Module:
    attn = getattr(layer, "self_attn", None)
    if attn is None or not hasattr(attn, "head_dim"):
        raise ConfigError(
            f"{type(layer).__name__}: no self_attn with head_dim (quantum heads need a Llama-style attention)"
        )
    return attn


def inject(model: nn.Module, cfg: DictConfig, device: Device) -> list[str]:
    """Replace the FFNs of the selected layers by :class:`QuantumFFN` (their weights are deleted) and, with
    ``quantum_heads``, give every layer's attention :class:`QuantumHeads`. Returns the replaced/added site names.

    Parameters are float32 (float64 for a float64 model) on each layer's device.
    Raises:
        ConfigError: bad config values, a device that cannot run QFFN circuits, or a model without ``mlp`` or
            ``self_attn``.
    """
    config = QFFNConfig.from_cfg(cfg)
    device.require_ansatz()
    stack = decoder_layers(model)
    hidden = model.config.hidden_size
    dtype = next(model.parameters()).dtype
    dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    sites = []
    for idx in config.layers(len(stack)) if config.quantum_ffn else []:
        if not hasattr(stack[idx], "mlp"):
            raise ConfigError(f"decoder layer {idx} has no mlp to replace")
        stack[idx].mlp = QuantumFFN(hidden, config.depth, device, dtype).to(next(stack[idx].parameters()).device)
        sites.append(f"layers.{idx}.mlp")
    if config.quantum_heads:
        n_q = heads_per_layer(config.fraction, model.config.num_attention_heads)
        if n_q:
            for idx, layer in enumerate(stack):
                attn = _attention_module(layer)
                attn.qadapt_heads = QuantumHeads(n_q, attn.head_dim, config.head_depth, config.tau_init, device, dtype)
                sites.append(f"layers.{idx}.self_attn.qadapt_heads")
            register_attention(model)
    return sites


def describe(cfg: DictConfig) -> str:
    """Short label, e.g. ``qffn(half, D=4, heads D=4, spread)``. Raises: ConfigError for bad config values."""
    c = QFFNConfig.from_cfg(cfg)
    heads = f", heads D={c.head_depth}" if c.quantum_heads else ", no quantum heads"
    ffn = f"D={c.depth}" if c.quantum_ffn else "FFNs kept"
    return f"qffn({c.fraction}, {ffn}{heads}, {c.layer_pattern})"


__all__ = [
    "ATTENTION_NAME",
    "FRACTIONS",
    "PATTERNS",
    "QFFNConfig",
    "QuantumFFN",
    "QuantumHeads",
    "allowed_mask",
    "describe",
    "heads_per_layer",
    "inject",
    "param_summary",
    "qffn_params",
    "quantum_head_params",
    "quantum_heads_attention",
    "register_attention",
    "select_layers",
]
