"""The one interface between adapters and execution back ends: circuits + inputs -> probabilities, counts or states.

A device runs circuit descriptions (qadapt/quantum/: what runs) on batches of inputs, and decides where and how:
exact torch simulation, PennyLane, Qiskit/Aer, IBM hardware. It returns outcome probabilities (exact, or counts /
shots) or, on statevector simulators, final states, and knows nothing of what an adapter makes of them: CUA's
readout rule is :mod:`qadapt.quantum.readout`, QFFN's is in :mod:`qadapt.adapters.qffn.ffn`.

One method per circuit kind, as their inputs differ (N circuits per call, batched):

=========  ===============================================================  ==========================
kind       method                                                           returns
=========  ===============================================================  ==========================
block      ``block_probabilities(BlockUnitaryCircuit, states (N, n, b))``     ``(N, n, b)`` (CUA)
ansatz     ``ansatz_probabilities(StronglyEntanglingCircuit, (N, k), m)``     ``(N, m)`` (QFFN)
overlap    ``overlap_probabilities(StronglyEntanglingCircuit, l, r (N, 2^n))``  ``(N,)`` (quantum heads)
rbs        ``rbs_states(RBSCircuit, states (N, 2^n))``                        ``(N, 2^n)`` (QuIC checks)
=========  ===============================================================  ==========================

Accounting is the device's: every one of these methods records what it ran through :meth:`Device.count_circuits`
(``circuits_run``; :class:`~qadapt.devices.accounting.CircuitCounter` also tallies per site). A backend implements
the underscored methods (``_block_probabilities`` ...), the public ones check support and count.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from omegaconf import DictConfig

from .. import schema
from ..errors import ConfigError
from ..quantum.ansatz import StronglyEntanglingCircuit
from ..quantum.circuits import BlockUnitaryCircuit
from ..quantum.compound import RBSCircuit
from .options import SimulatorOptions
from .sampling import sample_counts  # noqa: F401 (re-exported: qadapt.devices.base.sample_counts)

CIRCUIT_KINDS = ("block", "ansatz", "overlap", "rbs")


class Device(ABC):
    """Executes circuit descriptions on batches of inputs (module docstring).

    Attributes:
        differentiable: gradients flow through the results (training needs it).
        shots: None for exact probabilities, else measurements per circuit.
        seed: seeds the device's sampling.
        circuits_run: circuits executed so far (one per input vector and block, QPU accounting).
        positions: ``scored`` or ``all``: which token positions an evaluation sends to the device.
        supports_ansatz: the device runs QFFN circuits (ansatz and overlap kinds).
        supports_statevector: the device returns final statevectors (without shots).
    Raises (at construction):
        ConfigError: unknown ``positions``.
    """

    name: str = "abstract"
    differentiable: bool = False
    POSITIONS = ("scored", "all")
    supports_ansatz: bool = False
    supports_statevector: bool = False

    def __init__(self, cfg: DictConfig | None = None):
        self.cfg = cfg
        shots = None if cfg is None else cfg.get("shots")
        self.shots = None if shots is None else int(shots)
        self.seed = 0 if cfg is None or cfg.get("seed") is None else int(cfg.seed)
        self.circuits_run = 0
        self.positions = "scored" if cfg is None else str(schema.value(cfg, SimulatorOptions, "positions"))
        if self.positions not in self.POSITIONS:
            raise ConfigError(
                f"unknown device.positions '{self.positions}'; valid choices: {', '.join(self.POSITIONS)}"
            )

    @classmethod
    def gradients_flow(cls, cfg: DictConfig) -> bool:
        """:attr:`differentiable` as the config ``cfg`` decides it, without building the device."""
        return bool(cls.differentiable)

    @property
    def is_exact(self) -> bool:
        """True when results are exact and noise-free (no shots, no noise), so an adapter may compute them itself:
        e.g. CUA's readout then equals U_j x_j exactly (qadapt/quantum/readout.py)."""
        return self.differentiable

    def count_circuits(self, kind: str, qubits: int, circuits: int, distinct: int = 1) -> None:
        """Record that ``circuits`` circuits of ``kind`` (:data:`CIRCUIT_KINDS`) on ``qubits`` qubits ran, built
        from ``distinct`` different circuits (block unitaries, heads).

        The probability methods below call it; an adapter calls it for circuits whose exact result it computes
        itself on an exact device (:attr:`is_exact`: CUA's U_j x_j, the quantum heads' kernel as one matmul), so
        ``circuits_run`` counts what an evaluation would send to hardware either way. Subclasses that keep more
        (:class:`~qadapt.devices.accounting.CircuitCounter`) override it and call ``super()``.
        """
        self.circuits_run += circuits

    # -- block circuits (CUA) -----------------------------------------------------------------------------------

    def block_probabilities(self, circuit: BlockUnitaryCircuit, states: torch.Tensor) -> torch.Tensor:
        """Outcome probabilities of every (vector, block) circuit S(|x_j>), U_j, measure all.

        Args:
            circuit: block unitaries U_j ``(n_blocks, b, b)``, b = 2^q.
            states: ``(N, n_blocks, b)`` float64 unit vectors, the amplitude-encoded slices
                (:func:`qadapt.quantum.readout.encode_blocks`).
        Returns:
            ``(N, n_blocks, b)`` float64; entry k is P(outcome k) after U_j, basis order = amplitude order
            (first qubit most significant). Exact when ``shots`` is None, else counts / shots. Counts N * n_blocks.
        """
        probs = self._block_probabilities(circuit, states)
        self.count_circuits("block", circuit.qubits_per_block, states.shape[0] * states.shape[1], circuit.n_blocks)
        return probs

    @abstractmethod
    def _block_probabilities(self, circuit: BlockUnitaryCircuit, states: torch.Tensor) -> torch.Tensor:
        """The backend's :meth:`block_probabilities` (no counting)."""

    # -- QFFN circuits: amplitude encoding of a whole hidden vector + a variational ansatz, and the compute-uncompute
    # kernel of quantum attention heads (qadapt/quantum/ansatz.py). Devices that cannot run them say so.

    def require_ansatz(self) -> None:
        """Check that this device runs QFFN circuits (ansatz and overlap kinds).

        Raises:
            ConfigError: it cannot; the message lists the device names that can.
        """
        if not self.supports_ansatz:
            from . import DEVICES

            ok = sorted(name for name, cls in DEVICES.items() if cls.supports_ansatz)
            raise ConfigError(
                f"device={self.name} cannot run QFFN circuits (10-qubit amplitude encoding + ansatz) "
                f"yet; valid choices: {', '.join(ok)}"
            )

    def _counted(self, kind: str, circuit: StronglyEntanglingCircuit, probs: torch.Tensor) -> torch.Tensor:
        """``probs`` (one row per circuit run), the circuits counted under ``kind``."""
        self.count_circuits(kind, circuit.n_qubits, probs.shape[0])
        return probs

    def ansatz_probabilities(
        self, circuit: StronglyEntanglingCircuit, states: torch.Tensor, outputs: int | None = None
    ) -> torch.Tensor:
        """Outcome probabilities of S(psi) then U(theta), for every state.

        Args:
            states: ``(N, k)`` real unit vectors, k <= 2^n, zero-padded to 2^n amplitudes (amplitude encoding,
                :func:`qadapt.quantum.ansatz.amplitude_encode`).
            outputs: return outcomes 0..outputs-1 only (default all 2^n); all 2^n are measured.
        Returns:
            ``(N, outputs)``: P(k) (exact) or counts_k / shots; differentiable only on a differentiable device.
            Counts N circuits.
        Raises:
            ConfigError: the device cannot run QFFN circuits.
        """
        self.require_ansatz()
        return self._counted("ansatz", circuit, self._ansatz_probabilities(circuit, states, outputs))

    def _ansatz_probabilities(
        self, circuit: StronglyEntanglingCircuit, states: torch.Tensor, outputs: int | None
    ) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} sets supports_ansatz without _ansatz_probabilities")

    def overlap_probabilities(
        self, circuit: StronglyEntanglingCircuit, left: torch.Tensor, right: torch.Tensor
    ) -> torch.Tensor:
        """P(|0...0>) of the compute-uncompute circuit S(r), U(theta), S(l)^dagger for every pair of rows.

        Args:
            left, right: ``(N, 2^n)`` real unit vectors (row i of each forms pair i).
        Returns:
            ``(N,)`` = |<l_i| U |r_i>|^2 exactly, or counts of the all-zero outcome / shots. Counts N circuits.
        Raises:
            ConfigError: the device cannot run QFFN circuits.
        """
        self.require_ansatz()
        return self._counted("overlap", circuit, self._overlap_probabilities(circuit, left, right))

    def _overlap_probabilities(
        self, circuit: StronglyEntanglingCircuit, left: torch.Tensor, right: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} sets supports_ansatz without _overlap_probabilities")

    # -- QuIC: Hamming-weight-preserving (RBS/FBS) circuits, final statevectors (tests the compound-matrix claim) --

    def require_statevector(self) -> None:
        """Check that this device returns final statevectors (a simulator without shots).

        Raises:
            ConfigError: it does not; the message lists the device names that do.
        """
        if not self.supports_statevector or self.shots is not None:
            from . import DEVICES

            ok = sorted(name for name, cls in DEVICES.items() if cls.supports_statevector)
            raise ConfigError(
                f"device={self.name} returns no statevectors; valid choices: {', '.join(ok)} (shots=null)"
            )

    def rbs_states(self, circuit: RBSCircuit, states: torch.Tensor) -> torch.Tensor:
        """Final statevectors of ``circuit`` run on each input state.

        Args:
            states: ``(N, 2^n)`` real unit vectors (qubit 0 = most significant bit).
        Returns:
            ``(N, 2^n)`` float64 amplitudes (RBS circuits are real). Counts N circuits.
        Raises:
            ConfigError: the device returns no statevectors (hardware, shots).
        """
        self.require_statevector()
        out = self._rbs_states(circuit, states)
        self.count_circuits("rbs", circuit.n_qubits, states.shape[0])
        return out

    def _rbs_states(self, circuit: RBSCircuit, states: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} sets supports_statevector without _rbs_states")

    def describe(self) -> str:
        return self.name if self.shots is None else f"{self.name}(shots={self.shots})"
