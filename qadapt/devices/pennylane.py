"""PennyLane devices: default.qubit, lightning.qubit (pennylane-lightning), lightning.gpu (cuQuantum).

Each (vector, block) pair is one q-qubit circuit: StatePrep(|x_j>) then QubitUnitary(U_j), measured with
``qml.probs``. All circuits of a call go to one QNode call through parameter broadcasting (a batch of
states and the matching batch of block unitaries); the unitaries are the adapter's own Q_j, built once
per forward pass and shared by every token. PennyLane is imported here only: adapters never see it.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from ..quantum.ansatz import StronglyEntanglingCircuit
from ..quantum.circuits import BlockUnitaryCircuit
from ..quantum.compound import RBSCircuit
from .base import Device

BACKENDS = ("default.qubit", "lightning.qubit", "lightning.gpu")


class PennyLaneDevice(Device):
    """Runs block circuits on a PennyLane device named by ``cfg.backend``.

    Raises (at construction, before any model is loaded):
        ConfigError: unknown backend; lightning.gpu without its plugin or without a CUDA GPU.
    """

    differentiable = False
    supports_ansatz = True
    supports_statevector = True

    def __init__(self, cfg):
        super().__init__(cfg)
        import pennylane as qml

        self.qml = qml
        self.backend = str(cfg.backend)
        self.name = str(cfg.name)
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown device.backend '{self.backend}'; valid choices: {', '.join(BACKENDS)}")
        if self.backend == "lightning.gpu" and not torch.cuda.is_available():
            raise ConfigError(
                "device=lightning_gpu needs an NVIDIA GPU with CUDA and the plugin pennylane-lightning-gpu "
                "(pip install 'qadapt[gpu]'); this machine has no CUDA device. Use device=lightning_qubit on CPU."
            )
        self._qnodes: dict[tuple, object] = {}
        self._qnode(1)  # fail now, not mid-evaluation, when the backend cannot be created

    def _qnode(self, qubits: int, kind: str = "blocks"):
        """One QNode per (register size, circuit kind), built on first use and reused for every call."""
        if (qubits, kind) not in self._qnodes:
            qml = self.qml
            try:
                dev = qml.device(self.backend, wires=qubits, seed=self.seed)
            except qml.DeviceError as err:
                raise ConfigError(
                    f"device {self.backend}: {err} (for lightning.gpu: pip install 'qadapt[gpu]')"
                ) from None
            wires = list(range(qubits))

            def blocks(states, unitaries):  # CUA: S(x_j), U_j
                qml.StatePrep(states, wires=wires, normalize=False)
                qml.QubitUnitary(unitaries, wires=wires)
                return qml.probs(wires=wires)

            def ansatz(states, weights):  # QFFN: S(x), StronglyEntanglingLayers(theta)
                qml.StatePrep(states, wires=wires, normalize=False)
                qml.StronglyEntanglingLayers(weights, wires=wires)
                return qml.probs(wires=wires)

            def overlap(left, right, weights):  # quantum head: S(k), U(theta), S(q)^dagger; P(0...0) = |<q|U|k>|^2
                qml.StatePrep(right, wires=wires, normalize=False)
                qml.StronglyEntanglingLayers(weights, wires=wires)
                qml.adjoint(qml.StatePrep(left, wires=wires, normalize=False))
                return qml.probs(wires=wires)

            def rbs(states, gates):  # QuIC: S(psi), then RBS gates; FBS = RBS conjugated by CZs from the qubits between
                qml.StatePrep(states, wires=wires, normalize=False)
                for i, j, theta in gates:
                    between = range(min(i, j) + 1, max(i, j))
                    for m in between:
                        qml.CZ(wires=[m, i])
                    qml.SingleExcitation(2 * theta, wires=[i, j])  # e_j -> cos e_j + sin e_i
                    for m in between:
                        qml.CZ(wires=[m, i])
                return qml.state()

            kinds = {"blocks": blocks, "ansatz": ansatz, "overlap": overlap, "rbs": rbs}
            qnode = qml.QNode(kinds[kind], dev, interface="numpy")
            self._qnodes[(qubits, kind)] = qnode if self.shots is None else qml.set_shots(qnode, shots=self.shots)
        return self._qnodes[(qubits, kind)]

    def _block_probabilities(self, circuit: BlockUnitaryCircuit, states: torch.Tensor) -> torch.Tensor:
        N, n, b = states.shape
        flat_states = states.reshape(N * n, b).cpu().numpy()
        unitaries = circuit.unitaries.detach().to(torch.float64).cpu().numpy()
        flat_unitaries = np.broadcast_to(unitaries[None], (N, n, b, b)).reshape(N * n, b, b)
        probs = np.asarray(self._qnode(circuit.qubits_per_block)(flat_states, flat_unitaries), dtype=np.float64)
        return torch.from_numpy(probs.reshape(N, n, b))

    def _ansatz_probabilities(
        self, circuit: StronglyEntanglingCircuit, states: torch.Tensor, outputs: int | None = None
    ) -> torch.Tensor:
        weights = circuit.weights.detach().to(torch.float64).cpu().numpy()
        padded = torch.nn.functional.pad(states.detach().to(torch.float64), (0, circuit.size - states.shape[-1]))
        probs = self._qnode(circuit.n_qubits, "ansatz")(padded.cpu().numpy(), weights)
        probs = torch.from_numpy(np.asarray(probs, dtype=np.float64).reshape(states.shape[0], circuit.size))
        return probs[:, :outputs].to(states.dtype)

    def _rbs_states(self, circuit: RBSCircuit, states: torch.Tensor) -> torch.Tensor:
        angles = circuit.angles.detach().to(torch.float64).cpu().numpy()
        gates = [(i, j, float(t)) for (i, j), t in zip(circuit.gates, angles)]
        out = self._qnode(circuit.n_qubits, "rbs")(states.detach().to(torch.float64).cpu().numpy(), gates)
        return torch.from_numpy(np.real(np.asarray(out)).reshape(states.shape[0], -1).copy())

    def _overlap_probabilities(
        self, circuit: StronglyEntanglingCircuit, left: torch.Tensor, right: torch.Tensor
    ) -> torch.Tensor:
        weights = circuit.weights.detach().to(torch.float64).cpu().numpy()
        as_np = lambda t: t.detach().to(torch.float64).cpu().numpy()  # noqa: E731
        qnode = self._qnode(circuit.n_qubits, "overlap")
        probs = np.asarray(qnode(as_np(left), as_np(right), weights), dtype=np.float64)
        return torch.from_numpy(probs.reshape(left.shape)[:, 0].copy()).to(left.dtype)
