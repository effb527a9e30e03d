"""``ibm_fake``: a qiskit-ibm-runtime fake backend with its noise model (qiskit-aer ``NoiseModel.from_backend``).

Per block j, one circuit template is compiled once (Qiskit transpiler, the backend's basis: CZ/SX/RZ on
Heron): amplitude encoding of a real unit vector as a tree of uniformly controlled RY rotations with
2^q - 1 free angles, then Q_j as a unitary, then measurement. Two engines sample it:

- ``engine=fused`` (default): :mod:`.fused_noise`, the same noise model applied exactly as fused
  superoperators in torch, batched over all (token, block) circuits, then multinomial shots;
  thousands of times faster than Aer's shot-by-shot trajectories.
- ``engine=aer``: Aer's ``SamplerV2``; every token binds its own angles, so all tokens of a block form
  one primitive unified bloc (PUB) and all blocks go to Aer in one job; counts become probabilities
  with one vectorised bincount. The reference the fused engine is tested against.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from .. import schema
from ..errors import ConfigError
from ..quantum.circuits import BlockUnitaryCircuit
from .base import Device
from .jobs import JobRunner, JobSpec, split_jobs
from .mitigation import ReadoutCalibration, calibrate, correct, measured_qubits
from .options import IBMKeys
from .qiskit_compile import amplitude_angles, block_circuits, state_prep_template  # noqa: F401 (re-exported)
from .sampling import sample_counts


class QiskitSamplerDevice(Device):
    """Block circuits compiled for an IBM backend and sampled by a SamplerV2 (Aer or IBM Runtime).

    Subclasses set ``self.backend`` (compilation target) and ``self.sampler``. The (token, block) circuits of a
    call go out as jobs of at most ``device.max_circuits_per_job`` circuits, ``device.max_jobs_in_flight`` at once,
    retried after transient errors and kept in ``device.journal_dir`` for resuming (:mod:`qadapt.devices.jobs`).
    ``job_ids`` collects the ids of the jobs sent, so results can be re-fetched. ``device.mitigation=readout``
    corrects every block's counts for the readout errors of the qubits it was measured on, calibrated on the same
    backend the first time they are measured (:mod:`qadapt.devices.mitigation`); ``calibration_circuits`` and
    ``calibration_shots`` count what that cost.
    """

    differentiable = False

    def __init__(self, cfg):
        super().__init__(cfg)
        if self.shots is None:
            raise ConfigError(f"device={cfg.name} samples: set device.shots (the paper used 8192)")
        self.optimization_level = int(cfg.optimization_level)
        self._compiled: dict[str, list] = {}
        self.max_circuits_per_job = int(cfg.max_circuits_per_job)
        self.jobs = JobRunner(
            cfg.max_jobs_in_flight,
            cfg.retries,
            cfg.retry_wait_s,
            cfg.journal_dir,
            max_qpu_seconds=schema.value(cfg, IBMKeys, "max_qpu_seconds"),
        )
        self.mitigation = str(cfg.mitigation)
        self.calibration: ReadoutCalibration | None = None
        self.calibration_circuits = self.calibration_shots = 0
        self._inverse: dict[str, torch.Tensor] = {}

    @property
    def job_ids(self) -> list[str]:
        """Ids of the jobs sent so far, so results can be re-fetched from the service."""
        return self.jobs.job_ids

    def _templates(self, circuit: BlockUnitaryCircuit) -> list:
        """Compiled template per block, cached by the unitaries' bytes: compiled once, reused for every token."""
        return self._compile(circuit)[1]

    def _compile(self, circuit: BlockUnitaryCircuit) -> tuple[str, list]:
        unitaries = circuit.unitaries.detach().to(torch.float64).cpu().numpy()
        # blocks built in float32 are orthogonal to ~1e-7 only; Qiskit's synthesis wants unitaries to ~1e-9,
        # so take the nearest orthogonal matrix (polar factor U V^T), a change below float32 precision
        u, _, vt = np.linalg.svd(unitaries)
        unitaries = u @ vt
        key = hashlib.sha1(unitaries.tobytes()).hexdigest()
        if key not in self._compiled:
            from qiskit import transpile

            templates = block_circuits(unitaries, state_prep_template(circuit.qubits_per_block)[0])
            self._compiled[key] = transpile(
                templates, backend=self.backend, optimization_level=self.optimization_level, seed_transpiler=self.seed
            )
        return key, self._compiled[key]

    def _calibration_mode(self):
        """The runtime mode calibration jobs join (IBM: the device's Batch; fake backends: none)."""
        return None

    def _calibration_system(self):
        """Where readout calibration circuits run: the backend itself (subclasses may say otherwise)."""
        return self.backend

    def _mitigate(self, key: str, templates: list, probabilities: torch.Tensor) -> torch.Tensor:
        """``(N, n, b)`` frequencies -> the same, readout-corrected when ``device.mitigation=readout``."""
        if self.mitigation == "none":
            return probabilities
        if key not in self._inverse:
            qubits = [measured_qubits(t) for t in templates]
            wanted = {q for block in qubits for q in block}
            known = set(self.calibration.matrices) if self.calibration else set()
            if not wanted <= known:  # qubits measured for the first time: calibrate them (once per device)
                fresh = calibrate(
                    self._calibration_system(), sorted(wanted - known), self.shots, self.seed, self._calibration_mode()
                )
                self.calibration_circuits += fresh.circuits
                self.calibration_shots += fresh.shots
                matrices = {**(self.calibration.matrices if self.calibration else {}), **fresh.matrices}
                self.calibration = ReadoutCalibration(matrices, self.calibration_circuits, self.calibration_shots)
            self._inverse[key] = self.calibration.inverse(qubits)
        return correct(probabilities, self._inverse[key])

    def records(self) -> dict:
        """What a reader needs to trust a hardware number, for the row (``device_records``): the backend, when its
        calibration (the properties the compiler and noise model used) was taken, the physical qubits each compiled
        block is measured on, shots, the sampler and its options, the readout calibration's cost, and the versions."""
        import qiskit

        try:
            import qiskit_ibm_runtime

            runtime = qiskit_ibm_runtime.__version__
        except ImportError:  # pragma: no cover - the ibm extra is installed with qadapt
            runtime = None
        properties = getattr(self.backend, "properties", lambda: None)()
        calibrated = getattr(properties, "last_update_date", None)
        layouts = [[list(measured_qubits(t)) for t in templates] for templates in self._compiled.values()]
        return {
            "backend": self.backend.name,
            "calibration_time": calibrated.isoformat() if calibrated is not None else None,
            "measured_qubits": layouts,
            "shots": self.shots,
            "sampler": getattr(self, "sampler_name", type(self.sampler).__name__),
            "options": getattr(self, "options", {}),
            "calibration_circuits": self.calibration_circuits,
            "calibration_shots": self.calibration_shots,
            "qiskit": qiskit.__version__,
            "qiskit_ibm_runtime": runtime,
        }

    def _journal_prefix(self, key: str) -> str:
        """What identifies this device's measurements of the circuits ``key``, for the job journal."""
        return f"{self.describe()}|opt{self.optimization_level}|seed{self.seed}|{key}"

    def _block_probabilities(self, circuit: BlockUnitaryCircuit, states: torch.Tensor) -> torch.Tensor:
        N, n, b = states.shape
        key, templates = self._compile(circuit)
        angles = amplitude_angles(states.cpu().numpy())  # (N, n, b - 1)
        specs = split_jobs(n, N, self.max_circuits_per_job)

        def pubs_of(spec: JobSpec) -> list:  # one PUB per block: its template and the job's tokens' angles
            return [(templates[j], angles[spec.start : spec.stop, j, :]) for j in spec.blocks]

        def collect(result, spec: JobSpec) -> np.ndarray:
            # (blocks, tokens, shots) outcomes; the lowest byte holds the q <= 8 measured bits, qubit 0 least
            # significant
            outcomes = np.stack([r.data.meas.array[..., -1] for r in result]).astype(np.int64) & (b - 1)
            rows = outcomes.shape[0] * outcomes.shape[1]
            flat = (np.arange(rows).reshape(outcomes.shape[:2] + (1,)) * b + outcomes).ravel()
            return np.bincount(flat, minlength=rows * b).reshape(outcomes.shape[0], outcomes.shape[1], b)

        parts = self.jobs.run(
            specs,
            pubs_of,
            lambda pubs: self.sampler.run(pubs, shots=self.shots),
            collect,
            angles,
            self._journal_prefix(key),
        )
        counts = np.zeros((n, N, b))
        for spec, part in zip(specs, parts):
            counts[list(spec.blocks), spec.start : spec.stop] = part
        return self._mitigate(key, templates, torch.from_numpy(counts.transpose(1, 0, 2) / self.shots))


