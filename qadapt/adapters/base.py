"""What every adapter shares: finding target modules in a decoder stack, swapping them, switching off."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class CircuitSite:
    """Circuits an adapter layer runs per token that a counting forward pass does not see (see
    :meth:`AdapterLayer.circuit_sites`).

    Attributes:
        kind: circuit kind, as :data:`qadapt.devices.base.CIRCUIT_KINDS` (``block``, ``ansatz``, ``overlap``, ``rbs``).
        qubits: register width of each circuit.
        circuits_per_token: mean circuits per token (a float: e.g. (window + 1) / 2 per head for causal pairs).
    """

    kind: str
    qubits: int
    circuits_per_token: float


class AdapterLayer(nn.Module):
    """Base of every injected layer: wraps a frozen ``base`` module (None for a replacement) and can be switched off.

    Every layer answers two questions the same way: :meth:`circuit_sites` (circuits for a resource plan) and
    :meth:`structure` (its shape, saved with the weights).
    """

    adapter_name = "adapter"

    def __init__(self, base: nn.Module | None):
        super().__init__()
        self.base = base
        self.enabled = True
        # (batch, seq) bool: positions whose circuits go to the device; the others are computed exactly.
        # None = every position. Set per batch by :func:`device_positions`.
        self.device_mask: torch.Tensor | None = None

    def circuit_sites(self, window: int) -> list[CircuitSite]:
        """Circuits this layer runs that a counting forward pass (:class:`qadapt.devices.accounting.CircuitCounter`
        on the meta device) does not record, for evaluation windows of ``window`` tokens.

        Circuits whose number grows linearly with the tokens are counted by that pass (the device counts what it
        runs); a layer lists here those whose number per token depends on the window (quantum heads: one per
        allowed (query, key) pair). Default: none.
        """
        return []

    def structure(self) -> dict:
        """The layer's shape as plain JSON values (ints, strings, bools, lists), saved with the weights so a reader
        can rebuild or check the layer: ``{"layer": class name, ...}``; subclasses add their sizes."""
        return {"layer": type(self).__name__}


def adapter_modules(model: nn.Module) -> Iterator[tuple[str, AdapterLayer]]:
    """(qualified name, layer) of every injected adapter layer in ``model``."""
    for name, module in model.named_modules():
        if isinstance(module, AdapterLayer):
            yield name, module


def _peft_layers(model: nn.Module) -> list[nn.Module]:
    """peft's tuner layers (LoRA, OFT, BOFT injected by qadapt/adapters/peft_baselines.py): they switch off with
    ``enable_adapters(False)`` and say whether they are off in ``disable_adapters``."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # peft is a dependency; without it there are no peft layers
        return []
    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


@contextmanager
def adapters_disabled(model: nn.Module):
    """Run the frozen base model: every adapter layer passes through to its base module, qadapt's and peft's alike
    (a base pass with peft's layers left on would score the adapted model as the base)."""
    layers = [m for _, m in adapter_modules(model)]
    before = [m.enabled for m in layers]
    tuners = _peft_layers(model)
    tuners_off = [bool(m.disable_adapters) for m in tuners]
    for m in layers:
        m.enabled = False
    for m in tuners:
        m.enable_adapters(False)
    try:
        yield model
    finally:
        for m, flag in zip(layers, before):
            m.enabled = flag
        for m, off in zip(tuners, tuners_off):
            m.enable_adapters(not off)


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
