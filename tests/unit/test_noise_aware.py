"""Noise-aware training (train.noise; qadapt/devices/noise_surrogate.py): the fitted depolarising-plus-readout model
is close to the fused engine's noisy distributions, gradients reach the adapter through it, and a CUA run trained
through it records the fit."""

import pytest
import torch

from qadapt.adapters.cua import run_blocks
from qadapt.devices.noise_surrogate import NoiseSurrogateDevice
from qadapt.quantum import BlockUnitaryCircuit, cayley, num_skew_params, skew_symmetric

pytest.importorskip("qiskit_aer")


@pytest.fixture(scope="module")
def surrogate():
    return NoiseSurrogateDevice("FakeFez")


# the fit on FakeFez at q = 2 (seeded: blocks, inputs and the fused engine are deterministic), measured at 5906e91:
# depolarising strength lambda; mean total-variation distance to FakeFez's distributions on held-out blocks and
# inputs of the noiseless model and of the fitted one
FIT_Q2 = {"depolarising": 0.01568, "tv_exact": 0.01083, "tv_surrogate": 0.001078}


def test_the_fitted_model_explains_most_of_fakefez_noise_at_q2(surrogate):
    fit = surrogate.fit(2)
    assert fit.depolarising == pytest.approx(FIT_Q2["depolarising"], rel=0.2) and len(fit.measured_qubits) == 2
    assert torch.allclose(fit.readout.sum(0), torch.ones(4, dtype=torch.float64))  # columns: P(. | prepared)
    # FakeFez's noise is there (the noiseless model is far from it) and the fit removes about 90 % of it
    assert fit.tv_exact == pytest.approx(FIT_Q2["tv_exact"], rel=0.2)
    assert fit.tv_surrogate <= 1.2 * FIT_Q2["tv_surrogate"], (fit.tv_surrogate, fit.tv_exact)
    assert surrogate.fit(2) is fit  # fitted once


def test_gradients_reach_the_block_generators_through_the_noise_model(surrogate):
    b = 4
    params = (0.1 * torch.randn(3, num_skew_params(b), dtype=torch.float64)).requires_grad_(True)
    circuit = BlockUnitaryCircuit(cayley(skew_symmetric(params, b)), 2)
    x = torch.randn(5, 12, dtype=torch.float64, requires_grad=True)
    out = run_blocks(surrogate, circuit, x)
    noiseless = circuit.apply(x.detach())
    assert out.shape == x.shape and not torch.allclose(out, noiseless, atol=1e-3)  # the noise is in the output
    assert (out - noiseless).abs().max() < 0.5 * noiseless.abs().max()  # and does not swamp it at q = 2
    out.square().sum().backward()
    assert params.grad is not None and params.grad.abs().sum() > 0 and torch.isfinite(params.grad).all()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert surrogate.circuits_run == 5 * 3  # counted as the circuits it models
