"""``ibm_fake``: a qiskit-ibm-runtime fake backend with its noise model, sampled by qiskit-aer.

Per block j, one circuit template is compiled once (Qiskit transpiler, the backend's basis: CZ/SX/RZ on
Heron): amplitude encoding of a real unit vector as a tree of (multi-)controlled RY rotations with
2^q - 1 free angles, then Q_j as a unitary, then measurement. Every token binds its own angles, so all
tokens of a block form one primitive unified bloc (PUB) and all blocks go to Aer in one SamplerV2 job.
Counts are turned into probabilities with one vectorised bincount.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..errors import ConfigError
from ..quantum.circuits import BlockUnitaryCircuit
from .base import Device


def amplitude_angles(states: np.ndarray) -> np.ndarray:
    """RY angles that prepare real unit vectors with the tree of :func:`state_prep_template`.

    Args:
        states: ``(..., b)`` real unit vectors, b = 2^q (amplitude k = basis state k, qubit 0 least significant).
    Returns:
        ``(..., b - 1)``: level l (from the most significant qubit down) holds 2^l angles, one per value of the
        qubits above; non-leaf angles split the norm, 2 atan2(||upper half||, ||lower half||); leaf angles carry
        the sign, 2 atan2(x_odd, x_even).
    """
    b = states.shape[-1]
    q = int(round(np.log2(b)))
    out = []
    for level in range(q):
        groups = states.reshape(*states.shape[:-1], 2**level, 2, b // 2 ** (level + 1))
        if level == q - 1:
            lo, hi = groups[..., 0, 0], groups[..., 1, 0]
        else:
            lo, hi = np.linalg.norm(groups[..., 0, :], axis=-1), np.linalg.norm(groups[..., 1, :], axis=-1)
        out.append(2 * np.arctan2(hi, lo))
    return np.concatenate(out, axis=-1)


def state_prep_template(qubits: int):
    """Parameterised circuit preparing sum_k x_k |k> from the angles of :func:`amplitude_angles`."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector
    from qiskit.circuit.library import RYGate

    theta = ParameterVector("theta", 2**qubits - 1)
    circuit = QuantumCircuit(qubits)
    i = 0
    for level in range(qubits):
        target = qubits - 1 - level
        controls = list(range(qubits - level, qubits))  # the qubits above, least significant first
        for prefix in range(2**level):
            if level == 0:
                circuit.ry(theta[i], target)
            else:
                circuit.append(RYGate(theta[i]).control(level, ctrl_state=prefix, annotated=True), [*controls, target])
            i += 1
    return circuit, theta


class QiskitSamplerDevice(Device):
    """Block circuits compiled for an IBM backend and sampled by a SamplerV2 (Aer or IBM Runtime).

    Subclasses set ``self.backend`` (compilation target) and ``self.sampler``. ``job_ids`` collects the ids of
    the jobs sent, so results can be re-fetched.
    """

    differentiable = False

    def __init__(self, cfg):
        super().__init__(cfg)
        if self.shots is None:
            raise ConfigError(f"device={cfg.name} samples: set device.shots (the paper used 8192)")
        self.optimization_level = int(cfg.get("optimization_level", 1))
        self._compiled: dict[str, list] = {}
        self.job_ids: list[str] = []

    def _templates(self, circuit: BlockUnitaryCircuit) -> list:
        """Compiled template per block, cached by the unitaries' bytes: compiled once, reused for every token."""
        unitaries = circuit.unitaries.detach().to(torch.float64).cpu().numpy()
        # blocks built in float32 are orthogonal to ~1e-7 only; Qiskit's synthesis wants unitaries to ~1e-9,
        # so take the nearest orthogonal matrix (polar factor U V^T), a change below float32 precision
        u, _, vt = np.linalg.svd(unitaries)
        unitaries = u @ vt
        key = hashlib.sha1(unitaries.tobytes()).hexdigest()
        if key not in self._compiled:
            from qiskit import transpile
            from qiskit.circuit.library import UnitaryGate

            q = circuit.qubits_per_block
            prep, _ = state_prep_template(q)
            templates = []
            for U in unitaries:  # describing n circuits; compiling them is one batched transpile call
                c = prep.copy()
                c.append(UnitaryGate(U), range(q))
                c.measure_all()
                templates.append(c)
            self._compiled[key] = transpile(templates, backend=self.backend, optimization_level=self.optimization_level,
                                            seed_transpiler=self.seed)
        return self._compiled[key]

    def block_probabilities(self, circuit: BlockUnitaryCircuit, states: torch.Tensor) -> torch.Tensor:
        N, n, b = states.shape
        templates = self._templates(circuit)
        angles = amplitude_angles(states.cpu().numpy())  # (N, n, b - 1)
        pubs = [(templates[j], angles[:, j, :]) for j in range(n)]
        job = self.sampler.run(pubs, shots=self.shots)
        self.job_ids.append(str(job.job_id()))
        result = job.result()
        # (n, N, shots) outcomes; the lowest byte holds the q <= 8 measured bits, qubit 0 least significant
        outcomes = np.stack([r.data.meas.array[..., -1] for r in result]).astype(np.int64) & (b - 1)
        flat = (np.arange(n * N).reshape(n, N, 1) * b + outcomes).ravel()
        counts = np.bincount(flat, minlength=n * N * b).reshape(n, N, b)
        return torch.from_numpy(counts.transpose(1, 0, 2) / self.shots)


class IBMFakeDevice(QiskitSamplerDevice):
    """Shots from a fake IBM backend through Aer, with (``noise=true``) or without its noise model.

    Raises (at construction):
        ConfigError: extra ``ibm`` missing, unknown backend name (lists them), ``shots`` null.
    """

    name = "ibm_fake"

    def __init__(self, cfg):
        super().__init__(cfg)
        from qiskit_aer.primitives import SamplerV2

        from .qiskit_compile import fake_backend

        self.backend = fake_backend(str(cfg.backend))
        self.noise = bool(cfg.get("noise", True))
        options = {"backend_options": {"seed_simulator": self.seed}}
        if self.noise:
            self.sampler = SamplerV2.from_backend(self.backend, seed=self.seed, options=options)
        else:
            self.sampler = SamplerV2(seed=self.seed, options=options)

    def describe(self) -> str:
        return f"ibm_fake({self.cfg.backend}, noise={self.noise}, shots={self.shots})"
