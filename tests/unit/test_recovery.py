"""Compression recovery and multiple-choice reasoning (CUA paper, SmolLM2 study): the SVD compression, the
distillation loss, the MMLU / ARC loaders and the log-likelihood scorer, then the sweep's quick mode end to end.
(Split by kind: its tests on real models, data, simulators or launches are in
tests/integration/test_recovery.py.)"""

from __future__ import annotations

import math

import pytest
import torch
from helpers.tiny import tiny_llama
from torch import nn

from qadapt.errors import ConfigError
from qadapt.models.compress import LowRankLinear, compress, decompose, factorize, rank_for_ratio


@pytest.mark.parametrize("shape", [(24, 40), (40, 24), (32, 32)])
@pytest.mark.parametrize("whitened", [False, True])
def test_factorisation_at_full_rank_is_the_original(shape, whitened):
    gen = torch.Generator().manual_seed(0)
    linear = nn.Linear(shape[1], shape[0], bias=True)
    x = torch.randn(200, shape[1], generator=gen) * torch.linspace(0.1, 3, shape[1])
    gram = x.T @ x if whitened else None
    low = factorize(linear, min(shape), gram)
    assert isinstance(low, nn.Linear) and low.rank == min(shape)
    torch.testing.assert_close(low.weight, linear.weight, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(low(x), linear(x), atol=1e-4, rtol=1e-4)


def test_whitened_truncation_beats_plain_on_the_inputs_it_sees():
    gen = torch.Generator().manual_seed(1)
    linear = nn.Linear(48, 32, bias=False)
    x = torch.randn(500, 48, generator=gen) * torch.logspace(-2, 1, 48)  # very unequal input directions
    plain, white = factorize(linear, 8), factorize(linear, 8, x.T @ x)
    err = lambda m: (m(x) - linear(x)).norm().item()  # noqa: E731
    assert err(white) < 0.9 * err(plain)
    # plain SVD is the best rank-8 approximation of the weight itself (Eckart-Young): its weight error is the tail
    s = torch.linalg.svdvals(linear.weight.double())
    assert math.isclose((plain.weight - linear.weight).norm().item(), s[8:].norm().item(), rel_tol=1e-4)


def test_rank_for_ratio_and_errors():
    assert rank_for_ratio(576, 576, 0.8) == int(0.8 * 576 * 576 / 1152) == 230
    assert rank_for_ratio(10, 10, 1e-6) == 1
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        rank_for_ratio(4, 4, 1.5)
    with pytest.raises(ConfigError, match=r"rank 9 outside \[1, 8\]"):
        factorize(nn.Linear(8, 8), 9)
    with pytest.raises(ConfigError, match="inputs"):
        decompose(torch.zeros(4, 8), torch.eye(5))


def _tiny_llama():
    return tiny_llama(layers=3)


@pytest.mark.parametrize("ratio", [0.9, 0.6, 0.3])
def test_compression_reaches_the_requested_ratio_by_counted_parameters(ratio):
    model = _tiny_llama()
    dense = {n: m.weight.numel() for n, m in model.named_modules() if n.endswith("_proj")}
    total_before = sum(p.numel() for p in model.parameters())
    report = compress(model, "svd", ratio)
    counted = sum(p.numel() for n, p in model.named_parameters() if "_proj" in n)
    assert report.projection_params_before == sum(dense.values())
    assert report.projection_params_after == counted  # the report counts what the model now holds
    assert counted <= ratio * sum(dense.values())
    assert report.achieved_ratio > ratio - 0.1  # rank rounding costs little
    assert (
        report.model_params_after
        == sum(p.numel() for p in model.parameters())
        == total_before - sum(dense.values()) + counted
    )
    assert all(isinstance(m, LowRankLinear) for n, m in model.named_modules() if n.endswith("_proj"))


@pytest.mark.parametrize("adapter", ["lora", "oft"])
def test_peft_adapters_on_compressed_projections_keep_their_effect_when_merged_for_evaluation(adapter):
    """peft's merge writes ``base_layer.weight.data``; a LowRankLinear's weight is computed on access, so a merge
    would lose the adapter (the recovery sweep once scored LoRA at exactly the compressed perplexity). Evaluation
    under ``adapters.merged`` must give the adapted model's logits, not the compressed model's."""
    from omegaconf import OmegaConf

    from qadapt import adapters

    torch.manual_seed(0)
    model = _tiny_llama().eval()
    compress(model, "svd", 0.5)
    spec = {
        "lora": {"name": "lora", "r": 2, "alpha": 4, "dropout": 0.0},
        "oft": {"name": "oft", "block_size": 4, "cayley_neumann": False},
    }
    cfg = OmegaConf.create({**spec[adapter], "modules": ["q_proj", "v_proj"], "layers": None})
    adapters.apply(model, cfg, None)
    with torch.no_grad():  # a trained-looking adapter: peft starts LoRA's B and OFT's generator at zero (identity)
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn_like(p))
    x = torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        adapted = model(input_ids=x).logits
        with adapters.adapters_disabled(model):
            compressed = model(input_ids=x).logits
        with adapters.merged(model):
            evaluated = model(input_ids=x).logits
    assert (adapted - compressed).abs().max() > 1e-2  # the adapter changes the model
    torch.testing.assert_close(evaluated, adapted, rtol=0, atol=1e-5)


def test_input_grams_equal_each_projections_own_inputs():
    from qadapt.models.compress import PROJECTIONS, input_grams
    from qadapt.models.layers import find_targets

    model, x = _tiny_llama(), torch.randint(0, 97, (6, 16), generator=torch.Generator().manual_seed(3))
    targets = find_targets(model, PROJECTIONS, None)
    seen: dict[str, list[torch.Tensor]] = {}
    handles = [
        getattr(p, a).register_forward_pre_hook(
            lambda _m, args, n=n: seen.setdefault(n, []).append(args[0].detach().clone())
        )
        for n, p, a in targets
    ]
    with torch.no_grad():
        for i in range(0, 6, 4):
            model(input_ids=x[i : i + 4], use_cache=False)
    for h in handles:
        h.remove()
    grams = input_grams(model, targets, x, batch_size=4)
    assert set(grams) == {n for n, _, _ in targets}
    for name, inputs in seen.items():
        flat = torch.cat([t.reshape(-1, t.shape[-1]) for t in inputs]).double()
        torch.testing.assert_close(grams[name], flat.T @ flat, rtol=1e-4, atol=1e-4)  # float32 products


def test_svd_llm_compression_needs_calibration_and_whitening_helps_the_model():
    model, x = _tiny_llama(), torch.randint(0, 97, (4, 32), generator=torch.Generator().manual_seed(2))
    with pytest.raises(ConfigError, match="calibration"):
        compress(model, "svd_llm", 0.5)
    with pytest.raises(ConfigError, match="valid choices: svd, svd_llm"):
        compress(model, "tucker", 0.5)
    import copy

    ref = model(input_ids=x).logits
    plain, white = copy.deepcopy(model), copy.deepcopy(model)
    compress(plain, "svd", 0.5)
    compress(white, "svd_llm", 0.5, calibration=x)
    err = lambda m: (m(input_ids=x).logits - ref).norm().item()  # noqa: E731
    assert err(white) < err(plain)
