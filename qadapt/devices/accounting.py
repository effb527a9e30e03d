"""A device that counts: the exact device's results, plus a tally of every circuit a forward pass sends.

``qadapt plan`` runs one forward pass on the meta device through it (no weights, no memory) to learn how many
circuits each adapter site needs per token and how wide they are, for any adapter that talks to a device.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch

from ..quantum.ansatz import StronglyEntanglingCircuit
from ..quantum.circuits import BlockUnitaryCircuit
from .exact import ExactDevice


@dataclass
class SiteTally:
    """What one adapter site sent during the counted pass."""

    kind: str  # "block" (amplitude-encoded block unitaries: CUA), "ansatz" (QFFN), "overlap" (quantum heads)
    qubits: int
    circuits: int = 0  # (vector, block) circuits executed
    blocks: int = 0  # distinct block unitaries (block circuits) or distinct ansatz circuits per call


class CircuitCounter(ExactDevice):
    """Exact and noise-free (shots=None), and records per site the circuits it was asked to run.

    ``site`` names the adapter currently running (set by the caller, e.g. from forward pre-hooks);
    ``tally[site]`` accumulates :class:`SiteTally`.
    """

    name = "exact"

    def __init__(self):
        super().__init__(None)
        self.site: str | None = None
        self.tally: dict[str, SiteTally] = defaultdict(lambda: SiteTally("block", 0))

    def _record(self, kind: str, qubits: int, circuits: int, blocks: int) -> None:
        entry = self.tally[self.site or "?"]
        entry.kind, entry.qubits = kind, qubits
        entry.circuits += circuits
        entry.blocks = max(entry.blocks, blocks)

    def run_blocks(self, circuit: BlockUnitaryCircuit, x: torch.Tensor) -> torch.Tensor:
        self._record("block", circuit.qubits_per_block, x.numel() // circuit.block_size, circuit.n_blocks)
        return super().run_blocks(circuit, x)

    def ansatz_probabilities(self, circuit: StronglyEntanglingCircuit, states: torch.Tensor, outputs: int | None = None) -> torch.Tensor:
        self._record("ansatz", circuit.n_qubits, states.shape[0], 1)
        return super().ansatz_probabilities(circuit, states, outputs)

    def overlap_probabilities(self, circuit: StronglyEntanglingCircuit, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        self._record("overlap", circuit.n_qubits, left.shape[0], 1)
        return super().overlap_probabilities(circuit, left, right)
