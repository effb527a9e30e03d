"""What every adapter shares: finding target modules in a decoder stack, swapping them, switching off."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from ..errors import ConfigError


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


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of a transformers causal LM (``model.model.layers`` for Llama, Qwen, Gemma)."""
    body = model.get_decoder() if hasattr(model, "get_decoder") else model
    layers = getattr(body, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ConfigError(f"{type(model).__name__}: no decoder layer list found (expected .model.layers)")
    return layers


def resolve_layers(spec: Sequence[int] | None, n_layers: int) -> list[int]:
    """Layer indices from a config list (negative = from the end; None = all), sorted, unique.

    Raises:
        ConfigError: an index outside [-n_layers, n_layers).
    """
    if spec is None:
        return list(range(n_layers))
    out = set()
    for i in spec:
        if not -n_layers <= int(i) < n_layers:
            raise ConfigError(f"layer index {i} out of range for a model with {n_layers} layers")
        out.add(int(i) % n_layers)
    return sorted(out)


def find_targets(model: nn.Module, modules: Sequence[str], layers: Sequence[int] | None) -> list[tuple[str, nn.Module, str]]:
    """(qualified name, parent module, attribute) of every ``nn.Linear`` named in ``modules`` in ``layers``.

    Raises:
        ConfigError: a module name matches nothing (lists the linear layers a decoder layer has).
    """
    stack = decoder_layers(model)
    found = []
    for idx in resolve_layers(layers, len(stack)):
        layer = stack[idx]
        for wanted in modules:
            hits = [(n, m) for n, m in layer.named_modules() if n.split(".")[-1] == wanted]
            if not hits:
                linear = sorted({n.split(".")[-1] for n, m in layer.named_modules() if isinstance(m, nn.Linear)})
                raise ConfigError(f"no module '{wanted}' in decoder layer {idx}; valid choices: {', '.join(linear)}")
            for name, _ in hits:
                parent_name, _, attr = name.rpartition(".")
                parent = layer.get_submodule(parent_name) if parent_name else layer
                found.append((f"layers.{idx}.{name}", parent, attr))
    return found


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
