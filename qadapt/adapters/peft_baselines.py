"""Classical baselines through HF peft (the real library, not re-implemented): LoRA, OFT, BOFT; plus full
fine-tuning. Each is injected with ``peft.inject_adapter_in_model`` into the plain model, so they go through
the same registry, training loop and parameter count as our own adapters.

Target modules: ``adapter.modules``, by default the model's ``model.adapter_targets`` (configs/model/<name>.yaml: the
attention query and value projections, ``q_proj``/``v_proj`` on Llama-family models, ``query``/``value`` on BERT,
the 1x1 convolutions on EfficientNet-Lite0), so ``adapter=lora`` fits whichever model is chosen.

Parameters per ``nn.Linear(d_in, d_out)`` site (peft's layouts):
    LoRA r:                r (d_in + d_out)
    OFT block b:           (d_in / b) * b(b-1)/2                 (Cayley, exact: use_cayley_neumann=False)
    BOFT block b, m factors: m * (d_in / b) * b^2 + d_out   (peft stores whole b x b generators, skew-symmetrised
                           in the forward pass, and trains a per-output scale; m > 1 needs peft's CUDA extension)
"""

from __future__ import annotations

import warnings

from omegaconf import DictConfig
from torch import nn

from ..errors import ConfigError
from ..models.layers import decoder_layers, resolve_layers


def _sites(model: nn.Module) -> list[str]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [name for name, module in model.named_modules() if isinstance(module, BaseTunerLayer)]


def _layer_names(model: nn.Module) -> list[str]:
    """Last name components of the layers peft can target (nn.Linear, nn.Conv2d), for error messages."""
    layers = (nn.Linear, nn.Conv2d)
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, layers)})


def _inject(model: nn.Module, peft_config) -> list[str]:
    from peft import inject_adapter_in_model

    try:
        inject_adapter_in_model(peft_config, model)
    except ValueError as err:  # peft: target modules not found, block size not dividing a width
        message = f"peft could not inject {type(peft_config).__name__}: {str(err).splitlines()[0][:300]}"
        if "not found" in str(err):
            targets = peft_config.target_modules
            targets = sorted(targets) if isinstance(targets, (set, list)) else targets
            message += (
                f" (adapter.modules={targets}, default: model.adapter_targets); "
                f"valid choices: {', '.join(_layer_names(model))}"
            )
        raise ConfigError(message) from None
    return _sites(model)


def peft_config(model: nn.Module, cfg: DictConfig):
    """The peft config object ``adapter=lora|oft|boft`` injects (``qadapt export format=peft`` writes the same).

    Raises:
        ConfigError: another adapter, a layer index out of range, or BOFT factors > 1 without peft's CUDA extension.
    """
    builders = {"lora": _lora_config, "oft": _oft_config, "boft": _boft_config}
    if cfg.name not in builders:
        raise ConfigError(f"adapter={cfg.name} is not a peft adapter; valid choices: {', '.join(builders)}")
    return builders[cfg.name](model, cfg)


def inject_lora(model: nn.Module, cfg: DictConfig, device=None) -> list[str]:
    """peft's LoRA (Hu et al. 2021) on ``cfg.modules``: W' = W + (alpha / r) B A; returns the site names.
    ``cfg.layers`` (decoder-layer indices, negative from the end; null = all) becomes peft's ``layers_to_transform``.

    Raises:
        ConfigError: peft cannot inject (no module matches ``cfg.modules``), a layer index is out of range or the
            model has no decoder stack.
    """
    return _inject(model, _lora_config(model, cfg))


def _layers(model: nn.Module, cfg: DictConfig) -> list[int] | None:
    """``cfg.layers`` as peft's ``layers_to_transform``: non-negative indices of the decoder stack."""
    layers = cfg.get("layers")
    return None if layers is None else resolve_layers(layers, len(decoder_layers(model)))


def _lora_config(model: nn.Module, cfg: DictConfig):
    from peft import LoraConfig

    layers = _layers(model, cfg)
    return LoraConfig(
        r=int(cfg.r),
        lora_alpha=float(cfg.alpha),
        lora_dropout=float(cfg.dropout),
        target_modules=list(cfg.modules),
        layers_to_transform=layers,
    )


def inject_oft(model: nn.Module, cfg: DictConfig, device=None) -> list[str]:
    """peft's OFT (Qiu et al. 2023) on ``cfg.modules``: input features rotated by a block-diagonal Cayley rotation of
    block size ``cfg.block_size``; returns the site names.

    Raises:
        ConfigError: peft cannot inject (no module matches, or the block size does not divide a layer's input width).
    """
    return _inject(model, _oft_config(model, cfg))


def _oft_config(model: nn.Module, cfg: DictConfig):
    from peft import OFTConfig

    return OFTConfig(
        r=0,
        oft_block_size=int(cfg.block_size),
        target_modules=list(cfg.modules),
        use_cayley_neumann=bool(cfg.cayley_neumann),
        layers_to_transform=_layers(model, cfg),
    )


def inject_boft(model: nn.Module, cfg: DictConfig, device=None) -> list[str]:
    """peft's BOFT. Its butterfly factors > 1 need peft's CUDA extension (fbd_cuda, built with nvcc); without it peft
    silently falls back to one factor, so asking for more here is an error instead of a mislabelled result.

    Raises:
        ConfigError: ``butterfly_factor`` > 1 where peft's CUDA extension cannot be built.
    """
    config = _boft_config(model, cfg)
    with warnings.catch_warnings():  # peft warns at injection that the extension is missing; see _boft_config
        warnings.simplefilter("ignore")
        return _inject(model, config)


def _boft_config(model: nn.Module, cfg: DictConfig):
    from peft import BOFTConfig
    from peft.tuners.boft import layer as boft_layer

    factor = int(cfg.butterfly_factor)
    with warnings.catch_warnings():  # peft warns each time it fails to build the extension; we say it once, below
        warnings.simplefilter("ignore")
        has_extension = boft_layer.get_fbd_cuda() is not None
    if factor > 1 and not has_extension:
        raise ConfigError(
            f"adapter.butterfly_factor={factor} needs peft's BOFT CUDA extension (a CUDA GPU and "
            "nvcc); without it peft uses 1 factor (block-diagonal rotation + output scale): set "
            "adapter.butterfly_factor=1"
        )
    return BOFTConfig(
        boft_block_size=int(cfg.block_size),
        boft_n_butterfly_factor=factor,
        target_modules=list(cfg.modules),
        boft_dropout=0.0,
    )


def inject_full(model: nn.Module, cfg: DictConfig, device=None) -> list[str]:
    """Full fine-tuning: every parameter trainable (the registry froze them first)."""
    for p in model.parameters():
        p.requires_grad_(True)
    return ["*"]


def describe_lora(cfg: DictConfig) -> str:
    layers = cfg.get("layers")
    return f"lora(r={cfg.r})" if layers is None else f"lora(r={cfg.r}, layers={','.join(str(i) for i in layers)})"


def describe_oft(cfg: DictConfig) -> str:
    layers = cfg.get("layers")
    return (
        f"oft(b={cfg.block_size})"
        if layers is None
        else f"oft(b={cfg.block_size}, layers={','.join(map(str, layers))})"
    )


def describe_boft(cfg: DictConfig) -> str:
    return f"boft(b={cfg.block_size},m={cfg.butterfly_factor})"


def describe_full(cfg: DictConfig) -> str:
    return "full"
