"""Faster kernels for CPU inference passes, same float32 arithmetic: :func:`inference_kernels`.

Why: on CPU, ``F.linear`` goes to MKL's float32 GEMM. On the AMD EPYC machines qadapt's CI and sessions run on, MKL
reaches 105-150 GFLOP/s on 2 cores for SmolLM2-135M's shapes (2,048 positions x 576 -> 1,536 / 576 / 49,152) where
oneDNN, with the weight reordered once into its blocked layout, reaches 150-210 (measured 2026-12-02, torch 2.13).
The evaluation of a 2,048-token window spends about 70 % of its time in these matmuls, so an inference pass runs
its frozen float32 linears through oneDNN: same float32 arithmetic, only the summation order differs (outputs equal
to float rounding; tests/test_kernels.py), and Llama-style MLPs fuse their SiLU and gating product into the matmuls'
epilogues (oneDNN post-ops), which saves two passes over the (positions x intermediate) activations. Llama's
RMSNorm (five elementwise passes in transformers) runs as torch's one ``F.rms_norm`` kernel: bit-identical output,
about 7x faster on (2 x 2,048 x 576).

The weights are packed when the block is entered and dropped when it exits, so a model whose weights change between
passes (training with in-loop validation, ``adapters.merged``) is always scored with its current weights. Inference
only: inside the block gradients must be off (the evaluations run under ``torch.inference_mode``).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F

#: Fraction of the machine's available memory the packed copies may take; above it, nothing is packed (a Llama 3.1
#: 8B on CPU would need another 32 GB).
MEMORY_FRACTION = 0.25


def _available_bytes() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not Linux: no guard to measure, so do not pack
        return 0


def _onednn_ready() -> bool:
    ops = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and os.environ.get("QADAPT_ONEDNN", "1") != "0"
        and hasattr(ops, "_reorder_linear_weight")
        and hasattr(ops, "_linear_pointwise")
    )


def _packable(module: nn.Module) -> bool:
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


def _fusable_mlp(module: nn.Module) -> bool:
    """A Llama-style gated MLP, ``down(silu(gate(x)) * up(x))``, whose three projections are plain linears."""
    parts = [getattr(module, name, None) for name in ("gate_proj", "up_proj", "down_proj")]
    return (
        all(p is not None and _packable(p) for p in parts)
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
    shape, weight, eps, plain = module.weight.shape, module.weight, module.variance_epsilon, type(module).forward

    def forward(x):
        if x.dtype != torch.float32 or x.device.type != "cpu":
            return plain(module, x)
        return F.rms_norm(x, shape, weight, eps)

    return forward


def _pack(linear: nn.Linear, positions_hint: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    return torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), positions_hint), linear.bias


@contextmanager
def inference_kernels(model: nn.Module, positions_hint: int = 2048):
    """Within the block, every plain float32 ``nn.Linear`` of ``model`` on CPU runs oneDNN's matmul on a weight
    packed at entry, Llama-style gated MLPs run ``silu(gate(x)) * up(x)`` as two fused oneDNN calls, and Llama's
    RMSNorms run ``F.rms_norm``.

    Args:
        positions_hint: the usual number of rows (batch x positions) per call; oneDNN picks its weight layout for it.
            Any other number of rows gives the same result.
    Yields: the number of linears packed (0 where nothing was: no oneDNN in this torch build, a GPU model, weights
        not in float32, ``QADAPT_ONEDNN=0``, or packed copies that would take more than :data:`MEMORY_FRACTION`
        of the available memory).
    Raises:
        RuntimeError: entered with gradients enabled (oneDNN's fused linear has no backward).
    """
    if torch.is_grad_enabled():
        raise RuntimeError("inference_kernels is for inference passes: enter it under torch.inference_mode()")
    linears = [m for m in model.modules() if _packable(m)] if _onednn_ready() else []
    size = sum(m.weight.numel() * m.weight.element_size() for m in linears)
    if size > MEMORY_FRACTION * _available_bytes():
        linears = []
    packed = {m: _pack(m, positions_hint) for m in linears}
    mlps = [m for m in model.modules() if _fusable_mlp(m)] if packed else []
    patched = []
    linear_pointwise = torch.ops.mkldnn._linear_pointwise if packed else None
    for m, (weight, bias) in packed.items():
        m.forward = lambda x, w=weight, b=bias: linear_pointwise(x, w, b, "none", [], "")
        patched.append(m)
    for mlp in mlps:
        (gate_w, gate_b), (up_w, up_b) = packed[mlp.gate_proj], packed[mlp.up_proj]

        def gated(x, mlp=mlp, gate_w=gate_w, gate_b=gate_b, up_w=up_w, up_b=up_b):
            silu_gate = linear_pointwise(x, gate_w, gate_b, "swish", [], "")
            return mlp.down_proj(linear_pointwise.binary(x, silu_gate, up_w, up_b, "mul"))

        mlp.forward = gated
        patched.append(mlp)
    for norm in model.modules():
        forward = _rms_norm_kernel(norm)
        if forward is not None:
            norm.forward = forward
            patched.append(norm)
    try:
        yield len(packed)
    finally:
        for m in patched:
            del m.forward
