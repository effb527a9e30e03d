"""Local distillation: train each replacement FFN to reproduce, on real hidden states, the FFN it replaced.

The first phase of the scaled QFFN budget (the paper fine-tunes 10k steps on OpenWebText; ours is documented in
``configs/train/new_blocks.yaml``): the frozen teacher (the unmodified model) runs once over ``distill_tokens``
training tokens while forward hooks record every replaced FFN's input x and output FFN(x); then each
replacement module is fitted alone, minimising the relative error ||f(x) - FFN(x)||^2 / ||FFN(x)||^2 over
shuffled mini-batches. Cheap (no full-model backward), and the same procedure for QFFN and its classical control.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from omegaconf import DictConfig
from torch import nn

from ..log import Progress, log
from ..models.layers import decoder_layers


@torch.no_grad()
def record_ffn_io(
    teacher: nn.Module, layers: list[int], chunks: torch.Tensor, batch_size: int
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Inputs and outputs ``(tokens, d)`` of the teacher's FFN in each of ``layers`` over ``chunks`` ``(n, seq)``."""
    stack = decoder_layers(teacher)
    store: dict[int, tuple[list, list]] = {i: ([], []) for i in layers}

    def recorder(i: int):
        def hook(module, args, out) -> None:  # returns None: the output is left as it is
            store[i][0].append(args[0].reshape(-1, args[0].shape[-1]).float())
            store[i][1].append(out.reshape(-1, out.shape[-1]).float())

        return hook

    hooks = [stack[i].mlp.register_forward_hook(recorder(i)) for i in layers]
    try:
        for start in range(0, chunks.shape[0], batch_size):
            teacher.model(input_ids=chunks[start : start + batch_size], use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    return {i: (torch.cat(xs), torch.cat(ys)) for i, (xs, ys) in store.items()}


def _descend(params: list[torch.Tensor], batch_loss, lr: float, steps: int, done) -> None:
    """``steps`` AdamW steps (no weight decay, cosine decay from ``lr``, gradients clipped to norm 1) on
    ``batch_loss()``, a fresh mini-batch's loss each call; ``done()`` after each step (progress). The one loop of both
    local distillations (FFNs and quantum heads)."""
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))
    for _ in range(steps):
        loss = batch_loss()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        done()


