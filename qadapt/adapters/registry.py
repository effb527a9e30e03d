"""``adapter=`` names to injection functions. Adding a method = a module here + ``configs/adapter/<name>.yaml``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from omegaconf import DictConfig
from torch import nn

from ..devices.base import Device
from ..errors import ConfigError
from . import cua, ffn_lowrank, peft_baselines, qffn, rbs
from ..models.layers import decoder_layers
from .base import adapter_modules, adapter_state_dict, adapters_disabled, freeze

# name -> (inject(model, cfg, device) -> site names, describe(cfg) -> short label)
ADAPTERS: dict[str, tuple[Callable, Callable] | None] = {
    "none": None,
    "cua": (cua.inject, cua.describe),
    "qffn": (qffn.inject, qffn.describe),
    "ffn_lowrank": (ffn_lowrank.inject, ffn_lowrank.describe),
    "rbs": (rbs.inject, rbs.describe),
    # classical baselines through peft (qadapt/adapters/peft_baselines.py)
    "lora": (peft_baselines.inject_lora, peft_baselines.describe_lora),
    "oft": (peft_baselines.inject_oft, peft_baselines.describe_oft),
    "boft": (peft_baselines.inject_boft, peft_baselines.describe_boft),
    "full": (peft_baselines.inject_full, peft_baselines.describe_full),
}
# adapters that replace a sub-layer (its weights are deleted) instead of wrapping a frozen one: the base model is
# not recoverable by switching them off, so training keeps a frozen copy as teacher and base
REPLACEMENTS = frozenset({"qffn", "ffn_lowrank"})


def apply(model: nn.Module, cfg: DictConfig, device: Device) -> list[str]:
    """Freeze ``model`` and inject the adapter named by ``cfg.name``; returns the adapted site names.

    Raises:
        ConfigError: unknown adapter name (lists valid ones), or the adapter's own config errors.
    """
    if cfg.name not in ADAPTERS:
        raise ConfigError(f"unknown adapter '{cfg.name}'; valid choices: {', '.join(sorted(ADAPTERS))}")
    freeze(model)
    entry = ADAPTERS[cfg.name]
    return [] if entry is None else entry[0](model, cfg, device)


def describe(cfg: DictConfig) -> str:
    entry = ADAPTERS.get(cfg.name)
    return "none" if entry is None else entry[1](cfg)


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
        raise ConfigError(f"adapter weights do not match the adapter config: missing {missing[:3]}, unexpected {extra[:3]}")
    with torch.no_grad():
        for name, tensor in state.items():
            if own[name].shape != tensor.shape:
                raise ConfigError(f"adapter tensor {name}: shape {tuple(tensor.shape)} != {tuple(own[name].shape)}")
            own[name].copy_(tensor)


__all__ = ["ADAPTERS", "REPLACEMENTS", "apply", "describe", "adapter_layers", "adapter_state_dict", "adapters_disabled", "load_adapter_state"]
