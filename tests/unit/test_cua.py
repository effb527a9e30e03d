"""CUA adapter: block structure, identity at init, parameter counts (with and without weights)."""

import pytest
import torch
from helpers.options import adapter
from omegaconf import OmegaConf
from torch import nn

from qadapt import schema
from qadapt.adapters.cua import CUALinear, cua_param_count, run_blocks
from qadapt.adapters.options import CUAAdapter
from qadapt.config import compose
from qadapt.devices.exact import ExactDevice
from qadapt.errors import ConfigError
from qadapt.quantum import cayley, skew_symmetric
from qadapt.resources import count_params


def _config(q: int, side: str) -> CUAAdapter:
    return CUAAdapter(
        name="cua", qubits_per_block=q, modules=["lin"], layers=None, side=side, init="identity", init_scale=0.3
    )


def _layer(side="input", q=2, in_f=16, out_f=8):
    torch.manual_seed(0)
    return CUALinear(nn.Linear(in_f, out_f), _config(q, side), ExactDevice())


@pytest.mark.parametrize("side", ["input", "output"])
def test_identity_at_init(side):
    layer = _layer(side)
    x = torch.randn(3, 5, 16)
    assert torch.equal(layer(x), layer.base(x))


@pytest.mark.parametrize("side", ["input", "output"])
def test_exact_device_equals_block_diagonal_matrix(side):
    layer = _layer(side)
    with torch.no_grad():
        layer.generator.normal_()
    blocks = cayley(skew_symmetric(layer.generator.detach(), 4))
    full = torch.block_diag(*blocks)
    x = torch.randn(7, 16)
    W, bias = layer.base.weight, layer.base.bias
    expected = (x @ full.T) @ W.T + bias if side == "input" else (x @ W.T + bias) @ full.T
    assert torch.allclose(layer(x), expected, atol=1e-5)


def test_norm_is_preserved_per_slice():
    # Each slice is amplitude-encoded and rotated: its norm must not change (a unitary on q qubits).
    layer = _layer("input", q=3)
    with torch.no_grad():
        layer.generator.normal_()
    x = torch.randn(4, 16)
    y = run_blocks(layer.device, layer.circuit(), x)
    assert torch.allclose(y.view(4, 2, 8).norm(dim=-1), x.view(4, 2, 8).norm(dim=-1), atol=1e-5)


def test_width_not_divisible_is_a_clear_error():
    with pytest.raises(ConfigError, match="not divisible by block size"):
        CUALinear(nn.Linear(6, 4), _config(2, "input"), ExactDevice())


def test_bad_side_is_rejected():
    with pytest.raises(ConfigError, match="valid choices: input, output"):
        schema.read(adapter("cua", side="left"), CUAAdapter)


def test_param_count_formula():
    assert cua_param_count(4096, 2) == 6144
    assert cua_param_count(576, 1) == 288
    assert cua_param_count(576, 3) == 72 * 28


def test_llama31_8b_cua_count_without_weights():
    """The paper's ~6k: 2 qubits per block on one width-4096 projection of Llama 3.1 8B = 6,144."""
    counts = count_params(
        compose(["model=llama31_8b", "adapter=cua", "adapter.layers=[0]", "adapter.modules=[v_proj]"])
    )
    assert counts["adapter_params"] == 6144
    assert counts["sites"] == 1
    assert counts["base_params"] == 8_030_261_248  # Llama 3.1 8B as published


def test_smollm2_default_count_without_weights():
    counts = count_params(compose([]))
    assert counts["sites"] == 6
    assert counts["adapter_params"] == 6 * cua_param_count(576, 2) == 5184


def test_unknown_module_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"no module 'w_proj'.*valid choices: .*v_proj"):
        count_params(compose(["adapter.modules=[w_proj]"]))


def test_layer_out_of_range():
    with pytest.raises(ConfigError, match="out of range"):
        count_params(compose(["adapter.layers=[30]"]))


def test_device_positions_send_only_masked_positions_to_the_device():
    """device.positions=scored: masked positions are read out on the (noisy) device, the others exactly."""
    from qadapt.adapters import device_positions

    layer = _layer("input")
    with torch.no_grad():
        layer.generator.normal_(0, 0.5)
    exact = layer(x := torch.randn(2, 6, 16))
    layer.device = ExactDevice(OmegaConf.create({"shots": 64, "seed": 0}))
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[:, 3:] = True
    with device_positions(layer, mask):
        mixed = layer(x)
    assert layer.device.circuits_run == 2 * 3 * (16 // 4)  # 6 masked positions x 4 blocks
    assert torch.equal(mixed[~mask], exact[~mask])
    assert not torch.allclose(mixed[mask], exact[mask], atol=1e-4)
    assert layer.device_mask is None  # reset on leaving


def test_structure_and_counted_circuits():
    layer = _layer("output", q=2, in_f=16, out_f=8)
    assert layer.structure() == {
        "layer": "CUALinear",
        "qubits_per_block": 2,
        "block_size": 4,
        "side": "output",
        "n_blocks": 2,
        "width": 8,
    }
    assert layer.circuit_sites(2048) == []  # every circuit is counted by the device as it runs
    layer(torch.randn(3, 5, 16))
    assert layer.device.circuits_run == 3 * 5 * 2  # exact device: U_j x_j computed directly, counted all the same


def test_readout_on_a_shot_device_is_the_quantum_readout_rule():
    """CUA on a sampling device = qadapt.quantum.readout applied to that device's probabilities, same draws."""
    from functools import partial

    from qadapt.quantum.readout import decode_blocks, encode_blocks, read_out_blocks

    layer = _layer("input")
    with torch.no_grad():
        layer.generator.normal_()
    x = torch.randn(4, 16, dtype=torch.float64)
    x[0, :4] = 0
    circuit = layer.circuit()
    got = run_blocks(ExactDevice(OmegaConf.create({"shots": 128, "seed": 5})), circuit, x)
    device = ExactDevice(OmegaConf.create({"shots": 128, "seed": 5}))
    encoded = encode_blocks(circuit, x)
    by_hand = decode_blocks(encoded, device.block_probabilities(circuit, encoded.states)).reshape(x.shape)
    assert torch.equal(got, by_hand)
    assert torch.equal(got[0, :4], torch.zeros(4, dtype=torch.float64))  # a zero slice reads out as zero
    exact = ExactDevice()
    noiseless = read_out_blocks(circuit, x, partial(exact.block_probabilities, circuit))
    torch.testing.assert_close(noiseless, circuit.apply(x), atol=1e-12, rtol=0)  # the rule with p exact is U_j x_j
