"""The controls of the CUA study: free blocks (adapter=blockdiag), norm gains (adapter=norm), an untrained random CUA
(adapter.init=random), LoRA on chosen layers; the held-out WikiText-2 slice; per-window scores; the training cache a
process keeps for its next run.
(Split by kind: its tests on real models, data, simulators or launches are in
tests/integration/test_controls.py.)"""

from __future__ import annotations

import pytest
import torch
from helpers.tiny import tiny_llama as _tiny_llama

from qadapt import adapters, devices
from qadapt.adapters.base import count_trainable
from qadapt.config import compose
from qadapt.errors import ConfigError
from qadapt.memo import Memo


def _apply(model, *overrides):
    cfg = compose(list(overrides))
    return adapters.apply(model, cfg.adapter, devices.get(cfg.device))


IDS = torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(5))


def _logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits


def test_blockdiag_starts_at_the_base_model_and_applies_its_blocks():
    model = _tiny_llama()
    before = _logits(model)
    sites = _apply(model, "adapter=blockdiag", "adapter.block_size=4", "adapter.layers=[-2,-1]")
    assert sites == ["layers.2.self_attn.v_proj", "layers.3.self_attn.v_proj"]
    assert count_trainable(model) == 2 * 48 * 4  # d b per site
    torch.testing.assert_close(_logits(model), before)  # identity blocks: exactly the base model
    layer = model.model.layers[3].self_attn.v_proj
    with torch.no_grad():
        layer.blocks.add_(torch.randn(layer.blocks.shape, generator=torch.Generator().manual_seed(0)))
    x = torch.randn(5, 48)
    dense = torch.block_diag(*layer.blocks.detach())  # M = diag(M_1, ..., M_12)
    torch.testing.assert_close(layer(x), layer.base(x @ dense.T))
    assert layer.structure() == {
        "layer": "BlockDiagLinear",
        "block_size": 4,
        "side": "input",
        "parametrization": "free",
        "n_blocks": 12,
        "width": 48,
    }
    with pytest.raises(ConfigError, match="not divisible"):
        _apply(_tiny_llama(), "adapter=blockdiag", "adapter.block_size=5", "adapter.layers=[0]")


def test_skew_blocks_have_cuas_parameters_and_are_cayley_to_first_order_but_not_orthogonal():
    """adapter.parametrization=skew: M_j = I - 2 S_j on CUA's blocks, CUA's parameter count, the base model at step 0,
    the layer equal to its dense block-diagonal M, agreeing with CUA's Cayley blocks to O(|S|^2), not orthogonal."""
    from qadapt.quantum import cayley, skew_symmetric

    model = _tiny_llama()
    before = _logits(model)
    over = ["adapter.block_size=4", "adapter.layers=[-2,-1]"]
    _apply(model, "adapter=blockdiag", "adapter.parametrization=skew", *over)
    cua = _tiny_llama()
    _apply(cua, "adapter=cua", "adapter.qubits_per_block=2", "adapter.layers=[-2,-1]")
    assert count_trainable(model) == count_trainable(cua) == 2 * 12 * 6  # d (b - 1) / 2 per site
    torch.testing.assert_close(_logits(model), before, rtol=0, atol=0)
    layer = model.model.layers[3].self_attn.v_proj
    direction = torch.randn(layer.generators.shape, generator=torch.Generator().manual_seed(0))
    gaps = []
    for eps in (1e-2, 1e-3):
        with torch.no_grad():
            layer.generators.copy_(eps * direction)
        m = layer.block_matrices().double()
        gaps.append((m - cayley(skew_symmetric(layer.generators.double(), 4))).abs().max().item())
    assert 50 < gaps[0] / gaps[1] < 200  # quadratic in |S|
    with torch.no_grad():
        layer.generators.copy_(0.5 * direction)
    m = layer.block_matrices().detach()
    gram = m @ m.transpose(-1, -2)
    assert (gram - torch.eye(4)).abs().max() > 0.1  # not orthogonal
    x = torch.randn(5, 48)
    torch.testing.assert_close(layer(x), layer.base(x @ torch.block_diag(*m).T))
    assert layer.structure()["parametrization"] == "skew"
    with pytest.raises(ConfigError, match="valid choices: free, skew"):
        _apply(_tiny_llama(), "adapter=blockdiag", "adapter.parametrization=cayley")


