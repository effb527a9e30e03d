"""Where things sit inside a transformers model: the decoder stack, layer indices from a config, target linears.

Model structure lookups shared by the adapters, activation caching, distillation and compression.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..errors import ConfigError


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


def find_targets(
    model: nn.Module, modules: Sequence[str], layers: Sequence[int] | None
) -> list[tuple[str, nn.Module, str]]:
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
