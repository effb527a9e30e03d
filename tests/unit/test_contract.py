"""One contract over every registered adapter and device (as peft's testing_common runs one over every tuner):

- an adapter that wraps a frozen layer starts at the base model (identity at init); a replacement adapter does not
  promise it (its sub-layer is gone);
- its trained weights saved (``runs.save_adapter``) and loaded into a fresh model give the same logits;
- merged (``adapters.merged``, what ``qadapt export format=merged`` writes) equals unmerged where it can merge;
- every device's block distribution sums to 1 and, where it has no noise, matches ``exact``; a device this machine
  cannot run refuses at construction with what to do.
"""

from __future__ import annotations

import pytest
import torch
from helpers.tiny import tiny_llama
from safetensors.torch import load_file

from qadapt import adapters, devices, runs
from qadapt.adapters.registry import ADAPTERS
from qadapt.config import compose
from qadapt.devices import DEVICES
from qadapt.errors import ConfigError, QadaptError
from qadapt.quantum import BlockUnitaryCircuit, cayley, num_skew_params, skew_symmetric

IDS = torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(5))
# what the tiny Llama (4 layers, width 48) needs beyond each adapter's defaults (SmolLM2's last 6 layers)
ON_TINY = {
    "cua": ["adapter.layers=[2,3]"],
    "blockdiag": ["adapter.layers=[2,3]"],
    "norm": ["adapter.layers=[2,3]"],
    "oft": ["adapter.block_size=16"],  # peft adjusts a block that does not divide the width (48), with a warning
}
NAMES = sorted(name for name, spec in ADAPTERS.items() if spec is not None)


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def _adapted(name: str, seed: int = 0):
    cfg = compose(["model=smollm2_135m", f"adapter={name}", *ON_TINY.get(name, [])])
    model = tiny_llama(seed=seed)
    sites = adapters.apply(model, cfg.adapter, devices.get(cfg.device))
    return model, cfg, sites


def test_every_adapter_is_in_the_contract():
    assert set(NAMES) == {n for n, s in ADAPTERS.items() if s is not None} and len(NAMES) >= 11


@pytest.mark.parametrize("name", NAMES)
def test_an_adapter_starts_at_the_base_model_unless_it_replaces_a_sub_layer(name):
    base = _logits(tiny_llama())
    model, _, sites = _adapted(name)
    assert sites
    moved = (_logits(model) - base).abs().max().item()
    if ADAPTERS[name].replaces:
        assert moved > 1e-3  # the replaced sub-layers are gone: the model is not the base one
    else:
        assert moved < 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_saved_weights_load_into_a_fresh_model_with_the_same_logits(tmp_path, name):
    model, cfg, _ = _adapted(name)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # trained-like weights: every trainable tensor moved off its start
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    trained = _logits(model)
    assert (trained - _logits(_adapted(name)[0])).abs().max() > 1e-4  # the weights matter
    path = tmp_path / runs.ADAPTER_FILE
    runs.save_adapter(path, model, cfg)
    fresh, _, _ = _adapted(name, seed=0)
    adapters.load_adapter_state(fresh, load_file(str(path)))
    assert torch.allclose(_logits(fresh), trained, atol=1e-5)
    other, _, _ = _adapted(name, seed=1)  # another base model: the file holds the adapter, not the base
    if not ADAPTERS[name].replaces and name != "full":
        adapters.load_adapter_state(other, load_file(str(path)))
        assert not torch.allclose(_logits(other), trained, atol=1e-3)


@pytest.mark.parametrize("name", [n for n in NAMES if not ADAPTERS[n].replaces])
def test_merged_equals_unmerged(name):
    model, _, _ = _adapted(name)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    unmerged = _logits(model)
    with adapters.merged(model):
        merged = _logits(model)
    assert torch.allclose(merged, unmerged, atol=1e-5)
    assert torch.allclose(_logits(model), unmerged, atol=1e-6)  # unmerged again after the block (peft: float error)


def _circuit(q: int = 2, blocks: int = 4):
    params = torch.randn(blocks, num_skew_params(2**q), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    circuit = BlockUnitaryCircuit(cayley(skew_symmetric(params, 2**q)), q)
    x = torch.randn(6, blocks, 2**q, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return circuit, x / x.norm(dim=-1, keepdim=True)


# device -> overrides that make it noise-free (ibm_fake still samples its shots); None: it cannot run on this machine
# (lightning_gpu without CUDA, ibm without an account) and must refuse at construction
NOISE_FREE = {
    "exact": [],
    "default_qubit": [],
    "lightning_qubit": [],
    "ibm_fake": ["device.noise=false"],
    "lightning_gpu": [] if torch.cuda.is_available() else None,
    "ibm": None,
}


def test_every_device_is_in_the_contract():
    assert set(NOISE_FREE) == set(DEVICES)


@pytest.mark.parametrize("name", sorted(DEVICES))
def test_a_device_sums_to_one_and_matches_exact_without_noise(name, no_saved_ibm_account):
    circuit, states = _circuit()
    exact = devices.get(compose(["device=exact"]).device).block_probabilities(circuit, states)
    if NOISE_FREE[name] is None:
        with pytest.raises((ConfigError, QadaptError)) as refused:
            devices.get(compose([f"device={name}"]).device)
        assert "Traceback" not in str(refused.value) and len(str(refused.value)) > 40  # says what to do
        return
    device = devices.get(compose([f"device={name}", *NOISE_FREE[name]]).device)
    probs = device.block_probabilities(circuit, states)
    assert probs.shape == exact.shape
    assert torch.allclose(probs.sum(-1), torch.ones_like(probs.sum(-1)), atol=1e-9)
    shots = getattr(device, "shots", None)
    if shots:  # a sampling device: within the shot noise of its own count
        assert ((probs - exact).abs() <= 5 * (exact * (1 - exact) / shots).sqrt() + 1e-9).all()
    else:
        assert (probs - exact).abs().max() < 1e-6
