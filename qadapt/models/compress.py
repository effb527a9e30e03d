"""Classical compression of a causal LM's projections by truncated SVD (the CUA paper's recovery study).

Source: CUA paper (arXiv 2605.05914; ../shared/papers/NOTES.md), SmolLM2-135M compression recovery. The paper
compresses with CompactifAI, a proprietary tensor-network method whose ratio is not published; qadapt uses open,
well-known truncated SVDs instead (the rank-r form W ~ U_r S_r V_r^T is the two-site case of a matrix-product
operator), and says so in every table. Methods:

* ``svd``: plain truncated SVD of W (best rank-r approximation of the weight itself). On SmolLM2 it is
  catastrophic at any ratio that saves parameters (a square matrix must lose half its spectrum before a rank-r
  factorisation is smaller than the dense matrix): ratio 0.8 takes WikiText perplexity from 15 to ~1e11.
* ``svd_llm`` (default): truncation-aware whitened SVD (SVD-LLM, Wang et al. 2024, arXiv 2403.07378, eq. 3-5):
  with C = X^T X the Gram matrix of the projection's inputs on calibration text and C = S S^T (Cholesky),
  truncate W S instead of W and map back with S^-1. This is the rank-r W' minimising ||(W - W') X^T||_F, the
  error on the activations the layer actually sees.

A projection ``W (d_out, d_in)`` at parameter ratio rho keeps rank

    r = max(1, floor(rho * d_out * d_in / (d_out + d_in)))

so that its two factors ``up (d_out, r)`` and ``down (r, d_in)`` hold r (d_out + d_in) <= rho d_out d_in
parameters. A projection whose rank would not save anything (r >= min(d_out, d_in)) is left dense.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .layers import find_targets

# the seven projections of a Llama-style decoder layer (the paper's recovery adapters sit on all of them)
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
METHODS = ("svd", "svd_llm")


class LowRankLinear(nn.Linear):
    """``y = up(down(x))``: a rank-r factorisation standing in for an ``nn.Linear(in_features, out_features)``.

    It is an ``nn.Linear`` for everything that adapts projections (qadapt's CUA, peft's LoRA and OFT wrap it and
    call it on their input), but it stores only its two factors. ``weight`` is the product ``up.weight @
    down.weight`` (read-only, computed on access; adapters read it for dtype and device).

    Shapes: ``(..., in_features)`` -> ``(..., out_features)``; ``down.weight (rank, in_features)``,
    ``up.weight (out_features, rank)``.
    """

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool, dtype=None, device=None):
        nn.Module.__init__(self)  # not nn.Linear's: it would allocate the dense weight this class exists to avoid
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False, dtype=dtype, device=device)
        self.up = nn.Linear(rank, out_features, bias=bias, dtype=dtype, device=device)

    @property
    def weight(self) -> torch.Tensor:  # type: ignore[override]
        return self.up.weight @ self.down.weight

    @property
    def bias(self) -> torch.Tensor | None:  # type: ignore[override]
        return self.up.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


def rank_for_ratio(d_out: int, d_in: int, ratio: float) -> int:
    """Rank r whose factors hold at most ``ratio`` of the dense matrix's parameters (at least 1).

    Raises:
        ConfigError: ratio outside (0, 1].
    """
    if not 0 < ratio <= 1:
        raise ConfigError(f"task.compression.ratio must be in (0, 1], got {ratio}")
    return max(1, int(ratio * d_out * d_in / (d_out + d_in)))


@dataclass(frozen=True)
class Decomposition:
    """SVD of a projection's weight, whitened or not: W S = U diag(s) Vh, with S = ``chol`` (None: S = I).
    Independent of the rank, so one decomposition serves every compression ratio."""

    u: torch.Tensor
    s: torch.Tensor
    vh: torch.Tensor
    chol: torch.Tensor | None


@torch.no_grad()
def decompose(weight: torch.Tensor, gram: torch.Tensor | None = None) -> Decomposition:
    """SVD of ``weight (d_out, d_in)``, or of ``weight @ S`` with C = S S^T the Cholesky factor of ``gram`` = X^T X
    ``(d_in, d_in)`` (SVD-LLM's whitening; a 1e-6 ridge keeps C positive definite). Float64 throughout.

    Raises:
        ConfigError: a gram of the wrong shape.
    """
    target, chol = weight.double(), None
    if gram is not None:
        d_in = weight.shape[1]
        if gram.shape != (d_in, d_in):
            raise ConfigError(f"gram of shape {tuple(gram.shape)} for a projection with {d_in} inputs")
        c = gram.double()
        c = c + 1e-6 * c.diagonal().mean().clamp(min=1e-12) * torch.eye(d_in, dtype=c.dtype, device=c.device)
        chol = torch.linalg.cholesky(c)
        target = target @ chol
    u, s, vh = torch.linalg.svd(target, full_matrices=False)
    return Decomposition(u, s, vh, chol)


@torch.no_grad()
def factorize(
    linear: nn.Linear, rank: int, gram: torch.Tensor | None = None, dec: Decomposition | None = None
) -> LowRankLinear:
    """Truncated SVD of ``linear.weight`` at ``rank``: up = U_r sqrt(S_r), down = sqrt(S_r) V_r^T (balanced factors).

    ``gram``: ``(d_in, d_in)`` Gram matrix X^T X of the layer's inputs; when given, W S is truncated instead of W
    (C = S S^T, SVD-LLM) and down becomes sqrt(S_r) V_r^T S^-1. ``dec``: a precomputed :func:`decompose` of this
    weight (then ``gram`` is not used). At rank = min(d_out, d_in) the product equals the original weight to float
    precision either way.
    Raises:
        ConfigError: rank outside [1, min(d_out, d_in)], or a gram of the wrong shape.
    """
    d_out, d_in = linear.out_features, linear.in_features
    if not 1 <= rank <= min(d_out, d_in):
        raise ConfigError(f"rank {rank} outside [1, {min(d_out, d_in)}] for a {d_out} x {d_in} projection")
    w = linear.weight
    dec = dec if dec is not None else decompose(w, gram)
    root = dec.s[:rank].sqrt()
    down = root[:, None] * dec.vh[:rank]
    if dec.chol is not None:  # down S^-1 as a triangular solve: X S = down  <=>  S^T X^T = down^T
        down = torch.linalg.solve_triangular(dec.chol.T, down.T, upper=True).T
    out = LowRankLinear(d_in, d_out, rank, linear.bias is not None, dtype=w.dtype, device=w.device)
    out.up.weight.copy_(dec.u[:, :rank] * root)
    out.down.weight.copy_(down)
    if linear.bias is not None:
        out.up.bias.copy_(linear.bias)
    return out


@dataclass(frozen=True)
class CompressionReport:
    """What :func:`compress` did: parameters of the targeted projections and of the whole model, before and after."""

    method: str
    ratio: float
    sites: int  # projections factorised
    kept_dense: int  # targeted projections left dense (a low rank would not have saved parameters)
    projection_params_before: int
    projection_params_after: int
    model_params_before: int
    model_params_after: int

    @property
    def achieved_ratio(self) -> float:
        """Parameters of the targeted projections after / before."""
        return self.projection_params_after / self.projection_params_before


@torch.no_grad()
def input_grams(
    model: nn.Module, targets: list[tuple[str, nn.Module, str]], chunks: torch.Tensor, batch_size: int = 4
) -> dict[str, torch.Tensor]:
    """Gram matrices X^T X ``(d_in, d_in)`` (float64) of every target projection's inputs over ``chunks``
    ``(n, seq_len)`` of calibration token ids, from one pass of the unmodified model (forward pre-hooks)."""
    grams: dict[str, torch.Tensor] = {}
    # q/k/v (and gate/up) are called one after another on the same tensor object: one product serves them all.
    # The last input is held, not its data pointer: a freed tensor's memory is reused by the next of its shape.
    last: list = [None, None]  # [input tensor, its X^T X]

    def hook(name):
        def accumulate(_module, args):
            if args[0] is not last[0]:
                x = args[0].reshape(-1, args[0].shape[-1]).float()
                last[:] = [args[0], (x.T @ x).double()]  # float32 product, float64 sum over batches
            grams[name] = grams[name] + last[1] if name in grams else last[1].clone()

        return accumulate

    handles = [getattr(parent, attr).register_forward_pre_hook(hook(name)) for name, parent, attr in targets]
    try:
        for i in range(0, chunks.shape[0], batch_size):
            model(input_ids=chunks[i : i + batch_size], use_cache=False)
    finally:
        last[:] = [None, None]
        for h in handles:
            h.remove()
    return grams


def compress(
    model: nn.Module,
    method: str,
    ratio: float,
    modules: Sequence[str] = PROJECTIONS,
    layers: Sequence[int] | None = None,
    calibration: torch.Tensor | None = None,
    decompositions: dict[str, Decomposition] | None = None,
) -> CompressionReport:
    """Replace every ``modules`` projection of ``layers`` (None = all) by its truncated factorisation, in place.

    ``calibration``: ``(n, seq_len)`` token ids whose activations whiten the SVD (``svd_llm``; ignored by ``svd``).
    ``decompositions``: a dict filled on first use and reused after (the SVDs do not depend on the ratio); the
    caller keeps one per (model, method, calibration).
    Raises:
        ConfigError: unknown method (lists the valid ones), ratio outside (0, 1], ``svd_llm`` without calibration
        tokens, or a module name that matches nothing (lists the layer's projections).
    """
    if method not in METHODS:
        raise ConfigError(f"unknown task.compression.method '{method}'; valid choices: {', '.join(METHODS)}")
    if method == "svd_llm" and calibration is None:
        raise ConfigError(
            "task.compression.method=svd_llm needs calibration tokens (task.compression.calibration_tokens > 0)"
        )
    rank_for_ratio(1, 1, ratio)  # checks the range before any work
    targets = find_targets(model, modules, layers)
    decompositions = {} if decompositions is None else decompositions
    if any(name not in decompositions for name, _, _ in targets):
        grams = input_grams(model, targets, calibration) if method == "svd_llm" else {}
        for name, parent, attr in targets:
            decompositions[name] = decompose(getattr(parent, attr).weight, grams.get(name))
    total_before = sum(p.numel() for p in model.parameters())
    before = after = sites = dense = 0
    for name, parent, attr in targets:
        linear = getattr(parent, attr)
        if type(linear) is not nn.Linear:
            raise ConfigError(f"{name} is a {type(linear).__name__}, not a dense nn.Linear: compress before adapting")
        n = linear.weight.numel()
        rank = rank_for_ratio(linear.out_features, linear.in_features, ratio)
        before += n
        if rank >= min(linear.out_features, linear.in_features):
            after, dense = after + n, dense + 1
            continue
        setattr(parent, attr, factorize(linear, rank, dec=decompositions[name]))
        after, sites = after + rank * (linear.out_features + linear.in_features), sites + 1
    return CompressionReport(
        method, float(ratio), sites, dense, before, after, total_before, sum(p.numel() for p in model.parameters())
    )
