"""Cayley transform from skew-symmetric generators to orthogonal blocks.

Source: CUA paper (arXiv 2605.05914), adapter structure: Q = (I - A)(I + A)^-1 with A = -A^T,
b(b-1)/2 free parameters per b x b block (6 for b = 4, i.e. 2 qubits).
"""

from __future__ import annotations

import torch


def num_skew_params(dim: int) -> int:
    """Free parameters of a ``dim`` x ``dim`` skew-symmetric matrix: dim(dim-1)/2."""
    return dim * (dim - 1) // 2


def skew_symmetric(params: torch.Tensor, dim: int) -> torch.Tensor:
    """Skew-symmetric matrices from their strict upper triangles.

    Args:
        params: ``(..., dim*(dim-1)/2)``, row-major order of the pairs (i, j), i < j.
        dim: block size b.
    Returns:
        ``(..., dim, dim)`` with A[i, j] = p, A[j, i] = -p, zero diagonal.
    Raises:
        ValueError: the last axis of ``params`` is not dim(dim-1)/2.
    """
    n = num_skew_params(dim)
    if params.shape[-1] != n:
        raise ValueError(f"expected {n} parameters per {dim}x{dim} block, got {params.shape[-1]}")
    rows, cols = torch.triu_indices(dim, dim, offset=1, device=params.device)
    upper = params.new_zeros(*params.shape[:-1], dim, dim)
    upper[..., rows, cols] = params
    return upper - upper.transpose(-1, -2)


def cayley(skew: torch.Tensor) -> torch.Tensor:
    """Orthogonal Q = (I - A)(I + A)^-1 for skew-symmetric A.

    I + A is always invertible (A's eigenvalues are imaginary), and (I - A) commutes with (I + A)^-1,
    so Q = solve(I + A, I - A): one batched LU solve, differentiable. A = 0 gives Q = I exactly.

    Args:
        skew: ``(..., b, b)`` skew-symmetric.
    Returns:
        ``(..., b, b)`` orthogonal with det +1.
    """
    eye = torch.eye(skew.shape[-1], dtype=skew.dtype, device=skew.device)
    return torch.linalg.solve(eye + skew, eye - skew)


def random_cayley_generators(
    n_blocks: int,
    block_size: int,
    generator: torch.Generator | None = None,
    scale: float = 0.3,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Seeded random skew generators, the stand-in for trained ones (circuit compilation, benchmarks, tests).

    One ``torch.randn(n_blocks, b(b-1)/2, generator=generator, dtype=dtype)`` draw times ``scale``: exactly the
    draws qadapt's callers made by hand, so switching to this function changes no number. ``generator=None``
    draws from torch's global generator. The default 0.3 gives blocks some way from the identity (rotation angles
    of about 0.6 rad) without wrapping around.

    Returns:
        ``(n_blocks, b(b-1)/2)`` in ``dtype``, rows as :func:`skew_symmetric` takes them.
    """
    return torch.randn(n_blocks, num_skew_params(block_size), generator=generator, dtype=dtype) * scale


def random_block_unitaries(n_blocks: int, block_size: int, *draw, **draw_by_name) -> torch.Tensor:
    """``(n_blocks, b, b)`` orthogonal blocks Q_j = cayley(skew(G_j)) of :func:`random_cayley_generators`, whose
    further arguments (``generator``, ``scale``, ``dtype``) ``draw`` passes on: the same draws."""
    generators = random_cayley_generators(n_blocks, block_size, *draw, **draw_by_name)
    return cayley(skew_symmetric(generators, block_size))
