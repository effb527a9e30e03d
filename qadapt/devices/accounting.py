"""A device that counts: the exact device's results, plus a tally of every circuit a forward pass sends.

``qadapt plan`` runs one forward pass on the meta device through it (no weights, no memory) to learn how many
circuits each adapter site needs per token and how wide they are, for any adapter that talks to a device.
Circuits whose number per token depends on the attention window (quantum heads: one per allowed (query, key)
pair) are not counted in a meta pass; a layer reports them through
:meth:`qadapt.adapters.base.AdapterLayer.circuit_sites`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from .exact import ExactDevice


@dataclass
class SiteTally:
    """What one adapter site sent during the counted pass."""

    kind: str  # "block" (amplitude-encoded block unitaries: CUA), "ansatz" (QFFN), "overlap" (quantum heads), "rbs"
    qubits: int
    circuits: int = 0  # (vector, block) circuits executed
    blocks: int = 0  # distinct block unitaries (block circuits) or distinct ansatz circuits per call


class CircuitCounter(ExactDevice):
    """Exact and noise-free (shots=None), and records per site the circuits it was asked to run.

    ``site`` names the adapter currently running (set by the caller, e.g. from forward pre-hooks);
    ``tally[site]`` accumulates :class:`SiteTally` from every :meth:`count_circuits` call.
    """

    name = "exact"

    def __init__(self):
        super().__init__(None)
        self.site: str | None = None
        self.tally: dict[str, SiteTally] = defaultdict(lambda: SiteTally("block", 0))

    def count_circuits(self, kind: str, qubits: int, circuits: int, distinct: int = 1) -> None:
        super().count_circuits(kind, qubits, circuits, distinct)
        entry = self.tally[self.site or "?"]
        entry.kind, entry.qubits = kind, qubits
        entry.circuits += circuits
        entry.blocks = max(entry.blocks, distinct)
