"""CUA's readout rule: from measured outcome probabilities of block circuits back to activations.

Source: CUA paper (arXiv 2605.05914; ../shared/papers/NOTES.md, execution on the QPU). Slice x_j of a vector
(b = 2^q entries, :class:`~qadapt.quantum.circuits.BlockUnitaryCircuit`) is normalised and amplitude-encoded,
|x_j> = x_j / ||x_j||; U_j acts; a device measures the outcome probabilities p_j(k) (exact, or counts / shots).
The output slice is

    y_j(k) = ||x_j|| * sqrt(p_j(k)) * sign((U_j x_j)(k))

Counts carry no sign, so signs are restored from the exact computation, as the paper does. With exact
probabilities, y_j = U_j x_j (up to rounding); with finite shots, sqrt(counts / shots) estimates
|(U_j x_j)(k)| / ||x_j||. An all-zero slice has no quantum state: it is sent as the uniform superposition and
its output is zero whatever is measured.

The rule is split as the data flows: :func:`encode_blocks` (the states a device runs, and what the rule keeps
classically), a device's ``block_probabilities``, :func:`decode_blocks`. :func:`read_out_blocks` does all three.
No device or backend is imported here: the probabilities come in as a function or a tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .circuits import BlockUnitaryCircuit


@dataclass(frozen=True)
class EncodedBlocks:
    """What the readout keeps per (vector, block) circuit while a device runs it.

    Attributes:
        states: ``(N, n_blocks, b)`` float64 unit vectors |x_j> (uniform superposition for a zero slice): the
            amplitude-encoded inputs, what a device's ``block_probabilities`` takes.
        norms: ``(N, n_blocks, 1)`` float64, ||x_j||.
        signs: ``(N, n_blocks, b)`` float64 in {-1, 0, 1}, sign((U_j x_j)(k)) from the exact computation.
    """

    states: torch.Tensor
    norms: torch.Tensor
    signs: torch.Tensor


def encode_blocks(circuit: BlockUnitaryCircuit, x: torch.Tensor, differentiable: bool = False) -> EncodedBlocks:
    """Cut ``x`` ``(..., d)`` into the circuit's slices, in float64, detached unless ``differentiable`` (a device
    whose probabilities carry gradients: the noise model noise-aware training runs through); signs never carry one.

    Raises:
        ValueError: ``x``'s last axis is not the circuit's width d = n_blocks * b.
    """
    if x.shape[-1] != circuit.width:
        raise ValueError(f"vector width {x.shape[-1]} != circuit width {circuit.width}")
    b, n = circuit.block_size, circuit.n_blocks
    slices = (x if differentiable else x.detach()).to(torch.float64).reshape(-1, n, b)
    unitaries = circuit.unitaries.detach().to(torch.float64)
    exact = torch.einsum("Nnb,ncb->Nnc", slices.detach(), unitaries)
    norms = slices.norm(dim=-1, keepdim=True)
    states = torch.where(norms > 0, slices / norms.clamp_min(1e-300), torch.full_like(slices, b**-0.5))
    return EncodedBlocks(states, norms, torch.sign(exact))


def decode_blocks(encoded: EncodedBlocks, probs: torch.Tensor) -> torch.Tensor:
    """y_j(k) = ||x_j|| sqrt(p_j(k)) sign((U_j x_j)(k)) (module docstring).

    Args:
        probs: ``(N, n_blocks, b)`` outcome probabilities of the circuits run on ``encoded.states`` (negative
            rounding noise is clipped to zero).
    Returns:
        ``(N, n_blocks, b)`` float64.
    """
    # clamped above zero: sqrt's gradient at 0 is infinite (a differentiable device's probabilities)
    return encoded.norms * probs.clamp_min(1e-30 if probs.requires_grad else 0).sqrt() * encoded.signs


def read_out_blocks(
    circuit: BlockUnitaryCircuit,
    x: torch.Tensor,
    probabilities: Callable[[torch.Tensor], torch.Tensor],
    differentiable: bool = False,
) -> torch.Tensor:
    """Run ``circuit`` on every vector of ``x`` through ``probabilities`` and read the result out.

    Args:
        circuit: block unitaries, width d = n_blocks * b.
        x: ``(..., d)`` activations, any leading shape (batch, tokens).
        probabilities: maps the encoded states ``(N, n_blocks, b)`` to their outcome probabilities, same shape
            (e.g. ``lambda s: device.block_probabilities(circuit, s)``).
    Returns:
        ``(..., d)`` in the dtype of ``x``: slice j of each vector replaced by the read-out U_j x_j; no gradient
        unless ``differentiable`` (then through ``x`` and whatever ``probabilities`` differentiates).
    Raises:
        ValueError: ``x``'s last axis is not the circuit's width.
    """
    encoded = encode_blocks(circuit, x, differentiable)
    return decode_blocks(encoded, probabilities(encoded.states)).reshape(x.shape).to(x.dtype)
