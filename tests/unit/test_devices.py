"""Devices: exact, PennyLane default.qubit and lightning.qubit agree; shots estimates stay within their
statistical bound; the readout restores signs; lightning.gpu without CUDA fails clearly.
(Split by kind: its tests on real models, data, simulators or launches are in
tests/integration/test_devices.py.)"""

import math

import pytest
import torch
from helpers.blocks import circuit as _circuit
from helpers.blocks import device as _device
from helpers.blocks import states as _states
from omegaconf import OmegaConf
from typer.testing import CliRunner

from qadapt.adapters.cua import run_blocks
from qadapt.cli import app
from qadapt.config import compose
from qadapt.devices import get
from qadapt.devices.sampling import sample_counts
from qadapt.errors import ConfigError


@pytest.mark.parametrize("q", [1, 2, 3])
def test_exact_default_qubit_and_lightning_agree_in_probabilities(q):
    circuit = _circuit(q)
    states = _states(7, circuit)
    exact = _device("exact").block_probabilities(circuit, states)
    assert torch.allclose(exact.sum(-1), torch.ones(7, 5, dtype=torch.float64), atol=1e-12)
    for name in ("default_qubit", "lightning_qubit"):
        probs = _device(name).block_probabilities(circuit, states)
        assert probs.shape == exact.shape
        assert (probs - exact).abs().max() < 1e-6, name


@pytest.mark.parametrize("name", ["default_qubit", "lightning_qubit"])
def test_readout_with_restored_signs_reproduces_exact_outputs(name):
    circuit = _circuit(2, n_blocks=6)
    x = torch.randn(3, 4, 24, dtype=torch.float64)
    x[0, 0, :4] = 0  # a zero slice stays zero
    exact = run_blocks(_device("exact"), circuit, x)
    out = run_blocks(_device(name), circuit, x)
    assert torch.allclose(out, exact, atol=1e-6)
    assert torch.equal(out[0, 0, :4], torch.zeros(4, dtype=torch.float64))


@pytest.mark.parametrize("name", ["exact", "default_qubit"])
def test_shot_estimates_within_statistical_bound(name):
    """Each estimate p_hat = counts/shots has standard deviation sqrt(p(1-p)/shots) <= 0.5/sqrt(shots);
    with a few hundred estimates, all lie within 5 of those (seeded, so the check is deterministic)."""
    shots = 8192
    circuit = _circuit(2, n_blocks=8)
    states = _states(16, circuit)
    exact = _device("exact").block_probabilities(circuit, states)
    estimate = _device(name, shots=shots, seed=3).block_probabilities(circuit, states)
    sigma = (exact * (1 - exact) / shots).sqrt()
    assert ((estimate - exact).abs() <= 5 * sigma + 1e-12).all()
    assert (estimate != exact).any()  # they really are samples
    assert torch.allclose(estimate.sum(-1), torch.ones_like(estimate.sum(-1)))
    counts = estimate * shots
    assert torch.allclose(counts, counts.round())


def test_sample_counts_sum_to_shots_and_follow_the_probabilities():
    probs = torch.tensor([[0.5, 0.25, 0.125, 0.125]] * 2000, dtype=torch.float64)
    counts = sample_counts(probs, 1000, torch.Generator().manual_seed(0))
    assert torch.equal(counts.sum(-1), torch.full((2000,), 1000.0, dtype=torch.float64))
    mean = counts.mean(0) / 1000
    assert torch.allclose(mean, probs[0], atol=5 * math.sqrt(0.25 / 1000 / 2000))


