"""``qadapt export from_run=runs/<dir> format=peft|merged out=<dir>``: a trained adapter outside qadapt.

* ``peft``: a peft adapter directory (``adapter_config.json`` + ``adapter_model.safetensors``, written by peft's own
  ``save_pretrained``) that ``PeftModel.from_pretrained(base, out)`` loads. CUA on the input side is peft's OFT with
  blocks of b = 2^q and generator S = -A (qadapt applies Q = (I - A)(I + A)^-1 to column vectors, peft multiplies
  row vectors by R = (I - S)(I + S)^-1, and R^T = Q exactly when S = -A); RBS with order 1 only and no padding is OFT
  with blocks of n (the Cayley generator as it is, RBS angles through the inverse Cayley transform); LoRA, OFT and
  BOFT are written as they are. Anything else is refused with the reason.
* ``merged``: the adapter folded into the frozen weights (CUA W Q on the input side, Q W on the output side; the
  free blocks and RBS compounds alike; peft's layers by peft's own ``merge``; norm gains into the norm's weight;
  whole-model runs as they are) and saved with ``save_pretrained``, so ``AutoModelForCausalLM.from_pretrained(out)``
  opens it without qadapt. Replacement adapters (QFFN, the FFN controls) and compressed models change the
  architecture and are refused.

Both write into a temporary folder beside ``out`` and rename it when complete (nothing half-written is left), plus
``qadapt_export.json`` (the run, its adapter config, the format, the commit).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from .. import adapters, models, runs
from ..adapters.base import AdapterLayer, adapter_modules
from ..adapters.cua import CUALinear
from ..adapters.norm_tuning import NormGain
from ..adapters.rbs import CompoundLayer
from ..errors import ConfigError
from ..experiments import run_model
from ..log import log
from ..quantum import cayley

FORMATS = ("peft", "merged")
PEFT_NATIVE = ("lora", "oft", "boft")


def export(cfg: DictConfig, fmt: str, out: str | Path) -> Path:
    """Export the run ``cfg.from_run`` in format ``fmt`` to the new folder ``out``; returns it.

    Raises:
        ConfigError: an unknown format (lists them), no ``from_run``, ``out`` already exists, or an adapter the
            format cannot hold (the message says which and why).
        QadaptError: ``from_run`` is not a finished run or is damaged.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format '{fmt}'; valid choices: {', '.join(FORMATS)}")
    if not cfg.from_run:
        raise ConfigError("qadapt export needs from_run=runs/<dir> (a finished qadapt train run)")
    out = Path(out)
    if out.exists():
        raise ConfigError(f"out={out} exists; choose a new folder or delete it first")
    built = run_model.build(cfg, model_from_run=True)
    trained = built.trained
    if built.compression is not None:
        raise ConfigError(
            f"{cfg.from_run} is a compression-recovery run: its factorised projections are not a transformers "
            "architecture, so neither peft nor a merged checkpoint can hold it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if fmt == "peft":
            _write_peft(built, cfg, tmp)
        else:
            _write_merged(built, tmp)
        provenance = {
            "from_run": str(trained.dir),
            "format": fmt,
            "model": OmegaConf.to_container(cfg.model),
            "adapter": OmegaConf.to_container(trained.cfg.adapter),
            "git_commit": runs.git_commit(),
        }
        (tmp / "qadapt_export.json").write_text(json.dumps(provenance, indent=1, default=str) + "\n")
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"exported {trained.dir} ({adapters.describe(trained.cfg.adapter)}) as {fmt} to {out}")
    return out


# ---- peft ---------------------------------------------------------------------------------------------------------


def _oft_generators(layer: AdapterLayer, name: str) -> tuple[int, torch.Tensor]:
    """(block size, peft's OFT weight ``(n_blocks, b(b-1)/2)``) of a CUA or order-1 RBS layer; ConfigError else."""
    if isinstance(layer, CUALinear):
        if layer.config.side != "input":
            raise ConfigError(
                f"{name}: CUA on the output side has no peft form (peft's OFT rotates a layer's input); "
                "use format=merged"
            )
        return layer.config.block_size, -layer.generator.detach()  # S = -A: see the module docstring
    if isinstance(layer, CompoundLayer):
        c = layer.cfg
        if tuple(c.orders) != (1,) or c.size != c.n or c.side != "input" or c.block_share:
            raise ConfigError(
                f"{name}: RBS with orders {list(c.orders)}, block size {c.size}, side {c.side}, "
                f"block_share {c.block_share} is not an OFT rotation (only orders [1], no padding, input side, "
                "unshared blocks are); use format=merged"
            )
        if not isinstance(layer.base, nn.Linear) or c.parametrization == "free":
            raise ConfigError(f"{name}: only orthogonal RBS on nn.Linear layers export to peft; use format=merged")
        a = layer.base_matrix().detach().double()
        rows, cols = torch.triu_indices(c.n, c.n, offset=1)
        return c.n, cayley(a)[:, rows, cols].to(layer.weight.dtype)  # the Cayley transform is its own inverse
    raise ConfigError(f"{name}: {type(layer).__name__} has no peft form; use format=merged")


