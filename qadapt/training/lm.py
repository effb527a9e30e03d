"""The LM training loop: adapter parameters only, next-token cross-entropy, checkpoints, resume.

Direct on purpose (nanoGPT style): AdamW, warmup then cosine/linear decay (transformers.get_scheduler),
gradient clipping and accumulation. The data order is a seeded permutation of fixed-length chunks, so a
resumed run sees exactly the batches the uninterrupted run would have seen.

Activation caching (``train.cache_activations``): when every trainable parameter sits in decoder layer L or
above, the frozen layers below L give a chunk the same residual stream at every visit, so it is computed once
(:class:`ChunkActivations`) and later visits run layers >= L only. Same losses and gradients to float precision.
A cache held in memory outlives its run within the process: the next run on the same frozen prefix and the same
chunks (a sweep over adapters, learning rates and seeds) starts from it (:func:`prefix_fingerprint`).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn
from transformers import get_scheduler

from .. import schema
from ..atomic import replacing
from ..cache import ActivationCache
from ..distributed import all_reduce_sum, average_gradients, ranks
from ..errors import ConfigError, QadaptError, TrainingDiverged, TrainingInterrupted
from ..log import Progress, log
from ..memo import Memo
from ..models import input_device
from ..models.layers import decoder_layers
from ..models.partial import hidden_at, layer_range
from ..process import freed_memory_kept
from .options import DefaultTrain

CHECKPOINT = "checkpoint.pt"  # qadapt/runs.py CHECKPOINT_FILE


@dataclass
class TrainResult:
    steps: int
    tokens: int
    seconds: float
    first_loss: float
    final_loss: float  # mean of the last log_every steps
    losses: list[float]
    step_seconds: list[float] = field(default_factory=list)  # wall seconds of each step this call ran
    cache_layer: int | None = None  # decoder layer whose input stream was cached (None: no cache)
    cache_storage: str | None = None  # "memory" or "disk"
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, validation perplexity), train.eval_every

    def row(self) -> dict:
        """The training columns of a results row (qadapt/runs.py ROW_COLUMNS)."""
        return {
            "train_steps": self.steps,
            "train_tokens": self.tokens,
            "train_seconds": self.seconds,
            "train_loss_first": self.first_loss,
            "train_loss_final": self.final_loss,
            "train_cache_layer": self.cache_layer,
            "train_cache_storage": self.cache_storage,
            "curve_points": len(self.curve) or None,
            "curve_final_ppl": self.curve[-1][1] if self.curve else None,
        }


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


def first_trainable_layer(model: nn.Module) -> int | None:
    """Lowest decoder layer holding a trainable parameter: the layers below it are a frozen prefix.

    Returns None when there is no frozen prefix to cache: nothing in the decoder layers trains, the lowest
    trainable layer is layer 0, or the input embeddings train.
    """
    if any(p.requires_grad for p in model.get_input_embeddings().parameters()):
        return None
    trainable = [i for i, layer in enumerate(decoder_layers(model)) if any(p.requires_grad for p in layer.parameters())]
    return trainable[0] if trainable and trainable[0] > 0 else None


class ChunkActivations:
    """The residual stream entering decoder layer ``layer`` for the training chunks a run visits, each computed once
    and kept in an :class:`qadapt.cache.ActivationCache` (one slot per chunk).

    Storage: in memory when the visited chunks need at most ``max_gib`` GiB, else one memory-mapped file per chunk in
    a temporary directory under ``spill_dir`` (deleted by :meth:`close`). A chunk's slot is filled on its first visit
    (one no-grad pass of layers < ``layer`` for the chunks of the batch not seen yet); later visits read it.

    Args:
        chunks: ``(n_chunks, seq_len)`` token ids (all of the run's training chunks).
        used: chunk indices the run will visit (its batch order; repeats allowed).
    """

    def __init__(
        self, model: nn.Module, chunks: torch.Tensor, used: torch.Tensor, layer: int, max_gib: float, spill_dir: Path
    ):
        self.model, self.chunks, self.layer = model, chunks, layer
        self.fingerprint = prefix_fingerprint(model, chunks, layer)
        self.visited = set(torch.unique(used).tolist())
        dtype = model.get_input_embeddings().weight.dtype
        numel = len(self.visited) * chunks.shape[1] * int(model.config.hidden_size)
        self.gib = ActivationCache.gib(numel, dtype)
        self.cache = ActivationCache(layer, on_disk=self.gib > max_gib, root=spill_dir, capacity=numel, dtype=dtype)
        log(
            f"activation cache: layers < {layer} computed once per chunk, {len(self.visited):,} chunks, "
            f"{self.gib:.2f} GiB "
            f"({self.storage})"
        )

    @property
    def storage(self) -> str:
        """``memory`` or ``disk``."""
        return self.cache.storage

    @torch.no_grad()
    def stream(self, idx: torch.Tensor, device) -> torch.Tensor:
        """``(B, seq_len, hidden)`` residual stream entering ``layer`` for chunks ``idx`` ``(B,)``.

        Raises:
            ValueError: a chunk outside the batch order the cache was built for.
        """
        wanted = idx.tolist()
        if any(c not in self.visited for c in wanted):
            raise ValueError("chunk outside the cache's batch order")
        todo = sorted({c for c in wanted if c not in self.cache})
        if todo:
            ids = self.chunks[torch.tensor(todo)].to(device)
            streams = hidden_at(self.model, ids, None, self.layer)
            for c, stream in zip(todo, streams):
                self.cache.put(c, stream)
        return torch.stack([self.cache.get(c) for c in wanted]).to(device)

    def reuse(self, model: nn.Module, used: torch.Tensor, max_gib: float) -> ChunkActivations | None:
        """This cache, for another run on ``model`` visiting ``used`` (streams already computed are kept); None when
        the chunks of both runs together would need more than ``max_gib`` GiB."""
        visited = self.visited | set(torch.unique(used).tolist())
        dtype = model.get_input_embeddings().weight.dtype
        per_chunk = self.chunks.shape[1] * int(model.config.hidden_size)
        gib = ActivationCache.gib(len(visited) * per_chunk, dtype)
        if gib > max_gib:
            return None
        # room for every chunk not yet computed, this run's new ones and any the last run did not reach
        self.cache.reserve(sum(c not in self.cache for c in visited) * per_chunk, dtype)
        self.model, self.visited, self.gib = model, visited, gib
        return self

    def close(self) -> None:
        """Drop the streams and delete the spill files."""
        self.cache.close()


def prefix_fingerprint(model: nn.Module, chunks: torch.Tensor, layer: int) -> str:
    """Digest of what a chunk's stream entering decoder layer ``layer`` depends on: the chunks' token ids, ``layer``
    and every parameter and buffer of ``model`` outside decoder layers >= ``layer`` (embeddings, the frozen prefix,
    any adapter placed in it). Two runs with the same digest get the same streams."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{layer}:{tuple(chunks.shape)}".encode())
    digest.update(chunks.cpu().contiguous().numpy().tobytes())
    above = {id(t) for block in decoder_layers(model)[layer:] for t in (*block.parameters(), *block.buffers())}
    for name, tensor in (*model.named_parameters(), *model.named_buffers()):
        if id(tensor) in above:
            continue
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def kl_to_teacher(logits: torch.Tensor, teacher: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of KL(p_teacher || p_model) of the next-token distributions (logits ``(B, T, V)``)."""
    with torch.no_grad():
        target = torch.log_softmax(teacher(input_ids=input_ids, use_cache=False).logits.float(), dim=-1)
    log_p = torch.log_softmax(logits.float(), dim=-1)
    return torch.nn.functional.kl_div(log_p.flatten(0, 1), target.flatten(0, 1), log_target=True, reduction="batchmean")


def load_checkpoint(path: Path) -> dict:
    """A training checkpoint written by :func:`fit`: ``adapter`` (name -> tensor, the trainable parameters),
    ``optimizer`` and ``scheduler`` (state dicts; None in the checkpoint of the last step), ``step``, ``losses``
    (one per step) and ``curve`` ((step, validation perplexity) pairs).

    Raises:
        QadaptError: the file is damaged or truncated (names it and what to do).
    """
    try:
        state = torch.load(path, weights_only=False)
        out = {k: state[k] for k in ("adapter", "optimizer", "scheduler", "step", "losses")}
        return out | {"curve": state.get("curve", [])}
    except Exception as err:  # pickle, zip and key errors alike: the file is not a checkpoint any more
        raise QadaptError(
            f"{path} is damaged or truncated ({type(err).__name__}); delete it to train from the start, "
            "or rerun without resume=true"
        ) from None


def _atomic_save(obj, path: Path) -> None:
    with replacing(path) as tmp:
        torch.save(obj, tmp)


def set_trainable(model: nn.Module, cfg: DictConfig) -> None:
    """``train.trainable=all``: the whole model trains (base weights included; the QFFN paper's fine-tuning, its
    Table 3 and Algorithm 2); ``adapter`` (default): only what the adapter's injection left trainable."""
    if schema.value(cfg, DefaultTrain, "trainable") == "all":
        model.requires_grad_(True)


def fit(
    model: nn.Module,
    chunks: torch.Tensor,
    cfg: DictConfig,
    run_dir: Path,
    seed: int,
    resume: bool,
    teacher: nn.Module | None = None,
    validate: Callable[[], float] | None = None,
    memo: Memo | None = None,
) -> TrainResult:
    """Train the trainable (adapter) parameters of ``model`` on ``chunks``.

    Loss: ``ce_weight`` * next-token cross-entropy + ``kl_weight`` * KL(teacher || model) per token (with a
    ``teacher``, e.g. the unmodified model for replacement adapters; the KL term is skipped without one).
    ``cfg.cache_activations``: ``auto`` caches the frozen prefix's output (:class:`ChunkActivations`) when the run
    visits some chunk more than once, ``true`` always, ``false`` never; ``cfg.cache_max_gib`` bounds it in memory
    (larger caches go to a file in ``run_dir``). The teacher always runs in full (it may differ below layer L).

    Args:
        chunks: ``(n_chunks, seq_len)`` token ids.
        cfg: the ``train`` config group.
        run_dir: where ``checkpoint.pt`` is written every ``save_every`` steps and at the end (the end's without
            optimizer state: nothing steps after it).
        resume: continue from ``run_dir/checkpoint.pt`` if it exists.
        validate: the learning curve's measurement (validation perplexity of ``model`` as it is), taken before the
            first step, every ``cfg.eval_every`` steps (0 or absent: never) and after the last; kept in the
            checkpoint, so a resumed run's curve is whole.
        memo: what this process keeps between its runs (:class:`qadapt.memo.Memo`): an in-memory activation cache is
            left there for the next run with the same frozen prefix, and taken from there.
    Raises:
        TrainingDiverged: a loss is NaN or infinite (nothing further is written). TrainingInterrupted: Ctrl-C (exit
            130; the message names the step and the checkpoint the same command resumes from).
        ConfigError: no trainable parameters.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("nothing to train: the adapter has no trainable parameters (adapter=none?)")
    steps, accum, bs = int(cfg.max_steps), int(cfg.grad_accum), int(cfg.batch_size)
    here = ranks()
    if bs % here.world:
        raise ConfigError(f"train.batch_size={bs} must be a multiple of the {here.world} processes of this launch")
    order = batch_order(chunks.shape[0], steps * accum * bs, seed)
    # this process's chunks of every micro-batch (all of them with one process): rows r, r + W, ... of each
    mine = order.view(steps * accum, bs)[:, here.rank :: here.world]
    optimizer = torch.optim.AdamW(params, lr=float(cfg.lr), weight_decay=float(cfg.weight_decay))
    scheduler = get_scheduler(cfg.schedule, optimizer, num_warmup_steps=int(cfg.warmup_steps), num_training_steps=steps)
    ckpt_path = run_dir / CHECKPOINT
    start, losses, curve = 0, [], []
    eval_every = int(schema.value(cfg, DefaultTrain, "eval_every")) if validate is not None else 0
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        own = dict(model.named_parameters())
        with torch.no_grad():
            for name, tensor in state["adapter"].items():
                own[name].copy_(tensor)
        start, losses, curve = state["step"], state["losses"], [tuple(p) for p in state["curve"]]
        if state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        elif start < steps:  # a finished run's checkpoint (no optimizer state) under a run_name with more steps
            raise QadaptError(
                f"{ckpt_path} holds a finished run of {start} steps, without optimizer state, and this run asks for "
                f"train.max_steps={steps}; delete it to train from the start, or rerun without resume=true"
            )
        log(f"resuming {run_dir.name} at step {start}/{steps}")
    elif ckpt_path.exists():
        if here.is_main:
            ckpt_path.unlink()  # a fresh run must not be mixed with an old checkpoint

    device = input_device(model)
    ce_weight, kl_weight = float(cfg.ce_weight), float(cfg.kl_weight)
    if teacher is None:
        kl_weight = 0.0
    kept = memo.activations if memo is not None else []
    cache = _activation_cache(model, chunks, mine[start * accum :].reshape(-1), cfg, run_dir, kept)
    step_seconds: list[float] = []
    t0 = time.perf_counter()
    # whole-model training keeps freed large tensors on the heap, reused from step to step: 1.2x per step at +9 %
    # memory (results/bench_heap.md). Adapter training does not: the steps are mostly frozen forward passes, and
    # there the kept heap fragments to +1.4 GB of peak (4.8 against 3.4 GB on SmolLM2; qadapt/process.py)
    whole_model = schema.value(cfg, DefaultTrain, "trainable") == "all"
    saved, step = start, start  # the last checkpointed step, the step under way
    try:
        with (
            freed_memory_kept(whole_model),
            Progress("train", total=steps, unit="steps", completed=start, enabled=here.is_main, loss="-") as bar,
        ):
            if eval_every and start == 0:
                curve.append((0, _validate(model, validate, 0)))
            for step in range(start, steps):
                step_start = time.perf_counter()
                loss_sum = 0.0
                for micro in range(accum):
                    idx = mine[step * accum + micro]
                    x = chunks[idx].to(device)
                    out = _forward(model, x, idx, cache, device)
                    loss = ce_weight * out.loss if ce_weight != 1.0 else out.loss
                    if kl_weight:
                        loss = loss + kl_weight * kl_to_teacher(out.logits, teacher, x)
                    # the backward pass needs the logits' log-softmax, not the logits: dropped now, they free
                    # (batch x seq_len x vocab) floats for it (403 MB for SmolLM2 at 8 x 256)
                    del out
                    if not torch.isfinite(loss):
                        raise TrainingDiverged(
                            f"loss is {loss.item()} at step {step}; lower train.lr (now {cfg.lr}) or check the data. "
                            "No adapter or results row was written."
                        )
                    (loss / accum).backward()
                    loss_sum += loss.item() / accum
                average_gradients(params)  # the whole batch's gradient, on every process (one process: a no-op)
                loss_sum = float(all_reduce_sum(torch.tensor(loss_sum, dtype=torch.float64))) / here.world
                torch.nn.utils.clip_grad_norm_(params, float(cfg.max_grad_norm))
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(loss_sum)
                step_seconds.append(time.perf_counter() - step_start)
                bar.advance(1, loss=f"{loss_sum:.4f}")
                if eval_every and ((step + 1) % eval_every == 0 or step + 1 == steps):
                    curve.append((step + 1, _validate(model, validate, step + 1)))
                if here.is_main and (step + 1) % int(cfg.log_every) == 0:
                    log(f"step {step + 1}/{steps} loss {loss_sum:.4f} lr {scheduler.get_last_lr()[0]:.2e}")
                if here.is_main and ((step + 1) % int(cfg.save_every) == 0 or step + 1 == steps):
                    adapter = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
                    # after the last step the checkpoint only spares a crash before the run finishes its training
                    # again: nothing further steps, so AdamW's two moments are left out (with train.trainable=all
                    # they are 2 of its 3 parts, 1.1 of 1.6 GB for SmolLM2-135M)
                    last = step + 1 == steps
                    _atomic_save(
                        {
                            "adapter": adapter,
                            "optimizer": None if last else optimizer.state_dict(),
                            "scheduler": None if last else scheduler.state_dict(),
                            "step": step + 1,
                            "losses": losses,
                            "curve": curve,
                        },
                        ckpt_path,
                    )
                    saved = step + 1
    except KeyboardInterrupt:
        resume = (
            f"its checkpoint holds step {saved} ({ckpt_path}): the same command resumes from there"
            if saved
            else f"no checkpoint yet (one every train.save_every={int(cfg.save_every)} steps): the same command "
            "starts again"
        )
        raise TrainingInterrupted(f"training interrupted at step {step + 1} of {steps}; {resume}") from None
    finally:  # an interrupted run leaves no cache file behind (it is rebuilt on resume)
        if cache is not None and cache not in kept:
            cache.close()
    seconds = time.perf_counter() - t0
    k = max(1, min(int(cfg.log_every), len(losses)))
    return TrainResult(
        steps,
        steps * accum * bs * chunks.shape[1],
        seconds,
        losses[0] if losses else float("nan"),
        sum(losses[-k:]) / k if losses else float("nan"),
        losses,
        step_seconds,
        cache.layer if cache else None,
        cache.storage if cache else None,
        curve,
    )


def _validate(model: nn.Module, validate: Callable[[], float], step: int) -> float:
    """One learning-curve point: ``validate()`` in eval mode without gradients; the model's mode is restored."""
    mode = model.training
    model.eval()
    with torch.no_grad(), freed_memory_kept(False):  # an evaluation's heap is returned as it goes (process.py)
        value = float(validate())
    model.train(mode)
    log(f"step {step}: validation perplexity {value:.4f}")
    return value


def _forward(model: nn.Module, x: torch.Tensor, idx: torch.Tensor, cache: ChunkActivations | None, device):
    """The model's output on chunks ``idx`` (token ids ``x``): in full, or from the cached stream at layer L on."""
    if cache is None:
        return model(input_ids=x, labels=x, use_cache=False)
    stream = cache.stream(idx, device)
    with layer_range(model, cache.layer):  # every trainable parameter sits in these layers
        return model(inputs_embeds=stream, labels=x, use_cache=False)


CACHE_MODES = ("auto", True, False)


def _activation_cache(
    model: nn.Module, chunks: torch.Tensor, order: torch.Tensor, cfg: DictConfig, run_dir: Path, kept: list
) -> ChunkActivations | None:
    """The run's :class:`ChunkActivations`, or None (off, nothing frozen below the trainable layers, or ``auto``
    and no chunk visited twice in what is left of the run).

    Raises:
        ConfigError: ``cache_activations`` is not auto, true or false.
    """
    mode = cfg.cache_activations
    if mode not in CACHE_MODES:
        raise ConfigError(f"train.cache_activations must be one of auto, true, false; got {mode!r}")
    layer = first_trainable_layer(model) if mode is not False else None
    if layer is None or len(order) == 0 or (mode == "auto" and len(torch.unique(order)) == len(order)):
        return None
    max_gib = float(cfg.cache_max_gib)
    if kept and kept[0].layer == layer and kept[0].fingerprint == prefix_fingerprint(model, chunks, layer):
        shared = kept[0].reuse(model, order, max_gib)
        if shared is not None:
            log(
                f"activation cache: re-using this process's streams entering layer {layer} "
                f"({len(shared.cache):,} chunks)"
            )
            return shared
    cache = ChunkActivations(model, chunks, order, layer, max_gib, run_dir)
    if cache.storage == "memory":  # kept for the next run of this process; a disk cache lives in its run directory
        for old in kept:
            old.close()
        kept[:] = [cache]
    return cache
