"""Perplexity of a causal LM: the scorer over the windows of qadapt/eval/windows.py (``sliding`` or ``documents``),
batched, with the LM head run on scored positions only and an optional activation cache of the frozen prefix.

Metrics (natural log; N = tokens scored, W = words, B = UTF-8 bytes of the text scored):
perplexity = exp(NLL / N), word_perplexity = exp(NLL / W), bits_per_byte = NLL / (B ln 2).
Words are whitespace-separated strings, as the harness counts them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..adapters.base import device_positions
from ..cache import ActivationCache
from ..log import Progress
from ..models.kernels import inference_kernels
from ..models.partial import final_hidden, hidden_at
from ..process import peak_rss_mb
from .windows import IGNORE, EvalSet, Window


@dataclass
class PerplexityResult:
    """Sums of one evaluation pass; :meth:`metrics` turns them into the row's perplexity columns.

    Attributes:
        nll_sum: summed negative log-likelihood of the scored tokens (nats). tokens: tokens scored.
        words, bytes: of the scored text (as :class:`EvalSet`). seconds: wall time of the pass (s).
        peak_rss_mb: peak resident memory of the process after the pass (MiB). extra: more columns for the row.
        window_nll: summed NLL (nats) of each window of the evaluation set, in its order (the unit a paired
            bootstrap resamples; qadapt/results/stats.py); None in a multi-process launch (each process holds a share).
        window_tokens: tokens scored in each window, same order.
        token_nll: per window, the NLL (nats, float64) of each scored token in text order (what a bootstrap over
            tokens resamples); None in a multi-process launch.
    """

    nll_sum: float
    tokens: int
    words: int
    bytes: int
    seconds: float
    peak_rss_mb: float
    extra: dict = field(default_factory=dict)
    window_nll: list[float] | None = None
    window_tokens: list[int] | None = None
    token_nll: list[np.ndarray] | None = None

    @property
    def mean_nll(self) -> float:
        return self.nll_sum / self.tokens

    def metrics(self) -> dict[str, float]:
        return {
            "perplexity": math.exp(self.mean_nll),
            "mean_nll": self.mean_nll,
            "word_perplexity": math.exp(self.nll_sum / self.words),
            "bits_per_byte": self.nll_sum / (self.bytes * math.log(2)),
            "tokens_scored": self.tokens,
            "words": self.words,
            "bytes": self.bytes,
            "eval_seconds": self.seconds,
            "tokens_per_s": self.tokens / self.seconds if self.seconds else float("nan"),
            "peak_rss_mb": self.peak_rss_mb,
            **self.extra,
        }


def _batch_indices(windows: list[Window], batch_size: int) -> list[list[int]]:
    # longest first, so padding is small and a memory problem shows up in the first batch
    ordered = sorted(range(len(windows)), key=lambda i: -len(windows[i].tokens))
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]


def _batches(windows: list[Window], batch_size: int) -> list[list[Window]]:
    return [[windows[i] for i in batch] for batch in _batch_indices(windows, batch_size)]


def _collate(batch: list[Window], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    length = max(len(w.tokens) for w in batch) - 1
    ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), length), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), length), dtype=torch.long)
    for row, w in enumerate(batch):
        n = len(w.tokens) - 1
        ids[row, :n] = torch.tensor(w.tokens[:-1])
        labels[row, w.first_target - 1 : n] = torch.tensor(w.tokens[w.first_target :])
        mask[row, :n] = 1
    return ids.to(device), labels.to(device), mask.to(device)


def head_chunk(vocab: int) -> int:
    """Positions per LM-head call in :func:`target_logprobs`: at most 1,024 and at most 2^26 logits (256 MiB in
    float32),
    whatever the vocabulary. Cross-entropy holds the logits and their log-softmax at once, so this bounds the
    scorer's own memory to about 512 MiB (SmolLM2, 49,152 tokens: 1,024 positions, 384 MiB)."""
    return max(1, min(1024, 2**26 // vocab))


def target_logprobs(
    model: nn.Module, hidden: torch.Tensor, targets: torch.Tensor, chunk: int | None = None
) -> torch.Tensor:
    """log p(target) under the model's LM head for every row: ``hidden`` ``(M, d)``, ``targets`` ``(M,)`` -> ``(M,)``
    float32 (nats). The head runs in chunks of :func:`head_chunk` rows, so at most one chunk of logits (and its
    log-softmax) exists at a time, whatever M and the vocabulary; Gemma's final logit soft-capping is applied."""
    head = model.get_output_embeddings()
    chunk = chunk or head_chunk(head.weight.shape[0])
    softcap = getattr(model.config, "final_logit_softcapping", None)
    out = []
    for i in range(0, hidden.shape[0], chunk):
        logits = head(hidden[i : i + chunk]).float()
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        out.append(-F.cross_entropy(logits, targets[i : i + chunk], reduction="none"))
    return torch.cat(out) if out else hidden.new_zeros(0, dtype=torch.float32)


def scored_nll(model: nn.Module, hidden: torch.Tensor, labels: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """Summed NLL (float64, nats) of the labelled positions: the LM head runs only on those positions
    (:func:`target_logprobs`), so (B, T, vocab) logits are never materialised.
    ``hidden``: (B, T, d); ``labels``: (B, T), IGNORE where unscored."""
    return scored_nll_rows(model, hidden, labels, chunk).sum()


def scored_nll_rows(
    model: nn.Module, hidden: torch.Tensor, labels: torch.Tensor, chunk: int | None = None
) -> torch.Tensor:
    """As :func:`scored_nll`, one sum per row: ``(B,)`` float64 nats."""
    return scored_token_nll(model, hidden, labels, chunk)[0]


def scored_token_nll(
    model: nn.Module, hidden: torch.Tensor, labels: torch.Tensor, chunk: int | None = None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Per row of ``labels`` ``(B, T)``: the summed NLL ``(B,)`` float64 nats, and the NLL of each labelled token in
    position order (B tensors)."""
    keep = labels != IGNORE
    nll = -target_logprobs(model, hidden[keep], labels[keep], chunk).double()
    rows = torch.arange(labels.shape[0], device=labels.device).unsqueeze(1).expand_as(labels)[keep]
    sums = torch.zeros(labels.shape[0], dtype=torch.float64, device=nll.device).index_add_(0, rows.to(nll.device), nll)
    return sums, list(torch.split(nll, keep.sum(1).tolist()))


def cache_numel(eval_set: EvalSet, width: int, batch_size: int) -> int:
    """Values an evaluation activation cache holds: padded tokens of every batch x hidden width (what
    :func:`evaluate`'s ``fill_cache`` stores; the size its :class:`ActivationCache` reserves)."""
    padded = sum(max(len(w.tokens) - 1 for w in b) * len(b) for b in _batches(eval_set.windows, batch_size))
    return padded * width


def cache_size_gib(eval_set: EvalSet, width: int, batch_size: int, dtype_bytes: int = 4) -> float:
    """GiB an evaluation activation cache needs: :func:`cache_numel` x bytes per value."""
    return cache_numel(eval_set, width, batch_size) * dtype_bytes / 2**30


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    eval_set: EvalSet,
    batch_size: int,
    pad_id: int,
    *,
    fill_cache: ActivationCache | None = None,
    use_cache: ActivationCache | None = None,
    scored_only: bool = False,
    description: str = "perplexity",
) -> PerplexityResult:
    """Score every window of ``eval_set``; batched, with a progress bar; on CPU the float32 linears run oneDNN's
    matmuls for the pass (qadapt/models/kernels.py).

    Args:
        fill_cache: store the residual stream entering ``fill_cache.layer`` for each batch.
        use_cache: start each batch from the stored residual stream at ``use_cache.layer``
            (the layers below are skipped; they must be the same as when the cache was filled).
        scored_only: adapter layers send only the scored positions' circuits to their device (the others
            are computed exactly); ``device.positions=scored``.
    Returns:
        summed NLL (nats), tokens scored, words and UTF-8 bytes of the scored text, wall seconds, peak RSS (MiB).
    Raises:
        ValueError: ``use_cache`` was filled for another evaluation set or batch size.
    """
    from ..distributed import all_reduce_sum, ranks
    from ..models import input_device

    device = input_device(model)
    here = ranks()  # in a multi-process launch, process r scores batches r, r + W, ... (qadapt/distributed.py)
    indices = _batch_indices(eval_set.windows, batch_size)[here.rank :: here.world]
    batches = [[eval_set.windows[j] for j in batch] for batch in indices]
    if use_cache is not None and len(use_cache) != len(batches):
        raise ValueError("activation cache was filled for a different evaluation set or batch size")
    nll = torch.zeros((), dtype=torch.float64)
    window_nll = [0.0] * len(eval_set.windows)
    token_nll = [np.zeros(0)] * len(eval_set.windows)
    start = time.perf_counter()
    total = sum(w.n_scored for b in batches for w in b)
    with (
        inference_kernels(model),
        Progress(description, total=total, unit="tokens", enabled=here.is_main) as bar,
    ):
        for i, batch in enumerate(batches):
            ids, labels, mask = _collate(batch, pad_id, device)
            with device_positions(model, labels != IGNORE if scored_only else None):
                hidden = _hidden(model, ids, mask, i, fill_cache, use_cache, device)
            rows, tokens = scored_token_nll(model, hidden, labels)
            rows = rows.cpu()
            nll += rows.sum()
            for j, value, per_token in zip(indices[i], rows.tolist(), tokens):
                window_nll[j] = value
                token_nll[j] = per_token.cpu().numpy()
            bar.advance(sum(w.n_scored for w in batch))
    nll = all_reduce_sum(nll)
    seconds = time.perf_counter() - start
    alone = here.world == 1
    return PerplexityResult(
        float(nll),
        eval_set.n_scored,
        eval_set.words,
        eval_set.bytes,
        seconds,
        peak_rss_mb(),
        window_nll=window_nll if alone else None,
        window_tokens=[w.n_scored for w in eval_set.windows] if alone else None,
        token_nll=token_nll if alone else None,
    )


def _hidden(model, ids, mask, i, fill_cache, use_cache, device) -> torch.Tensor:
    """Final hidden states of batch ``i``, from the cached residual stream, filling the cache, or from scratch."""
    if use_cache is not None:
        return final_hidden(model, mask, start_hidden=use_cache[i].to(device), start=use_cache.layer)
    if fill_cache is not None:
        stream = hidden_at(model, ids, mask, fill_cache.layer)
        fill_cache.append(stream)
        return final_hidden(model, mask, start_hidden=stream, start=fill_cache.layer)
    return final_hidden(model, mask, input_ids=ids)
