"""What every adapter shares: finding target modules in a decoder stack, swapping them, switching off."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..models.layers import decoder_layers


class AdapterLayer(nn.Module):
    """Base of every injected layer: wraps a frozen ``base`` module and can be switched off."""

    adapter_name = "adapter"

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base
        self.enabled = True
        # (batch, seq) bool: positions whose circuits go to the device; the others are computed exactly.
        # None = every position. Set per batch by :func:`device_positions`.
        self.device_mask: torch.Tensor | None = None


def adapter_modules(model: nn.Module) -> Iterator[tuple[str, AdapterLayer]]:
    """(qualified name, layer) of every injected adapter layer in ``model``."""
    for name, module in model.named_modules():
        if isinstance(module, AdapterLayer):
            yield name, module


@contextmanager
def adapters_disabled(model: nn.Module):
    """Run the frozen base model: every adapter layer passes through to its base module."""
    layers = [m for _, m in adapter_modules(model)]
    before = [m.enabled for m in layers]
    for m in layers:
        m.enabled = False
    try:
        yield model
    finally:
        for m, flag in zip(layers, before):
            m.enabled = flag


@contextmanager
def device_positions(model: nn.Module, mask: torch.Tensor | None):
    """Within the block, adapter layers run their circuits on their device only where ``mask`` ``(batch, seq)``
    is true (e.g. the scored positions of a perplexity batch) and exactly elsewhere."""
    layers = [m for _, m in adapter_modules(model)]
    for m in layers:
        m.device_mask = mask
    try:
        yield model
    finally:
        for m in layers:
            m.device_mask = None


def set_device(model: nn.Module, device) -> None:
    """Point every adapter layer of ``model`` at ``device`` (same trained weights, another execution back end)."""
    for _, m in adapter_modules(model):
        m.device = device


def freeze(model: nn.Module) -> None:
    """Make every parameter of ``model`` non-trainable (the frozen base)."""
    for p in model.parameters():
        p.requires_grad_(False)


def count_trainable(model: nn.Module) -> int:
    """Number of scalar parameters with ``requires_grad`` (works on the meta device)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable adapter tensors by qualified name (what gets saved)."""
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
