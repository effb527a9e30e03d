"""Perplexity of a causal LM on WikiText, in the two standard modes.

- ``sliding``: the split is one token stream; windows of ``max_length`` tokens advance by ``stride`` and
  only tokens not scored by an earlier window are scored (transformers guide "Perplexity of
  fixed-length models"; with stride = max_length the first token of each window has no context and is
  not scored, exactly as in the guide).
- ``documents``: each article is scored on its own, starting from a prefix token, with non-overlapping
  rolling windows of ``max_length`` predicted tokens (lm-evaluation-harness ``wikitext``, rolling
  loglikelihood with context length 1). We score the raw text; the harness additionally detokenises
  WikiText (" @-@ " -> "-" ...), so its figures differ slightly.

Metrics (natural log; N = tokens scored, W = words, B = UTF-8 bytes of the text scored):
perplexity = exp(NLL / N), word_perplexity = exp(NLL / W), bits_per_byte = NLL / (B ln 2).
Words are whitespace-separated strings, as the harness counts them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from omegaconf import DictConfig
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn
from torch.nn import functional as F

from ..adapters.base import device_positions
from ..cache import ActivationCache
from ..data.wikitext import split_articles
from ..errors import ConfigError
from ..models.partial import final_hidden, hidden_at
from ..process import peak_rss_mb

MODES = ("sliding", "documents")
IGNORE = -100


@dataclass
class Window:
    """One forward pass: ``tokens[f:]`` are scored, each predicted from the tokens before it in the window.

    Model input is ``tokens[:-1]``; labels are ``tokens[1:]`` with the first ``f - 1`` masked.
    """

    tokens: list[int]  # token ids of the window, context included
    first_target: int  # index in ``tokens`` of the first scored token

    @property
    def n_scored(self) -> int:
        return len(self.tokens) - self.first_target


@dataclass
class EvalSet:
    """The windows one perplexity evaluation scores, and what the metrics divide by.

    Attributes:
        windows: the forward passes (:class:`Window`), in text order.
        words: words of the scored text (whitespace-separated strings), for word perplexity.
        bytes: UTF-8 bytes of the scored text, for bits per byte.
        source: what the text is and where it came from (recorded in the row as ``eval_source``).
        mode: ``sliding`` (one token stream) or ``documents`` (each article alone), see the module docstring.
    """

    windows: list[Window]
    words: int
    bytes: int
    source: str
    mode: str

    @property
    def n_scored(self) -> int:
        return sum(w.n_scored for w in self.windows)


def sliding_windows(tokens: list[int], max_length: int, stride: int, bos_id: int | None = None) -> list[Window]:
    """Windows over one stream, as the transformers perplexity guide builds them.

    ``bos_id``: models trained to see BOS first (Gemma; ``model.bos_in_windows``) get it in front of every
    window, and then the window's first new token is scored too (it has BOS as context).

    Raises:
        ConfigError: stride outside [1, max_length].
    """
    if not 1 <= stride <= max_length:
        raise ConfigError(f"task.stride must be in [1, max_length={max_length}], got {stride}")
    windows, prev_end = [], 0
    for begin in range(0, len(tokens), stride):
        end = min(begin + max_length, len(tokens))
        ids = tokens[begin:end]
        new = end - prev_end
        if bos_id is None:
            windows.append(Window(ids, max(1, len(ids) - new)))
        else:
            windows.append(Window([bos_id] + ids, len(ids) - new + 1))
        prev_end = end
        if end == len(tokens):
            break
    return [w for w in windows if w.n_scored > 0]


def rolling_windows(tokens: list[int], prefix_id: int, max_length: int) -> list[Window]:
    """Disjoint rolling windows of one document (lm-evaluation-harness, context length 1).

    The first window predicts tokens[:max_length] from the prefix token; each later window predicts
    the next (up to) max_length tokens with as much preceding context as fits in max_length inputs.
    """
    if not tokens:
        return []
    first = min(max_length, len(tokens))
    windows = [Window([prefix_id] + tokens[:first], 1)]
    done = first
    while done < len(tokens):
        n_pred = min(len(tokens) - done, max_length)
        end = done + n_pred
        ids = tokens[max(0, end - max_length - 1) : end]
        windows.append(Window(ids, len(ids) - n_pred))
        done = end
    return windows


def _prefix_id(tokenizer) -> int:
    # the document separator the model was trained with: <|endoftext|> where it exists, else BOS, else EOS
    vocab = tokenizer.get_vocab()
    for tok in ("<|endoftext|>",):
        if tok in vocab:
            return vocab[tok]
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def _counts(text: str) -> tuple[int, int]:
    return len(text.split()), len(text.encode("utf-8"))


def truncate_bytes(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` within ``max_bytes`` UTF-8 bytes that ends at whitespace (whole words), so
    models with different tokenizers can be scored on exactly the same text (``task.max_bytes``)."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    cut = raw[:max_bytes].decode("utf-8", errors="ignore")
    end = max(cut.rfind(" "), cut.rfind("\n"))
    return cut[: end + 1] if end >= 0 else cut


def build_eval_set(tokenizer, text: str, source: str, task: DictConfig, bos_in_windows: bool = False) -> EvalSet:
    """Tokenise ``text`` and cut it into windows per ``task`` (mode, max_length, stride, max_tokens).

    ``bos_in_windows``: sliding windows start with the tokenizer's BOS (for models that expect it, e.g. Gemma:
    without it, Gemma 3's WikiText perplexity is about 45 % worse).

    Raises:
        ConfigError: unknown mode or bad window sizes.
    """
    mode, max_length, max_tokens = task.mode, int(task.max_length), task.get("max_tokens")
    if mode not in MODES:
        raise ConfigError(f"unknown task.mode '{mode}'; valid choices: {', '.join(MODES)}")
    if max_length < 2:
        raise ConfigError(f"task.max_length must be >= 2, got {max_length}")
    max_bytes = task.get("max_bytes")
    if max_bytes is not None and mode == "sliding":
        text = truncate_bytes(text, int(max_bytes))
    if mode == "sliding":
        tokens = tokenizer(text, add_special_tokens=False).input_ids
        if max_tokens is not None and max_tokens < len(tokens):
            tokens = tokens[: int(max_tokens)]
            text = tokenizer.decode(tokens)
        words, nbytes = _counts(text)
        bos = tokenizer.bos_token_id if bos_in_windows else None
        return EvalSet(sliding_windows(tokens, max_length, int(task.stride), bos), words, nbytes, source, mode)
    prefix = _prefix_id(tokenizer)
    windows, words, nbytes, total = [], 0, 0, 0
    for article in split_articles(text):
        tokens = tokenizer(article, add_special_tokens=False).input_ids
        windows += rolling_windows(tokens, prefix, max_length)
        w, b = _counts(article)
        words, nbytes, total = words + w, nbytes + b, total + len(tokens)
        if max_tokens is not None and total >= max_tokens:
            break  # whole documents only, so word and byte counts stay exact
    return EvalSet(windows, words, nbytes, source, mode)


@dataclass
class PerplexityResult:
    """Sums of one evaluation pass; :meth:`metrics` turns them into the row's perplexity columns.

    Attributes:
        nll_sum: summed negative log-likelihood of the scored tokens (nats). tokens: tokens scored.
        words, bytes: of the scored text (as :class:`EvalSet`). seconds: wall time of the pass (s).
        peak_rss_mb: peak resident memory of the process after the pass (MiB). extra: more columns for the row.
    """

    nll_sum: float
    tokens: int
    words: int
    bytes: int
    seconds: float
    peak_rss_mb: float
    extra: dict = field(default_factory=dict)

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


def _batches(windows: list[Window], batch_size: int) -> list[list[Window]]:
    # longest first, so padding is small and a memory problem shows up in the first batch
    ordered = sorted(windows, key=lambda w: -len(w.tokens))
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]


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
    keep = labels != IGNORE
    return -target_logprobs(model, hidden[keep], labels[keep], chunk).double().sum()


def cache_size_gib(eval_set: EvalSet, width: int, batch_size: int, dtype_bytes: int = 4) -> float:
    """GiB an evaluation activation cache needs: padded tokens of every batch x hidden width x bytes per value."""
    padded = sum(max(len(w.tokens) - 1 for w in b) * len(b) for b in _batches(eval_set.windows, batch_size))
    return padded * width * dtype_bytes / 2**30


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
    """Score every window of ``eval_set``; batched, with a progress bar.

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
    batches = _batches(eval_set.windows, batch_size)[here.rank :: here.world]
    if use_cache is not None and len(use_cache) != len(batches):
        raise ValueError("activation cache was filled for a different evaluation set or batch size")
    nll = torch.zeros((), dtype=torch.float64)
    start = time.perf_counter()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tokens"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True, disable=not here.is_main) as progress:
        bar = progress.add_task(description, total=sum(w.n_scored for b in batches for w in b))
        for i, batch in enumerate(batches):
            ids, labels, mask = _collate(batch, pad_id, device)
            with device_positions(model, labels != IGNORE if scored_only else None):
                hidden = _hidden(model, ids, mask, i, fill_cache, use_cache, device)
            nll += scored_nll(model, hidden, labels).cpu()
            progress.advance(bar, sum(w.n_scored for w in batch))
    nll = all_reduce_sum(nll)
    seconds = time.perf_counter() - start
    return PerplexityResult(float(nll), eval_set.n_scored, eval_set.words, eval_set.bytes, seconds, peak_rss_mb())


def _hidden(model, ids, mask, i, fill_cache, use_cache, device) -> torch.Tensor:
    """Final hidden states of batch ``i``, from the cached residual stream, filling the cache, or from scratch."""
    if use_cache is not None:
        return final_hidden(model, mask, start_hidden=use_cache[i].to(device), start=use_cache.layer)
    if fill_cache is not None:
        stream = hidden_at(model, ids, mask, fill_cache.layer)
        fill_cache.append(stream)
        return final_hidden(model, mask, start_hidden=stream, start=fill_cache.layer)
    return final_hidden(model, mask, input_ids=ids)
