"""Faster kernels for CPU inference passes, same float32 arithmetic: :func:`inference_kernels`.

Why: on CPU, ``F.linear`` goes to MKL's float32 GEMM. On the AMD EPYC machines qadapt's CI and sessions run on, MKL
reaches 100-160 GFLOP/s on 2 cores for SmolLM2-135M's shapes (2,048 positions x 576 -> 1,536 / 576 / 49,152) where
oneDNN's matmul (``torch.ops.mkldnn._linear_pointwise``, the kernel torch's own inductor emits for CPU linears)
reaches 155-185 on the same plain weights (measured 2026-12-02, torch 2.13; a pre-packed weight is no faster and
would cost a copy of every weight). The evaluation of a 2,048-token window spends about 70 % of its time in these
matmuls, so an inference pass runs its float32 linears through oneDNN: same float32 arithmetic, only the summation
order differs (outputs equal to float rounding; tests/unit/test_kernels.py), and Llama-style MLPs fuse their SiLU and
gating product into the matmuls' epilogues (oneDNN post-ops), which saves two passes over the (positions x
intermediate) activations. Llama's RMSNorm (five elementwise passes in transformers) runs as torch's one
``F.rms_norm`` kernel: bit-identical output, about 7x faster on (2 x 2,048 x 576). Llama's rotary embedding of
queries and keys runs as four half-width passes into one tensor (:func:`_apply_rotary_pos_emb`; transformers makes
five full-width passes and three temporaries). With them qadapt's documents mode ran at 1.569x lm-eval's tokens/s
(results/bench_lm_eval.md, make bench, 14bc860).

The replacement forwards read the modules' own weights at every call: no copy, no extra memory, and a weight changed
inside the block (``adapters.merged``) is used as it is. Inference only: inside the block gradients must be off (the
evaluations run under ``torch.inference_mode``); oneDNN's fused linear has no backward.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F


def _onednn_ready() -> bool:
    return (
        torch.backends.mkldnn.is_available()
        and os.environ.get("QADAPT_ONEDNN", "1") != "0"
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def _plain_linear(module: nn.Module) -> bool:
    """A plain ``nn.Linear`` on CPU in float32 whose forward nobody has replaced (accelerate's offload hooks do)."""
    return (
        type(module) is nn.Linear
        and "forward" not in module.__dict__
        and module.weight.device.type == "cpu"
        and module.weight.dtype == torch.float32
    )


def _silu_types() -> tuple[type, ...]:
    try:  # transformers' own SiLU module (its ACT2FN["silu"])
        from transformers.activations import SiLUActivation
    except ImportError:
        return (nn.SiLU,)
    return (nn.SiLU, SiLUActivation)


def _gated_mlp(module: nn.Module) -> bool:
    """A Llama-style gated MLP, ``down(silu(gate(x)) * up(x))``, whose three projections are plain linears."""
    parts = [getattr(module, name, None) for name in ("gate_proj", "up_proj", "down_proj")]
    return (
        all(p is not None and _plain_linear(p) for p in parts)
        and isinstance(getattr(module, "act_fn", None), _silu_types())
        and "forward" not in module.__dict__
    )


def _rms_norm_kernel(module: nn.Module):
    """``F.rms_norm`` for a transformers ``LlamaRMSNorm`` in float32 (its formula: x * rsqrt(mean(x^2) + eps) *
    weight, computed in float32), else None. Gemma's RMSNorm scales by (1 + weight) and is left alone."""
    try:
        from transformers.models.llama.modeling_llama import LlamaRMSNorm
    except ImportError:  # a transformers without Llama: nothing to replace
        return None
    if type(module) is not LlamaRMSNorm or "forward" in module.__dict__ or module.weight.dtype != torch.float32:
        return None
    plain = type(module).forward

    def forward(x):
        if x.dtype != torch.float32 or x.device.type != "cpu":
            return plain(module, x)
        return F.rms_norm(x, module.weight.shape, module.weight, module.variance_epsilon)

    return forward


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """transformers' ``x * cos + rotate_half(x) * sin`` (rotate_half(x) = cat(-x2, x1)) as four half-width passes
    into one new contiguous tensor: first half x1 * cos1 - x2 * sin1, second half x2 * cos2 + x1 * sin2. transformers'
    form makes five full-width passes and three temporaries (neg, cat, two products) on a strided ``x``."""
    h = x.shape[-1] // 2
    out = torch.empty(x.shape, dtype=torch.result_type(x, cos), device=x.device)
    x1, x2 = x[..., :h], x[..., h:]
    torch.mul(x1, cos[..., :h], out=out[..., :h]).addcmul_(x2, sin[..., :h], value=-1)
    torch.mul(x2, cos[..., h:], out=out[..., h:]).addcmul_(x1, sin[..., h:])
    return out


def _apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    """Drop-in for ``transformers.models.llama.modeling_llama.apply_rotary_pos_emb``: ``q`` ``(B, heads, T, d)``,
    ``k`` ``(B, kv_heads, T, d)``, ``cos``/``sin`` ``(B, T, d)`` -> the rotated (q, k), equal to float rounding.
    Rotary position embedding: Su et al., RoFormer (2021), eq. 34, in transformers' half-split layout."""
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return _rotate(q, cos, sin), _rotate(k, cos, sin)


@contextmanager
def _llama_rotary(model: nn.Module):
    """Within the block, transformers' Llama attention rotates q and k with :func:`_apply_rotary_pos_emb` (38 against
    5.4 ms on SmolLM2's (2 x 9 x 2,047 x 64) queries, 2 cores, measured 2026-12-02). The attention
    forward looks the function up in its module's globals at each call, so the module attribute is swapped for the
    block and put back after. Yields whether it was swapped (the model has a Llama attention, nobody swapped it yet)."""
    try:
        from transformers.models.llama import modeling_llama
    except ImportError:
        yield False
        return
    original = modeling_llama.apply_rotary_pos_emb
    swap = original is not _apply_rotary_pos_emb and any(
        type(m) is modeling_llama.LlamaAttention for m in model.modules()
    )
    if swap:
        modeling_llama.apply_rotary_pos_emb = _apply_rotary_pos_emb
    try:
        yield swap
    finally:
        if swap:
            modeling_llama.apply_rotary_pos_emb = original


@contextmanager
def inference_kernels(model: nn.Module):
    """Within the block, every plain float32 ``nn.Linear`` of ``model`` on CPU runs oneDNN's matmul, Llama-style
    gated MLPs run ``silu(gate(x)) * up(x)`` as two fused oneDNN calls, Llama's RMSNorms run ``F.rms_norm`` and its
    attention rotates queries and keys with :func:`_apply_rotary_pos_emb`.

    Yields: the number of linears switched to oneDNN (0 where none was: no oneDNN in this torch build, a GPU model,
        weights not in float32, or ``QADAPT_ONEDNN=0``).
    Raises:
        RuntimeError: entered with gradients enabled (oneDNN's fused linear has no backward).
    """
    if torch.is_grad_enabled():
        raise RuntimeError("inference_kernels is for inference passes: enter it under torch.inference_mode()")
    linears = [m for m in model.modules() if _plain_linear(m)] if _onednn_ready() else []
    mlps = [m for m in model.modules() if _gated_mlp(m)] if linears else []
    patched = []
    if linears:
        linear_pointwise = torch.ops.mkldnn._linear_pointwise
        for m in linears:
            m.forward = lambda x, m=m: linear_pointwise(x, m.weight, m.bias, "none", [], "")
            patched.append(m)
        for mlp in mlps:

            def gated(x, mlp=mlp):
                gate, up = mlp.gate_proj, mlp.up_proj
                silu_gate = linear_pointwise(x, gate.weight, gate.bias, "swish", [], "")
                return mlp.down_proj(linear_pointwise.binary(x, silu_gate, up.weight, up.bias, "mul"))

            mlp.forward = gated
            patched.append(mlp)
    for norm in model.modules():
        forward = _rms_norm_kernel(norm)
        if forward is not None:
            norm.forward = forward
            patched.append(norm)
    try:
        with _llama_rotary(model):
            yield len(linears)
    finally:
        for m in patched:
            del m.forward
