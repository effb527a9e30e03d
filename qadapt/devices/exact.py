"""Exact device: block unitaries applied by one batched matmul over all tokens and blocks."""

from __future__ import annotations

import torch

from ..quantum.circuits import BlockUnitaryCircuit
from .base import Device, sample_counts


class ExactDevice(Device):
    """Torch statevector execution.

    ``shots=None`` (default): noise-free, infinite shots, differentiable: y_j = U_j x_j directly (the
    readout rule reduces to this exactly, so no normalisation is done). ``shots=N``: the exact
    probabilities |U_j x_j|^2 / ||x_j||^2 are sampled N times per circuit (seeded) and read out with
    the shared rule; not differentiable.
    """

    name = "exact"

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
