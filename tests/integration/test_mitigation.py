"""Readout mitigation (qadapt/devices/mitigation.py): the batched correction equals mthree's on the same calibration,
the projection is mthree's nearest probability distribution, a FakeFez evaluation with it lands closer to the exact
distributions than without, and the SamplerV2 options pass through (refused where the simulator ignores them).
(Split by kind: its unit tests are in tests/unit/test_mitigation.py.)"""

import math

import numpy as np
import torch

from qadapt.config import compose
from qadapt.devices import get
from qadapt.devices.mitigation import (
    correct,
)
from qadapt.quantum import BlockUnitaryCircuit, cayley, num_skew_params, skew_symmetric


def _circuit(q, n_blocks, seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = 0.3 * torch.randn(n_blocks, num_skew_params(2**q), generator=gen, dtype=torch.float64)
    return BlockUnitaryCircuit(cayley(skew_symmetric(params, 2**q)), q)


def _fake(**over):
    return get(compose(["device=ibm_fake", *[f"device.{k}={v}" for k, v in over.items()]]).device)


def test_readout_mitigation_on_fakefez_recovers_the_distribution_before_readout():
    """Reference: the same noisy circuits with the noise model's readout errors left out (fused engine, exact
    probabilities): what a perfect readout correction returns. Shots are many so sampling error stays below the
    readout error corrected (~0.45 % per FakeFez qubit)."""
    from qadapt.devices.fused_noise import FusedCircuits, NoiseChannels, fuse_block
    from qadapt.devices.qiskit_compile import amplitude_angles

    class NoReadout(NoiseChannels):
        def readout(self, qubit):
            return np.eye(2)

    circuit = _circuit(2, n_blocks=3)
    gen = torch.Generator().manual_seed(1)
    states = torch.randn(40, 3, 4, generator=gen, dtype=torch.float64)
    states = states / states.norm(dim=-1, keepdim=True)
    plain = _fake(shots=200000).block_probabilities(circuit, states)
    device = _fake(mitigation="readout", shots=200000)
    mitigated = device.block_probabilities(circuit, states)
    key, templates = device._compile(circuit)
    angles = torch.from_numpy(amplitude_angles(states.numpy()))
    fused = FusedCircuits([fuse_block(t, 3, NoReadout(device._noise_model)) for t in templates])
    before_readout = fused.probabilities(angles).to(torch.float64)
    assert (mitigated >= 0).all() and torch.allclose(mitigated.sum(-1), torch.ones(40, 3, dtype=torch.float64))
    error_plain = (plain - before_readout).abs().mean()
    error_mitigated = (mitigated - before_readout).abs().mean()
    assert error_mitigated < 0.4 * error_plain, (error_plain, error_mitigated)  # measured: 0.0026 -> 0.0006
    # without sampling: the calibrated correction of the exact noisy distribution is the one before readout
    corrected = correct(device._fused[key].probabilities(angles).to(torch.float64), device._inverse[key])
    assert (corrected - before_readout).abs().max() < 1e-3  # calibration shot noise; readout error ~5e-3
    # calibration: once for the qubits measured, costed by mthree's balanced rule
    assert device.calibration_circuits >= 1
    per_circuit = math.ceil(2 * device.shots / device.calibration_circuits)
    assert device.calibration_shots == device.calibration_circuits * per_circuit
    before = device.calibration_shots
    device.block_probabilities(circuit, states[:5])
    assert device.calibration_shots == before  # the same qubits are not calibrated again
    assert "mitigation=readout" in device.describe()
