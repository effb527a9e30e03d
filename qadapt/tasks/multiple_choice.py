"""Multiple-choice scoring by log-likelihood of each answer (lm-evaluation-harness convention).

For a question with context c and answers a_1..a_m, the model's score of a_i is log p(a_i | c), the sum of the
answer tokens' log-probabilities. ``acc``: the argmax is the right answer; ``acc_norm``: the argmax of
log p(a_i | c) / len(a_i in UTF-8 bytes) is (lm-eval's byte-length normalisation). ``prob``: the softmax of the
m scores, i.e. the model's probability of each answer given that one of them is right.

Tokenisation as lm-eval: the answer's tokens are those of ``context + answer`` after the context's own tokens.
Speed: the context runs once per question with the key/value cache kept; the m answers then run as one batch on
the repeated cache (so a 5-shot prompt is not recomputed per choice). Questions are batched, sorted by length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from ..data.multiple_choice import Question, context, continuations


@dataclass(frozen=True)
class Scored:
    """One question's outcome: per-choice log-likelihoods (nats), byte lengths, and the chosen indices."""

    question: Question
    loglik: tuple[float, ...]
    n_bytes: tuple[int, ...]

    @property
    def choice(self) -> int:
        return max(range(len(self.loglik)), key=lambda i: self.loglik[i])

    @property
    def choice_norm(self) -> int:
        return max(range(len(self.loglik)), key=lambda i: self.loglik[i] / max(1, self.n_bytes[i]))

    @property
    def probs(self) -> list[float]:
        return torch.softmax(torch.tensor(self.loglik, dtype=torch.float64), 0).tolist()

    @property
    def correct(self) -> bool:
        return self.choice == self.question.answer

    @property
    def correct_norm(self) -> bool:
        return self.choice_norm == self.question.answer


def encode_pair(tokenizer, ctx: str, answer: str, prefix: list[int]) -> tuple[list[int], list[int]]:
    """(context tokens, answer tokens) split as lm-eval does: tokens of ``ctx + answer`` after ``ctx``'s own.
    ``prefix``: tokens put before every context (e.g. BOS for models that expect it)."""
    whole = tokenizer(ctx + answer, add_special_tokens=False).input_ids
    n_ctx = len(tokenizer(ctx, add_special_tokens=False).input_ids)
    return prefix + whole[:n_ctx], whole[n_ctx:]


@torch.no_grad()
def answer_logliks(model: nn.Module, contexts: list[list[int]], answers: list[list[list[int]]], pad_id: int) -> list[list[float]]:
    """log p(answer | context) for a batch of questions, each context computed once.

    Args:
        contexts: per question, its context token ids (non-empty).
        answers: per question, per choice, the answer token ids (non-empty).
    Returns:
        per question, per choice, the summed log-probability (nats).
    Shapes inside: contexts are left-padded to ``(B, L)`` so every context ends at column L-1; the cache is
    repeated per choice (``(N, ...)``, N = total choices) and the answers right-padded to ``(N, T)``.
    """
    device = next(model.parameters()).device
    b, length = len(contexts), max(len(c) for c in contexts)
    ctx = torch.full((b, length), pad_id, dtype=torch.long)
    ctx_mask = torch.zeros((b, length), dtype=torch.long)
    for i, c in enumerate(contexts):
        ctx[i, length - len(c):] = torch.tensor(c)
        ctx_mask[i, length - len(c):] = 1
    ctx_pos = (ctx_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ctx.to(device), attention_mask=ctx_mask.to(device), position_ids=ctx_pos.to(device),
                use_cache=True, logits_to_keep=1)
    first = torch.log_softmax(out.logits[:, -1].float(), -1)  # (B, V): predicts each answer's first token

    counts = [len(a) for a in answers]
    owner = torch.repeat_interleave(torch.arange(b), torch.tensor(counts))  # (N,) question of each choice
    flat = [a for per_q in answers for a in per_q]
    n, t = len(flat), max(len(a) for a in flat)
    ans = torch.full((n, t), pad_id, dtype=torch.long)
    ans_mask = torch.zeros((n, t), dtype=torch.long)
    for i, a in enumerate(flat):
        ans[i, : len(a)] = torch.tensor(a)
        ans_mask[i, : len(a)] = 1
    cache = out.past_key_values
    cache.batch_select_indices(owner.to(device))  # repeat each question's cache once per choice
    lengths = ctx_mask.sum(-1)[owner]
    pos = lengths[:, None] + torch.arange(t)[None]
    mask = torch.cat([ctx_mask[owner], ans_mask], dim=1)
    logits = model(input_ids=ans.to(device), attention_mask=mask.to(device), position_ids=pos.to(device),
                   past_key_values=cache, use_cache=True).logits.float()
    # position j of the answer is predicted by the context's last token (j = 0) or by answer token j - 1
    logp = torch.cat([first[owner.to(device)][:, None], torch.log_softmax(logits[:, :-1], -1)], dim=1)
    token_lp = logp.gather(-1, ans.to(device)[..., None]).squeeze(-1) * ans_mask.to(device)
    sums = token_lp.sum(-1).double().cpu().tolist()
    result, k = [], 0
    for c in counts:
        result.append(sums[k : k + c])
        k += c
    return result


def score(model: nn.Module, tokenizer, questions: list[Question], shots: dict[str, list[Question]] | None = None,
          fmt: str = "continuation", batch_tokens: int = 4096, max_length: int = 2048, bos: bool = False,
          description: str = "multiple choice") -> list[Scored]:
    """Score every question (order kept). ``shots[subject]``: answered examples put before that subject's questions.

    ``batch_tokens`` bounds the padded context tokens of one batch (memory); ``max_length`` cuts contexts from the
    left so that context + answer fits the model window; ``bos``: prepend the tokenizer's BOS.
    """
    model.eval()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    prefix = [tokenizer.bos_token_id] if bos else []
    encoded = []
    for q in questions:
        ctx_text = context(q, (shots or {}).get(q.subject, []), fmt)
        pairs = [encode_pair(tokenizer, ctx_text, a, prefix) for a in continuations(q, fmt)]
        longest = max(len(a) for _, a in pairs)
        ctx_ids = pairs[0][0][-(max_length - longest):]  # every pair shares the context tokens
        encoded.append((ctx_ids, [a for _, a in pairs], [len(s.encode("utf-8")) for s in continuations(q, fmt)]))
    order = sorted(range(len(questions)), key=lambda i: -len(encoded[i][0]))
    logliks: list[list[float] | None] = [None] * len(questions)
    columns = (TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as progress:
        bar = progress.add_task(description, total=len(questions))
        start = 0
        while start < len(order):
            width = len(encoded[order[start]][0])  # longest in this batch (sorted descending)
            size = max(1, batch_tokens // max(1, width))
            batch = order[start : start + size]
            out = answer_logliks(model, [encoded[i][0] for i in batch], [encoded[i][1] for i in batch], pad_id)
            for i, ll in zip(batch, out):
                logliks[i] = ll
            start += len(batch)
            progress.update(bar, advance=len(batch))
    return [Scored(q, tuple(ll), tuple(e[2])) for q, ll, e in zip(questions, logliks, encoded)]


def accuracy(scored: list[Scored]) -> dict[str, float]:
    """``acc`` and ``acc_norm`` (fractions) and ``n`` over ``scored``."""
    n = len(scored)
    return {"n": n, "acc": sum(s.correct for s in scored) / n if n else float("nan"),
            "acc_norm": sum(s.correct_norm for s in scored) / n if n else float("nan")}
