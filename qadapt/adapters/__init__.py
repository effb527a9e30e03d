"""Adapters, one module per method (layer + injection, as peft's tuners; the options in :mod:`.options`), one
registry (:mod:`.registry`).

The names below load on first use (:mod:`qadapt.lazy`): every command's config check imports :mod:`.options`
through this package, and must not pay for torch and peft.
"""

from __future__ import annotations

from .. import lazy

# name -> the module of this package that defines it
_NAMES = {
    "adapter_state_dict": "base",
    "adapters_disabled": "base",
    "device_positions": "base",
    "merged": "base",
    "set_device": "base",
    "peft_config": "peft_baselines",
    **dict.fromkeys(
        (
            "ADAPTERS",
            "AdapterSpec",
            "adapter_layers",
            "adapts",
            "apply",
            "block_circuit_adapters",
            "circuits",
            "describe",
            "load_adapter_state",
            "replaces",
            "require_device",
            "structure",
        ),
        "registry",
    ),
}
__getattr__ = lazy.exports(__name__, _NAMES)
__all__ = sorted(_NAMES)
