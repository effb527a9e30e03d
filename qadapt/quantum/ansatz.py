"""Amplitude encoding and the variational ansatz of QFFN, with our fused statevector simulator.

Source: "Less Bits, More Qubits" (QFFN paper, ../shared/papers/002_*.txt, Section 3 "Quantum Feed-Forward
Networks" and Figure 2): a d-dim vector is zero-padded to 2^n, n = ceil(log2 d), normalised and
amplitude-encoded; a variational circuit U(theta) of depth D acts on it. Our U(theta) is PennyLane's
``StronglyEntanglingLayers`` (Schuld et al. 2020), so a device can run the very same circuit natively:

    layer l = 0..D-1:  Rot(theta[l, i, 0], theta[l, i, 1], theta[l, i, 2]) on every qubit i,
                       then CNOT(i, (i + r_l) mod n) for i = 0..n-1 in order,  r_l = (l mod (n-1)) + 1
    Rot(phi, th, om) = RZ(om) RY(th) RZ(phi)                          3 n D parameters

Fused simulation (ours, differentiable, batched over tokens): the states of a batch are the columns of a
``(2^n, N)`` block. The register is split into groups of 2-3 qubits (``qubit_groups``); a layer's rotations on a
group form one Kronecker factor (8x8 or 4x4), applied to the block viewed as ``(2^before, 2^g, rest)`` as one
batched matmul on contiguous memory; the layer's CNOT ring is a fixed permutation of basis states (a row gather,
computed once). Cost per layer: N * 2^n * sum_g 2^g complex MACs instead of N * 4^n for the full unitary: at
n = 10, 24 instead of 1024 per amplitude. For QFFN the block is the first d columns of U(theta), built once per
step and applied to all tokens as one real matmul (``probabilities``); results/bench_qffn.md times both against
PennyLane. Wire 0 is the most significant bit
(PennyLane's and our amplitude order).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import torch


def qubits_for(width: int) -> int:
    """n = ceil(log2 d): the qubits that amplitude-encode a d-dim vector (d = 1 needs 1 qubit)."""
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    return max(1, math.ceil(math.log2(width)))


def amplitude_encode(x: torch.Tensor, n_qubits: int, pad: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad ``x`` ``(..., d)`` to 2^n and normalise: the amplitude-encoded states and the kept norms.

    Returns:
        states ``(..., 2^n)`` unit vectors (``pad=False``: ``(..., d)``, the padding left implicit); an all-zero
        input becomes the uniform superposition, whose output is multiplied by its zero norm anyway;
        norms ``(..., 1)`` = ||x||.
    Raises:
        ValueError: d > 2^n.
    """
    width, size = x.shape[-1], 2**n_qubits
    if width > size:
        raise ValueError(f"a {width}-dim vector does not fit in {n_qubits} qubits (2^{n_qubits} = {size} amplitudes)")
    padded = torch.nn.functional.pad(x, (0, size - width)) if pad else x
    size = padded.shape[-1]
    norms = padded.norm(dim=-1, keepdim=True)
    uniform = torch.full_like(padded, size**-0.5)
    states = torch.where(norms > 0, padded / norms.clamp_min(torch.finfo(x.dtype).tiny), uniform)
    return states, norms


def entangler_ranges(n_qubits: int, depth: int) -> list[int]:
    """PennyLane's default CNOT ranges of StronglyEntanglingLayers: r_l = (l mod (n-1)) + 1 (n > 1)."""
    return [(layer % (n_qubits - 1)) + 1 if n_qubits > 1 else 0 for layer in range(depth)]


@functools.cache
def cnot_ring_permutation(n_qubits: int, r: int) -> torch.Tensor:
    """Index ``perm`` with (ring |psi>)[k] = psi[perm[k]] for CNOT(i, (i + r) mod n), i = 0..n-1 in order.

    Cached, so built outside inference mode: an inference tensor could not be saved for a later backward pass.
    """
    with torch.inference_mode(False):
        return _ring_permutation(n_qubits, r)


def _ring_permutation(n_qubits: int, r: int) -> torch.Tensor:
    size = 2**n_qubits
    # track where each basis state goes: apply the CNOTs to the basis labels
    labels = torch.arange(size)
    image = labels.clone()
    for i in range(n_qubits if n_qubits > 1 else 0):
        control, target = n_qubits - 1 - i, n_qubits - 1 - (i + r) % n_qubits  # bit positions (wire 0 = MSB)
        flip = (image >> control) & 1
        image = image ^ (flip << target)
    perm = torch.empty(size, dtype=torch.long)
    perm[image] = labels  # basis state k after the ring came from perm[k]
    return perm