ENGINES = ("fused", "aer")


class IBMFakeDevice(QiskitSamplerDevice):
    """Shots from a fake IBM backend, with (``noise=true``) or without its noise model, by the fused engine or Aer.

    Raises (at construction):
        ConfigError: extra ``ibm`` missing, unknown backend or engine name (lists them), ``shots`` null.
    """

    name = "ibm_fake"

    def __init__(self, cfg):
        super().__init__(cfg)
        from qiskit_aer.primitives import SamplerV2

        from .mitigation import check
        from .qiskit_compile import fake_backend, noise_model

        check(cfg, hardware=False)

        self.engine = str(cfg.engine)
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown device.engine '{self.engine}'; valid choices: {', '.join(ENGINES)}")
        self.backend = fake_backend(str(cfg.backend))
        self.noise = bool(cfg.noise)
        self._noise_model = noise_model(str(cfg.backend)) if self.noise else None
        self._fused: dict[str, object] = {}
        self._generator = torch.Generator().manual_seed(self.seed)
        # Aer with the same noise model (what SamplerV2.from_backend builds), for engine=aer
        options = {"backend_options": {"seed_simulator": self.seed, "noise_model": self._noise_model}}
        self.sampler = SamplerV2(seed=self.seed, options=options)

    def _block_probabilities(self, circuit: BlockUnitaryCircuit, states: torch.Tensor) -> torch.Tensor:
        if self.engine == "aer":
            return super()._block_probabilities(circuit, states)
        from .fused_noise import FusedCircuits, NoiseChannels, fuse_block

        key, templates = self._compile(circuit)
        if key not in self._fused:
            channels = NoiseChannels(self._noise_model)
            n_angles = circuit.block_size - 1
            self._fused[key] = FusedCircuits([fuse_block(t, n_angles, channels) for t in templates])
        probs = self._fused[key].probabilities(torch.from_numpy(amplitude_angles(states.cpu().numpy())))
        return self._mitigate(key, templates, sample_counts(probs, self.shots, self._generator) / self.shots)

    def _calibration_system(self):
        # the noise model this device samples with (NoiseModel.from_backend), not the fake backend's own run(),
        # whose readout errors come from its properties file and differ (asymmetric): calibrate what is sampled
        from qiskit_aer import AerSimulator

        return AerSimulator.from_backend(self.backend, noise_model=self._noise_model, seed_simulator=self.seed)

    def describe(self) -> str:
        mitigation = "" if self.mitigation == "none" else f", mitigation={self.mitigation}"
        return f"ibm_fake({self.cfg.backend}, noise={self.noise}, shots={self.shots}, engine={self.engine}{mitigation})"
