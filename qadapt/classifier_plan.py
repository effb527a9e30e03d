"""``qadapt plan`` for the classification backbones (``task=glue``, ``task=vtab``): parameters, memory and training
compute of a run from the backbone's transformers config (``model.architecture``) on the meta device, no weights.

This prices the QuIC paper's setting before anyone downloads it: ``qadapt plan model=deberta_v3_base task=glue
task.subtask=mnli ...`` or the overrides of configs/study/glue_paper.yaml and vtab_paper.yaml. Measured as
:mod:`qadapt.resources` measures a language model:

- parameters: backbone, adapter (trainable, head excluded) and the fresh linear head, counted after injection;
- weights and trainable state (parameters + gradients + AdamW's two moments), at float32 as classification runs;
- training activations: tensors autograd saves in one step of ``train.batch_size`` examples at ``task.max_length``
  tokens (text; length-bucketed batches are shorter) or ``task.image_size`` pixels square (vision);
- evaluation peak: most bytes alive in a no-grad forward of ``train.eval_batch_size`` examples;
- training compute: FLOPs of one step (forward + backward, counted by ``torch.utils.flop_counter``) times the
  run's steps (``train.max_steps``, else ``train.epochs`` x batches per epoch over the training examples: GLUE's
  train split less its selection slice, capped at ``task.max_train``; VTAB-1k's 800 images), and the hours that
  takes at a sustained rate the user states (``qadapt plan --tflops``).
"""

from __future__ import annotations

import math

import torch
from omegaconf import DictConfig, OmegaConf

from . import adapters
from .data.glue import glue_parts, load_glue, task_spec
from .data.images import vtab_split
from .errors import ConfigError, DataMissing
from .models.encoders import HEAD, ImageClassifier, TextClassifier, hub_vision_features
from .resources import Plan, model_plan, peak_bytes, saved_bytes, step_flops

VTAB_TRAIN = 800  # VTAB-1k: 800 training images per set (and 200 for validation)


def build_meta_classifier(model_cfg: DictConfig, num_labels: int) -> torch.nn.Module:
    """The backbone of ``model.architecture`` with a fresh ``num_labels`` head, on the meta device (no memory).

    Raises:
        ConfigError: the model has no ``architecture`` block.
    """
    from transformers import AutoConfig, AutoModel

    if not model_cfg.get("architecture"):
        raise ConfigError(
            f"model={model_cfg.name} has no architecture block in configs/model/: qadapt plan needs its transformers "
            "config (qadapt params counts it from the weights)"
        )
    arch = OmegaConf.to_container(model_cfg.architecture, resolve=True)
    hf_config = AutoConfig.for_model(arch.pop("model_type"), **arch)
    with torch.device("meta"):
        if model_cfg.kind == "vision":
            backbone = AutoModel.from_config(hf_config)
            return ImageClassifier(backbone, hf_config.hidden_size, num_labels, hub_vision_features)
        pooled = {"add_pooling_layer": False} if model_cfg.drop_pooler else {}
        return TextClassifier(AutoModel.from_config(hf_config, **pooled), num_labels)


def _task_facts(cfg: DictConfig) -> tuple[int, int | None, list[str]]:
    """(labels, training examples or None when the data is absent, notes)."""
    name = str(cfg.task.subtask)
    if cfg.task.name == "glue":
        labels = task_spec(name).num_labels
        try:
            n = len(load_glue(name, "train", cfg.data_dir).labels)
        except DataMissing:
            return labels, None, [f"GLUE {name} is not in {cfg.data_dir}: steps and total compute need its size"]
        rows, _ = glue_parts(n, cfg.task.max_train, int(cfg.task.valid_examples))
        return labels, len(rows), []
    try:
        labels = vtab_split(name, cfg.data_dir, cfg.task.max_test)["train"].classes
        return labels, VTAB_TRAIN, []
    except DataMissing:
        return 10, VTAB_TRAIN, [f"image set {name} is not in {cfg.data_dir}: a 10-class head assumed"]


def plan_classifier(cfg: DictConfig) -> Plan:
    """Resources of the classification run ``cfg`` describes (module docstring), with no weights loaded.

    Raises:
        ConfigError: no ``model.architecture`` block, or the adapter's own config errors.
    """
    num_labels, examples, notes = _task_facts(cfg)
    model = build_meta_classifier(cfg.model, num_labels)
    # adapters build their (small) tensors where they build them; peft moves them to the meta base layers (BOFT's
    # permutation matrices need real values while they are built)
    sites = adapters.apply(model, cfg.adapter, None)
    for p in model.get_submodule(HEAD).parameters():
        p.requires_grad_(True)
    batch, eval_batch = int(cfg.train.batch_size), int(cfg.train.eval_batch_size)
    if cfg.model.kind == "vision":
        size = int(cfg.task.image_size)
        shape, eval_shape = (batch, size), (eval_batch, size)

        def inputs(b):
            return {"pixel_values": torch.zeros(b, 3, size, size, device="meta")}
    else:
        length = int(cfg.task.max_length)
        shape, eval_shape = (batch, length), (eval_batch, length)

        def inputs(b):  # every example at full length: no padding, so no mask (the same attention)
            return {"input_ids": torch.zeros(b, length, dtype=torch.long, device="meta"), "attention_mask": None}

    labels = torch.zeros(batch, dtype=torch.long, device="meta")

    def loss():
        return torch.nn.functional.cross_entropy(model(**inputs(batch)), labels)

    result = model_plan(
        cfg,
        model,
        sites,
        shape,
        saved_bytes(model, loss),
        eval_shape,
        peak_bytes(model, lambda: model(**inputs(eval_batch))),
        None,
    )
    result.inputs = "images" if cfg.model.kind == "vision" else "tokens"
    result.head_params = sum(p.numel() for p in model.get_submodule(HEAD).parameters())
    result.train_step_flops = step_flops(loss)
    result.train_examples = examples
    if cfg.train.get("max_steps"):
        result.train_steps = int(cfg.train.max_steps)
    elif examples is not None:
        result.train_steps = int(cfg.train.epochs) * math.ceil(examples / batch)
    result.notes += notes
    if cfg.model.kind != "vision":
        result.notes.append(
            f"text at the longest length, task.max_length={shape[1]} tokens: length-bucketed batches "
            "(train.length_buckets) are shorter, so memory and compute are upper bounds"
        )
    return result
