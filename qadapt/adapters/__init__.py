"""Adapters, one module per method (config + layer + injection, as peft's tuners), one registry."""

from .base import device_positions, set_device
from .registry import ADAPTERS, apply, adapter_layers, adapter_state_dict, adapters_disabled, load_adapter_state

__all__ = ["ADAPTERS", "apply", "adapter_layers", "adapter_state_dict", "adapters_disabled", "device_positions",
           "load_adapter_state", "set_device"]
