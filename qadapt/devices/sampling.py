"""Shots: turning exact outcome probabilities into the counts a device with ``shots`` measurements returns."""

from __future__ import annotations

import torch


def sample_counts(probs: torch.Tensor, shots: int, generator: torch.Generator) -> torch.Tensor:
    """Multinomial counts for every row of ``probs`` (``(..., b)``), as conditional binomials.

    One vectorised draw per basis state when b <= 64, never a loop over circuits or tokens, and no
    ``(rows, shots)`` sample array; for wider registers (QFFN: 1024 outcomes) ``torch.multinomial`` in row
    chunks of bounded size, counted with one scatter-add per chunk. Rows are renormalised after clipping
    negative rounding noise. Returns float64 counts of the same shape, summing to ``shots``.
    """
    p = probs.clamp_min(0)
    p = p / p.sum(-1, keepdim=True)
    if p.shape[-1] > 64:
        flat = p.reshape(-1, p.shape[-1])
        counts = torch.zeros_like(flat)
        rows = max(1, 2**24 // shots)  # at most 16M samples held at once
        for start in range(0, flat.shape[0], rows):
            draws = torch.multinomial(flat[start : start + rows], shots, replacement=True, generator=generator)
            counts[start : start + rows].scatter_add_(1, draws, torch.ones_like(draws, dtype=counts.dtype))
        return counts.reshape(p.shape)
    counts = torch.zeros_like(p)
    remaining = torch.full(p.shape[:-1], float(shots), dtype=p.dtype)
    mass = torch.ones(p.shape[:-1], dtype=p.dtype)
    for k in range(p.shape[-1] - 1):
        ratio = (p[..., k] / mass.clamp_min(1e-300)).clamp(0, 1)
        draw = torch.binomial(remaining, ratio, generator=generator)
        counts[..., k] = draw
        remaining = remaining - draw
        mass = mass - p[..., k]
    counts[..., -1] = remaining
    return counts
