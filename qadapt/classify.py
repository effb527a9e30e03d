"""Classification fine-tuning (QuIC experiments): ``qadapt train task=glue task.subtask=rte adapter=rbs train=classify``,
``qadapt train model=efficientnet_lite0 task=vtab task.subtask=mnist adapter=rbs train=classify``.

    model  = encoders.load_{text,image}_classifier(cfg.model, classes) # backbone + fresh linear head
    sites  = adapters.apply(model, cfg.adapter)                        # freeze, inject (rbs, lora, oft, boft, full)
    head   = trainable as well, for every method (counted apart from the adapter)
    fit    : AdamW, linear warm-up (train.warmup_ratio) and decay, train.epochs over task.max_train examples
    score  = the task's metric on task.max_eval held-out examples (qadapt/tasks/metrics.py)

Budget (CPU-scaled, the same for every method of a table column). GLUE: the training examples are a fixed
subset (first ``task.max_train`` after a shuffle with seed 0, the same for every run seed), the evaluation set
the first ``task.max_eval`` of the official dev split. VTAB-style: the VTAB-1k protocol's 800 training images
(qadapt/data/images.py; the 200 validation images are not used: no hyper-parameter is tuned per task), scored on
the test part (capped by ``task.max_test``). The run seed sets the head's initialisation and the batch order.
BatchNorm statistics stay frozen (eval mode) for every method, the frozen-backbone convention. Every row
records the budget, the data source and the parameter counts.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import save_file
from torch import nn

from . import adapters
from .adapters.base import count_trainable
from .data.glue import load_glue, task_spec
from .data.images import vtab_split
from .errors import ConfigError, TrainingDiverged
from .log import log, progress
from .models.encoders import HEAD, load_image_classifier, load_text_classifier
from .results import append_row
from .tasks.metrics import score

TASKS = ("glue", "vtab")
KINDS = {"glue": ("text_encoder", "minilm_l6, deberta_v3_base"), "vtab": ("vision", "efficientnet_lite0, dinov2_large")}


def _check(cfg: DictConfig) -> None:
    kind, valid = KINDS[cfg.task.name]
    if cfg.model.get("kind") != kind:
        raise ConfigError(f"task={cfg.task.name} needs a {kind} backbone; model={cfg.model.name} is not one (valid choices: {valid})")
    if "epochs" not in cfg.train:
        raise ConfigError(f"task={cfg.task.name} trains a classifier: add train=classify")
    if cfg.task.name == "glue":
        task_spec(str(cfg.task.subtask))


def _subset(n: int, cap: int | None, seed: int = 0) -> list[int]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order if cap is None else order[: int(cap)]


class Encoded:
    """Tokenised examples kept unpadded; :meth:`batch` pads only to the longest row of a batch."""

    def __init__(self, tokenizer, examples, index: list[int], max_length: int):
        a = [examples.text_a[i] for i in index]
        b = None if examples.text_b is None else [examples.text_b[i] for i in index]
        enc = tokenizer(a, b, truncation=True, max_length=max_length)
        self.ids = enc["input_ids"]
        self.labels = torch.tensor([examples.labels[i] for i in index])
        self.pad = tokenizer.pad_token_id or 0

    def __len__(self) -> int:
        return len(self.ids)

    def eval_order(self) -> list[int]:
        return sorted(range(len(self.ids)), key=lambda i: len(self.ids[i]))  # little padding per batch

    def batch(self, rows) -> dict[str, torch.Tensor]:
        seqs = [torch.tensor(self.ids[i]) for i in rows]
        ids = nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=self.pad)
        lengths = torch.tensor([len(q) for q in seqs])
        mask = (torch.arange(ids.shape[1]) < lengths[:, None]).long()
        return {"input_ids": ids, "attention_mask": mask}


class Images:
    """Greyscale images resized once to ``size`` x ``size`` (bilinear, antialiased), copied to 3 channels, normalised."""

    def __init__(self, part, size: int, mean, std):
        x = torch.from_numpy(part.images).unsqueeze(1)
        x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
        mean, std = torch.tensor(list(mean)).view(1, 3, 1, 1), torch.tensor(list(std)).view(1, 3, 1, 1)
        self.pixels = ((x.expand(-1, 3, -1, -1) - mean) / std).contiguous()
        self.labels = torch.from_numpy(part.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def eval_order(self) -> list[int]:
        return list(range(len(self.labels)))

    def batch(self, rows) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixels[torch.as_tensor(rows)]}


def _freeze_norm_statistics(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def _loss(logits: torch.Tensor, labels: torch.Tensor, regression: bool) -> torch.Tensor:
    if regression:
        return nn.functional.mse_loss(logits.squeeze(-1), labels.float())
    return nn.functional.cross_entropy(logits, labels.long())


@torch.no_grad()
def predict(model: nn.Module, data: Encoded | Images, batch_size: int, regression: bool) -> torch.Tensor:
    """Predictions for every example (class index, or the regression score), length-sorted batches."""
    model.eval()
    order = data.eval_order()
    out = torch.empty(len(data))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        logits = model(**data.batch(rows))
        out[torch.tensor(rows)] = logits.squeeze(-1).float() if regression else logits.argmax(-1).float()
    return out


def fit(model: nn.Module, data: Encoded | Images, tcfg: DictConfig, seed: int, regression: bool) -> dict:
    """AdamW over the trainable parameters (head at ``train.head_lr``), linear warm-up then linear decay.

    Raises:
        TrainingDiverged: a NaN or infinite loss.
    """
    from transformers import get_scheduler

    head = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith(HEAD + ".")]
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith(HEAD + ".")]
    groups = [{"params": body, "lr": float(tcfg.lr)}] if body else []
    groups.append({"params": head, "lr": float(tcfg.head_lr)})
    optimizer = torch.optim.AdamW(groups, weight_decay=float(tcfg.weight_decay))
    batch = int(tcfg.batch_size)
    per_epoch = math.ceil(len(data) / batch)
    steps = int(tcfg.max_steps) if tcfg.get("max_steps") else int(tcfg.epochs) * per_epoch
    scheduler = get_scheduler(str(tcfg.schedule), optimizer, num_warmup_steps=int(float(tcfg.warmup_ratio) * steps),
                              num_training_steps=steps)
    rng = random.Random(seed)
    model.train()
    _freeze_norm_statistics(model)
    t0, losses, order = time.perf_counter(), [], []
    for step in progress(range(steps), description="training"):
        if not order:
            order = list(range(len(data)))
            rng.shuffle(order)
        rows, order = order[:batch], order[batch:]
        loss = _loss(model(**data.batch(rows)), data.labels[rows], regression)
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"loss became {loss.item()} at step {step}; lower train.lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], float(tcfg.max_grad_norm))
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return {"train_steps": steps, "train_seconds": time.perf_counter() - t0, "train_loss_first": losses[0],
            "train_loss_final": sum(losses[-10:]) / len(losses[-10:])}


def adapter_param_count(cfg: DictConfig) -> int:
    """Trainable adapter parameters of ``cfg.adapter`` on ``cfg.model`` (head excluded; real weights, seconds)."""
    _check(cfg)
    model = load_text_classifier(cfg.model, 2)[0] if cfg.task.name == "glue" else load_image_classifier(cfg.model, 2)[0]
    adapters.apply(model, cfg.adapter, None)  # freezes everything, head included, then injects
    return count_trainable(model)


def _build(cfg: DictConfig):
    """(model with a fresh head, training data, evaluation data, facts for the row). The head's init follows cfg.seed."""
    name = str(cfg.task.subtask)
    if cfg.task.name == "glue":
        spec = task_spec(name)
        train_ex, eval_ex = load_glue(name, "train", cfg.data_dir), load_glue(name, "dev", cfg.data_dir)
        torch.manual_seed(int(cfg.seed))
        model, tokenizer, source = load_text_classifier(cfg.model, spec.num_labels)
        max_length = int(cfg.task.max_length)
        train_data = Encoded(tokenizer, train_ex, _subset(len(train_ex.labels), cfg.task.max_train), max_length)
        cap = None if cfg.task.max_eval is None else int(cfg.task.max_eval)
        eval_data = Encoded(tokenizer, eval_ex, list(range(len(eval_ex.labels)))[:cap], max_length)
        return model, train_data, eval_data, {"regression": spec.labels is None, "subtask": name, "metric": spec.metric,
                                              "model_source": source, "train_source": train_ex.source, "eval_source": eval_ex.source}
    parts = vtab_split(name, cfg.data_dir, cfg.task.max_test)
    torch.manual_seed(int(cfg.seed))
    model, source = load_image_classifier(cfg.model, parts["train"].classes)
    size = int(cfg.task.image_size)
    train_data, eval_data = (Images(parts[k], size, cfg.model.mean, cfg.model.std) for k in ("train", "test"))
    return model, train_data, eval_data, {"regression": False, "subtask": name, "metric": "accuracy", "model_source": source,
                                          "train_source": f"{parts['train'].source} (vtab-1k train 800)",
                                          "eval_source": f"{parts['test'].source} (test {len(parts['test'].labels)})"}


