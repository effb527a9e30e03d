"""Readout mitigation (qadapt/devices/mitigation.py): the batched correction equals mthree's on the same calibration,
the projection is mthree's nearest probability distribution, a FakeFez evaluation with it lands closer to the exact
distributions than without, and the SamplerV2 options pass through (refused where the simulator ignores them).
(Split by kind: its tests on real models, data, simulators or launches are in
tests/integration/test_mitigation.py.)"""

import numpy as np
import pytest
import torch

from qadapt.config import compose
from qadapt.devices import get
from qadapt.devices.mitigation import (
    ReadoutCalibration,
    correct,
    measured_qubits,
    nearest_probability,
    sampler_options,
)
from qadapt.errors import ConfigError

mthree = pytest.importorskip("mthree")


def _assignment(rng) -> np.ndarray:
    p01, p10 = rng.uniform(0.005, 0.06, size=2)  # P(0 | 1), P(1 | 0): hardware-like readout errors
    return np.array([[1 - p10, p01], [p10, 1 - p01]])


def _key(outcome: int, bits: int) -> str:
    return format(outcome, f"0{bits}b")  # Qiskit's bitstrings: clbit 0 is the rightmost character


def test_nearest_probability_is_mthrees_projection():
    from mthree.classes import QuasiDistribution

    rng = np.random.default_rng(0)
    for b in (2, 4, 8, 16):
        quasi = rng.normal(0, 0.3, size=(20, b)) + rng.dirichlet(np.ones(b), size=20)
        quasi /= quasi.sum(1, keepdims=True)
        ours = nearest_probability(torch.from_numpy(quasi)).numpy()
        assert (ours >= 0).all() and np.allclose(ours.sum(1), 1, atol=1e-12)
        for row, mine in zip(quasi, ours):
            theirs = QuasiDistribution({_key(k, 4): v for k, v in enumerate(row)}).nearest_probability_distribution()
            expected = np.array([theirs.get(_key(k, 4), 0.0) for k in range(b)])
            assert np.allclose(mine, expected, atol=1e-9)
    already = torch.tensor([[0.5, 0.25, 0.25, 0.0]], dtype=torch.float64)
    assert torch.equal(nearest_probability(already), already)  # a probability vector is its own projection


def test_batched_correction_equals_mthree_apply_correction_per_circuit():
    rng = np.random.default_rng(1)
    n_qubits, shots = 12, 8192
    matrices = {q: _assignment(rng) for q in range(n_qubits)}
    calibration = ReadoutCalibration(matrices, circuits=0, shots=0)
    blocks = [[3, 7], [0, 11], [5, 2]]  # clbit order, as measured_qubits returns them
    counts = rng.multinomial(shots, rng.dirichlet(np.ones(4) * 2, size=(6, 3)).reshape(-1, 4)).reshape(6, 3, 4)
    ours = correct(torch.from_numpy(counts / shots), calibration.inverse(blocks)).numpy()
    mitigator = mthree.M3Mitigation()
    mitigator.cals_from_matrices([matrices[q].astype(np.float32) for q in range(n_qubits)])
    for token in range(6):
        for j, qubits in enumerate(blocks):
            counts_j = {_key(k, 2): int(c) for k, c in enumerate(counts[token, j]) if c}
            quasi = mitigator.apply_correction(counts_j, qubits, method="direct")
            expected = quasi.nearest_probability_distribution()
            expected = np.array([expected.get(_key(k, 2), 0.0) for k in range(4)])
            assert np.allclose(ours[token, j], expected, atol=2e-6)  # mthree solves in float32


def test_calibration_inverse_undoes_the_tensored_assignment():
    rng = np.random.default_rng(2)
    matrices = {q: _assignment(rng) for q in (4, 9, 1)}
    calibration = ReadoutCalibration(matrices, circuits=0, shots=0)
    truth = torch.from_numpy(rng.dirichlet(np.ones(8), size=5))[:, None, :]  # (tokens, 1 block, 8 outcomes)
    # measured distribution: clbit i read on qubit [4, 9, 1][i]; outcome bit i flips by that qubit's matrix
    A = np.kron(matrices[1], np.kron(matrices[9], matrices[4]))
    measured = torch.einsum("ab,njb->nja", torch.from_numpy(A), truth)
    assert torch.allclose(correct(measured, calibration.inverse([[4, 9, 1]])), truth, atol=1e-12)


def test_measured_qubits_follow_the_layout():
    from qiskit import QuantumCircuit, transpile

    from qadapt.devices.qiskit_compile import fake_backend

    circuit = QuantumCircuit(3, 3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure([0, 1, 2], [2, 0, 1])
    compiled = transpile(circuit, fake_backend("FakeFez"), initial_layout=[10, 11, 12], optimization_level=0)
    assert measured_qubits(compiled) == [11, 12, 10]


def _fake(**over):
    return get(compose(["device=ibm_fake", *[f"device.{k}={v}" for k, v in over.items()]]).device)


def test_mitigation_settings_are_checked():
    with pytest.raises(ConfigError, match="noise=false"):
        _fake(mitigation="readout", noise="false")
    for setting in ("twirling=gates", "dynamical_decoupling=XpXm"):
        key, value = setting.split("=")
        with pytest.raises(ConfigError, match="use device=ibm"):
            _fake(**{key: value})


def test_sampler_options_are_ibm_runtime_sampler_options():
    """The options device=ibm hands the runtime's client-side Sampler (SamplerV2 on runtimes without it) are the ones
    its own options model validates: dynamical decoupling and twirling as asked, twirling off explicitly by
    default; building it raises no DeprecationWarning."""
    import warnings

    from qadapt.devices.ibm import runtime_sampler
    from qadapt.devices.qiskit_compile import fake_backend

    cfg = compose(["device=ibm", "device.dynamical_decoupling=XY4", "device.twirling=both"]).device
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        sampler, name = runtime_sampler(fake_backend("FakeFez"), cfg)  # the options IBM Runtime validates
        plain, _ = runtime_sampler(fake_backend("FakeFez"), compose(["device=ibm"]).device)
    assert name == "executor Sampler"
    assert sampler.options.dynamical_decoupling.enable and sampler.options.dynamical_decoupling.sequence_type == "XY4"
    assert sampler.options.twirling.enable_gates and sampler.options.twirling.enable_measure
    assert plain.options.twirling.enable_gates is False and plain.options.twirling.enable_measure is False
    assert not plain.options.dynamical_decoupling.enable
    assert sampler_options(compose(["device=ibm"]).device) == {}  # defaults: nothing switched on


def test_the_shared_ibm_keys_are_named_as_device_keys():
    """IBMKeys has no name field of its own: a bad shared key read from a device block is named device.<key>, as
    compose names it (it read root.<key> after the options moved)."""
    from qadapt.devices.mitigation import _ibm_keys

    block = compose(["device=ibm_fake"]).device
    block.twirling = "bogus"
    with pytest.raises(ConfigError, match=r"^device\.twirling='bogus': expected one of the valid choices"):
        _ibm_keys(block)
