"""The training loop: adapter parameters only, next-token cross-entropy, checkpoints, resume.

Direct on purpose (nanoGPT style): AdamW, warmup then cosine/linear decay (transformers.get_scheduler),
gradient clipping and accumulation. The data order is a seeded permutation of fixed-length chunks, so a
resumed run sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn
from transformers import get_scheduler

from .log import log
from .errors import ConfigError, TrainingDiverged

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainResult:
    steps: int
    tokens: int
    seconds: float
    first_loss: float
    final_loss: float  # mean of the last log_every steps
    losses: list[float]


def chunk_tokens(tokens: list[int], seq_len: int) -> torch.Tensor:
    """``(n_chunks, seq_len)`` non-overlapping chunks of a token stream (the tail shorter than seq_len is dropped).

    Raises:
        ConfigError: fewer than seq_len tokens.
    """
    n = len(tokens) // seq_len
    if n == 0:
        raise ConfigError(f"training text has {len(tokens)} tokens, fewer than train.seq_len={seq_len}")
    return torch.tensor(tokens[: n * seq_len], dtype=torch.long).view(n, seq_len)


def batch_order(n_chunks: int, n_needed: int, seed: int) -> torch.Tensor:
    """Chunk indices for the whole run: concatenated seeded permutations (one per epoch)."""
    gen = torch.Generator().manual_seed(seed)
    epochs = math.ceil(n_needed / n_chunks)
    return torch.cat([torch.randperm(n_chunks, generator=gen) for _ in range(epochs)])[:n_needed]


def kl_to_teacher(logits: torch.Tensor, teacher: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of KL(p_teacher || p_model) of the next-token distributions (logits ``(B, T, V)``)."""
    with torch.no_grad():
        target = torch.log_softmax(teacher(input_ids=input_ids, use_cache=False).logits.float(), dim=-1)
    log_p = torch.log_softmax(logits.float(), dim=-1)
    return torch.nn.functional.kl_div(log_p.flatten(0, 1), target.flatten(0, 1), log_target=True, reduction="batchmean")


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fit(model: nn.Module, chunks: torch.Tensor, cfg: DictConfig, run_dir: Path, seed: int, resume: bool,
        teacher: nn.Module | None = None) -> TrainResult:
    """Train the trainable (adapter) parameters of ``model`` on ``chunks``.

    Loss: ``ce_weight`` * next-token cross-entropy + ``kl_weight`` * KL(teacher || model) per token (with a
    ``teacher``, e.g. the unmodified model for replacement adapters; the KL term is skipped without one).

    Args:
        chunks: ``(n_chunks, seq_len)`` token ids.
        cfg: the ``train`` config group.
        run_dir: where ``checkpoint.pt`` is written every ``save_every`` steps and at the end.
        resume: continue from ``run_dir/checkpoint.pt`` if it exists.
    Raises:
        TrainingDiverged: a loss is NaN or infinite (nothing further is written).
        ConfigError: no trainable parameters.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("nothing to train: the adapter has no trainable parameters (adapter=none?)")
    steps, accum, bs = int(cfg.max_steps), int(cfg.grad_accum), int(cfg.batch_size)
    order = batch_order(chunks.shape[0], steps * accum * bs, seed)
    optimizer = torch.optim.AdamW(params, lr=float(cfg.lr), weight_decay=float(cfg.weight_decay))
    scheduler = get_scheduler(cfg.schedule, optimizer, num_warmup_steps=int(cfg.warmup_steps), num_training_steps=steps)
    ckpt_path = run_dir / CHECKPOINT
    start, losses = 0, []
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=False)
        own = dict(model.named_parameters())
        with torch.no_grad():
            for name, tensor in state["adapter"].items():
                own[name].copy_(tensor)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, losses = state["step"], state["losses"]
        log(f"resuming {run_dir.name} at step {start}/{steps}")
    elif ckpt_path.exists():
        ckpt_path.unlink()  # a fresh run must not be mixed with an old checkpoint

    device = params[0].device
    ce_weight, kl_weight = float(cfg.get("ce_weight", 1.0)), float(cfg.get("kl_weight", 0.0))
    if teacher is None:
        kl_weight = 0.0
    t0 = time.perf_counter()
    columns = (TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as progress:
        bar = progress.add_task("train", total=steps, completed=start, loss="-")
        for step in range(start, steps):
            loss_sum = 0.0
            for micro in range(accum):
                first = (step * accum + micro) * bs
                x = chunks[order[first : first + bs]].to(device)
                out = model(input_ids=x, labels=x, use_cache=False)
                loss = ce_weight * out.loss if ce_weight != 1.0 else out.loss
                if kl_weight:
                    loss = loss + kl_weight * kl_to_teacher(out.logits, teacher, x)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"loss is {loss.item()} at step {step}; lower train.lr (now {cfg.lr}) or check the data. "
                        "No adapter or results row was written."
                    )
                (loss / accum).backward()
                loss_sum += loss.item() / accum
            torch.nn.utils.clip_grad_norm_(params, float(cfg.max_grad_norm))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss_sum)
            progress.update(bar, advance=1, loss=f"{loss_sum:.4f}")
            if (step + 1) % int(cfg.log_every) == 0:
                log(f"step {step + 1}/{steps} loss {loss_sum:.4f} lr {scheduler.get_last_lr()[0]:.2e}")
            if (step + 1) % int(cfg.save_every) == 0 or step + 1 == steps:
                adapter = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
                _atomic_save({"adapter": adapter, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                              "step": step + 1, "losses": losses}, ckpt_path)
    k = max(1, min(int(cfg.log_every), len(losses)))
    return TrainResult(steps, steps * accum * bs * chunks.shape[1], time.perf_counter() - t0,
                       losses[0] if losses else float("nan"), sum(losses[-k:]) / k if losses else float("nan"), losses)
