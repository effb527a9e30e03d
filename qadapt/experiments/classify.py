"""Classification fine-tuning (QuIC experiments, ``task=glue`` and ``task=vtab``):

    qadapt train model=minilm_l6 task=glue task.subtask=rte adapter=rbs train=classify
    qadapt train model=efficientnet_lite0 task=vtab task.subtask=mnist adapter=rbs train=classify

    model  = encoders.load_{text,image}_classifier(cfg.model, classes) # backbone + fresh linear head
    sites  = adapters.apply(model, cfg.adapter)                        # freeze, inject (rbs, lora, oft, boft, full)
    head   = trainable as well, for every method (counted apart from the adapter)
    fit    : training/classifier.py, train.epochs over task.max_train examples (or train.max_steps)
    score  = the task's metric on task.max_eval held-out examples (qadapt/eval/metrics.py)

Splits (``task.split``): ``test`` scores the reported split (GLUE: the official dev split, as in the literature;
VTAB-style: the test part); ``valid`` scores the selection split, which is never reported (GLUE: the last
``task.valid_examples`` of a fixed shuffle of the train split, seed 0; VTAB-style: VTAB-1k's 200 validation
images). Training never sees either, whatever ``split`` says, so a selection run and a final run train on the same
examples.

Budget (CPU-scaled, the same for every method of a table column). GLUE: the training examples are the first
``task.max_train`` of that shuffle without the selection slice (the same for every run seed), the evaluation set the
first ``task.max_eval`` of the split scored. VTAB-style: the VTAB-1k protocol's 800 training images
(qadapt/data/images.py), the test part capped by ``task.max_test``. The run seed sets the head's initialisation and
the batch order. Each run writes its predictions (``predictions.csv``: example, label, prediction) for paired tests.
BatchNorm statistics stay frozen (eval mode) for every method, the frozen-backbone convention. Every row
records the budget, the data source and the parameter counts.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from .. import adapters, runs
from ..adapters.base import count_trainable
from ..data.glue import glue_parts, load_glue, task_spec
from ..data.images import vtab_split
from ..errors import ConfigError
from ..eval.metrics import score
from ..log import log
from ..models.encoders import HEAD, load_image_classifier, load_text_classifier
from ..results.collapse import reason
from ..training.classifier import Encoded, Images, fit, predict

KINDS = {"glue": ("text_encoder", "minilm_l6, deberta_v3_base"), "vtab": ("vision", "efficientnet_lite0, dinov2_large")}


def check(cfg: DictConfig) -> None:
    """Raise unless the model, train group and subtask fit a classification task.

    Raises:
        ConfigError: a backbone of the wrong kind, a train group without ``epochs``, or an unknown GLUE task.
    """
    kind, valid = KINDS[cfg.task.name]
    if cfg.model.get("kind") != kind:
        raise ConfigError(
            f"task={cfg.task.name} needs a {kind} backbone; model={cfg.model.name} is not one (valid choices: {valid})"
        )
    if "epochs" not in cfg.train:
        raise ConfigError(f"task={cfg.task.name} trains a classifier: add train=classify")
    if cfg.task.name == "glue":
        task_spec(str(cfg.task.subtask))


SPLITS = ("test", "valid")
PREDICTIONS_FILE = "predictions.csv"


def _split(cfg: DictConfig) -> str:
    split = str(cfg.task.split)
    if split not in SPLITS:
        raise ConfigError(f"unknown task.split '{split}'; valid choices: {', '.join(SPLITS)}")
    return split


def adapter_param_count(cfg: DictConfig) -> int:
    """Trainable adapter parameters of ``cfg.adapter`` on ``cfg.model`` (head excluded; real weights, seconds)."""
    check(cfg)
    model = load_text_classifier(cfg.model, 2)[0] if cfg.task.name == "glue" else load_image_classifier(cfg.model, 2)[0]
    adapters.apply(model, cfg.adapter, None)  # freezes everything, head included, then injects
    return count_trainable(model)


def _build(cfg: DictConfig):
    """(model with a fresh head, training data, evaluation data, facts for the row). The head's init follows
    cfg.seed."""
    name = str(cfg.task.subtask)
    if cfg.task.name == "glue":
        spec = task_spec(name)
        train_ex = load_glue(name, "train", cfg.data_dir)
        rows, valid_rows = glue_parts(len(train_ex.labels), cfg.task.max_train, int(cfg.task.valid_examples))
        torch.manual_seed(int(cfg.seed))
        model, tokenizer, source = load_text_classifier(cfg.model, spec.num_labels)
        max_length = int(cfg.task.max_length)
        train_data = Encoded(tokenizer, train_ex, rows, max_length)
        cap = None if cfg.task.max_eval is None else int(cfg.task.max_eval)
        if _split(cfg) == "valid":
            eval_ex, eval_rows = train_ex, valid_rows[:cap]
            eval_source = f"{train_ex.source} (selection slice: last {len(valid_rows)} of a fixed shuffle)"
        else:
            eval_ex = load_glue(name, "dev", cfg.data_dir)
            eval_rows = list(range(len(eval_ex.labels)))[:cap]
            eval_source = eval_ex.source
        eval_data = Encoded(tokenizer, eval_ex, eval_rows, max_length)
        return (
            model,
            train_data,
            eval_data,
            {
                "regression": spec.labels is None,
                "metric": spec.metric,
                "model_source": source,
                "train_source": train_ex.source,
                "eval_source": eval_source,
            },
        )
    parts = vtab_split(name, cfg.data_dir, cfg.task.max_test)
    scored = "val" if _split(cfg) == "valid" else "test"
    torch.manual_seed(int(cfg.seed))
    model, source = load_image_classifier(cfg.model, parts["train"].classes)
    size = int(cfg.task.image_size)
    train_data, eval_data = (Images(parts[k], size, cfg.model.mean, cfg.model.std) for k in ("train", scored))
    return (
        model,
        train_data,
        eval_data,
        {
            "regression": False,
            "metric": "accuracy",
            "model_source": source,
            "train_source": f"{parts['train'].source} (vtab-1k train 800)",
            "eval_source": f"{parts[scored].source} ({'vtab-1k validation' if scored == 'val' else 'test'} "
            f"{len(parts[scored].labels)})",
        },
    )


def save_predictions(run_dir, predictions: list[float], labels: list[float]) -> None:
    """``run_dir/predictions.csv``: example (position in the scored split), label, prediction (class index or
    regression score); written whole or not at all."""
    from ..results import write_text_atomic

    lines = ["example,label,prediction"] + [f"{i},{y!r},{p!r}" for i, (y, p) in enumerate(zip(labels, predictions))]
    write_text_atomic(run_dir / PREDICTIONS_FILE, "\n".join(lines) + "\n")


def train(cfg: DictConfig, overrides: list[str], memo=None) -> dict:
    """Train one method on one GLUE task or image set with one seed, evaluate, save trainable tensors, append one row.

    Raises:
        ConfigError, DataMissing, ModelUnavailable, TrainingDiverged (no row is written on any error).
    """
    run = runs.start(cfg, "train", overrides)
    check(cfg)
    model, train_data, eval_data, info = _build(cfg)
    backbone = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(HEAD + "."))
    sites = adapters.apply(model, cfg.adapter, None)
    for p in model.get_submodule(HEAD).parameters():
        p.requires_grad_(True)
    head_params = sum(p.numel() for p in model.get_submodule(HEAD).parameters())
    trainable = count_trainable(model)
    log(
        f"{adapters.describe(cfg.adapter)}: {len(sites)} sites, {trainable - head_params:,} adapter + "
        f"{head_params:,} head parameters trainable"
    )
    regression, metric = info["regression"], info["metric"]
    trained = fit(model, train_data, cfg.train, int(cfg.seed), regression)
    preds = predict(model, eval_data, int(cfg.train.eval_batch_size), regression)
    metrics = score(metric, preds.tolist(), eval_data.labels.tolist())
    log(f"{cfg.task.subtask} {metric}: {metrics['score']:.4f}")

    runs.prepare(run)
    save_predictions(run.dir, preds.tolist(), eval_data.labels.tolist())
    row = runs.row(run, model_source=info["model_source"])
    row.update(
        {
            "metric": metric,
            "score": metrics["score"],
            **{f"metric_{k}": v for k, v in metrics.items() if k != "score"},
            "adapter_sites": len(sites),
            "trainable_params": trainable,
            "adapter_params": trainable - head_params,
            "head_params": head_params,
            "backbone_params": backbone,
            "train_examples": len(train_data),
            "eval_examples": len(eval_data),
            "train_source": info["train_source"],
            "eval_source": info["eval_source"],
            **trained,
        }
    )
    row["collapse"] = reason(row, preds.tolist(), eval_data.labels.tolist(), regression)
    return runs.finish(run, row, model)
