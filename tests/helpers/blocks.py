"""Seeded block circuits, input states and devices for the device tests (tests/unit and tests/integration)."""

from __future__ import annotations

import torch

from qadapt.config import compose
from qadapt.devices import get
from qadapt.quantum import BlockUnitaryCircuit, cayley, num_skew_params, skew_symmetric


def device(name, **over):
    """``device=<name>`` as composed, ``device.<key>=<value>`` for each of ``over``."""
    return get(compose([f"device={name}", *[f"device.{k}={v}" for k, v in over.items()]]).device)


def circuit(q, n_blocks=5, seed=0) -> BlockUnitaryCircuit:
    """``n_blocks`` random q-qubit block unitaries (Cayley transforms of seeded generators), float64."""
    gen = torch.Generator().manual_seed(seed)
    b = 2**q
    params = torch.randn(n_blocks, num_skew_params(b), generator=gen, dtype=torch.float64)
    return BlockUnitaryCircuit(cayley(skew_symmetric(params, b)), q)


def states(n_vectors, circuit, seed=1) -> torch.Tensor:
    """Seeded unit vectors, ``(n_vectors, n_blocks, block_size)``, float64."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_vectors, circuit.n_blocks, circuit.block_size, generator=gen, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)
