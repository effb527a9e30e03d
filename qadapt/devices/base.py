"""The one interface between adapters and execution back ends."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from omegaconf import DictConfig

from ..quantum.circuits import BlockUnitaryCircuit


class Device(ABC):
    """Executes circuit descriptions on vectors of activations.

    ``differentiable`` says whether gradients flow through :meth:`run_blocks` (training needs it).
    """

    name: str = "abstract"
    differentiable: bool = False

    def __init__(self, cfg: DictConfig | None = None):
        self.cfg = cfg

    @abstractmethod
    def run_blocks(self, circuit: BlockUnitaryCircuit, x: torch.Tensor) -> torch.Tensor:
        """Apply ``circuit`` to every vector of ``x``.

        Args:
            circuit: block unitaries, width d = n_blocks * b.
            x: ``(..., d)`` activations, any leading shape (batch, tokens).
        Returns:
            ``(..., d)``: slice j of each vector replaced by U_j x_j.
        """

    def describe(self) -> str:
        return self.name
