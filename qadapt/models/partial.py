"""Run a slice of a decoder stack: layers [start, stop) of a transformers causal LM.

Used by activation caching: the frozen layers below the first adapted layer give the same hidden states
for the base and the adapted model, so they run once. Works by temporarily swapping the model's layer
list (and the final norm, for a prefix), so the model's own forward, masks and rotary embeddings are
used unchanged.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from .layers import decoder_layers


@contextmanager
def layer_range(model: nn.Module, start: int, stop: int | None = None):
    """Within the block, ``model.get_decoder()`` runs only layers [start, stop).

    With ``stop`` set, the final norm is skipped so the output is the residual stream entering layer ``stop``.
    Feed a suffix (start > 0) with ``inputs_embeds`` = that residual stream.
    """
    body = model.get_decoder()
    layers = decoder_layers(model)
    norm = body.norm
    body.layers = nn.ModuleList(list(layers)[start:stop])
    if stop is not None and stop < len(layers):
        body.norm = nn.Identity()
    try:
        yield body
    finally:
        body.layers = layers
        body.norm = norm


def hidden_at(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, layer: int) -> torch.Tensor:
    """``(B, T, d)`` residual stream entering decoder layer ``layer``."""
    if layer == 0:
        return model.get_input_embeddings()(input_ids)
    with layer_range(model, 0, layer) as body:
        return body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state


def final_hidden(
    model: nn.Module, attention_mask: torch.Tensor, *, input_ids=None, start_hidden=None, start: int = 0
) -> torch.Tensor:
    """``(B, T, d)`` final-normed hidden states, from token ids or from the stream entering layer ``start``."""
    body = model.get_decoder()
    if start_hidden is None:
        return body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    with layer_range(model, start) as body:
        return body(inputs_embeds=start_hidden, attention_mask=attention_mask, use_cache=False).last_hidden_state
