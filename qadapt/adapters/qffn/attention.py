"""The transformers attention function that routes a layer's first h heads through its :class:`QuantumHeads`.

Source: QFFN paper ("Less Bits, More Qubits", ../shared/papers/002_*.txt), Section 3.3 / Algorithm 1: "After
computing queries, keys, and values in parallel, some heads proceed classically while others are routed to quantum
attention". Registered once per process under :data:`ATTENTION_NAME` with transformers' ``AttentionInterface`` (and
SDPA's mask builder); a model injected with quantum heads switches to it (:func:`register_attention`). Attention
modules without ``qadapt_heads`` (or with them switched off) run SDPA unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .heads import QuantumHeads

ATTENTION_NAME = "qadapt_quantum_heads"


def allowed_mask(attention_mask: torch.Tensor | None, t: int, s: int, device) -> torch.Tensor:
    """Which keys each query may attend to.

    Args:
        attention_mask: transformers' mask for the SDPA interface: bool ``(B, 1, T, S)`` (True = attend), an additive
            float mask (0 = attend, -inf = masked), or None (plain causal).
        t: T queries; s: S keys (S > T with a KV cache: the queries are the last T positions).
    Returns:
        bool ``(B or 1, 1, T, S)``, True = may attend; causal aligned to the last key when ``attention_mask`` is None.
    """
    if attention_mask is None:
        rows = torch.arange(t, device=device)[:, None] + (s - t)
        return (torch.arange(s, device=device)[None, :] <= rows)[None, None]
    if attention_mask.dtype == torch.bool:
        return attention_mask
    return attention_mask == 0  # additive float mask: 0 = attend, -inf = masked


def quantum_heads_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """transformers attention function: heads 0..h-1 of ``module`` use its ``qadapt_heads`` kernel, the rest SDPA.

    Shapes as transformers' ``sdpa_attention_forward``: query ``(B, H, T, d_h)``, key/value ``(B, H_kv, S, d_h)``
    (grouped KV heads are repeated); returns ``((B, T, H, d_h), None)`` (no attention weights). A plain causal window
    on the exact device takes the blockwise path (:meth:`QuantumHeads.causal_attention`); padding masks, KV caches,
    dropout and other devices take the full kernel (:meth:`QuantumHeads.kernel`), whose pairs a device runs.
    """
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    heads: QuantumHeads | None = getattr(module, "qadapt_heads", None)
    if heads is None or not heads.enabled:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    h, t, s = heads.n_heads, query.shape[2], key.shape[2]
    allowed = allowed_mask(attention_mask, t, s, query.device)
    if attention_mask is None and s == t:  # plain causal: SDPA's causal kernel skips the masked half
        classical = F.scaled_dot_product_attention(
            query[:, h:], key[:, h:], value[:, h:], is_causal=t > 1, dropout_p=dropout, scale=scaling
        )
    else:
        classical = F.scaled_dot_product_attention(
            query[:, h:], key[:, h:], value[:, h:], attn_mask=allowed, dropout_p=dropout, scale=scaling
        )
    if heads.device.is_exact and attention_mask is None and s == t and not (dropout and module.training):
        quantum = heads.causal_attention(query[:, :h], key[:, :h], value[:, :h])  # blockwise, the masked half skipped
    else:  # padding masks, KV caches, dropout, and devices that run (query, key) circuits
        scores = heads.kernel(query[:, :h], key[:, :h], allowed) * heads.log_tau.exp()[None, :, None, None]
        scores = torch.where(allowed, scores, scores.new_full((), float("-inf")))  # (masked_fill has no meta kernel)
        weights = torch.softmax(scores, dim=-1).to(value.dtype)
        if dropout and module.training:
            weights = F.dropout(weights, p=dropout)
        quantum = weights @ value[:, :h]
    return torch.cat([quantum, classical], dim=1).transpose(1, 2).contiguous(), None


def register_attention(model: nn.Module) -> None:
    """Route ``model``'s attention through :func:`quantum_heads_attention` (SDPA masks; classical heads unchanged).

    Registers :data:`ATTENTION_NAME` with transformers (process-wide; registering again replaces it) and sets the
    model's attention implementation to it.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, quantum_heads_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    model.set_attn_implementation(ATTENTION_NAME)
