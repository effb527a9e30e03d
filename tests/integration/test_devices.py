"""Devices: exact, PennyLane default.qubit and lightning.qubit agree; shots estimates stay within their
statistical bound; the readout restores signs; lightning.gpu without CUDA fails clearly.
(Split by kind: its unit tests are in tests/unit/test_devices.py.)"""

import pytest
import torch
from helpers.blocks import circuit as _circuit
from helpers.blocks import device as _device
from helpers.blocks import states as _states

from qadapt.errors import ConfigError


def test_devices_say_what_they_cannot_run():
    fake = _device("ibm_fake")
    with pytest.raises(ConfigError, match="cannot run QFFN circuits.*valid choices: .*exact"):
        fake.require_ansatz()
    _device("exact").require_ansatz()
    with pytest.raises(ConfigError, match="returns no statevectors; valid choices: .*exact"):
        _device("exact", shots=100).require_statevector()


@pytest.mark.parametrize("engine", ["fused", "aer"])
def test_ibm_fake_ideal_sampling_within_bound_and_noise_adds_error(engine):
    circuit = _circuit(2, n_blocks=4)
    states = _states(12, circuit)
    exact = _device("exact").block_probabilities(circuit, states)
    ideal = _device("ibm_fake", noise="false", engine=engine).block_probabilities(circuit, states)
    noisy = _device("ibm_fake", engine=engine).block_probabilities(circuit, states)
    sigma = (exact * (1 - exact) / 8192).sqrt()
    assert ((ideal - exact).abs() <= 5 * sigma + 1e-12).all()
    assert torch.allclose(noisy.sum(-1), torch.ones(12, 4, dtype=torch.float64))
    assert (noisy - exact).abs().mean() > 2 * (ideal - exact).abs().mean()  # FakeFez noise is really applied


def _fez_blocks(q, n_blocks, readout=True):
    """Compiled FakeFez templates of random blocks and their fused form (readout errors optional)."""
    from qiskit import transpile

    from qadapt.devices.fused_noise import FusedCircuits, NoiseChannels, fuse_block
    from qadapt.devices.qiskit_compile import block_circuits, fake_backend, noise_model, state_prep_template

    backend = fake_backend("FakeFez")
    noise = noise_model("FakeFez")
    circuit = _circuit(q, n_blocks)
    templates = block_circuits(circuit.unitaries.numpy(), state_prep_template(q)[0])
    compiled = transpile(templates, backend=backend, optimization_level=2, seed_transpiler=0)

    class NoReadout(NoiseChannels):
        def readout(self, qubit):
            return torch.eye(2).numpy()

    channels = NoiseChannels(noise) if readout else NoReadout(noise)
    fused = FusedCircuits([fuse_block(c, 2**q - 1, channels) for c in compiled], dtype=torch.complex128)
    return noise, compiled, fused, circuit


@pytest.mark.parametrize("q", [1, 2, 3])
def test_fused_noise_equals_aer_density_matrix_before_readout(q):
    """Gate noise (depolarising + thermal relaxation of every SX, X, CZ on the chosen FakeFez qubits) applied by
    the fused engine equals Aer's density-matrix simulation of the same bound circuits to 1e-6."""
    import numpy as np
    from qiskit_aer import AerSimulator

    from qadapt.devices.qiskit_compile import amplitude_angles

    noise, compiled, fused, circuit = _fez_blocks(q, n_blocks=2, readout=False)
    states = _states(3, circuit)
    angles = amplitude_angles(states.numpy())
    ours = fused.probabilities(torch.from_numpy(angles)).numpy()
    bound_circuits = []
    for t in range(3):
        for j, template in enumerate(compiled):
            measured = {
                template.find_bit(i.clbits[0]).index: i.qubits[0]
                for i in template.data
                if i.operation.name == "measure"
            }
            bound = template.assign_parameters(angles[t, j]).remove_final_measurements(inplace=False)
            bound.save_probabilities([bound.qubits[template.find_bit(measured[c]).index] for c in range(q)])
            bound_circuits.append(bound)
    result = AerSimulator(method="density_matrix", noise_model=noise).run(bound_circuits).result()  # one job
    aer = np.stack([result.data(i)["probabilities"] for i in range(len(bound_circuits))]).reshape(ours.shape)
    assert np.abs(aer - ours).max() < 1e-6
    ideal = torch.einsum("Nnb,ncb->Nnc", states, circuit.unitaries).square().numpy()
    assert np.abs(ours - ideal).max() > 1e-4  # and the noise is really there


