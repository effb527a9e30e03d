"""The model a config describes, built as qadapt's evaluations score it: the base model, or a finished training run
(``from_run``) with its compression (a compression-recovery run), its adapter on ``cfg.device`` and its trained
weights. Shared by ``qadapt eval mc``, the lm-evaluation-harness backend and ``qadapt export``."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig
from torch import nn

from .. import adapters, devices, models, runs
from ..devices.base import Device
from ..models.compress import CompressionReport
from .compression_recovery import compressed_model


@dataclass
class RunModel:
    """A model ready to score.

    Attributes:
        model: the transformers causal LM (adapters injected and loaded when ``trained``), in eval mode.
        tokenizer: its tokenizer.  loaded: what :func:`qadapt.models.load` returned (weights and source strings).
        trained: the training run read back, or None for the base model.
        compression: the compression a recovery run was trained on (rebuilt deterministically), else None.
        device: the qadapt device the adapter's circuits run on (``cfg.device``).
    """

    model: nn.Module
    tokenizer: object
    loaded: models.LoadedModel
    trained: runs.Trained | None
    compression: CompressionReport | None
    device: Device


def build(cfg: DictConfig, model_from_run: bool = False) -> RunModel:
    """The base model of ``cfg.model``, or the run ``cfg.from_run`` on the device ``cfg.device``.

    ``model_from_run``: take the model config from the run itself (the lm-eval backend, ``qadapt export``: the user
    names only the run); else the run must have been trained on ``cfg.model`` (``qadapt eval``). Sets
    ``cfg.adapter`` (and with ``model_from_run`` ``cfg.model``) to the run's.

    Raises:
        QadaptError: ``from_run`` is not a finished run, or one of its files is damaged.
        ConfigError: the run was trained on another model than ``cfg.model``; weights that do not fit the adapter.
        ModelUnavailable: the model's weights cannot be found.
    """
    trained = None
    if cfg.from_run:
        trained = runs.load_trained(cfg.from_run, None if model_from_run else cfg.model.name)
        if model_from_run:
            cfg.model = trained.cfg.model
        cfg.adapter = trained.cfg.adapter
    loaded = models.load(cfg.model)
    model, tokenizer = loaded.model, loaded.tokenizer
    report = None
    device = devices.get(cfg.device)
    if trained is not None and trained.cfg.task.get("compression"):
        model, report = compressed_model(trained.cfg, model, tokenizer)
    if trained is not None:
        adapters.apply(model, trained.cfg.adapter, device)
        trained.load_into(model)
    return RunModel(model.eval(), tokenizer, loaded, trained, report, device)
