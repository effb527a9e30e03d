"""Exact device: block unitaries applied by one batched matmul over all tokens and blocks."""

from __future__ import annotations

import torch

from ..quantum.ansatz import StronglyEntanglingCircuit
from ..quantum.circuits import BlockUnitaryCircuit
from ..quantum.compound import RBSCircuit
from .base import Device, sample_counts


class ExactDevice(Device):
    """Torch statevector execution.

    ``shots=None`` (default): noise-free, infinite shots, differentiable: y_j = U_j x_j directly (the
    readout rule reduces to this exactly, so no normalisation is done). ``shots=N``: the exact
    probabilities |U_j x_j|^2 / ||x_j||^2 are sampled N times per circuit (seeded) and read out with
    the shared rule; not differentiable.
    """

    name = "exact"
    supports_ansatz = True
    supports_statevector = True

    @property
    def differentiable(self) -> bool:  # type: ignore[override]
        return self.shots is None

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self._generator = torch.Generator().manual_seed(self.seed)

    def run_blocks(self, circuit: BlockUnitaryCircuit, x: torch.Tensor) -> torch.Tensor:
        if self.shots is not None:
            return super().run_blocks(circuit, x)
        self.circuits_run += x.numel() // circuit.block_size
        return circuit.apply(x)

    def block_probabilities(self, circuit: BlockUnitaryCircuit, states: torch.Tensor) -> torch.Tensor:
        probs = torch.einsum("Nnb,ncb->Nnc", states, circuit.unitaries.to(states.dtype)).square()
        if self.shots is None:
            return probs
        return sample_counts(probs, self.shots, self._generator) / self.shots

    def ansatz_probabilities(self, circuit: StronglyEntanglingCircuit, states: torch.Tensor, outputs: int | None = None) -> torch.Tensor:
        self.circuits_run += states.shape[0]
        if self.shots is None:
            return circuit.probabilities(states, outputs)  # fused simulator, differentiable
        # shots sample every outcome of the register, also those the caller does not read
        probs = circuit.probabilities(states).detach().double()
        counts = sample_counts(probs, self.shots, self._generator)
        return (counts / self.shots)[:, :outputs].to(states.dtype)

    def overlap_probabilities(self, circuit: StronglyEntanglingCircuit, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        u = circuit.unitary()
        ur = right.to(u.dtype) @ u.transpose(0, 1)  # rows (U r_i)^T
        amp = (left.to(u.dtype) * ur).sum(-1)
        probs = amp.real.square() + amp.imag.square()
        self.circuits_run += left.shape[0]
        if self.shots is None:
            return probs
        hits = torch.binomial(torch.full_like(probs.detach().double(), float(self.shots)), probs.detach().double().clamp(0, 1),
                              generator=self._generator)
        return (hits / self.shots).to(probs.dtype)

    def rbs_states(self, circuit: RBSCircuit, states: torch.Tensor) -> torch.Tensor:
        if self.shots is not None:
            return super().rbs_states(circuit, states)
        return circuit.apply_to_states(states.to(torch.float64))