def test_norm_gain_starts_at_the_base_model_and_scales_the_norm():
    model = _tiny_llama()
    before = _logits(model)
    sites = _apply(model, "adapter=norm", "adapter.layers=[-1]", "adapter.bias=true")
    assert sites == ["layers.3.input_layernorm"]
    assert count_trainable(model) == 2 * 48
    torch.testing.assert_close(_logits(model), before)
    norm = model.model.layers[3].input_layernorm
    with torch.no_grad():
        norm.gain.fill_(2.0)
        norm.bias.fill_(0.5)
    x = torch.randn(3, 48)
    torch.testing.assert_close(norm(x), norm.base(x) * 2.0 + 0.5)
    with adapters.adapters_disabled(model):
        torch.testing.assert_close(_logits(model), before)
    with pytest.raises(ConfigError, match="per-feature weight"):
        _apply(_tiny_llama(), "adapter=norm", "adapter.modules=[v_proj]", "adapter.layers=[0]")


def test_random_cua_is_a_seeded_rotation_of_the_asked_scale():
    def draw(seed, scale=0.3):
        model = _tiny_llama()
        _apply(
            model,
            "adapter.layers=null",
            "adapter.init=random",
            f"adapter.init_scale={scale}",
            f"adapter.init_seed={seed}",
        )
        return model, torch.cat([p.detach().ravel() for p in adapters.adapter_state_dict(model).values()])

    (model, a), (_, again), (_, other) = draw(0), draw(0), draw(1)
    assert torch.equal(a, again) and not torch.equal(a, other)
    assert a.std().item() == pytest.approx(0.3, rel=0.15)  # 4 sites x 12 blocks x 6 generators
    q = model.model.layers[0].self_attn.v_proj.unitaries()
    torch.testing.assert_close(q @ q.transpose(1, 2), torch.eye(4).expand_as(q), atol=1e-5, rtol=0)
    assert not torch.allclose(q, torch.eye(4).expand_as(q), atol=1e-2)
    fresh = _tiny_llama()
    _apply(fresh, "adapter.layers=null")
    assert all((p == 0).all() for p in adapters.adapter_state_dict(fresh).values())  # default: identity
    with pytest.raises(ConfigError, match="valid choices: identity, random"):
        _apply(_tiny_llama(), "adapter.layers=null", "adapter.init=haar")


def test_lora_on_chosen_layers_only():
    model = _tiny_llama()
    sites = _apply(model, "adapter=lora", "adapter.r=1", "adapter.modules=[v_proj]", "adapter.layers=[-2,-1]")
    assert sites == ["model.layers.2.self_attn.v_proj", "model.layers.3.self_attn.v_proj"]
    assert count_trainable(model) == 2 * 1 * (48 + 24)  # r (d_in + d_out) per site; v_proj 48 -> 24
    with pytest.raises(ConfigError, match="out of range"):
        _apply(_tiny_llama(), "adapter=lora", "adapter.layers=[7]")


def test_window_scores_add_up_to_the_total():
    from qadapt.eval import perplexity
    from qadapt.eval.windows import build_eval_set

    class Tokenizer:
        bos_token_id, eos_token_id = 1, 2

        def __call__(self, text, add_special_tokens=False):
            return type("Encoding", (), {"input_ids": [3 + ord(c) % 90 for c in text]})()

    task = compose(["task.max_length=16", "task.stride=16"]).task
    windows = build_eval_set(Tokenizer(), "the quick brown fox jumps over the lazy dog " * 3, "text", task)
    result = perplexity.evaluate(_tiny_llama(), windows, 2, 0)
    assert len(result.window_nll) == len(windows.windows) > 2
    assert sum(result.window_nll) == pytest.approx(result.nll_sum, rel=1e-12)
    assert result.window_tokens == [w.n_scored for w in windows.windows]


def test_a_process_reuses_its_training_cache_for_the_same_prefix(tmp_path):
    from qadapt.training import lm

    chunks = torch.randint(0, 97, (4, 16), generator=torch.Generator().manual_seed(1))
    train = compose(["train.max_steps=3", "train.batch_size=2", "train.cache_activations=true"]).train

    memo = Memo()  # what the process keeps between its runs, passed in (no module-level cache)

    def run(model, name, memo=memo):
        (tmp_path / name).mkdir()
        return lm.fit(model, chunks, train, tmp_path / name, seed=0, resume=False, memo=memo)

    def adapted(seed=0):
        model = _tiny_llama(seed=seed)
        _apply(model, "adapter.layers=[2,3]")
        return model

    first = run(adapted(), "a")
    shared = memo.activations[0]
    second = run(adapted(), "b")  # a new model object with the same frozen prefix: the same streams
    assert memo.activations[0] is shared
    assert second.losses == pytest.approx(first.losses, rel=1e-6)
    other = run(adapted(seed=1), "c")  # other prefix weights: a new cache
    assert memo.activations[0] is not shared and other.losses != pytest.approx(first.losses)
    alone = Memo()
    run(adapted(), "d", alone)  # another process's memo (or none) starts empty: nothing of this one's is taken
    assert alone.activations[0] is not memo.activations[0]


