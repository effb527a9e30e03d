"""Local distillation: train each replacement FFN to reproduce, on real hidden states, the FFN it replaced.

The first phase of the scaled QFFN budget (the paper fine-tunes 10k steps on OpenWebText; ours is documented in
``configs/train/new_blocks.yaml``): the frozen teacher (the unmodified model) runs once over ``distill_tokens``
training tokens while forward hooks record every replaced FFN's input x and output FFN(x); then each
replacement module is fitted alone, minimising the relative error ||f(x) - FFN(x)||^2 / ||FFN(x)||^2 over
shuffled mini-batches. Cheap (no full-model backward), and the same procedure for QFFN and its classical control.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from ..log import log
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
    columns = (
        TextColumn("distill"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("layer {task.fields[layer]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as progress:
        bar = progress.add_task("distill", total=steps * len(layers), layer="-")
        for i in layers:
            module, (x, y) = stack[i].mlp, io[i]
            scale = y.square().sum(-1).mean()
            params = [p for p in module.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=float(cfg.distill_lr), weight_decay=0.0)
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))

            def rel_err(module=module, x=x, y=y, scale=scale) -> float:
                with torch.no_grad():
                    return float(
                        sum(
                            (module(x[s : s + 4096]).float() - y[s : s + 4096]).square().sum()
                            for s in range(0, x.shape[0], 4096)
                        )
                        / (scale * x.shape[0])
                    )

            before.append(rel_err())
            for _ in range(steps):
                idx = torch.randint(0, x.shape[0], (batch,), generator=gen)
                loss = (module(x[idx]).float() - y[idx]).square().sum(-1).mean() / scale
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                schedule.step()
                progress.update(bar, advance=1, layer=i)
            after.append(rel_err())
            log(f"distill layer {i}: relative error {before[-1]:.3f} -> {after[-1]:.3f}")
    return {
        "distill_rel_err_before": sum(before) / len(before),
        "distill_rel_err_after": sum(after) / len(after),
        "distill_tokens": int(sum(v[0].shape[0] for v in io.values()) / len(io)),
        "distill_seconds": time.perf_counter() - t0,
    }
