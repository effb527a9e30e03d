"""Exact device: torch statevector simulation, batched over every circuit of a call."""

from __future__ import annotations

import torch

from ..quantum.ansatz import StronglyEntanglingCircuit
from ..quantum.circuits import BlockUnitaryCircuit
from ..quantum.compound import RBSCircuit
from .base import Device
from .sampling import sample_counts


class ExactDevice(Device):
    """Torch statevector execution.

    ``shots=None`` (default): noise-free, infinite shots, differentiable (:attr:`is_exact`: adapters may compute
    the exact results themselves, e.g. CUA's y_j = U_j x_j, and count them with :meth:`count_circuits`).
    ``shots=N``: the exact probabilities are sampled N times per circuit (seeded); not differentiable.
    """

    name = "exact"
    supports_ansatz = True
    supports_statevector = True

    @property
    def differentiable(self) -> bool:  # type: ignore[override]
        return self.shots is None

    @classmethod
    def gradients_flow(cls, cfg) -> bool:
        return cfg.get("shots") is None

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self._generator = torch.Generator().manual_seed(self.seed)

    def _block_probabilities(self, circuit: BlockUnitaryCircuit, states: torch.Tensor) -> torch.Tensor:
        probs = torch.einsum("Nnb,ncb->Nnc", states, circuit.unitaries.to(states.dtype)).square()
        if self.shots is None:
            return probs
        return sample_counts(probs, self.shots, self._generator) / self.shots

    def _ansatz_probabilities(
        self, circuit: StronglyEntanglingCircuit, states: torch.Tensor, outputs: int | None = None
    ) -> torch.Tensor:
        if self.shots is None:
            return circuit.probabilities(states, outputs)  # fused simulator, differentiable
        # shots sample every outcome of the register, also those the caller does not read
        probs = circuit.probabilities(states).detach().double()
        counts = sample_counts(probs, self.shots, self._generator)
        return (counts / self.shots)[:, :outputs].to(states.dtype)

    def _overlap_probabilities(
        self, circuit: StronglyEntanglingCircuit, left: torch.Tensor, right: torch.Tensor
    ) -> torch.Tensor:
        u = circuit.unitary()
        ur = right.to(u.dtype) @ u.transpose(0, 1)  # rows (U r_i)^T
        amp = (left.to(u.dtype) * ur).sum(-1)
        probs = amp.real.square() + amp.imag.square()
        if self.shots is None:
            return probs
        hits = torch.binomial(
            torch.full_like(probs.detach().double(), float(self.shots)),
            probs.detach().double().clamp(0, 1),
            generator=self._generator,
        )
        return (hits / self.shots).to(probs.dtype)

    def _rbs_states(self, circuit: RBSCircuit, states: torch.Tensor) -> torch.Tensor:
        return circuit.apply_to_states(states.to(torch.float64))
