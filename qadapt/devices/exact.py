"""Exact device: block unitaries applied by one batched matmul over all tokens and blocks."""

from __future__ import annotations

import torch

from ..quantum.circuits import BlockUnitaryCircuit
from .base import Device


class ExactDevice(Device):
    """Noise-free, infinite-shot execution in torch (differentiable, any dtype/device of ``x``).

    Equals amplitude-encoding each slice, applying U_j and reading out signed amplitudes times the
    slice norm; no normalisation is done because it cancels exactly.
    """

    name = "exact"
    differentiable = True

    def run_blocks(self, circuit: BlockUnitaryCircuit, x: torch.Tensor) -> torch.Tensor:
        b = circuit.block_size
        if x.shape[-1] != circuit.width:
            raise ValueError(f"vector width {x.shape[-1]} != circuit width {circuit.width}")
        slices = x.reshape(*x.shape[:-1], circuit.n_blocks, b)
        out = torch.einsum("...nb,ncb->...nc", slices, circuit.unitaries.to(x.dtype))
        return out.reshape(x.shape)
