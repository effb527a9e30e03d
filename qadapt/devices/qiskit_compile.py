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


def compile_blocks(unitaries: np.ndarray, backend, optimization_level: int = 3, seed: int = 0, state: np.ndarray | None = None) -> list[BlockCost]:
    """Transpile every block unitary once to the backend's basis (CZ/SX/RZ on Heron).

    Args:
        unitaries: ``(n_blocks, b, b)`` real orthogonal blocks, b = 2^q.
        state: optional ``(b,)`` unit vector; when given, each circuit is amplitude encoding of it + Q + measurement
            (the circuit a token actually runs), else Q alone.
    Returns:
        one :class:`BlockCost` per block, in order.
    """
    from qiskit import QuantumCircuit, transpile
    from qiskit.circuit.library import StatePreparation, UnitaryGate

    n, b, _ = unitaries.shape
    q = int(round(np.log2(b)))
    circuits = []
    for U in unitaries:  # building descriptions; the compilation itself is one batched transpile call
        c = QuantumCircuit(q)
        if state is not None:
            c.append(StatePreparation(state), range(q))
        c.append(UnitaryGate(U), range(q))
        if state is not None:
            c.measure_all()
        circuits.append(c)
    compiled = transpile(circuits, backend=backend, optimization_level=optimization_level, seed_transpiler=seed)
    return [_cost(c) for c in compiled]