@pytest.mark.parametrize(
    "method",
    [
        ["adapter=lora", "adapter.r=2", "adapter.modules=[v_proj]", "adapter.layers=[-2,-1]"],
        ["adapter=oft", "adapter.block_size=4", "adapter.modules=[v_proj]"],
    ],
)
def test_switching_adapters_off_gives_the_base_model_for_peft_layers_too(method):
    """adapters_disabled is the base pass of every evaluation: with peft's layers (LoRA, OFT) given non-zero weights
    the model differs from the base, inside the context it equals the base, and after it the adapter is back."""
    from qadapt.adapters import adapters_disabled

    base = _tiny_llama()
    model = _tiny_llama()
    _apply(model, *method)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn_like(p))
    ids = torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain, adapted = base(ids).logits, model(ids).logits
        with adapters_disabled(model):
            off = model(ids).logits
        again = model(ids).logits
    assert not torch.allclose(adapted, plain, atol=1e-4)
    torch.testing.assert_close(off, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(again, adapted, rtol=0, atol=0)


def _cua_result(units=None, numerators=None):
    """configs/study/cua_smollm2.yaml and a render Result holding the estimates of ``numerators`` (arm -> (3, 32)
    summed NLL minus base per seed and window, 2,000 tokens a window) or ``units``."""
    import numpy as np
    import pandas as pd

    from qadapt.results import estimate as est
    from qadapt.studies import load
    from qadapt.studies.render import Result

    study = load("cua_smollm2")
    estimates = None
    if numerators is not None:
        reference = next(iter(numerators))
        estimates = est.estimate(numerators, np.full(32, 2000.0), "delta_ppl_pct", reference)
    cells = pd.DataFrame(
        {"arm": ["cua_q3", "blockdiag_b4"], "phase": "test", "trainable_params": [12096, 13824], "done": True}
    )
    return study, Result(cells, units, list(numerators or []), {}, estimates)


@pytest.mark.parametrize("shift,expected", [(0.0, "not resolved at 3 seeds"), (0.02, "CUA q = 3 lowers")])
def test_size_matched_orthogonality_line_follows_the_paired_interval(shift, expected):
    """cua_smollm2.md's line on free blocks against CUA q = 3 (nearest size), from the study's hook: per-window
    scores drawn here with a known shift (nats per token) on top of shared seed and window effects; the words follow
    the paired interval, never claiming a difference the scores do not hold."""
    import numpy as np

    from qadapt.studies.hooks import cua_smollm2 as hook

    rng = np.random.default_rng(0)
    # shared by both arms (same text), so the pairing removes them from the difference
    common = (-0.04 + rng.normal(0, 0.01, (1, 32)) + rng.normal(0, 0.005, (3, 1))) * 2000
    q3 = common + rng.normal(0, 0.002, (3, 32)) * 2000
    free = common + (shift + rng.normal(0, 0.002, (3, 32)) + rng.normal(0, 0.001, (3, 1))) * 2000
    study, result = _cua_result(numerators={"cua_q3": q3, "blockdiag_b4": free})
    labels = {k: a.label for k, a in study.arms.items()}
    (line,) = hook._size_matched(result, labels)
    assert expected in line and "13,824" in line and "12,096" in line
    _, alone = _cua_result(numerators={"cua_q3": q3})
    assert hook._size_matched(alone, labels) == []


def test_own_base_mismatch_flags_a_wrong_base_not_float_rounding():
    """cua_smollm2.md names the runs whose own base pass was not the base model: a 4e-2 relative gap (the peft fault)
    is flagged, a 1e-7 one (float rounding after a code change) is not."""
    import pandas as pd

    from qadapt.studies.hooks import cua_smollm2 as hook

    base = [("base", "b", w, 6000.0 + w, 6000.0 + w) for w in range(4)]
    rounding = [("skew_b4", "r1", w, 5900.0, (6000.0 + w) * (1 + 1e-7)) for w in range(4)]
    fault = [("lora_r1", "r2", w, 5900.0, (6000.0 + w) * (1 + (4e-2 if w == 2 else 0))) for w in range(4)]
    units = pd.DataFrame(base + rounding + fault, columns=["arm", "run_id", "window", "nll", "base_nll"])
    study, result = _cua_result(units=units)
    assert hook._own_base_mismatch(study, result) == ["r2"]
