"""Fused density-matrix simulation of compiled block circuits under an IBM backend's Aer noise model.

Why: Aer samples a noisy circuit shot by shot (one trajectory per shot), ~10 ms per 8,192-shot circuit; a CUA
site needs d / 2^q circuits per token. Here the same noise model is applied exactly, in torch, batched over
every (token, block):

- Each block's circuit is compiled once (:mod:`.qiskit_compile`): amplitude encoding with 2^q - 1 free RY
  angles, Q_j, measurement, transpiled to the backend's basis (CZ/SX/RZ/X on Heron). After transpilation the
  token's angles sit only in RZ gates, which are virtual (frame changes) and noiseless on IBM devices, so the
  circuit is fixed noisy segments separated by token-dependent diagonal phases.
- A fixed segment, every gate followed by its Aer ``QuantumError`` (depolarising + thermal relaxation, from
  ``NoiseModel.from_backend``, the model ``SamplerV2.from_backend`` uses), is fused once into one superoperator
  on the k active qubits (4^k x 4^k).
- Per token: rho -> S_0 -> RZ(phi_1) -> S_1 -> ... -> diag, then each measured qubit's readout error
  (assignment matrix), then ``shots`` samples of the resulting distribution (counts are multinomial: shots of
  a fixed channel are independent). The outcome distribution is the one Aer samples from; tests check the
  pre-readout probabilities against Aer's density-matrix simulator to 1e-6 and the counts against Aer's
  noisy sampler within a binomial bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import QadaptError

IGNORED = ("barrier", "delay")


@dataclass
class FusedBlock:
    """One compiled block circuit as fused segments.

    Attributes:
        start: ``(4^k,)`` complex, vec(rho) after the first fixed segment (row-major vec: index a * 2^k + b).
        superops: ``(m, 4^k, 4^k)`` complex, segment i + 1 follows phase i.
        phase_qubit: ``(m,)`` active-qubit index of each token-dependent RZ.
        phase_coef, phase_offset: angle of RZ i = theta @ phase_coef[i] + phase_offset[i] (theta: the prep angles).
        readout: ``(b, 4^k)`` real map from vec(rho) at the end to the outcome distribution of the measured bits
            (diagonal, readout assignment errors, marginal over unmeasured active qubits, clbit order).
        active: physical qubits the circuit touches (k of them).
    """

    start: np.ndarray
    superops: np.ndarray
    phase_qubit: np.ndarray
    phase_coef: np.ndarray
    phase_offset: np.ndarray
    readout: np.ndarray
    active: list[int]


def local_superop(unitary: np.ndarray, error: np.ndarray | None) -> np.ndarray:
    """Superoperator of "apply ``unitary``, then the error superoperator ``error``" on m qubits, acting on
    row-major vec(rho): vec(K rho K^dagger) = (K kron conj(K)) vec(rho)."""
    S = np.kron(unitary, unitary.conj())
    return S if error is None else error @ S


def _apply_superop(rho: torch.Tensor, superop: torch.Tensor, local: list[int], k: int) -> torch.Tensor:
    """Apply an m-qubit superoperator (row-major vec, qiskit qubit order: index = sum_i bit(local[i]) 2^i) on
    local qubits ``local`` of a batch of k-qubit density matrices ``rho`` ``(B, 2^k, 2^k)`` (qubit 0 = least
    significant index bit)."""
    m = len(local)
    B = rho.shape[0]
    t = rho.reshape(B, *([2] * (2 * k)))
    rows = [1 + (k - 1 - q) for q in reversed(local)]  # superop axes list the most significant local qubit first
    cols = [1 + k + (k - 1 - q) for q in reversed(local)]
    S = superop.reshape(*([2] * (4 * m)))  # (out rows, out cols, in rows, in cols)
    t = torch.tensordot(S, t, dims=(list(range(2 * m, 4 * m)), rows + cols))
    rest = [a for a in range(1 + 2 * k) if a not in rows + cols]
    return t.permute(*np.argsort([*rows, *cols, *rest]).tolist()).reshape(B, 2**k, 2**k)


def _linear_coefficients(expr, n_angles: int) -> tuple[np.ndarray, float]:
    """(coefficients over the ``n_angles`` prep angles theta[i], offset) of a parameter expression linear in them.

    Raises:
        QadaptError: the expression is not linear in the prep angles (a transpiler result we cannot fuse).
    """
    used = list(expr.parameters)
    index = {p: p.index for p in used}  # ParameterVectorElement position in theta

    def at(values):
        return float(expr.bind({p: values[index[p]] for p in used}).numeric())

    zero = np.zeros(n_angles)
    offset = at(zero)
    coef = np.zeros(n_angles)
    for p in used:
        unit = zero.copy()
        unit[index[p]] = 1.0
        coef[index[p]] = at(unit) - offset
    probe = np.random.default_rng(0).normal(size=n_angles)
    if abs(at(probe) - (probe @ coef + offset)) > 1e-9:
        raise QadaptError(f"compiled angle {expr} is not linear in the state-preparation angles; use device.engine=aer")
    return coef, offset


class NoiseChannels:
    """Kraus operators of the backend's gate errors and readout assignment matrices, converted once
    (``readout=False``: the readout errors left out, the distribution before readout)."""

    def __init__(self, noise_model, readout: bool = True):
        self.noise_model = noise_model
        self.with_readout = readout
        self._kraus: dict = {}

    def error_superop(self, name: str, qubits: tuple[int, ...]) -> np.ndarray | None:
        """Superoperator (row-major vec) of the error Aer applies after gate ``name`` on physical ``qubits``."""
        if self.noise_model is None:
            return None
        key = (name, qubits)
        if key not in self._kraus:
            # NoiseModel keeps per-qubit errors in _local_quantum_errors (no public getter); a test against Aer
            # guards this read
            error = self.noise_model._local_quantum_errors.get(name, {}).get(qubits)
            if error is None:
                error = self.noise_model._default_quantum_errors.get(name)
            if error is None:
                self._kraus[key] = None
            else:
                from qiskit.quantum_info import Kraus

                kraus = [np.asarray(K, dtype=np.complex128) for K in Kraus(error).data]
                self._kraus[key] = sum(np.kron(K, K.conj()) for K in kraus)
        return self._kraus[key]

    def readout(self, qubit: int) -> np.ndarray:
        """2 x 2 assignment matrix P(measured | prepared) (rows: prepared)."""
        if self.noise_model is None or not self.with_readout:
            return np.eye(2)
        error = self.noise_model._local_readout_errors.get((qubit,), self.noise_model._default_readout_error)
        return np.eye(2) if error is None else np.asarray(error.probabilities, dtype=np.float64)


def fuse_block(compiled, n_angles: int, channels: NoiseChannels) -> FusedBlock:
    """Fuse one transpiled block circuit (prep angles theta[0..n_angles), measurements included) into a
    :class:`FusedBlock`.

    Raises:
        QadaptError: a token-dependent gate other than RZ, or more than 6 active qubits.
    """
    from qiskit.quantum_info import Operator

    ops = [ins for ins in compiled.data if ins.operation.name not in IGNORED]
    active = sorted({compiled.find_bit(qb).index for ins in ops for qb in ins.qubits})
    k = len(active)
    if k > 6:
        raise QadaptError(
            f"a compiled block touches {k} qubits; the fused simulator handles at most 6 (device.engine=aer)"
        )
    local_of = {p: i for i, p in enumerate(active)}
    dim = 2**k
    # the segment being fused acts on the 4^k basis operators E_ab at once: rho[(a, b)] starts as E_ab
    identity = torch.eye(dim * dim, dtype=torch.complex128).reshape(dim * dim, dim, dim)
    segment = identity.clone()
    superops, phase_qubit, coefs, offsets, measured = [], [], [], [], {}
    pending: dict[int, np.ndarray] = {}  # runs of 1-qubit gates (+ errors) per local qubit, multiplied as 4 x 4

    def flush(qubits) -> None:
        nonlocal segment
        for q in qubits:
            if q in pending:
                segment = _apply_superop(segment, torch.from_numpy(pending.pop(q)), [q], k)

    for ins in ops:
        op = ins.operation
        phys = tuple(compiled.find_bit(qb).index for qb in ins.qubits)
        local = [local_of[p] for p in phys]
        if op.name == "measure":
            measured[compiled.find_bit(ins.clbits[0]).index] = phys[0]
            continue
        if op.is_parameterized():
            if op.name != "rz":
                raise QadaptError(f"token-dependent gate '{op.name}' after compilation; the fused simulator needs RZ")
            flush(list(pending))
            superops.append(segment.reshape(dim * dim, dim * dim).T.clone())  # column (a, b) = S(E_ab)
            segment = identity.clone()
            coef, offset = _linear_coefficients(op.params[0], n_angles)
            phase_qubit.append(local[0])
            coefs.append(coef)
            offsets.append(offset)
            continue
        gate = np.asarray(Operator(op).data, dtype=np.complex128)
        superop = local_superop(gate, channels.error_superop(op.name, phys))
        if len(local) == 1:
            pending[local[0]] = superop @ pending.get(local[0], np.eye(4))
        else:
            flush(local)
            segment = _apply_superop(segment, torch.from_numpy(superop), local, k)
    flush(list(pending))
    superops.append(segment.reshape(dim * dim, dim * dim).T.clone())

    # readout map: diag of rho (b_active outcomes) -> assignment errors per measured qubit -> clbit order
    n_bits = len(measured)
    readout = np.zeros((2**n_bits, dim))
    for a in range(dim):
        # distribution of measured clbits given active basis state a, with independent assignment errors
        dist = np.ones(1)
        for c in range(n_bits - 1, -1, -1):  # most significant clbit first, so index = sum bit_c 2^c
            q = measured[c]
            prepared = (a >> local_of[q]) & 1
            dist = np.kron(dist, channels.readout(q)[prepared])
        readout[:, a] = dist
    diag = np.zeros((dim, dim * dim))
    diag[np.arange(dim), np.arange(dim) * dim + np.arange(dim)] = 1.0
    start = superops[0][:, 0].numpy()  # the first segment applied to |0><0| = E_00
    final = (readout @ diag) @ superops[-1].numpy() if len(superops) > 1 else readout @ diag
    if len(superops) > 2:
        mids = np.stack([s.numpy() for s in superops[1:-1]])
    else:
        mids = np.zeros((0, dim * dim, dim * dim), np.complex128)
    return FusedBlock(
        start,
        mids,
        np.array(phase_qubit, dtype=np.int64),
        np.array(coefs).reshape(len(coefs), n_angles),
        np.array(offsets),
        final,
        active,
    )


def _phase_pattern(k: int) -> torch.Tensor:
    """``(k, 4^k)``: (z_a - z_b) / 2 for qubit i and vec index a * 2^k + b, z = +1 for bit 0, -1 for bit 1.
    RZ(phi) on qubit i multiplies vec(rho) by exp(-i phi pattern[i])."""
    dim = 2**k
    idx = torch.arange(dim)
    z = 1 - 2 * ((idx[None, :] >> torch.arange(k)[:, None]) & 1)  # (k, dim)
    return ((z[:, :, None] - z[:, None, :]) / 2).reshape(k, dim * dim).to(torch.float64)


class FusedCircuits:
    """The fused blocks of one :class:`~qadapt.quantum.circuits.BlockUnitaryCircuit`, stacked for batching.

    Blocks may differ in active-qubit count and in the number of token-dependent phases: everything is padded to
    the largest (identity superoperators, zero phases), so one batched matmul per step serves all blocks.
    """

    def __init__(self, blocks: list[FusedBlock], dtype=torch.complex64):
        self.k = len(blocks[0].active)
        self.m = len(blocks[0].phase_qubit)
        if any(len(b.active) != self.k or len(b.phase_qubit) != self.m for b in blocks):
            raise QadaptError("blocks compiled to different active-qubit or phase counts; use device.engine=aer")
        self.dtype = dtype
        self.start = torch.from_numpy(np.stack([b.start for b in blocks])).to(dtype)  # (n, D)
        # (m - 1, n, D, D): each segment transposed, since the batch holds vec(rho) as rows
        mids = np.stack([b.superops for b in blocks], axis=1).transpose(0, 1, 3, 2)
        self.mids = torch.from_numpy(mids.copy()).to(dtype)
        phase_qubits = torch.from_numpy(np.stack([b.phase_qubit for b in blocks], axis=1))
        self.patterns = _phase_pattern(self.k)[phase_qubits]  # (m, n, D)
        self.coef = torch.from_numpy(np.stack([b.phase_coef for b in blocks], axis=1))  # (m, n, angles)
        self.offset = torch.from_numpy(np.stack([b.phase_offset for b in blocks], axis=1))  # (m, n)
        final = np.stack([b.readout for b in blocks]).transpose(0, 2, 1)
        self.final = torch.from_numpy(final.copy()).to(dtype)  # (n, D, b)

    def probabilities(self, angles: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """Outcome distributions ``(N, n, b)`` float64 for prep angles ``(N, n, 2^q - 1)`` float64."""
        out = []
        for i in range(0, angles.shape[0], chunk):
            theta = angles[i : i + chunk]
            phis = torch.einsum("Nna,mna->mNn", theta, self.coef) + self.offset[:, None, :]  # (m, N, n)
            vec = self.start[:, None, :].expand(-1, theta.shape[0], -1)  # (n, N, D)
            for s in range(phis.shape[0]):
                angle = -phis[s].T[:, :, None] * self.patterns[s][:, None, :]  # (n, N, D)
                vec = vec * torch.polar(torch.ones_like(angle), angle).to(self.dtype)
                if s < self.mids.shape[0]:
                    vec = torch.bmm(vec, self.mids[s])
            probs = torch.bmm(vec, self.final).real.transpose(0, 1)  # (N, n, b)
            out.append(probs.to(torch.float64))
        return torch.cat(out).clamp_min(0)
