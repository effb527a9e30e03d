"""The one interface between adapters and execution back ends, and the readout rule they share.

Readout (CUA paper, execution on the QPU; NOTES.md): slice x_j (b = 2^q entries) is normalised and
amplitude-encoded, |x_j> = x_j / ||x_j||; U_j acts; the device returns the outcome probabilities
p_j(k) (exact, or counts / shots). The output slice is

    y_j(k) = ||x_j|| * sqrt(p_j(k)) * sign((U_j x_j)(k))

Counts carry no sign, so signs are restored from the exact computation, as the paper does. With exact
probabilities, y_j = U_j x_j exactly; with finite shots, sqrt(counts / shots) estimates |(U_j x_j)(k)| / ||x_j||.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from omegaconf import DictConfig

from ..errors import ConfigError
from ..quantum.ansatz import StronglyEntanglingCircuit
from ..quantum.circuits import BlockUnitaryCircuit
from ..quantum.compound import RBSCircuit


class Device(ABC):
    """Executes circuit descriptions on vectors of activations.

    ``differentiable`` says whether gradients flow through :meth:`run_blocks` (training needs it).
    ``shots``: None for exact probabilities, else measurements per circuit.
    """

    name: str = "abstract"
    differentiable: bool = False
    POSITIONS = ("scored", "all")

    def __init__(self, cfg: DictConfig | None = None):
        self.cfg = cfg
        shots = None if cfg is None else cfg.get("shots")
        self.shots = None if shots is None else int(shots)
        self.seed = 0 if cfg is None or cfg.get("seed") is None else int(cfg.seed)
        self.circuits_run = 0  # (token, block) circuits executed so far (QPU accounting)
        self.positions = "scored" if cfg is None else str(cfg.get("positions", "scored"))
        if self.positions not in self.POSITIONS:
            raise ConfigError(f"unknown device.positions '{self.positions}'; valid choices: {', '.join(self.POSITIONS)}")

    @property
    def is_exact(self) -> bool:
        """True when readout equals U_j x_j exactly (no shots, no noise): nothing to compare against."""
        return self.differentiable
    def run_blocks(self, circuit: BlockUnitaryCircuit, x: torch.Tensor) -> torch.Tensor:
        """Apply ``circuit`` to every vector of ``x`` and read the result out (rule in the module docstring).

        Args:
            circuit: block unitaries, width d = n_blocks * b.
            x: ``(..., d)`` activations, any leading shape (batch, tokens).
        Returns:
            ``(..., d)`` in the dtype of ``x``: slice j of each vector replaced by the read-out U_j x_j.
        Raises:
            ValueError: ``x``'s last axis is not the circuit's width.
        """
        if x.shape[-1] != circuit.width:
            raise ValueError(f"vector width {x.shape[-1]} != circuit width {circuit.width}")
        b, n = circuit.block_size, circuit.n_blocks
        slices = x.detach().to(torch.float64).reshape(-1, n, b)
        unitaries = circuit.unitaries.detach().to(torch.float64)
        exact = torch.einsum("Nnb,ncb->Nnc", slices, unitaries)
        norms = slices.norm(dim=-1, keepdim=True)
        # an all-zero slice has no quantum state; its output is zero whatever is measured
        states = torch.where(norms > 0, slices / norms.clamp_min(1e-300), torch.full_like(slices, b**-0.5))
        probs = self.block_probabilities(circuit, states)
        self.circuits_run += states.shape[0] * n
        out = norms * probs.clamp_min(0).sqrt() * torch.sign(exact)
        return out.reshape(x.shape).to(x.dtype)

    @abstractmethod
    def block_probabilities(self, circuit: BlockUnitaryCircuit, states: torch.Tensor) -> torch.Tensor:
        """Outcome probabilities of every (vector, block) circuit.

        Args:
            states: ``(N, n_blocks, b)`` float64 unit vectors, the amplitude-encoded slices.
        Returns:
            ``(N, n_blocks, b)`` float64; entry k is P(outcome k) after U_j, basis order = amplitude order
            (first qubit most significant). Exact when ``shots`` is None, else counts / shots.
        """

    # QFFN circuits (qadapt/quantum/ansatz.py): amplitude encoding of a whole hidden vector + a variational
    # ansatz, and the compute-uncompute kernel of quantum attention heads. Devices that cannot run them say so.
    supports_ansatz: bool = False

    def ansatz_probabilities(self, circuit: StronglyEntanglingCircuit, states: torch.Tensor, outputs: int | None = None) -> torch.Tensor:
        """Outcome probabilities of S(psi) then U(theta), for every state.

        Args:
            states: ``(N, k)`` real unit vectors, k <= 2^n, zero-padded to 2^n amplitudes (amplitude encoding,
                :func:`qadapt.quantum.ansatz.amplitude_encode`).
            outputs: return outcomes 0..outputs-1 only (default all 2^n); all 2^n are measured.
        Returns:
            ``(N, outputs)``: P(k) (exact) or counts_k / shots; differentiable only on a differentiable device.
        Raises:
            ConfigError: the device cannot run QFFN circuits.
        """
        raise ConfigError(self._no_ansatz())

    def overlap_probabilities(self, circuit: StronglyEntanglingCircuit, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """P(|0...0>) of the compute-uncompute circuit S(r), U(theta), S(l)^dagger for every pair of rows.

        Args:
            left, right: ``(N, 2^n)`` real unit vectors (row i of each forms pair i).
        Returns:
            ``(N,)`` = |<l_i| U |r_i>|^2 exactly, or counts of the all-zero outcome / shots.
        Raises:
            ConfigError: the device cannot run QFFN circuits.
        """
        raise ConfigError(self._no_ansatz())

    # QuIC: Hamming-weight-preserving (RBS/FBS) circuits, final statevectors (tests the compound-matrix claim)
    supports_statevector: bool = False

    def rbs_states(self, circuit: RBSCircuit, states: torch.Tensor) -> torch.Tensor:
        """Final statevectors of ``circuit`` run on each input state.

        Args:
            states: ``(N, 2^n)`` real unit vectors (qubit 0 = most significant bit).
        Returns:
            ``(N, 2^n)`` float64 amplitudes (RBS circuits are real).
        Raises:
            ConfigError: the device returns no statevectors (hardware, shots).
        """
        from . import DEVICES

        ok = sorted(name for name, cls in DEVICES.items() if cls.supports_statevector)
        raise ConfigError(f"device={self.name} returns no statevectors; valid choices: {', '.join(ok)} (shots=null)")

    def _no_ansatz(self) -> str:
        from . import DEVICES

        ok = sorted(name for name, cls in DEVICES.items() if cls.supports_ansatz)
        return (f"device={self.name} cannot run QFFN circuits (10-qubit amplitude encoding + ansatz) yet; "
                f"valid choices: {', '.join(ok)}")

    def describe(self) -> str:
        return self.name if self.shots is None else f"{self.name}(shots={self.shots})"


def sample_counts(probs: torch.Tensor, shots: int, generator: torch.Generator) -> torch.Tensor:
    """Multinomial counts for every row of ``probs`` (``(..., b)``), as conditional binomials.

    One vectorised draw per basis state when b <= 64, never a loop over circuits or tokens, and no
    ``(rows, shots)`` sample array; for wider registers (QFFN: 1024 outcomes) ``torch.multinomial`` in row
    chunks of bounded size, counted with one scatter-add per chunk. Returns float64 counts of the same shape,
    summing to ``shots``.
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
