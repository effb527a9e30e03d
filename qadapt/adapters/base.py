"""What every adapter shares: finding target modules in a decoder stack, swapping them, switching off."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError


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


def fold_blocks(
    weight: torch.Tensor, bias: torch.Tensor | None, blocks: torch.Tensor, side: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A linear layer's ``weight (out, in)`` and ``bias (out,)`` with block-diagonal M = diag(M_1, ..., M_n)
    ``blocks (n, b, b)`` applied to its input (W M) or output (M W, M bias), in the weight's dtype."""
    m = blocks.to(weight.dtype)
    n, b, _ = m.shape
    if side == "input":
        return torch.einsum("onc,nck->onk", weight.reshape(weight.shape[0], n, b), m).reshape(weight.shape), bias
    w = torch.einsum("nck,nki->nci", m, weight.reshape(n, b, -1)).reshape(weight.shape)
    return w, None if bias is None else torch.einsum("nck,nk->nc", m, bias.reshape(n, b)).reshape(bias.shape)


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
        # (weight, bias) with the adapter folded in while merged (:func:`merged`); None = computed per forward
        self.merged: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def merged_weight(self) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """The base layer's ``(weight, bias)`` with this adapter folded in (same shapes as the base's), or None when
        the adapter is not a fixed linear change of one layer's weights (replacements, quantum circuits sampled on a
        device). Used by :func:`merged` (evaluation at the base model's speed) and ``qadapt export format=merged``."""
        return None

    def count_merged(self, x: torch.Tensor) -> None:
        """While merged, record the circuits the unmerged forward would have counted on ``x`` (an exact device
        counts what would run on hardware either way). Default: none."""

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

    def block_structure(self, block_size: int, side: str, **own) -> dict:
        """:meth:`structure` of a block-diagonal adapter on a width d: its ``own`` keys, then ``block_size`` b,
        ``side``, ``n_blocks`` (d / b) and ``width`` (d)."""
        n_blocks = self.width // block_size
        return {**AdapterLayer.structure(self), **own, "block_size": block_size, "side": side, "n_blocks": n_blocks,
                "width": self.width}  # fmt: skip


def block_width(base: nn.Linear, side: str, block_size: int, name: str, hint: str) -> int:
    """The width d a block-diagonal adapter acts on: ``base``'s input features (``side=input``) or output features.

    Raises:
        ConfigError: d is not a multiple of ``block_size``; the message names the projection and ends with ``hint``
            (``{width}`` in it is filled in).
    """
    width = base.in_features if side == "input" else base.out_features
    if width % block_size:
        raise ConfigError(
            f"{name or 'projection'}: {side} width {width} is not divisible by {hint.format(width=width)}"
        )
    return width


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


def _mergeable(tuner: nn.Module) -> bool:
    """Whether peft's ``merge`` can fold ``tuner`` into its base layer: it writes ``base_layer.weight.data`` in
    place, which changes the layer only when that weight is a stored Parameter. A factorised projection
    (qadapt/models/compress.py LowRankLinear: ``weight`` computed from its factors on access) would take the update
    into a temporary tensor and lose the adapter, so such tuners run unmerged."""
    return isinstance(getattr(tuner.get_base_layer(), "weight", None), nn.Parameter)


@contextmanager
def merged(model: nn.Module):
    """Fold every adapter into its layer's weights for the duration of the block, as peft's ``merge`` / ``unmerge``
    do: qadapt layers that have a :meth:`AdapterLayer.merged_weight` run one plain ``F.linear`` (or norm) with it,
    peft's tuner layers are merged into their base weights and unmerged after. Layers that cannot merge run as they
    are, and so do peft layers on a base whose weight is not a stored Parameter (a compressed projection).
    For exact evaluation only (no gradient flows to the adapter while merged).

    Yields: the number of layers merged."""
    layers = [m for _, m in adapter_modules(model) if m.enabled and m.merged is None]
    done = []
    tuners = [m for m in _peft_layers(model) if not m.disable_adapters and not m.merged and _mergeable(m)]
    try:
        with torch.no_grad():
            for m in layers:
                weights = m.merged_weight()
                if weights is not None:
                    m.merged = tuple(None if t is None else t.detach() for t in weights)
                    done.append(m)
            for m in tuners:
                m.merge()
        yield len(done) + len(tuners)
    finally:
        for m in done:
            m.merged = None
        with torch.no_grad():
            for m in tuners:
                m.unmerge()


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