def test_devices_count_the_circuits_their_probability_methods_run():
    """Counting is the device's: every probability method records its circuits; CircuitCounter tallies per site."""
    from qadapt.devices.accounting import CircuitCounter
    from qadapt.quantum.ansatz import StronglyEntanglingCircuit
    from qadapt.quantum.compound import RBSCircuit

    circuit = _circuit(2, n_blocks=3)
    angles = torch.rand(2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ansatz = StronglyEntanglingCircuit(angles)
    rbs = RBSCircuit(torch.zeros(3, dtype=torch.float64), 3)
    unit = torch.eye(8, dtype=torch.float64)[:5]
    for name in ("exact", "default_qubit"):
        device = _device(name)
        device.block_probabilities(circuit, _states(4, circuit))
        assert device.circuits_run == 4 * 3, name
        device.ansatz_probabilities(ansatz, unit, 6)
        device.overlap_probabilities(ansatz, unit, unit)
        device.rbs_states(rbs, unit)
        assert device.circuits_run == 12 + 5 + 5 + 5, name
    counter = CircuitCounter()
    counter.site = "a"
    counter.block_probabilities(circuit, _states(4, circuit))
    counter.site = "b"
    counter.ansatz_probabilities(ansatz, unit, 6)
    counter.count_circuits("overlap", 3, 7, 2)
    assert {k: (t.kind, t.qubits, t.circuits, t.blocks) for k, t in counter.tally.items()} == {
        "a": ("block", 2, 12, 3),
        "b": ("overlap", 3, 12, 2),
    }
    assert counter.circuits_run == 12 + 5 + 7


def test_adapters_and_quantum_import_no_backend():
    """The circuit says what, the device says where: no backend library in qadapt/adapters or qadapt/quantum,
    at module level or inside functions."""
    import ast
    from pathlib import Path

    import qadapt

    backends = ("pennylane", "qiskit", "qiskit_aer", "qiskit_ibm_runtime")
    root = Path(qadapt.__file__).parent
    found = []
    for path in [*sorted((root / "adapters").rglob("*.py")), *sorted((root / "quantum").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            found += [f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] in backends]
    assert not found


def test_exact_with_shots_is_not_differentiable_and_exact_is():
    assert _device("exact").differentiable
    assert not _device("exact", shots=100).differentiable
    assert not _device("default_qubit").differentiable


def test_lightning_gpu_without_cuda_fails_clearly():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the no-GPU error path cannot occur here")
    with pytest.raises(ConfigError, match="lightning_gpu needs an NVIDIA GPU with CUDA"):
        _device("lightning_gpu")


def test_training_device_without_gradients_is_refused_before_loading(tmp_path):
    """`qadapt train device=<no gradients>` trains on train.device (tests/integration/test_train_on_device.py); a
    train.device
    without gradients is refused before anything loads."""
    args = ["train", "device=default_qubit", "train.device=lightning_qubit", f"runs_dir={tmp_path / 'runs'}"]
    result = CliRunner().invoke(app, [*args, f"results_dir={tmp_path}"])
    assert result.exit_code == 2
    assert "train.device=lightning_qubit cannot train: gradients do not flow" in result.output
    assert "valid choices: exact" in result.output
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_unknown_backend():
    with pytest.raises(ConfigError, match="valid choices: default.qubit"):
        get(OmegaConf.create({"name": "default_qubit", "backend": "qiskit.fake", "shots": None, "seed": 0}))


@pytest.mark.parametrize("q", [1, 2, 3, 4])
def test_ibm_state_preparation_tree_prepares_signed_real_amplitudes(q):
    import numpy as np
    from qiskit.quantum_info import Statevector

    from qadapt.devices.ibm_fake import amplitude_angles, state_prep_template

    x = np.random.default_rng(q).normal(size=(6, 2**q))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    x[0, : 2 ** (q - 1)] = 0  # a zero half, where atan2(0, 0) must still give a valid state
    x[0] /= np.linalg.norm(x[0])
    template, _ = state_prep_template(q)
    for vector, angles in zip(x, amplitude_angles(x)):
        amplitudes = Statevector(template.assign_parameters(angles)).data
        assert np.allclose(amplitudes.imag, 0, atol=1e-9)
        assert np.allclose(amplitudes.real, vector, atol=1e-9) or np.allclose(amplitudes.real, -vector, atol=1e-9)


def test_ibm_fake_needs_shots_and_a_known_backend():
    with pytest.raises(ConfigError, match="set device.shots"):
        _device("ibm_fake", shots="null")
    with pytest.raises(ConfigError, match="valid choices: .*FakeFez"):
        _device("ibm_fake", backend="FakeNowhere")
    with pytest.raises(ConfigError, match="valid choices: fused, aer"):
        _device("ibm_fake", engine="qpu")
    with pytest.raises(ConfigError, match="valid choices: scored, all"):
        _device("exact", positions="some")


def test_ibm_without_an_account_fails_clearly_before_loading(no_saved_ibm_account, tmp_path):
    result = CliRunner().invoke(app, ["eval", "ppl", "device=ibm", f"results_dir={tmp_path / 'results'}"])
    assert result.exit_code == 2
    assert "needs an IBM Quantum account: set QISKIT_IBM_TOKEN" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "results").exists()


def test_ibm_token_never_appears_in_output_or_files(no_saved_ibm_account, monkeypatch, tmp_path):
    secret = "qadapt-test-token-5f1c2e9b"
    monkeypatch.setenv("QISKIT_IBM_TOKEN", secret)
    result = CliRunner().invoke(
        app, ["eval", "ppl", "device=ibm", f"results_dir={tmp_path / 'results'}", f"runs_dir={tmp_path / 'runs'}"]
    )
    assert result.exit_code != 0  # the token is rejected (or the service is unreachable)
    assert secret not in result.output
    assert "Traceback" not in result.output
    for path in tmp_path.rglob("*"):
        assert not path.is_file() or secret not in path.read_text(errors="ignore"), path
    assert secret not in str(compose(["device=ibm"]))
