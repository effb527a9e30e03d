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
from ..quantum.circuits import BlockUnitaryCircuit
from .base import Device

BACKENDS = ("default.qubit", "lightning.qubit", "lightning.gpu")


class PennyLaneDevice(Device):
    """Runs block circuits on a PennyLane device named by ``cfg.backend``.

    Raises (at construction, before any model is loaded):
        ConfigError: unknown backend; lightning.gpu without its plugin or without a CUDA GPU.
    """

    differentiable = False

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
        self._qnodes: dict[int, object] = {}
        self._qnode(1)  # fail now, not mid-evaluation, when the backend cannot be created

    def _qnode(self, qubits: int):
        if qubits not in self._qnodes:
            qml = self.qml
            try:
                dev = qml.device(self.backend, wires=qubits, seed=self.seed)
            except qml.DeviceError as err:
                raise ConfigError(f"device {self.backend}: {err} (for lightning.gpu: pip install 'qadapt[gpu]')") from None
            wires = list(range(qubits))

            def circuit(states, unitaries):
                qml.StatePrep(states, wires=wires, normalize=False)
                qml.QubitUnitary(unitaries, wires=wires)
                return qml.probs(wires=wires)

            qnode = qml.QNode(circuit, dev, interface="numpy")
            self._qnodes[qubits] = qnode if self.shots is None else qml.set_shots(qnode, shots=self.shots)
        return self._qnodes[qubits]

    def block_probabilities(self, circuit: BlockUnitaryCircuit, states: torch.Tensor) -> torch.Tensor:
        N, n, b = states.shape
        flat_states = states.reshape(N * n, b).cpu().numpy()
        unitaries = circuit.unitaries.detach().to(torch.float64).cpu().numpy()
        flat_unitaries = np.broadcast_to(unitaries[None], (N, n, b, b)).reshape(N * n, b, b)
        probs = np.asarray(self._qnode(circuit.qubits_per_block)(flat_states, flat_unitaries), dtype=np.float64)
        return torch.from_numpy(probs.reshape(N, n, b))
