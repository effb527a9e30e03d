"""Compound matrices and Hamming-weight-preserving (RBS) circuits: the math behind QuIC adapters.

Source: QuIC paper (arXiv 2502.06916; ../shared/papers/NOTES.md, QuIC section). A circuit of RBS
(Reconfigurable Beam Splitter) gates preserves the Hamming weight of computational basis states. On the
weight-1 subspace (n states |e_i>) it acts as an orthogonal n x n matrix A; on the weight-k subspace
(C(n, k) states) it acts as A's k-th compound matrix A^(k), whose entry (I, J) is the k x k minor
det(A[I, J]) for k-subsets I, J of {0..n-1} in lexicographic order (Cauchy-Binet makes the compound of a
product the product of the compounds, so each gate's compound composes into the circuit's).

An RBS gate on qubits (i, j) with angle theta is a Givens rotation on modes i, j of the weight-1 subspace:

    |e_i> -> cos(theta) |e_i> - sin(theta) |e_j>,    |e_j> -> sin(theta) |e_i> + cos(theta) |e_j>

(PennyLane's ``SingleExcitation(2 theta)`` on wires (i, j) up to the basis order, see tests/unit/test_rbs.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from itertools import combinations

import torch

LAYOUTS = ("pyramid", "butterfly")


@cache
def subsets(n: int, k: int) -> tuple[tuple[int, ...], ...]:
    """The k-subsets of {0..n-1} in lexicographic order: the row/column order of A^(k)."""
    return tuple(combinations(range(n), k))


def compound(matrix: torch.Tensor, k: int) -> torch.Tensor:
    """k-th compound matrix: all k x k minors, batched and differentiable.

    Args:
        matrix: ``(..., n, n)``.
        k: compound order, 1 <= k <= n.
    Returns:
        ``(..., C(n, k), C(n, k))``; entry (I, J) = det(matrix[I, J]), I, J in :func:`subsets` order.
        Order 1 returns ``matrix`` itself; the compound of an orthogonal matrix is orthogonal.
    Raises:
        ValueError: k outside [1, n] or a non-square matrix.
    """
    n = matrix.shape[-1]
    if matrix.shape[-2] != n:
        raise ValueError(f"compound needs square matrices, got {tuple(matrix.shape[-2:])}")
    if not 1 <= k <= n:
        raise ValueError(f"compound order k must be in [1, {n}], got {k}")
    if k == 1:
        return matrix
    idx = torch.tensor(subsets(n, k), device=matrix.device)  # (C, k)
    rows = matrix[..., idx, :]  # (..., C, k, n): the k rows of every subset I
    minors = rows[..., idx].transpose(-3, -2)  # (..., I, a, J, b) -> (..., I, J, a, b)
    return torch.linalg.det(minors)


def compound_dim(n: int, orders) -> int:
    """Size of the direct sum of compounds of the given orders: sum_k C(n, k)."""
    return sum(math.comb(n, int(k)) for k in orders)


def rbs_gates(n: int, layout: str) -> list[list[tuple[int, int]]]:
    """RBS gate positions, as layers of disjoint (i, j) pairs applied in order.

    pyramid: the triangular layout of the QuIC/orthogonal-network papers, n(n-1)/2 gates in 2n-3 layers;
    with all angles free it reaches every rotation of SO(n) (a Givens decomposition).
    butterfly: log2(n) layers of n/2 gates pairing i with i XOR 2^l (n a power of two), (n/2) log2 n gates.

    Raises:
        ValueError: unknown layout (lists the valid ones), n < 2, or n not a power of two for butterfly.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown RBS layout '{layout}'; valid choices: {', '.join(LAYOUTS)}")
    if n < 2:
        raise ValueError(f"an RBS circuit needs n >= 2 qubits, got {n}")
    if layout == "butterfly":
        if n & (n - 1):
            raise ValueError(f"the butterfly layout needs n a power of two, got {n}")
        return [[(i, i | (1 << level)) for i in range(n) if not i & (1 << level)] for level in range(int(math.log2(n)))]
    # pyramid: gate (i, i+1) at time t when i = t - 2m, so every pair of neighbours fires along a triangle
    layers = []
    for t in range(2 * n - 3):
        pairs = [(i, i + 1) for i in range(n - 1) if i <= t and (t - i) % 2 == 0 and i + t < 2 * (n - 1)]
        layers.append(pairs)
    return [layer for layer in layers if layer]


def num_rbs_gates(n: int, layout: str) -> int:
    """Gate count (= angle count) of :func:`rbs_gates`: n(n-1)/2 (pyramid) or (n/2) log2 n (butterfly)."""
    return sum(len(layer) for layer in rbs_gates(n, layout))