def run_train_classify(cfg: DictConfig, overrides: list[str], run_dir: Path) -> dict:
    """Train one method on one GLUE task or image set with one seed, evaluate, save trainable tensors, append one row.

    Raises:
        ConfigError, DataMissing, ModelUnavailable, TrainingDiverged (no row is written on any error).
    """
    from .pipeline import git_commit

    _check(cfg)
    t0 = time.perf_counter()
    model, train_data, eval_data, info = _build(cfg)
    backbone = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(HEAD + "."))
    sites = adapters.apply(model, cfg.adapter, None)
    for p in model.get_submodule(HEAD).parameters():
        p.requires_grad_(True)
    head_params = sum(p.numel() for p in model.get_submodule(HEAD).parameters())
    trainable = count_trainable(model)
    log(f"{adapters.registry.describe(cfg.adapter)}: {len(sites)} sites, {trainable - head_params:,} adapter + "
        f"{head_params:,} head parameters trainable")
    regression, name, metric = info["regression"], info["subtask"], info["metric"]
    trained = fit(model, train_data, cfg.train, int(cfg.seed), regression)
    preds = predict(model, eval_data, int(cfg.train.eval_batch_size), regression)
    metrics = score(metric, preds.tolist(), eval_data.labels.tolist())
    log(f"{name} {metric}: {metrics['score']:.4f}")

    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml")
    save_file(adapters.adapter_state_dict(model), run_dir / "trained.safetensors")
    row = {
        "run_id": f"{run_dir.name}-{dt.datetime.now().strftime('%Y%m%d%H%M%S')}",
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(), "command": "train", "overrides": " ".join(overrides),
        "model": cfg.model.name, "model_source": info["model_source"], "adapter": cfg.adapter.name,
        "adapter_desc": adapters.registry.describe(cfg.adapter), "task": cfg.task.name, "subtask": name,
        "metric": metric, "score": metrics["score"], **{f"metric_{k}": v for k, v in metrics.items() if k != "score"},
        "seed": int(cfg.seed), "adapter_sites": len(sites), "adapter_params": trainable - head_params,
        "head_params": head_params, "backbone_params": backbone, "train_examples": len(train_data),
        "eval_examples": len(eval_data), "train_source": info["train_source"], "eval_source": info["eval_source"],
        **trained, "run_dir": str(run_dir), "wall_seconds": time.perf_counter() - t0, "threads": torch.get_num_threads(),
        "config": json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True),
    }
    (run_dir / "metrics.json").write_text(json.dumps(row, indent=2, default=str))
    append_row(cfg.results_dir, row)
    return row
