"""A differentiable model of an IBM backend's noise on CUA's block circuits, for noise-aware training
(``train.noise=<fake backend>``).

The fused engine (:mod:`.fused_noise`) gives a block circuit's exact noisy outcome distribution, but only for a
compiled circuit: its superoperators come out of Qiskit's transpiler, which no gradient passes through. Training
needs the distribution as a function of U_j. The surrogate, per block size b = 2^q:

    p_noisy(U, x) = A [ (1 - lambda) |U x|^2 + lambda / b ]

a global depolarising channel of strength lambda followed by the tensored readout assignment matrix A of the
measured qubits. Both are fitted once to the fused engine on the backend's own compiled circuits: ``fit_blocks``
random orthogonal blocks (a generic U compiles to the same two-qubit gate count whatever its values) and
``fit_states`` random unit inputs; lambda by least squares against the fused engine's distribution before readout,
A from the noise model's readout errors on the qubits the transpiler measured. ``fits[q]`` records how close the
surrogate is: the mean total-variation distance to the fused engine's distribution (readout included) on held-out
blocks and inputs, beside the exact distribution's distance to it (what the surrogate has to explain).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import OmegaConf

from .. import schema
from ..quantum.circuits import BlockUnitaryCircuit
from .base import Device


@dataclass
class SurrogateFit:
    """The fitted channel for blocks of ``qubits`` qubits on ``backend``.

    Attributes:
        depolarising: lambda (dimensionless, 0 = noiseless). readout: ``(b, b)`` float64 assignment matrix
        P(measured | prepared) over outcome indices. measured_qubits: the physical qubits it was built from (the most
        common layout of the fit blocks). tv_surrogate, tv_exact: mean total-variation distance to the fused
        engine's distribution on held-out blocks and inputs, of the surrogate and of the exact distribution.
        two_qubit_gates: mean two-qubit gates of a compiled token circuit (state preparation + U).
    """

    qubits: int
    depolarising: float
    readout: torch.Tensor
    measured_qubits: list[int]
    tv_surrogate: float
    tv_exact: float
    two_qubit_gates: float


def _random_circuit(q: int, blocks: int, generator: torch.Generator) -> BlockUnitaryCircuit:
    """``blocks`` Haar-like random orthogonal b x b blocks (QR of Gaussian matrices, signs fixed)."""
    b = 2**q
    z = torch.randn(blocks, b, b, generator=generator, dtype=torch.float64)
    qmat, r = torch.linalg.qr(z)
    return BlockUnitaryCircuit(qmat * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2), q)


def _unit_states(n: int, blocks: int, b: int, generator: torch.Generator) -> torch.Tensor:
    x = torch.randn(n, blocks, b, generator=generator, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


def _exact(circuit: BlockUnitaryCircuit, states: torch.Tensor) -> torch.Tensor:
    """|U_j x|^2, ``(N, n, b)``, in the basis order of the devices' outcomes."""
    return torch.einsum("Nnb,ncb->Nnc", states, circuit.unitaries.to(states.dtype)).square()


class NoiseSurrogateDevice(Device):
    """Differentiable depolarising-plus-readout model of a fake IBM backend's noise on block circuits (module
    docstring). Not a device a user picks: ``train.noise`` builds it as the training device.

    Raises (at construction):
        ConfigError: unknown backend name, extra ``ibm`` missing.
    """

    name = "noise_surrogate"
    differentiable = True

    def __init__(self, backend: str, optimization_level: int = 2, seed: int = 0, fit_blocks: int = 6, fit_states=48):
        super().__init__(OmegaConf.create({"seed": seed}))
        from .ibm_fake import IBMFakeDevice

        self.backend = backend
        self.fit_blocks, self.fit_states = int(fit_blocks), int(fit_states)
        # the device whose noise is modelled: its compiler, noise model and fused engine
        own = {"backend": backend, "shots": 1, "seed": seed, "optimization_level": optimization_level}
        self.reference = IBMFakeDevice(
            OmegaConf.create(schema.option_file("device", "ibm_fake") | own | {"engine": "fused"})
        )
        self.fits: dict[int, SurrogateFit] = {}

    @property
    def is_exact(self) -> bool:
        return False

    def fit(self, q: int) -> SurrogateFit:
        """The channel for q-qubit blocks, fitted on first use (compiles 2 x ``fit_blocks`` blocks for the backend)."""
        if q in self.fits:
            return self.fits[q]
        from .fused_noise import FusedCircuits, NoiseChannels, fuse_block
        from .mitigation import measured_qubits, tensored
        from .qiskit_compile import TWO_QUBIT_GATES, amplitude_angles

        b = 2**q
        generator = torch.Generator().manual_seed(self.seed)
        noise = self.reference._noise_model
        halves = []
        for _ in range(2):  # fit on the first half of the blocks, measure closeness on the second
            circuit = _random_circuit(q, self.fit_blocks, generator)
            states = _unit_states(self.fit_states, self.fit_blocks, b, generator)
            _, templates = self.reference._compile(circuit)
            angles = torch.from_numpy(amplitude_angles(states.numpy()))
            before = FusedCircuits([fuse_block(t, b - 1, NoiseChannels(noise, readout=False)) for t in templates])
            after = FusedCircuits([fuse_block(t, b - 1, NoiseChannels(noise)) for t in templates])
            halves.append((circuit, states, templates, before.probabilities(angles), after.probabilities(angles)))
        circuit, states, templates, before, _ = halves[0]
        exact, uniform = _exact(circuit, states), 1.0 / b
        depolarising = float(((exact - before) * (exact - uniform)).sum() / (exact - uniform).square().sum())
        layouts = [tuple(measured_qubits(t)) for t in templates]
        measured = list(max(set(layouts), key=layouts.count))
        channels = NoiseChannels(noise)
        readout = torch.from_numpy(tensored({q_: channels.readout(q_).T for q_ in measured}, measured))
        fit = SurrogateFit(q, depolarising, readout, measured, 0.0, 0.0, 0.0)
        circuit, states, templates, _, after = halves[1]
        exact = _exact(circuit, states)
        fit.tv_surrogate = float(0.5 * (self._channel(fit, exact) - after).abs().sum(-1).mean())
        fit.tv_exact = float(0.5 * (exact - after).abs().sum(-1).mean())
        fit.two_qubit_gates = float(
            np.mean([sum(v for k, v in t.count_ops().items() if k in TWO_QUBIT_GATES) for t in templates])
        )
        self.fits[q] = fit
        return fit

    @staticmethod
    def _channel(fit: SurrogateFit, exact: torch.Tensor) -> torch.Tensor:
        b = exact.shape[-1]
        mixed = (1 - fit.depolarising) * exact + fit.depolarising / b
        return torch.einsum("ab,Nnb->Nna", fit.readout.to(exact.dtype), mixed)

    def _block_probabilities(self, circuit: BlockUnitaryCircuit, states: torch.Tensor) -> torch.Tensor:
        return self._channel(self.fit(circuit.qubits_per_block), _exact(circuit, states))

    def describe(self) -> str:
        fitted = ", ".join(f"q={q}: lambda={f.depolarising:.4f}" for q, f in sorted(self.fits.items()))
        return f"noise_surrogate({self.backend}{', ' + fitted if fitted else ''})"
