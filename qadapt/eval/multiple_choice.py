"""Multiple-choice scoring by log-likelihood of each answer (lm-evaluation-harness convention).

For a question with context c and answers a_1..a_m, the model's score of a_i is log p(a_i | c), the sum of the
answer tokens' log-probabilities. ``acc``: the argmax is the right answer; ``acc_norm``: the argmax of
log p(a_i | c) / len(choice_i) is, with len the characters of the choice as the task lists it, without the " "
that joins it to the context (lm-evaluation-harness's ``acc_norm``: ``lls / completion_len`` in its
``ConfigurableTask.process_results``). ``prob``: the softmax of the m scores, i.e. the model's probability of each
answer given that one of them is right.

Tokenisation as lm-eval: the answer's tokens are those of ``context + answer`` after the context's own tokens.
Speed: the context runs once per question with the key/value cache kept; the m answers then run as one batch on
the repeated cache (so a 5-shot prompt is not recomputed per choice). Questions are batched, sorted by length.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass

import torch
from torch import nn

from ..data.multiple_choice import Question, context, continuations
from ..log import Progress
from ..models import input_device
from ..models.kernels import inference_kernels
from ..process import release_free_memory
from .perplexity import target_logprobs


@dataclass(frozen=True)
class Scored:
    """One question's outcome: per-choice log-likelihoods (nats), the lengths acc_norm divides by (characters of each
    choice, lm-evaluation-harness's ``completion_len``), and the chosen indices."""

    question: Question
    loglik: tuple[float, ...]
    completion_len: tuple[int, ...]

    @property
    def choice(self) -> int:
        return max(range(len(self.loglik)), key=lambda i: self.loglik[i])

    @property
    def choice_norm(self) -> int:
        return max(range(len(self.loglik)), key=lambda i: self.loglik[i] / max(1, self.completion_len[i]))

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


def _cache_keyword(module: nn.Module) -> str:
    # transformers 5 renamed forward's past_key_values to cache (the old name warns); 4.x knows only the old one
    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


@torch.no_grad()
def answer_logliks(
    model: nn.Module, contexts: list[list[int]], answers: list[list[list[int]]], pad_id: int, answer_tokens: int = 4096
) -> list[list[float]]:
    """log p(answer | context) for a batch of questions, each context computed once.

    Args:
        contexts: per question, its context token ids (non-empty).
        answers: per question, per choice, the answer token ids (non-empty).
    Returns:
        per question, per choice, the summed log-probability (nats).
    Shapes inside: contexts are left-padded to ``(B, L)`` so every context ends at column L-1; the N choices run
    in groups of similar answer length, each on the context cache repeated once per choice (``(n_g, ...)``) with
    its answers right-padded to ``(n_g, T_g)``, n_g T_g <= ``answer_tokens`` (or one choice). The decoder
    returns hidden states and the LM head runs only on the answer tokens' positions, in bounded chunks
    (:func:`qadapt.tasks.perplexity.target_logprobs`): ``(N, T, vocab)`` logits never exist.
    """
    device = input_device(model)
    body = model.get_decoder()
    b, length = len(contexts), max(len(c) for c in contexts)
    ctx = torch.full((b, length), pad_id, dtype=torch.long)
    ctx_mask = torch.zeros((b, length), dtype=torch.long)
    for i, c in enumerate(contexts):
        ctx[i, length - len(c) :] = torch.tensor(c)
        ctx_mask[i, length - len(c) :] = 1
    ctx_pos = (ctx_mask.cumsum(-1) - 1).clamp(min=0)
    out = body(
        input_ids=ctx.to(device), attention_mask=ctx_mask.to(device), position_ids=ctx_pos.to(device), use_cache=True
    )
    last = out.last_hidden_state[:, -1]  # (B, d): predicts each answer's first token

    counts = [len(a) for a in answers]
    owner = torch.repeat_interleave(torch.arange(b), torch.tensor(counts))  # (N,) question of each choice
    flat = [a for per_q in answers for a in per_q]
    n = len(flat)
    # answer token 0 is predicted by the context's last position
    sums = (
        target_logprobs(model, last[owner.to(device)], torch.tensor([a[0] for a in flat], device=device)).double().cpu()
    )
    # the other tokens run on the repeated context cache, choices grouped by answer length so little is padding:
    # each group pads to its own longest answer and holds at most answer_tokens padded tokens
    by_length = sorted(range(n), key=lambda i: len(flat[i]))
    groups, start = [], 0
    while start < n:
        stop = start + 1
        while stop < n and (stop + 1 - start) * len(flat[by_length[stop]]) <= answer_tokens:
            stop += 1
        groups.append(by_length[start:stop])
        start = stop
    cache = out.past_key_values
    ctx_lengths = ctx_mask.sum(-1)
    for g, rows in enumerate(groups):
        t = max(len(flat[i]) for i in rows)
        if t == 1:
            continue  # one-token answers: all predicted by the context pass
        ans = torch.full((len(rows), t), pad_id, dtype=torch.long)
        ans_mask = torch.zeros((len(rows), t), dtype=torch.bool)
        for r, i in enumerate(rows):
            ans[r, : len(flat[i])] = torch.tensor(flat[i])
            ans_mask[r, : len(flat[i])] = True
        who = owner[rows]
        # repeat each question's cache once per choice of this group (the last group may use the cache itself)
        group_cache = cache if g == len(groups) - 1 else copy.deepcopy(cache)
        group_cache.batch_select_indices(who.to(device))
        pos = ctx_lengths[who][:, None] + torch.arange(t)[None]
        mask = torch.cat([ctx_mask[who], ans_mask.long()], dim=1)
        hidden = body(
            input_ids=ans.to(device),
            attention_mask=mask.to(device),
            position_ids=pos.to(device),
            use_cache=True,
            **{_cache_keyword(body): group_cache},
        ).last_hidden_state  # (n_group, t, d)
        follow = ans_mask[:, 1:]  # answer position j - 1 predicts answer token j
        row_of = torch.tensor(rows)[:, None].expand(len(rows), t - 1)[follow]
        rest = target_logprobs(model, hidden[:, :-1][follow.to(device)], ans[:, 1:][follow].to(device)).double().cpu()
        sums.index_add_(0, row_of, rest)
    result, k = [], 0
    for c in counts:
        result.append(sums[k : k + c].tolist())
        k += c
    return result


