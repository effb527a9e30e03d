"""QuIC compound adapters: compound matrices, the RBS-circuit claim on the devices, the layer, parameter counts."""

import copy
import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from qadapt.adapters import rbs
from qadapt.devices import DEVICES
from qadapt.errors import ConfigError
from qadapt.quantum import random_cayley_generators
from qadapt.quantum.compound import RBSCircuit, compound, num_rbs_gates, rbs_gates, weight_indices


def _cfg(**kw):
    base = dict(
        name="rbs",
        n=4,
        orders=[1, 2],
        block_size=None,
        parametrization="cayley",
        layout="pyramid",
        block_share=False,
        modules=["query", "value"],
        side="input",
    )
    return OmegaConf.create(base | kw)


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.query, self.value, self.other = nn.Linear(24, 20), nn.Linear(24, 24), nn.Linear(24, 24)
        self.conv = nn.Conv2d(24, 30, 3, padding=1)

    def forward(self, x):
        image = self.conv(x[:, :, None, None].expand(-1, -1, 4, 4)).mean((2, 3))
        return self.query(x).sum(-1) + self.value(x).sum(-1) + self.other(x).sum(-1) + image.sum(-1)


def _randomise(model):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.4)


def test_compound_of_orthogonal_is_orthogonal_and_multiplicative():
    torch.manual_seed(0)
    a = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))[0]
    b = torch.randn(6, 6, dtype=torch.float64)
    for k in range(1, 7):
        c = compound(a, k)
        assert c.shape == (math.comb(6, k),) * 2
        torch.testing.assert_close(c @ c.T, torch.eye(c.shape[0], dtype=torch.float64), atol=1e-12, rtol=0)
        # Cauchy-Binet
        torch.testing.assert_close(compound(a @ b, k), compound(a, k) @ compound(b, k), atol=1e-10, rtol=0)
    assert torch.allclose(compound(b, 6).squeeze(), torch.linalg.det(b))  # top order = determinant


def test_compound_entries_are_minors():
    m = torch.arange(16, dtype=torch.float64).reshape(4, 4) ** 1.5
    c = compound(m, 2)
    # subsets in lexicographic order: (0,1) (0,2) (0,3) (1,2) (1,3) (2,3); entry ((0,2), (1,3))
    assert c[1, 4] == pytest.approx(torch.linalg.det(m[[0, 2]][:, [1, 3]]).item())


@pytest.mark.parametrize("layout,n", [("pyramid", 5), ("butterfly", 4)])
@pytest.mark.parametrize("device", ["exact", "default_qubit"])
def test_rbs_circuit_weight_k_block_is_the_compound(layout, n, device):
    """The QuIC claim, on the project's devices: the circuit restricted to Hamming weight k is A^(k)."""
    torch.manual_seed(3)
    circuit = RBSCircuit(torch.randn(num_rbs_gates(n, layout), dtype=torch.float64), n, layout)
    a = circuit.weight1_matrix()
    dev = DEVICES[device](OmegaConf.create({"name": device, "backend": "default.qubit", "shots": None, "seed": 0}))
    unitary = dev.rbs_states(circuit, torch.eye(2**n, dtype=torch.float64)).T  # column j = image of basis state j
    torch.testing.assert_close(unitary @ unitary.T, torch.eye(2**n, dtype=torch.float64), atol=1e-10, rtol=0)
    for k in range(0, n + 1):
        idx = weight_indices(n, k) if k else torch.tensor([0])
        block = unitary[idx][:, idx]
        expected = compound(a, k) if k else torch.ones(1, 1, dtype=torch.float64)
        assert (block - expected).abs().max().item() < 1e-6, f"weight {k}"
        others = torch.tensor([i for i in range(2**n) if i not in set(idx.tolist())])
        assert unitary[others][:, idx].abs().max().item() < 1e-12  # Hamming weight preserved


def test_rbs_layouts_count_gates():
    for n in range(2, 9):
        assert num_rbs_gates(n, "pyramid") == n * (n - 1) // 2
        for layer in rbs_gates(n, "pyramid"):
            qubits = [q for pair in layer for q in pair]
            assert len(qubits) == len(set(qubits))  # gates of one layer are disjoint
    assert num_rbs_gates(8, "butterfly") == 12
    with pytest.raises(ValueError, match="power of two"):
        rbs_gates(6, "butterfly")
    with pytest.raises(ValueError, match="valid choices: pyramid, butterfly"):
        rbs_gates(4, "ring")


@pytest.mark.parametrize("par", ["cayley", "rbs", "free", "skew"])
@pytest.mark.parametrize("side", ["input", "output"])
def test_identity_at_init_and_blocks_orthogonal(par, side):
    torch.manual_seed(0)
    model = Toy()
    x = torch.randn(7, 24)
    before = model(x)
    adapted = copy.deepcopy(model).requires_grad_(False)  # frozen base, as adapters.apply leaves it
    sites = rbs.inject(adapted, _cfg(orders=[1, 2, 3], parametrization=par, side=side, modules=["value", "conv"]))
    assert sites == ["value", "conv"]
    torch.testing.assert_close(adapted(x), before, atol=0, rtol=0)
    _randomise(adapted)
    assert (adapted(x) - before).abs().max() > 1e-3
    blocks = adapted.value.blocks().double()
    gram = blocks @ blocks.transpose(-1, -2)
    err = (gram - torch.eye(blocks.shape[-1], dtype=torch.float64)).abs().max().item()
    orthogonal = par in ("cayley", "rbs")  # "free" and "skew" are the no-orthogonality ablations
    assert (err < 1e-5) if orthogonal else (err > 1e-2)