def rot_matrices(theta: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` Rot angles (phi, theta, omega) -> ``(..., 2, 2)`` complex RZ(omega) RY(theta) RZ(phi)."""
    phi, th, om = theta.unbind(-1)
    c, s = torch.cos(th / 2), torch.sin(th / 2)
    e_plus = torch.polar(torch.ones_like(phi), -(phi + om) / 2)  # e^{-i(phi+omega)/2}
    e_minus = torch.polar(torch.ones_like(phi), (phi - om) / 2)  # e^{+i(phi-omega)/2}
    row0 = torch.stack([e_plus * c, -e_minus * s], -1)
    row1 = torch.stack([e_minus.conj() * s, e_plus.conj() * c], -1)
    return torch.stack([row0, row1], -2)


def qubit_groups(n_qubits: int) -> list[int]:
    """How :meth:`StronglyEntanglingCircuit.complex_columns` splits n qubits: groups of 3 while more than 4 remain,
    then 4 -> 2 + 2 (10 -> 3, 3, 2, 2; 6 -> 3, 3). Measured on a 2-core CPU at n = 10 (scripts/bench_qffn.py):
    3+3+2+2 builds 576 columns in about half the time of 5+5 (fewer multiply-adds, matmuls still large enough)."""
    groups, left = [], n_qubits
    while left > 4:
        groups.append(3)
        left -= 3
    return groups + ([2, 2] if left == 4 else [left])


def kron_all(mats: torch.Tensor) -> torch.Tensor:
    """Kronecker product of ``(k, 2, 2)`` matrices in order (first = most significant): ``(2^k, 2^k)``."""
    out = mats[0]
    for m in mats[1:]:
        out = torch.kron(out, m)
    return out


@dataclass(frozen=True)
class StronglyEntanglingCircuit:
    """U(theta) = StronglyEntanglingLayers on n qubits (module docstring); what runs, not where.

    Attributes:
        weights: ``(D, n, 3)`` rotation angles in radians (real, any float dtype; gradients flow).
        fused_columns: optional precomputed :meth:`real_columns` (``(2, 2^n, k)``) for these weights, reused by
            :meth:`probabilities` (the owner caches them while the weights do not change, e.g. in evaluation).
    """

    weights: torch.Tensor
    fused_columns: torch.Tensor | None = field(default=None, compare=False, repr=False)

    @property
    def depth(self) -> int:
        return self.weights.shape[0]

    @property
    def n_qubits(self) -> int:
        return self.weights.shape[1]

    @property
    def size(self) -> int:
        return 2**self.n_qubits

    @staticmethod
    def num_params(n_qubits: int, depth: int) -> int:
        """3 n D."""
        return 3 * n_qubits * depth

    def apply(self, states: torch.Tensor) -> torch.Tensor:
        """U(theta) |psi> for a batch: ``(N, 2^n)`` real or complex -> ``(N, 2^n)`` complex (layer-fused simulator).

        The batch is laid out as ``(2^n, N)`` and evolved layer by layer as in :meth:`complex_columns`.
        Raises:
            ValueError: the last axis is not 2^n.
        """
        if states.shape[-1] != self.size:
            raise ValueError(f"state width {states.shape[-1]} != 2^{self.n_qubits}")
        cdtype = torch.complex128 if self.weights.dtype == torch.float64 else torch.complex64
        block = states.reshape(-1, self.size).to(cdtype).transpose(0, 1).contiguous()
        return self._evolve(block, rot_matrices(self.weights), first_layer=0).transpose(0, 1).reshape(states.shape)

    def _evolve(self, state: torch.Tensor, rots: torch.Tensor, first_layer: int) -> torch.Tensor:
        """Layers ``first_layer``..D-1 applied to ``state`` ``(2^n, m)`` complex (the columns are the states):
        each qubit group's Kronecker factor as one batched matmul on contiguous memory, then the CNOT ring."""
        n, m = self.n_qubits, state.shape[-1]
        groups = qubit_groups(n)
        starts = [sum(groups[:i]) for i in range(len(groups))]
        ranges = entangler_ranges(n, self.depth)
        for layer in range(first_layer, self.depth):
            for g, start in reversed(list(zip(groups, starts))):
                state = torch.matmul(kron_all(rots[layer, start : start + g]), state.reshape(2**start, 2**g, -1))
            state = state.reshape(2**n, m)
            if n > 1:
                state = state.index_select(0, cnot_ring_permutation(n, ranges[layer]).to(state.device))
        return state

    def probabilities(self, states: torch.Tensor, outputs: int | None = None) -> torch.Tensor:
        """|<k| U(theta) |psi>|^2 for k < ``outputs`` (default 2^n).

        Args:
            states: ``(N, k_in)`` real unit vectors, k_in <= 2^n (zero padding to 2^n implicit), or complex
                ``(N, 2^n)``.
        Returns:
            ``(N, outputs)`` real. Real inputs go through the fused columns U[:outputs, :k_in] as one real matmul
            against [Re; Im] (the fast path: QFFN reads 576 of 1024 outcomes of 576-dim inputs); complex inputs
            through the layer-fused simulator.
        """
        outputs = self.size if outputs is None else outputs
        if states.is_complex():
            amp = self.apply(states)[:, :outputs]
            return amp.real.square() + amp.imag.square()
        k = states.shape[-1]
        if self.fused_columns is not None and self.fused_columns.shape[-1] >= k:
            cols = self.fused_columns[:, :outputs, :k]  # (2, outputs, k): Re, Im of U[:outputs, :k]
        else:
            c = self.complex_columns(k)[:outputs]
            cols = torch.stack([c.real, c.imag])
        both = torch.matmul(states.to(cols.dtype), cols.transpose(1, 2))  # (2, N, outputs)
        return both[0].square() + both[1].square()

    def real_columns(self, k: int) -> torch.Tensor:
        """``(2, 2^n, k)`` real: [Re; Im] of U(theta)[:, :k] (:meth:`complex_columns`); differentiable.

        Raises: ValueError for k outside [1, 2^n].
        """
        if self.fused_columns is not None and self.fused_columns.shape[-1] >= k:
            return self.fused_columns[..., :k]
        c = self.complex_columns(k)
        return torch.stack([c.real, c.imag])

    def complex_columns(self, k: int) -> torch.Tensor:
        """``(2^n, k)`` complex: U(theta)[:, :k], the images of the first k basis states; differentiable.

        The register is split into groups of qubits (:func:`qubit_groups`, e.g. 3+3+2+2 for n = 10). The first
        layer's rotations map e_j to a Kronecker product of group columns: an outer product, no matmul. Every later
        layer meets the block laid out as ``(2^(qubits before g), 2^g, rest)`` and applies group g's Kronecker
        factor as one batched matmul on contiguous memory (no transposes), then the CNOT ring's permutation as a
        row gather: sum_g 2^g * 2^n * k complex multiply-adds per layer.
        Raises: ValueError for k outside [1, 2^n].
        """
        if not 0 < k <= self.size:
            raise ValueError(f"k = {k} columns requested of a {self.size}-dim unitary")
        n = self.n_qubits
        groups = qubit_groups(n)
        rots = rot_matrices(self.weights)  # (D, n, 2, 2) complex
        first = kron_all(rots[0, : groups[0]])
        if len(groups) > 1:
            rest_size = 2 ** (n - groups[0])
            rest = kron_all(rots[0, groups[0] :])
            hi = -(-k // rest_size)  # first-group indices that the first k basis states use
            state = torch.einsum("ij,kl->ikjl", first[:, :hi], rest).reshape(2**n, hi * rest_size)[:, :k]
        else:
            state = first[:, :k]
        if n > 1:
            state = state.index_select(0, cnot_ring_permutation(n, entangler_ranges(n, self.depth)[0]).to(state.device))
        return self._evolve(state, rots, first_layer=1)

    def columns(self, k: int) -> torch.Tensor:
        """``(k, 2^n)`` complex: row j is U(theta) e_j, the image of basis state j (j < k); differentiable."""
        return self.complex_columns(k).transpose(0, 1)

    def unitary(self) -> torch.Tensor:
        """The ``(2^n, 2^n)`` complex matrix of U(theta) (columns = images of basis states); for tests and compilers."""
        return self.columns(self.size).transpose(0, 1)

    def overlaps(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """Fidelity kernel |<l| U(theta) |r>|^2 for every pair of real states.

        Args:
            left: ``(..., L, 2^n)`` real unit vectors; right: ``(..., R, 2^n)`` (same leading shape).
        Returns:
            ``(..., L, R)``: the probability of measuring |0...0> after S(r), U(theta), S(l)^dagger (compute-uncompute
            circuit), computed as two real matmuls, (l^T Re U r)^2 + (l^T Im U r)^2.
        """
        u = self.unitary()
        ur_re = right @ u.real.to(right.dtype).transpose(0, 1)  # (U r)^T rows, real part
        ur_im = right @ u.imag.to(right.dtype).transpose(0, 1)
        return (left @ ur_re.transpose(-1, -2)).square() + (left @ ur_im.transpose(-1, -2)).square()
