"""Compile block circuits for an IBM backend (Qiskit transpiler) and count what they cost.

Each distinct block unitary Q_j is compiled once, whatever the number of tokens: a token only changes the
amplitude-encoding state preparation in front of it. Qiskit is imported here only (extra ``ibm``).
Source for the cost model: CUA paper (NOTES.md [3rd]): a compiled 2-qubit block is 12 SX + 9 RZ + 3 CZ,
depth 19; one full sequence took 1,328 circuits and about 4 h 24 min on ibm_basquecountry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

# seconds of QPU wall time per circuit at 8,192 shots implied by the paper's 4 h 24 min for 1,328 circuits
PAPER_SECONDS_PER_CIRCUIT = (4 * 3600 + 24 * 60) / 1328
TWO_QUBIT_GATES = ("cz", "cx", "ecr", "rzz")


def _qiskit():
    try:
        import qiskit  # noqa: F401
        from qiskit_ibm_runtime import fake_provider
    except ImportError:
        raise ConfigError("compiling circuits needs the extra `ibm`: pip install -e '.[ibm]' (make setup installs it)") from None
    return fake_provider


def fake_backend(name: str):
    """A qiskit-ibm-runtime fake backend by class name (e.g. ``FakeFez``, 156-qubit Heron r2).

    Raises:
        ConfigError: unknown name (lists the valid ones).
    """
    fake_provider = _qiskit()
    names = sorted(n for n in dir(fake_provider) if n.startswith("Fake") and n not in ("FakeProviderForBackendV2", "FakeProvider"))
    if name not in names:
        raise ConfigError(f"unknown fake backend '{name}'; valid choices: {', '.join(names)}")
    return getattr(fake_provider, name)()


@dataclass
class BlockCost:
    """Gate counts of one compiled block (Q alone, or state preparation + Q + measurement)."""

    depth: int
    one_qubit: int
    two_qubit: int
    ops: dict


def _cost(circuit) -> BlockCost:
    ops = {k: int(v) for k, v in circuit.count_ops().items() if k not in ("barrier",)}
    two = sum(v for k, v in ops.items() if k in TWO_QUBIT_GATES)
    one = sum(v for k, v in ops.items() if k not in TWO_QUBIT_GATES and k != "measure")
    return BlockCost(circuit.depth(), one, two, ops)


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


def compile_blocks(unitaries: np.ndarray, backend, optimization_level: int = 3, seed: int = 0, with_state_prep: bool = False) -> list[BlockCost]:
    """Transpile every block unitary once to the backend's basis (CZ/SX/RZ on Heron).

    Args:
        unitaries: ``(n_blocks, b, b)`` real orthogonal blocks, b = 2^q.
        with_state_prep: compile the circuit a token actually runs on the ``ibm``/``ibm_fake`` devices, i.e. the
            parameterised controlled-RY amplitude encoding (angles bound per token after compilation, so its cost
            is the same for every token), Q_j and measurement. Otherwise Q_j alone.
    Returns:
        one :class:`BlockCost` per block, in order.
    """
    from qiskit import transpile

    prep = state_prep_template(unitaries.shape[-1].bit_length() - 1)[0] if with_state_prep else None
    compiled = transpile(block_circuits(unitaries, prep), backend=backend, optimization_level=optimization_level, seed_transpiler=seed)
    return [_cost(c) for c in compiled]


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
