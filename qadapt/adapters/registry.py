"""``adapter=`` names to injection functions. Adding a method = a module here + ``configs/adapter/<name>.yaml``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import nn

from ..devices.base import Device
from ..errors import ConfigError
from ..models.layers import decoder_layers
from . import blockdiag, cua, ffn_lowrank, ffn_pruned, norm_tuning, peft_baselines, qffn, rbs
from .base import adapter_modules, adapter_state_dict, freeze


@dataclass(frozen=True)
class AdapterSpec:
    """One adapter method, as peft's tuner registry has them.

    Attributes:
        inject: ``inject(model, cfg, device) -> site names``; freezes nothing itself (:func:`apply` froze the model).
        describe: ``describe(cfg) -> short label`` for rows and logs, e.g. ``cua(q=2,input)``.
        replaces: the adapter replaces a sub-layer (its weights are deleted) instead of wrapping a frozen one: the base
            model is not recoverable by switching it off, so training keeps a frozen copy as teacher and base.
        circuits: what the adapter runs on a device: ``blocks`` (block-unitary circuits: any device; a noise model of
            them can train it, ``train.noise``), ``ansatz`` (amplitude-encoded variational circuits: only devices that
            run them, :meth:`Device.require_ansatz`), or None (classical: the device is not used).
    """

    inject: Callable[[nn.Module, DictConfig, Device], list[str]]
    describe: Callable[[DictConfig], str]
    replaces: bool = False
    circuits: str | None = None


# adapter= name -> spec (None: no adapter, the frozen base model)
ADAPTERS: dict[str, AdapterSpec | None] = {
    "none": None,
    "cua": AdapterSpec(cua.inject, cua.describe, circuits="blocks"),
    "qffn": AdapterSpec(qffn.inject, qffn.describe, replaces=True, circuits="ansatz"),
    "ffn_lowrank": AdapterSpec(ffn_lowrank.inject, ffn_lowrank.describe, replaces=True),
    # the paper's Distilled baseline at our scale: every FFN pruned to QFFN's parameter count (a dense model)
    "ffn_pruned": AdapterSpec(ffn_pruned.inject, ffn_pruned.describe, replaces=True),
    "rbs": AdapterSpec(rbs.inject, rbs.describe),
    # controls for CUA's claims: its blocks without orthogonality, and the cheapest domain adaptation
    "blockdiag": AdapterSpec(blockdiag.inject, blockdiag.describe),
    "norm": AdapterSpec(norm_tuning.inject, norm_tuning.describe),
    # classical baselines through peft (qadapt/adapters/peft_baselines.py)
    "lora": AdapterSpec(peft_baselines.inject_lora, peft_baselines.describe_lora),
    "oft": AdapterSpec(peft_baselines.inject_oft, peft_baselines.describe_oft),
    "boft": AdapterSpec(peft_baselines.inject_boft, peft_baselines.describe_boft),
    "full": AdapterSpec(peft_baselines.inject_full, peft_baselines.describe_full),
}
REPLACEMENTS = frozenset(name for name, spec in ADAPTERS.items() if spec is not None and spec.replaces)


def adapts(cfg: DictConfig) -> bool:
    """Whether the ``adapter`` group names an adapter at all (``adapter=none``: the frozen base model)."""
    return ADAPTERS.get(cfg.name) is not None


def replaces(cfg: DictConfig) -> bool:
    """Whether the adapter ``cfg`` names replaces sub-layers (see :class:`AdapterSpec`)."""
    spec = ADAPTERS.get(cfg.name)
    return spec is not None and spec.replaces


def circuits(cfg: DictConfig) -> str | None:
    """What the adapter ``cfg`` names runs on a device (:attr:`AdapterSpec.circuits`)."""
    spec = ADAPTERS.get(cfg.name)
    return None if spec is None else spec.circuits


def require_device(cfg: DictConfig, device: Device) -> None:
    """Check that ``device`` runs the adapter's circuits.

    Raises:
        ConfigError: an ansatz adapter on a device that does not run ansatz circuits (the device says which do).
    """
    if circuits(cfg) == "ansatz":
        device.require_ansatz()


def block_circuit_adapters() -> list[str]:
    """The adapters whose circuits are block unitaries (what a noise model of block circuits can train)."""
    return sorted(name for name, spec in ADAPTERS.items() if spec is not None and spec.circuits == "blocks")


def apply(model: nn.Module, cfg: DictConfig, device: Device) -> list[str]:
    """Freeze ``model`` and inject the adapter named by ``cfg.name``; returns the adapted site names.

    Raises:
        ConfigError: unknown adapter name (lists valid ones), or the adapter's own config errors.
    """
    if cfg.name not in ADAPTERS:
        raise ConfigError(f"unknown adapter '{cfg.name}'; valid choices: {', '.join(sorted(ADAPTERS))}")
    freeze(model)
    spec = ADAPTERS[cfg.name]
    return [] if spec is None else spec.inject(model, cfg, device)


def describe(cfg: DictConfig) -> str:
    """Short label of the adapter ``cfg`` names (``none`` for the base model)."""
    spec = ADAPTERS.get(cfg.name)
    return "none" if spec is None else spec.describe(cfg)


def structure(model: nn.Module) -> dict[str, dict]:
    """Per adapted site (qualified module name), the structure its layer reports (block size, qubits, side, rank...;
    plain JSON values): saved with the weights (qadapt/runs.py). peft's layers report their class and config."""
    out: dict[str, dict] = {}
    for name, layer in adapter_modules(model):
        report = getattr(layer, "structure", None)
        out[name] = report() if callable(report) else {"layer": type(layer).__name__}
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # peft is a dependency; without it there are no peft layers to describe
        return out
    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer):
            info = {"layer": type(module).__name__}
            for attr in ("r", "oft_block_size", "boft_block_size", "boft_n_butterfly_factor"):
                value = getattr(module, attr, None)
                if isinstance(value, dict) and value:
                    info[attr] = next(iter(value.values()))
            out[name] = info
    return out


def adapter_layers(model: nn.Module) -> list[int]:
    """Indices of the decoder layers that hold an adapter (empty for the base model)."""
    stack = decoder_layers(model)
    return [i for i, layer in enumerate(stack) if any(True for _ in adapter_modules(layer))]


def load_adapter_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load saved adapter tensors into an injected model.

    Raises:
        ConfigError: names or shapes differ from the model's adapter (config mismatch).
    """
    own = dict(model.named_parameters())
    expected = set(adapter_state_dict(model))
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ConfigError(
            f"adapter weights do not match the adapter config: missing {missing[:3]}, unexpected {extra[:3]}"
        )
    with torch.no_grad():
        for name, tensor in state.items():
            if own[name].shape != tensor.shape:
                raise ConfigError(f"adapter tensor {name}: shape {tuple(tensor.shape)} != {tuple(own[name].shape)}")
            own[name].copy_(tensor)
