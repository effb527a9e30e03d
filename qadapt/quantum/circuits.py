"""Circuit descriptions: what runs, never where (the device decides that)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BlockUnitaryCircuit:
    """Block-diagonal unitary acting on amplitude-encoded slices (CUA paper, execution on the QPU).

    A vector x of width ``n_blocks * 2**qubits_per_block`` is cut into slices x_j of b = 2^q entries.
    Each slice is normalised and amplitude-encoded on q qubits, |x_j> = x_j / ||x_j||, and block j's
    unitary U_j acts on it; the output slice is ||x_j|| U_j |x_j> = U_j x_j.

    Attributes:
        unitaries: ``(n_blocks, b, b)`` real orthogonal blocks (rows index the output amplitude).
        qubits_per_block: q, with b = 2^q.
    """

    unitaries: torch.Tensor
    qubits_per_block: int

    @property
    def block_size(self) -> int:
        return 2**self.qubits_per_block

    @property
    def n_blocks(self) -> int:
        return self.unitaries.shape[0]

    @property
    def width(self) -> int:
        return self.n_blocks * self.block_size

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The circuit's exact action, U_j x_j on every slice: ``(..., width)`` -> ``(..., width)``, differentiable.

        Raises:
            ValueError: ``x``'s last axis is not the circuit's width.
        """
        if x.shape[-1] != self.width:
            raise ValueError(f"vector width {x.shape[-1]} != circuit width {self.width}")
        slices = x.reshape(*x.shape[:-1], self.n_blocks, self.block_size)
        return torch.einsum("...nb,ncb->...nc", slices, self.unitaries.to(x.dtype)).reshape(x.shape)