@dataclass(frozen=True)
class RBSCircuit:
    """A Hamming-weight-preserving circuit: RBS gates at :func:`rbs_gates` positions with given angles.

    Attributes:
        angles: ``(..., n_gates)`` radians, gates in layer order (a leading batch = independent circuits).
        n_qubits: n.
        layout: ``pyramid`` or ``butterfly``.
    """

    angles: torch.Tensor
    n_qubits: int
    layout: str = "pyramid"

    @property
    def gates(self) -> list[tuple[int, int]]:
        return [pair for layer in rbs_gates(self.n_qubits, self.layout) for pair in layer]

    def weight1_matrix(self) -> torch.Tensor:
        """The circuit's action on the weight-1 subspace: ``(..., n, n)`` orthogonal, column j = image of |e_j>.

        Built layer by layer (disjoint Givens rotations applied together), differentiable in the angles;
        all angles zero gives the identity.
        """
        n = self.n_qubits
        batch = self.angles.shape[:-1]
        out = torch.eye(n, dtype=self.angles.dtype, device=self.angles.device).expand(*batch, n, n)
        start = 0
        for layer in rbs_gates(n, self.layout):
            theta = self.angles[..., start : start + len(layer)]
            start += len(layer)
            i = torch.tensor([p[0] for p in layer], device=out.device)
            j = torch.tensor([p[1] for p in layer], device=out.device)
            c, s = torch.cos(theta).unsqueeze(-1), torch.sin(theta).unsqueeze(-1)
            row_i, row_j = out[..., i, :], out[..., j, :]
            out = out.clone()
            out[..., i, :] = c * row_i + s * row_j
            out[..., j, :] = -s * row_i + c * row_j
        return out

    def parity_between(self, i: int, j: int) -> list[int]:
        """Qubits strictly between i and j: an FBS gate's parity string (empty for nearest neighbours)."""
        return list(range(min(i, j) + 1, max(i, j)))

    def apply_to_states(self, states: torch.Tensor) -> torch.Tensor:
        """Exact statevector simulation on n qubits: ``(N, 2^n)`` -> ``(N, 2^n)`` (wire 0 = most significant bit).

        Gates on non-neighbouring qubits are fermionic beam splitters (FBS, Kerenidis & Prakash): the RBS
        rotation with its sine negated when the qubits between i and j hold odd parity. Nearest-neighbour
        gates (the whole pyramid) are plain RBS gates. With that sign the weight-k block of the circuit is
        exactly the k-th compound of its weight-1 block for every layout. The angles must be unbatched.

        Raises:
            ValueError: batched angles, or ``states`` not of width 2^n.
        """
        n = self.n_qubits
        if self.angles.dim() != 1:
            raise ValueError("apply_to_states simulates one circuit: angles must be 1-D")
        if states.shape[-1] != 2**n:
            raise ValueError(f"states have {states.shape[-1]} amplitudes, an {n}-qubit register has {2**n}")
        psi = states.to(self.angles.dtype).reshape(-1, *([2] * n))
        for (i, j), theta in zip(self.gates, self.angles):
            c, s = torch.cos(theta), torch.sin(theta)
            between = self.parity_between(i, j)
            if between:
                bits = torch.stack(torch.meshgrid(*[torch.arange(2)] * n, indexing="ij"))[between].sum(0)
                sign = (1 - 2 * (bits % 2)).to(psi.dtype)  # (2,)*n, +-1 by the parity of the qubits in between
                sign = sign.select(i, 0).select(j - 1 if j > i else j, 0)  # drop the i and j axes
            else:
                sign = 1.0
            alpha = psi.select(1 + i, 1).select(j if j > i else j + 1, 0)  # i excited, j empty
            beta = psi.select(1 + i, 0).select(j if j > i else j + 1, 1)  # j excited, i empty
            new_alpha, new_beta = c * alpha + s * sign * beta, -s * sign * alpha + c * beta
            psi = psi.clone()
            psi.select(1 + i, 1).select(j if j > i else j + 1, 0).copy_(new_alpha)
            psi.select(1 + i, 0).select(j if j > i else j + 1, 1).copy_(new_beta)
        return psi.reshape(states.shape[0], 2**n)


def weight_indices(n: int, k: int) -> torch.Tensor:
    """Basis-state indices of the weight-k subspace in :func:`subsets` order (qubit 0 = most significant bit)."""
    return torch.tensor([sum(1 << (n - 1 - q) for q in subset) for subset in subsets(n, k)])
