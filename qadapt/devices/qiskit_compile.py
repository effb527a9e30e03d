"""Compile block circuits for an IBM backend (Qiskit transpiler) and count what they cost.

Each distinct block unitary Q_j is compiled once, whatever the number of tokens: a token only changes the
amplitude-encoding state preparation in front of it. Qiskit is imported here only (extra ``ibm``).
Source for the cost model: CUA paper (NOTES.md [3rd]): a compiled 2-qubit block is 12 SX + 9 RZ + 3 CZ,
depth 19; one full sequence took 1,328 circuits and about 4 h 24 min on ibm_basquecountry.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

# seconds per circuit implied by the press summary of the CUA paper's run (4 h 24 min for 1,328 circuits at 8,192
# shots; NOTES.md [3rd]): shown beside our backend-derived estimate, never used as it
PAPER_SECONDS_PER_CIRCUIT = (4 * 3600 + 24 * 60) / 1328
TWO_QUBIT_GATES = ("cz", "cx", "ecr", "rzz")


def _qiskit():
    try:
        import qiskit  # noqa: F401
        from qiskit_ibm_runtime import fake_provider
    except ImportError:
        raise ConfigError(
            "compiling circuits needs the extra `ibm`: pip install -e '.[ibm]' (make setup installs it)"
        ) from None
    return fake_provider


@functools.cache
def fake_backend(name: str):
    """A qiskit-ibm-runtime fake backend by class name (e.g. ``FakeFez``, 156-qubit Heron r2); built once per process.

    Raises:
        ConfigError: unknown name (lists the valid ones).
    """
    fake_provider = _qiskit()
    providers = ("FakeProviderForBackendV2", "FakeProvider")
    names = sorted(n for n in dir(fake_provider) if n.startswith("Fake") and n not in providers)
    if name not in names:
        raise ConfigError(f"unknown fake backend '{name}'; valid choices: {', '.join(names)}")
    return getattr(fake_provider, name)()


@functools.cache
def noise_model(name: str):
    """qiskit-aer ``NoiseModel.from_backend`` of fake backend ``name`` (gate depolarising + thermal relaxation,
    readout assignment errors), built once per process (~5 s for a 156-qubit device)."""
    from qiskit_aer.noise import NoiseModel

    return NoiseModel.from_backend(fake_backend(name))


@dataclass
class BlockCost:
    """Gate counts of one compiled block (Q alone, or state preparation + Q + measurement), and its duration on the
    backend (s; the backend's own gate and measurement durations, critical path; None where the backend gives none)."""

    depth: int
    one_qubit: int
    two_qubit: int
    ops: dict
    duration_s: float | None = None


def _cost(circuit, target=None) -> BlockCost:
    ops = {k: int(v) for k, v in circuit.count_ops().items() if k not in ("barrier",)}
    two = sum(v for k, v in ops.items() if k in TWO_QUBIT_GATES)
    one = sum(v for k, v in ops.items() if k not in TWO_QUBIT_GATES and k != "measure")
    duration = None
    if target is not None:
        try:
            duration = float(circuit.estimate_duration(target, unit="s"))
        except Exception:  # a backend without instruction durations: no estimate rather than a wrong one
            duration = None
    return BlockCost(circuit.depth(), one, two, ops, duration)


def rep_delay_s(backend) -> float | None:
    """The backend's default repetition delay (s): the wait IBM QPUs insert after every shot of every circuit
    (dynamic repetition-rate execution; IBM Quantum docs, "Qubit initialization"). None if the backend gives none."""
    delay = getattr(backend, "default_rep_delay", None)
    if delay is None and hasattr(backend, "configuration"):
        delay = getattr(backend.configuration(), "default_rep_delay", None)
    return None if delay is None else float(delay)


def qpu_seconds_per_circuit(duration_s: float, shots: int, rep_delay: float) -> float:
    """QPU seconds one circuit occupies: ``shots x (circuit duration + repetition delay)``, as IBM executes a job
    (every shot of every circuit, each followed by the repetition delay). A lower bound on the usage IBM bills:
    the runtime's per-job classical overhead (loading, compilation checks) is not included; on hardware the job's own
    ``usage_estimation`` is the figure to trust.

    Args:
        duration_s: the compiled circuit's duration on the backend (s; :attr:`BlockCost.duration_s`).
        shots: measurements of the circuit. rep_delay: the backend's repetition delay (s; :func:`rep_delay_s`).
    Returns: seconds of QPU time (float).
    """
    return shots * (duration_s + rep_delay)


def block_circuits(unitaries: np.ndarray, prep=None) -> list:
    """One circuit per block: Q_j alone, or ``prep`` (state preparation) + Q_j + measurement of every qubit.

    Args:
        unitaries: ``(n_blocks, b, b)`` real orthogonal blocks, b = 2^q.
        prep: a q-qubit state-preparation circuit (parameterised or bound), or None for Q_j alone.
    """
    from qiskit import QuantumCircuit
    from qiskit.circuit.library import UnitaryGate

    q = int(round(np.log2(unitaries.shape[-1])))
    circuits = []
    for U in unitaries:  # describing n circuits; compiling them is one batched transpile call
        c = prep.copy() if prep is not None else QuantumCircuit(q)
        c.append(UnitaryGate(U), range(q))
        if prep is not None:
            c.measure_all()
        circuits.append(c)
    return circuits


def compile_blocks(
    unitaries: np.ndarray, backend, optimization_level: int = 3, seed: int = 0, with_state_prep: bool = False
) -> list[BlockCost]:
    """Transpile every block unitary once to the backend's basis (CZ/SX/RZ on Heron).

    Args:
        unitaries: ``(n_blocks, b, b)`` real orthogonal blocks, b = 2^q.
        with_state_prep: compile the circuit a token actually runs on the ``ibm``/``ibm_fake`` devices, i.e. the
            parameterised controlled-RY amplitude encoding (angles bound per token after compilation, so its cost
            is the same for every token), Q_j and measurement. Otherwise Q_j alone.
    Returns:
        one :class:`BlockCost` per block, in order (with its duration on ``backend``).
    """
    from qiskit import transpile

    prep = state_prep_template(unitaries.shape[-1].bit_length() - 1)[0] if with_state_prep else None
    compiled = transpile(
        block_circuits(unitaries, prep), backend=backend, optimization_level=optimization_level, seed_transpiler=seed
    )
    return [_cost(c, backend.target) for c in compiled]


def _gray(j: int) -> int:
    return j ^ (j >> 1)


def _multiplexor_controls(m: int) -> list[int]:
    """Control (index among the m controls) of the CNOT after step j of an m-control RY multiplexor:
    the bit where the Gray codes of j and j + 1 (cyclically) differ."""
    return [(_gray(j) ^ _gray((j + 1) % 2**m)).bit_length() - 1 for j in range(2**m)]


def _multiplexor_matrix(m: int) -> np.ndarray:
    """M with alpha = M theta: control value p rotates the target by sum_j (-1)^popcount(gray(j) & p) theta_j."""
    p = np.arange(2**m)[:, None]
    g = np.array([_gray(j) for j in range(2**m)])[None, :]
    parity = np.vectorize(lambda v: bin(v).count("1") % 2)(p & g)
    return (-1.0) ** parity


def tree_angles(states: np.ndarray) -> np.ndarray:
    """Angles of the binary-tree amplitude encoding of real unit vectors.

    Args:
        states: ``(..., b)`` real unit vectors, b = 2^q (amplitude k = basis state k, qubit 0 least significant).
    Returns:
        ``(..., b - 1)``: level l (from the most significant qubit down) holds 2^l angles, one per value p of the
        qubits above (the nearest one the least significant bit of p); non-leaf angles split the norm,
        2 atan2(||upper half||, ||lower half||); leaf angles carry the sign, 2 atan2(x_odd, x_even).
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


def amplitude_angles(states: np.ndarray) -> np.ndarray:
    """RY angles of :func:`state_prep_template` that prepare real unit vectors (one row per vector).

    Level l of the tree is a uniformly controlled RY with l controls (Mottonen et al., PRL 93, 130502, 2004):
    2^l plain RY rotations theta = M^-1 alpha = M^T alpha / 2^l of the tree angles alpha, with 2^l CNOTs in
    Gray-code order. Args/returns as :func:`tree_angles`.
    """
    alpha = tree_angles(states)
    q = int(round(np.log2(states.shape[-1])))
    out, i = [], 0
    for level in range(q):
        m = 2**level
        out.append(alpha[..., i : i + m] @ _multiplexor_matrix(level) / m)  # M^-1 = M^T / 2^l, M symmetric
        i += m
    return np.concatenate(out, axis=-1)


def state_prep_template(qubits: int):
    """Parameterised circuit preparing sum_k x_k |k> (real x) from the angles of :func:`amplitude_angles`.

    A tree of uniformly controlled RY rotations, each decomposed into plain RYs and CNOTs: 2^q - 2 CNOTs in
    all (2 at q = 2, 6 at q = 3, 14 at q = 4), the fewest known for a general real state, so the noisy
    devices pay as little as possible for the encoding.
    """
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    theta = ParameterVector("theta", 2**qubits - 1)
    circuit = QuantumCircuit(qubits)
    i = 0
    for level in range(qubits):
        target = qubits - 1 - level
        controls = list(range(qubits - 1, qubits - 1 - level, -1))  # the qubits above, nearest last
        for c in _multiplexor_controls(level) if level else [None]:
            circuit.ry(theta[i], target)
            i += 1
            if c is not None:
                circuit.cx(controls[len(controls) - 1 - c], target)
    return circuit, theta
