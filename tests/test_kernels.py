"""qadapt/models/kernels.py: the oneDNN linears, fused gated MLP and RMSNorm give the model's own outputs, use the
weights current at entry, and leave the model as it was."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from qadapt.models import kernels

ONEDNN = kernels._onednn_ready()


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=97,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # RMSNorm gains away from 1, so a wrong norm formula would show
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
        with kernels.inference_kernels(model, positions_hint=64) as packed:
            fast = logits(model, ids)
            patched = [n for n, m in model.named_modules() if "forward" in m.__dict__]
        after = logits(model, ids)
    # 7 projections per layer and the LM head
    assert packed == 2 * 7 + 1
    # every linear, both MLPs (fused) and the 5 RMSNorms run the replacement kernels
    assert len(patched) == 15 + 2 + 5
    scale = reference.abs().max()
    assert (fast - reference).abs().max() <= 1e-5 * scale
    assert not [n for n, m in model.named_modules() if "forward" in m.__dict__]
    assert torch.equal(after, reference)


@pytest.mark.skipif(not ONEDNN, reason="this torch build has no oneDNN linear")
def test_weights_current_at_entry_are_used():
    model, ids = tiny_llama(), torch.randint(0, 97, (1, 20))
    with torch.inference_mode():
        with kernels.inference_kernels(model):
            before = logits(model, ids)
        model.model.layers[1].mlp.down_proj.weight.mul_(2.0)
        reference = logits(model, ids)
        with kernels.inference_kernels(model):
            fast = logits(model, ids)
    assert (fast - before).abs().max() > 1e-2 * before.abs().max()
    assert (fast - reference).abs().max() <= 1e-5 * reference.abs().max()


def test_switched_off_by_env_and_not_for_gradients(monkeypatch):
    model, ids = tiny_llama(), torch.randint(0, 97, (1, 20))
    monkeypatch.setenv("QADAPT_ONEDNN", "0")
    with torch.inference_mode():
        reference = logits(model, ids)
        with kernels.inference_kernels(model) as packed:
            same = logits(model, ids)
    assert packed == 0
    assert torch.equal(same, reference)  # the RMSNorm kernel is bit-identical
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
    layer.o_proj = Scaled(64, 64, bias=False)
    with torch.inference_mode(), kernels.inference_kernels(model) as packed:
        assert packed == 2 * 7 + 1 - 2
        # an MLP is fused only when its three projections are plain linears: both still are here
        assert "forward" in model.model.layers[0].mlp.__dict__


def test_memory_guard(monkeypatch):
    model = tiny_llama()
    monkeypatch.setattr(kernels, "_available_bytes", lambda: 1000)
    with torch.inference_mode(), kernels.inference_kernels(model) as packed:
        assert packed == 0
