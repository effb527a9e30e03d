"""Adapters, one module per method (config + layer + injection, as peft's tuners), one registry."""

from .base import adapter_state_dict, adapters_disabled, device_positions, merged, set_device
from .peft_baselines import peft_config
from .registry import (
    ADAPTERS,
    AdapterSpec,
    adapter_layers,
    adapts,
    apply,
    block_circuit_adapters,
    circuits,
    describe,
    load_adapter_state,
    replaces,
    require_device,
    structure,
)

__all__ = [
    "ADAPTERS",
    "AdapterSpec",
    "apply",
    "block_circuit_adapters",
    "adapts",
    "circuits",
    "describe",
    "replaces",
    "require_device",
    "structure",
    "adapter_layers",
    "adapter_state_dict",
    "adapters_disabled",
    "device_positions",
    "load_adapter_state",
    "merged",
    "peft_config",
    "set_device",
]
