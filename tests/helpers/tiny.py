"""A tiny Llama-architecture model (random weights) for unit tests of code that walks decoder layers."""

from __future__ import annotations

import torch


def tiny_llama(layers: int = 4, seed: int = 0, vocab: int = 97, device: str = "cpu"):
    """``LlamaForCausalLM`` of width 48 (4 query heads, 2 key/value heads, FFN 96), in eval mode.

    Args: layers: decoder layers. seed: torch seed of the weights. vocab: vocabulary size. device: where it is built
    (``meta``: shapes only).
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    with torch.device(device):
        return LlamaForCausalLM(cfg).eval()
