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
from .qiskit_compile import amplitude_angles, block_circuits, state_prep_template  # noqa: F401 (re-exported)


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

            templates = block_circuits(unitaries, state_prep_template(circuit.qubits_per_block)[0])
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