def local_distill(
    student: nn.Module, teacher: nn.Module, layers: list[int], chunks: torch.Tensor, cfg: DictConfig, seed: int
) -> dict:
    """Fit ``student``'s replacement FFNs in ``layers`` to the teacher's FFNs (module docstring).

    Args:
        chunks: ``(n_chunks, seq_len)`` training token ids; the first ``cfg.distill_tokens`` tokens are used.
        cfg: the ``train`` group (``distill_tokens``, ``distill_steps``, ``distill_batch``, ``distill_lr``).
    Returns:
        ``{"distill_rel_err_before": mean over layers, "distill_rel_err_after": ..., "distill_seconds": ...}``.
    """
    import time

    t0 = time.perf_counter()
    n_chunks = max(1, int(cfg.distill_tokens) // chunks.shape[1])
    io = record_ffn_io(teacher, layers, chunks[:n_chunks], int(cfg.batch_size))
    stack = decoder_layers(student)
    gen = torch.Generator().manual_seed(seed)
    steps, batch = int(cfg.distill_steps), int(cfg.distill_batch)
    before, after = [], []
    with Progress("distill", total=steps * len(layers), unit="steps", layer="-") as bar:
        for i in layers:
            module, (x, y) = stack[i].mlp, io[i]
            scale = y.square().sum(-1).mean()
            params = [p for p in module.parameters() if p.requires_grad]

            def rel_err(module=module, x=x, y=y, scale=scale) -> float:
                with torch.no_grad():
                    return float(
                        sum(
                            (module(x[s : s + 4096]).float() - y[s : s + 4096]).square().sum()
                            for s in range(0, x.shape[0], 4096)
                        )
                        / (scale * x.shape[0])
                    )

            def batch_loss(module=module, x=x, y=y, scale=scale) -> torch.Tensor:
                idx = torch.randint(0, x.shape[0], (batch,), generator=gen)
                return (module(x[idx]).float() - y[idx]).square().sum(-1).mean() / scale

            before.append(rel_err())
            _descend(params, batch_loss, float(cfg.distill_lr), steps, lambda i=i: bar.advance(1, layer=i))
            after.append(rel_err())
            log(f"distill layer {i}: relative error {before[-1]:.3f} -> {after[-1]:.3f}")
    return {
        "distill_rel_err_before": sum(before) / len(before),
        "distill_rel_err_after": sum(after) / len(after),
        "distill_tokens": int(sum(v[0].shape[0] for v in io.values()) / len(io)),
        "distill_seconds": time.perf_counter() - t0,
    }


# ---------------------------------------------------------------------------------------------------------------
# quantum heads: fitted to the attention patterns of the heads they replace

RECORD_ATTENTION = "qadapt_record_qk"


@contextmanager
def recording_queries_and_keys(model: nn.Module, heads: dict[int, int], store: dict[int, list]):
    """While active, every attention call of decoder layer i in ``heads`` appends its first ``heads[i]`` heads'
    queries and keys after RoPE, ``((B, h, T, d_h), (B, h, T, d_h))`` (grouped keys repeated), to ``store[i]``, then
    runs SDPA as the model otherwise would. The model's attention implementation is restored on exit."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    def record(module, query, key, value, attention_mask, **kwargs):
        idx = getattr(module, "layer_idx", None)
        if idx in heads:
            h = heads[idx]
            keys = repeat_kv(key, getattr(module, "num_key_value_groups", 1))
            store[idx].append((query[:, :h].detach().float(), keys[:, :h].detach().float()))
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register(RECORD_ATTENTION, record)
    AttentionMaskInterface.register(RECORD_ATTENTION, sdpa_mask)
    before = model.config._attn_implementation
    model.set_attn_implementation(RECORD_ATTENTION)
    try:
        yield store
    finally:
        model.set_attn_implementation(before)


def attention_kl(heads, query: torch.Tensor, key: torch.Tensor, scaling: float) -> torch.Tensor:
    """Mean over heads and query positions of KL(A_classical || A_quantum) for causal windows (nats).

    A_classical = softmax_s(q_t . k_s * scaling), A_quantum = softmax_s(tau |<q_t| V |k_s>|^2), both over s <= t.
    Shapes: query, key ``(B, h, T, d_h)``.
    """
    t = query.shape[2]
    allowed = torch.ones(t, t, dtype=torch.bool, device=query.device).tril()[None, None]
    neg = torch.tensor(float("-inf"), device=query.device)
    target = torch.log_softmax(torch.where(allowed, query @ key.transpose(-1, -2) * scaling, neg), dim=-1)
    scores = heads.kernel(query, key, allowed) * heads.log_tau.exp()[None, :, None, None]
    model_logp = torch.log_softmax(torch.where(allowed, scores, neg), dim=-1)
    terms = torch.where(allowed, target.exp() * (target - model_logp), torch.zeros((), device=query.device))
    return terms.sum(-1).mean()


def distill_heads(student: nn.Module, teacher: nn.Module, chunks: torch.Tensor, cfg: DictConfig, seed: int) -> dict:
    """Fit every quantum head of ``student`` (its circuit angles and temperature) to the attention pattern of the
    classical head it replaces, on the teacher's queries and keys over real text (the first ``cfg.distill_tokens``
    tokens of ``chunks``): ``cfg.distill_steps`` AdamW steps (``cfg.distill_lr``, cosine decay) per layer on
    mini-batches of whole sequences, minimising :func:`attention_kl`. The QFFN paper starts its quantum parameters
    "random or briefly pre-trained"; this is the brief pre-training, the same procedure as the FFNs' on the same text.

    Returns:
        ``{"head_kl_before": mean over layers, "head_kl_after": ..., "head_distill_seconds": ...}`` (nats); empty
        without quantum heads.
    """
    import time

    t0 = time.perf_counter()
    stack = decoder_layers(student)
    targets = {
        i: layer.self_attn.qadapt_heads
        for i, layer in enumerate(stack)
        if getattr(getattr(layer, "self_attn", None), "qadapt_heads", None) is not None
    }
    if not targets:
        return {}
    n_chunks = max(1, int(cfg.distill_tokens) // chunks.shape[1])
    store: dict[int, list] = {i: [] for i in targets}
    with torch.no_grad(), recording_queries_and_keys(teacher, {i: m.n_heads for i, m in targets.items()}, store):
        for start in range(0, n_chunks, int(cfg.batch_size)):
            teacher.model(input_ids=chunks[start : min(start + int(cfg.batch_size), n_chunks)], use_cache=False)
    gen = torch.Generator().manual_seed(seed)
    steps, per_step = int(cfg.distill_steps), max(1, int(cfg.distill_batch) // chunks.shape[1])
    before, after = [], []
    with Progress("distill heads", total=steps * len(targets), unit="steps", layer="-") as bar:
        for i, heads in targets.items():
            q = torch.cat([b[0] for b in store[i]])
            k = torch.cat([b[1] for b in store[i]])
            scaling = float(stack[i].self_attn.scaling)
            params = [heads.weights, heads.log_tau]
            with torch.no_grad():
                before.append(float(attention_kl(heads, q, k, scaling)))

            def batch_loss(heads=heads, q=q, k=k, scaling=scaling) -> torch.Tensor:
                rows = torch.randint(0, q.shape[0], (per_step,), generator=gen)
                return attention_kl(heads, q[rows], k[rows], scaling)

            _descend(params, batch_loss, float(cfg.distill_lr), steps, lambda i=i: bar.advance(1, layer=i))
            with torch.no_grad():
                after.append(float(attention_kl(heads, q, k, scaling)))
            log(f"distill heads of layer {i}: KL to the classical pattern {before[-1]:.3f} -> {after[-1]:.3f} nats")
    return {
        "head_kl_before": sum(before) / len(before),
        "head_kl_after": sum(after) / len(after),
        "head_distill_seconds": time.perf_counter() - t0,
    }