def _write_peft(built: run_model.RunModel, cfg: DictConfig, folder: Path) -> None:
    from peft import OFTConfig, get_peft_model

    adapter = built.trained.cfg.adapter
    _refuse_replacements(adapter)
    if built.trained.whole_model or adapter.name == "full":
        raise ConfigError("a whole-model run has no adapter to write in peft's format; use format=merged")
    fresh = models.load(cfg.model).model  # peft writes from its own PeftModel around a plain copy of the base
    if adapter.name in PEFT_NATIVE:
        peft_model = get_peft_model(fresh, adapters.peft_config(fresh, adapter))
        peft_model.base_model.model.load_state_dict(built.model.state_dict(), strict=True)
        _save_peft(peft_model, cfg, folder)
        return
    layers = list(adapter_modules(built.model))
    if adapter.name not in ("cua", "rbs") or not layers:
        raise ConfigError(
            f"adapter={adapter.name} has no peft form (peft holds LoRA, OFT, BOFT; CUA on the input side and order-1 "
            "RBS are OFT); use format=merged"
        )
    blocks = {name: _oft_generators(layer, name) for name, layer in layers}
    sizes = {b for b, _ in blocks.values()}
    if len(sizes) != 1:
        raise ConfigError(f"sites with different block sizes {sorted(sizes)}: peft's OFT has one; use format=merged")
    config = OFTConfig(
        r=0,
        oft_block_size=sizes.pop(),
        target_modules=list(blocks),  # the full names of the adapted projections
        use_cayley_neumann=False,  # the exact Cayley transform, as qadapt's
    )
    peft_model = get_peft_model(fresh, config)
    with torch.no_grad():
        for name, (_, weight) in blocks.items():
            rotation = peft_model.base_model.model.get_submodule(name).oft_R["default"]
            rotation.weight.copy_(weight.to(rotation.weight.dtype))
    _save_peft(peft_model, cfg, folder)


def _save_peft(peft_model, cfg: DictConfig, folder: Path) -> None:
    """peft's own writer; the adapter names the model's hub id as its base (not qadapt's local weight cache)."""
    peft_model.peft_config["default"].base_model_name_or_path = str(cfg.model.hub_id)
    peft_model.save_pretrained(str(folder))


# ---- merged -------------------------------------------------------------------------------------------------------


def merge_into_base(model: nn.Module) -> int:
    """Fold every adapter of ``model`` into its base weights and put the base layers back, in place: afterwards the
    model is a plain transformers model. Returns the number of layers merged.

    Raises:
        ConfigError: a layer that cannot be folded (replacement adapters, a norm bias, a sampled device).
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    count = 0
    with torch.no_grad():
        for name, layer in list(adapter_modules(model)):
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            base = layer.base
            if isinstance(layer, NormGain):
                if layer.bias is not None:
                    raise ConfigError(f"{name}: a norm bias has no place in the model's RMSNorm; use format=peft")
                base.weight.mul_(layer.gain.to(base.weight.dtype))
            else:
                folded = layer.merged_weight()
                if folded is None or base is None:
                    raise ConfigError(
                        f"{name}: {type(layer).__name__} ({layer.adapter_name}) cannot be folded into the model's "
                        "weights (it replaces a block or runs on a sampled device)"
                    )
                weight, bias = folded
                base.weight.copy_(weight.to(base.weight.dtype))
                if bias is not None:
                    base.bias.copy_(bias.to(base.bias.dtype))
            setattr(parent, attr, base)
            count += 1
        for name, module in list(model.named_modules()):
            if isinstance(module, BaseTunerLayer):
                module.merge()
                parent_name, _, attr = name.rpartition(".")
                setattr(model.get_submodule(parent_name), attr, module.get_base_layer())
                count += 1
    return count


def _refuse_replacements(adapter: DictConfig) -> None:
    """ConfigError for an adapter that replaces blocks (QFFN, its classical controls): no format holds it."""
    if adapters.replaces(adapter):
        raise ConfigError(
            f"adapter={adapter.name} replaces blocks of the model with new ones: the result is not the base "
            "architecture, so neither peft nor a transformers checkpoint of that model can hold it"
        )


def _write_merged(built: run_model.RunModel, folder: Path) -> None:
    model = built.model
    _refuse_replacements(built.trained.cfg.adapter)
    merged = merge_into_base(model)
    log(f"merged {merged} adapter layers into the base weights")
    model.requires_grad_(False)
    model.save_pretrained(str(folder), safe_serialization=True)
    built.tokenizer.save_pretrained(str(folder))
