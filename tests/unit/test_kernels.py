"""qadapt/models/kernels.py: the oneDNN linears, fused gated MLP and RMSNorm give the model's own outputs, use the
weights current at entry, and leave the model as it was."""

from __future__ import annotations

import pytest
import torch
from helpers.tiny import tiny_llama as shared_tiny_llama
from torch import nn

from qadapt.models import kernels

ONEDNN = kernels._onednn_ready()


def tiny_llama(seed: int = 0):
    """tests/helpers/tiny.py's 2-layer Llama with RMSNorm gains away from 1, so a wrong norm formula would show."""
    model = shared_tiny_llama(layers=2, seed=seed)
    with torch.no_grad():
        for module in model.modules():
            if type(module).__name__ == "LlamaRMSNorm":
                module.weight.uniform_(0.5, 1.5)
    return model


def logits(model, ids):
    return model(ids).logits


@pytest.mark.skipif(not ONEDNN, reason="this torch build has no oneDNN linear")
def test_same_logits_and_everything_restored():
    model, ids = tiny_llama(), torch.randint(0, 97, (3, 37))
    with torch.inference_mode():
        reference = logits(model, ids)
        with kernels.inference_kernels(model) as switched:
            fast = logits(model, ids)
            patched = [n for n, m in model.named_modules() if "forward" in m.__dict__]
        after = logits(model, ids)
    # 7 projections per layer and the LM head
    assert switched == 2 * 7 + 1
    # every linear, both MLPs (fused) and the 5 RMSNorms run the replacement kernels
    assert len(patched) == 15 + 2 + 5
    scale = reference.abs().max()
    assert (fast - reference).abs().max() <= 1e-5 * scale
    assert not [n for n, m in model.named_modules() if "forward" in m.__dict__]
    assert torch.equal(after, reference)


@pytest.mark.skipif(not ONEDNN, reason="this torch build has no oneDNN linear")
def test_the_modules_current_weights_are_used():
    """No copy: a weight changed inside the block (as adapters.merged folds an adapter in) is the one used."""
    model, ids = tiny_llama(), torch.randint(0, 97, (1, 20))
    with torch.inference_mode(), kernels.inference_kernels(model):
        before = logits(model, ids)
        model.model.layers[1].mlp.up_proj.weight.mul_(2.0)
        model.model.layers[0].self_attn.v_proj.weight.mul_(0.5)
        fast = logits(model, ids)
    with torch.inference_mode():
        reference = logits(model, ids)
    assert (fast - before).abs().max() > 1e-2 * before.abs().max()
    assert (fast - reference).abs().max() <= 1e-5 * reference.abs().max()


def test_switched_off_by_env_and_not_for_gradients(monkeypatch):
    model, ids = tiny_llama(), torch.randint(0, 97, (1, 20))
    monkeypatch.setenv("QADAPT_ONEDNN", "0")
    with torch.inference_mode():
        reference = logits(model, ids)
        with kernels.inference_kernels(model) as switched:
            same = logits(model, ids)
    assert switched == 0
    # the RMSNorm kernel is bit-identical; the rotary drop-in equal to float rounding
    assert (same - reference).abs().max() <= 1e-6 * reference.abs().max()
    with pytest.raises(RuntimeError, match="inference"):
        with kernels.inference_kernels(model):
            pass


@pytest.mark.skipif(not ONEDNN, reason="this torch build has no oneDNN linear")
def test_replaced_forwards_and_subclasses_are_left_alone():
    class Scaled(nn.Linear):
        pass

    model = tiny_llama()
    model.model.layers[0].self_attn.q_proj.forward = lambda x: x  # as accelerate's offload hooks do
    layer = model.model.layers[1].self_attn
    layer.o_proj = Scaled(48, 48, bias=False)
    with torch.inference_mode(), kernels.inference_kernels(model) as switched:
        assert switched == 2 * 7 + 1 - 2
        # an MLP is fused only when its three projections are plain linears: both still are here
        assert "forward" in model.model.layers[0].mlp.__dict__


def test_rotary_matches_transformers_and_is_restored():
    """The rotary drop-in equals transformers' formula on a strided q (as the attention passes it) with cos/sin halves
    that differ (a general rope), and the module's own function is back after the block."""
    from transformers.models.llama import modeling_llama

    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 37, 3, 16, generator=gen).transpose(1, 2)  # (B, heads, T, d), not contiguous
    k = torch.randn(2, 37, 1, 16, generator=gen).transpose(1, 2)
    cos, sin = torch.randn(2, 37, 16, generator=gen), torch.randn(2, 37, 16, generator=gen)
    original = modeling_llama.apply_rotary_pos_emb
    want = original(q, k, cos, sin)
    got = kernels._apply_rotary_pos_emb(q, k, cos, sin)
    for a, b in zip(got, want):
        assert a.shape == b.shape and (a - b).abs().max() <= 1e-6 * b.abs().max()
    # a wrong sign or a swapped half would be off by O(1)
    assert (kernels._apply_rotary_pos_emb(q, k, cos, -sin)[0] - want[0]).abs().max() > 0.1
    model = tiny_llama()
    with torch.inference_mode(), kernels.inference_kernels(model):
        assert modeling_llama.apply_rotary_pos_emb is kernels._apply_rotary_pos_emb
        with kernels.inference_kernels(model):  # nested: the outer block keeps it until it ends
            pass
        assert modeling_llama.apply_rotary_pos_emb is kernels._apply_rotary_pos_emb
    assert modeling_llama.apply_rotary_pos_emb is original