def test_fused_noise_counts_agree_with_aer_noisy_sampler():
    """End to end, readout errors included: fused probabilities vs Aer SamplerV2.from_backend(FakeFez) counts at
    8,192 shots, within 5 binomial standard deviations (+1e-3 for the fused side's float32 rounding)."""
    circuit = _circuit(2, n_blocks=3)
    states = _states(8, circuit)
    aer = _device("ibm_fake", engine="aer").block_probabilities(circuit, states)
    fused_device = _device("ibm_fake")
    fused_device.block_probabilities(circuit, states)  # compiles and fuses
    (fused,) = fused_device._fused.values()
    from qadapt.devices.qiskit_compile import amplitude_angles

    p = fused.probabilities(torch.from_numpy(amplitude_angles(states.numpy())))
    sigma = (p * (1 - p) / 8192).sqrt()
    assert ((aer - p).abs() <= 5 * sigma + 1e-3).all()


def test_ibm_runs_on_the_runtimes_client_side_sampler_in_local_mode(monkeypatch, tmp_path):
    """device=ibm end to end without an account (issue 44): the runtime's service is replaced by one whose backend is
    FakeFez, so the Batch and qiskit-ibm-runtime's own client-side Sampler run in the runtime's local mode; the block
    circuits' counts agree with the fused engine's exact noisy distribution within shot noise (5 binomial standard
    deviations at 8,192 shots, +1e-3 for the fused side's float32 rounding), and no DeprecationWarning is raised."""
    import warnings

    import qiskit_ibm_runtime
    from qiskit_ibm_runtime.fake_provider import FakeFez

    from qadapt.devices.qiskit_compile import amplitude_angles

    class LocalService:  # what IBMDevice asks of QiskitRuntimeService, answered by the runtime's local mode
        def __init__(self, **_):
            pass

        def backend(self, name):
            assert name == "FakeFez"
            return FakeFez()

    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", LocalService)
    monkeypatch.setenv("QISKIT_IBM_TOKEN", "local")
    circuit = _circuit(2, n_blocks=3)
    states = _states(8, circuit)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        device = _device("ibm", backend="FakeFez", journal_dir=tmp_path / "journal")
        counts = device.block_probabilities(circuit, states)
    assert device.sampler_name == "executor Sampler" and "executor Sampler" in device.describe()
    assert type(device.sampler).__module__.startswith("qiskit_ibm_runtime.executor_sampler")
    fused_device = _device("ibm_fake")
    fused_device.block_probabilities(circuit, states)
    (fused,) = fused_device._fused.values()
    p = fused.probabilities(torch.from_numpy(amplitude_angles(states.numpy())))
    sigma = (p * (1 - p) / 8192).sqrt()
    assert ((counts - p).abs() <= 5 * sigma + 1e-3).all(), (counts - p).abs().max()
    assert len(device.job_ids) >= 1
    assert device.jobs.qpu_seconds_used == 0  # the local mode reports its usage, as the service does: none charged
    records = device.records()  # what the row keeps (device_records)
    assert records["backend"] == "fake_fez" and records["calibration_time"].startswith("20")
    assert [len(block) for block in records["measured_qubits"][0]] == [2, 2, 2]
    assert records["sampler"] == "executor Sampler" and records["shots"] == 8192
    assert records["qiskit_ibm_runtime"] == qiskit_ibm_runtime.__version__ and records["qiskit"]