def score(
    model: nn.Module,
    tokenizer,
    questions: list[Question],
    shots: dict[str, list[Question]] | None = None,
    fmt: str = "continuation",
    batch_tokens: int = 4096,
    max_length: int = 2048,
    bos: bool = False,
    description: str = "multiple choice",
) -> list[Scored]:
    """Score every question (order kept). ``shots[subject]``: answered examples put before that subject's questions.
    On CPU the float32 linears run oneDNN's matmuls for the pass (qadapt/models/kernels.py).

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
        ctx_ids = pairs[0][0][-(max_length - longest) :]  # every pair shares the context tokens
        # the choice as the task lists it: the continuation without the " " that joins it to the context
        lengths = [len(c.removeprefix(" ")) for c in continuations(q, fmt)]
        encoded.append((ctx_ids, [a for _, a in pairs], lengths))
    order = sorted(range(len(questions)), key=lambda i: -len(encoded[i][0]))
    logliks: list[list[float] | None] = [None] * len(questions)
    with (
        torch.no_grad(),
        inference_kernels(model),
        Progress(description, total=len(questions), unit="questions") as bar,
    ):
        start = 0
        while start < len(order):
            width = len(encoded[order[start]][0])  # longest in this batch (sorted descending)
            size = max(1, batch_tokens // max(1, width))
            batch = order[start : start + size]
            out = answer_logliks(
                model, [encoded[i][0] for i in batch], [encoded[i][1] for i in batch], pad_id, batch_tokens
            )
            for i, ll in zip(batch, out):
                logliks[i] = ll
            start += len(batch)
            bar.advance(len(batch))
            release_free_memory()  # each batch has its own shapes: its freed blocks fit no later one (process.py)
    return [Scored(q, tuple(ll), tuple(e[2])) for q, ll, e in zip(questions, logliks, encoded)]


def accuracy(scored: list[Scored]) -> dict[str, float]:
    """``acc`` and ``acc_norm`` (fractions) and ``n`` over ``scored``."""
    n = len(scored)
    return {
        "n": n,
        "acc": sum(s.correct for s in scored) / n if n else float("nan"),
        "acc_norm": sum(s.correct_norm for s in scored) / n if n else float("nan"),
    }


MC_COLUMNS = (
    "suite",
    "benchmark",
    "subject",
    "id",
    "answer",
    "choice",
    "choice_norm",
    "correct",
    "correct_norm",
    "prob_choice",
    "prob_answer",
    "probs",
)


def predictions_frame(name: str, scored: list[Scored]):
    """One row per question (pandas DataFrame, columns :data:`MC_COLUMNS`): the right answer, the model's choice
    (plain and length-normalised) and its probabilities."""
    import json

    import pandas as pd

    rows = []
    for s in scored:
        probs = s.probs
        rows.append(
            {
                "suite": name,
                "benchmark": s.question.benchmark,
                "subject": s.question.subject,
                "id": s.question.id,
                "answer": s.question.answer,
                "choice": s.choice,
                "choice_norm": s.choice_norm,
                "correct": s.correct,
                "correct_norm": s.correct_norm,
                "prob_choice": probs[s.choice],
                "prob_answer": probs[s.question.answer],
                "probs": json.dumps([round(p, 6) for p in probs]),
            }
        )
    return pd.DataFrame(rows, columns=list(MC_COLUMNS))


def evaluate_suites(model: nn.Module, tokenizer, data_dir: str, mc_cfg, bos: bool, label: str):
    """Every suite of ``mc_cfg`` (the task's ``mc`` block): metrics ``{<suite>_acc, <suite>_acc_norm, <suite>_n}`` and
    the per-question frame (:func:`predictions_frame`, all suites)."""
    import pandas as pd

    from ..data import multiple_choice as mc_data
    from ..log import log

    metrics, frames = {}, []
    for suite in mc_data.suites(data_dir, mc_cfg):
        scored = score(
            model,
            tokenizer,
            suite.questions,
            suite.shots,
            str(mc_cfg.format),
            int(mc_cfg.batch_tokens),
            int(mc_cfg.max_length),
            bos,
            f"{label} {suite.name}",
        )
        acc = accuracy(scored)
        metrics.update({f"{suite.name}_{k}": v for k, v in acc.items()})
        frames.append(predictions_frame(suite.name, scored))
        log(f"{label} {suite.name}: acc {acc['acc']:.3f}, acc_norm {acc['acc_norm']:.3f} ({acc['n']} questions)")
    return metrics, pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(MC_COLUMNS))
