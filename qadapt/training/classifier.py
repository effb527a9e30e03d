"""The classifier training loop (GLUE, VTAB-style): batches of tokenised text or images, AdamW with a separate head
learning rate, linear warm-up then decay, BatchNorm statistics frozen; and batched prediction.

The experiment around it (data, budget, row) is qadapt/experiments/classify.py.
"""

from __future__ import annotations

import math
import random
import time

import torch
from omegaconf import DictConfig
from torch import nn

from ..errors import TrainingDiverged
from ..log import progress
from ..models.encoders import HEAD


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
    """Greyscale images resized once to ``size`` x ``size`` (bilinear, antialiased), copied to 3 channels,
    normalised."""

    def __init__(self, part, size: int, mean, std):
        x = torch.from_numpy(part.images).unsqueeze(1)
        x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(
            0, 1
        )
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
        rows = order[start : start + batch_size]
        logits = model(**data.batch(rows))
        out[torch.tensor(rows)] = logits.squeeze(-1).float() if regression else logits.argmax(-1).float()
    return out


def epoch_batches(
    n: int, batch: int, rng: random.Random, lengths: list[int] | None = None, buckets: int = 0
) -> list[list[int]]:
    """One epoch's batches of example indices: a seeded shuffle cut into batches of ``batch``. With ``lengths`` and
    ``buckets`` > 0, each run of ``buckets`` x ``batch`` shuffled examples is sorted by length before it is cut, and
    the batches are shuffled again: batches of similar lengths (little padding), in random order."""
    order = list(range(n))
    rng.shuffle(order)
    if not buckets or lengths is None:
        return [order[i : i + batch] for i in range(0, n, batch)]
    batches = []
    for start in range(0, n, buckets * batch):
        window = sorted(order[start : start + buckets * batch], key=lambda i: lengths[i])
        batches += [window[i : i + batch] for i in range(0, len(window), batch)]
    rng.shuffle(batches)
    return batches


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
    scheduler = get_scheduler(
        str(tcfg.schedule), optimizer, num_warmup_steps=int(float(tcfg.warmup_ratio) * steps), num_training_steps=steps
    )
    rng = random.Random(seed)
    model.train()
    _freeze_norm_statistics(model)
    buckets = int(tcfg.length_buckets)
    lengths = [len(ids) for ids in data.ids] if buckets and isinstance(data, Encoded) else None
    t0, losses, pending = time.perf_counter(), [], []
    for step in progress(range(steps), description="training"):
        if not pending:
            pending = epoch_batches(len(data), batch, rng, lengths, buckets)
        rows = pending.pop(0)
        loss = _loss(model(**data.batch(rows)), data.labels[rows], regression)
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"loss became {loss.item()} at step {step}; lower train.lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], float(tcfg.max_grad_norm))
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return {
        "train_steps": steps,
        "train_seconds": time.perf_counter() - t0,
        "train_loss_first": losses[0],
        "train_loss_final": sum(losses[-10:]) / len(losses[-10:]),
    }