def test_skew_is_cayley_to_first_order_with_cayley_parameters():
    """parametrization=skew (A = I - 2S) has cayley's parameters and agrees with it to O(|S|^2), so the two
    differ only by the orthogonality the Cayley map adds."""
    torch.manual_seed(0)
    base = nn.Linear(24, 24)
    layers = {
        par: rbs.CompoundLayer(base, rbs.RBSConfig.from_cfg(_cfg(parametrization=par))) for par in ("cayley", "skew")
    }
    assert layers["cayley"].weight.shape == layers["skew"].weight.shape
    direction = torch.randn_like(layers["cayley"].weight)
    gaps = []
    for eps in (1e-2, 1e-3):
        with torch.no_grad():
            for layer in layers.values():
                layer.weight.copy_(eps * direction)
        a, b = (layers[p].base_matrix().double() for p in ("cayley", "skew"))
        assert (a - b).abs().max() > 0
        gaps.append((a - b).abs().max().item())
    assert 50 < gaps[0] / gaps[1] < 200  # quadratic: 10x smaller S, ~100x smaller gap


def test_layer_equals_explicit_block_rotation():
    torch.manual_seed(0)
    base = nn.Linear(24, 24)
    for side in ("input", "output"):
        config = rbs.RBSConfig.from_cfg(_cfg(side=side, block_size=12))
        layer = rbs.CompoundLayer(copy.deepcopy(base).requires_grad_(False), config)
        _randomise(layer)
        b = layer.blocks()  # (2, 12, 12): 24 features = 2 whole blocks
        x = torch.randn(5, 24)
        if side == "input":
            expected = base(torch.einsum("tnk,nkc->tnc", x.reshape(5, 2, 12), b).reshape(5, 24))
        else:
            expected = torch.einsum("tnk,nkc->tnc", base(x).reshape(5, 2, 12), b).reshape(5, 24)
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


def test_layer_reports_its_structure_and_no_device_circuits():
    layer = rbs.CompoundLayer(nn.Linear(24, 20), rbs.RBSConfig.from_cfg(_cfg(side="input", block_size=12)))
    assert layer.structure() == {
        "layer": "CompoundLayer",
        "n": 4,
        "orders": [1, 2],
        "block_size": 12,
        "parametrization": "cayley",
        "layout": "pyramid",
        "block_share": False,
        "side": "input",
        "n_blocks": 2,
        "width": 24,
    }
    assert layer.circuit_sites(128) == []


def test_order_one_equals_peft_oft_rotation():
    """QuIC with orders=[1] and block size n is OFT: same A from the same generator gives the same outputs."""
    from peft import OFTConfig, inject_adapter_in_model

    torch.manual_seed(0)
    model, x = Toy(), torch.randn(6, 24)
    ours = copy.deepcopy(model)
    rbs.inject(ours, _cfg(orders=[1], modules=["query"]))
    oft_config = OFTConfig(oft_block_size=4, r=0, target_modules=["query"], use_cayley_neumann=False)
    oft = inject_adapter_in_model(oft_config, copy.deepcopy(model))
    generators = random_cayley_generators(6, 4, dtype=torch.float32)  # 24 / 4 blocks, 4*3/2 skew entries each
    with torch.no_grad():
        ours.query.weight.copy_(generators)
        oft.query.oft_R["default"].weight.copy_(generators)
    torch.testing.assert_close(ours(x), oft(x), atol=1e-5, rtol=1e-5)
    assert (ours(x) - model(x)).abs().max() > 1e-2


def test_parameter_count_formula():
    cases = [
        (_cfg(n=8, orders=[1, 2]), 384, 10 * 28),
        (_cfg(n=8, orders=[1, 2], block_size=48), 384, 8 * 28),
        (_cfg(n=8, orders=[1, 2], block_share=True), 384, 28),
        (_cfg(n=8, parametrization="rbs", layout="butterfly"), 384, 10 * 12),
        (_cfg(n=4, orders=[1, 2, 3], parametrization="free"), 384, 27 * 16),
        (_cfg(n=8, orders=[1, 2], parametrization="skew"), 384, 10 * 28),
    ]
    for cfg, width, expected in cases:
        rcfg = rbs.RBSConfig.from_cfg(cfg)
        assert rbs.rbs_param_count(width, rcfg) == expected
        layer = rbs.CompoundLayer(nn.Linear(width, 64), rcfg)
        assert sum(p.numel() for p in layer.parameters() if p.requires_grad and p is layer.weight) == expected


def test_bad_config_lists_choices():
    with pytest.raises(ConfigError, match="valid choices: cayley, rbs, free, skew"):
        rbs.RBSConfig.from_cfg(_cfg(parametrization="givens"))
    with pytest.raises(ConfigError, match="smaller than"):
        rbs.RBSConfig.from_cfg(_cfg(n=8, block_size=20))
    with pytest.raises(ConfigError, match="valid choices: .*conv.*query"):
        rbs.inject(Toy(), _cfg(modules=["q_proj"]))
