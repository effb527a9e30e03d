"""CUA: Cayley-parameterised unitary adapters in frozen projection layers.

Source: CUA paper (arXiv 2605.05914; ../shared/papers/NOTES.md). At each target projection W (an
``nn.Linear``), the d-dim vector on the chosen side is cut into d/b slices of b = 2^q entries
(q = ``qubits_per_block``); slice j is multiplied by its own orthogonal Q_j = (I - A_j)(I + A_j)^-1,
A_j skew-symmetric with b(b-1)/2 parameters:

    side = input:  y = W (Q x) + bias      side = output:  y = Q (W x + bias)

Parameters per site: (d / b) * b(b-1)/2 = d (b - 1) / 2. Llama 3.1 8B, one projection of width 4096,
q = 2: 1024 blocks x 6 = 6,144 (the paper's "~6k parameters"). All generators start at zero, so
Q = I and the adapted model equals the base model exactly at step 0 (``init=identity``); ``init=random`` draws every
generator entry from N(0, init_scale^2) (seeded by ``init_seed``): an untrained random rotation, the control that
shows what training adds.

On a device (execution on the QPU), each (token, block) pair is one q-qubit circuit: the slice amplitude-encoded,
U_j, measured; the read-out rule y_j(k) = ||x_j|| sqrt(p_j(k)) sign((U_j x_j)(k)) is
:mod:`qadapt.quantum.readout` (:func:`run_blocks`).
"""

from __future__ import annotations

from functools import partial

import torch
from omegaconf import DictConfig
from torch import nn

from .. import schema
from ..devices.base import Device
from ..errors import ConfigError
from ..models.layers import find_targets
from ..quantum import BlockUnitaryCircuit, cayley, num_skew_params, random_cayley_generators, skew_symmetric
from ..quantum.readout import read_out_blocks
from .base import AdapterLayer, block_width, fold_blocks
from .options import CUAAdapter


def cua_param_count(width: int, qubits_per_block: int) -> int:
    """Parameters of one CUA site of width d: (d / b) * b(b-1)/2 with b = 2^q."""
    b = 2**qubits_per_block
    return (width // b) * num_skew_params(b)


def run_blocks(device: Device, circuit: BlockUnitaryCircuit, x: torch.Tensor) -> torch.Tensor:
    """``circuit`` run on ``device`` for every vector of ``x`` ``(..., d)``, read out: ``(..., d)`` in x's dtype.

    On an exact device (:attr:`Device.is_exact`) the readout rule gives U_j x_j exactly, so that is computed
    directly (differentiable) and counted as the device's circuits; on any other device the device's outcome
    probabilities go through :func:`qadapt.quantum.readout.read_out_blocks`, with gradients only where the device
    passes them (a differentiable noise model: noise-aware training, qadapt/devices/noise_surrogate.py).
    Raises: ValueError when d is not the circuit's width.
    """
    if device.is_exact:
        device.count_circuits("block", circuit.qubits_per_block, x.numel() // circuit.block_size, circuit.n_blocks)
        return circuit.apply(x)
    return read_out_blocks(circuit, x, partial(device.block_probabilities, circuit), device.differentiable)


class CUALinear(AdapterLayer):
    """A frozen ``nn.Linear`` with block-orthogonal Cayley unitaries on its input or output.

    Args:
        base: the frozen projection, weight ``(out_features, in_features)``.
        config: the validated ``adapter=cua`` option (:class:`~qadapt.adapters.options.CUAAdapter`).
        device: where the block circuits run (exact for training).
    Raises:
        ConfigError: the adapted width is not divisible by b = 2^q.
    Shapes: forward maps ``(..., in_features)`` to ``(..., out_features)``.
    """

    adapter_name = "cua"

    def __init__(
        self,
        base: nn.Linear,
        config: CUAAdapter,
        device: Device,
        name: str = "",
        generator: torch.Generator | None = None,
    ):
        super().__init__(base)
        b, q = config.block_size, config.qubits_per_block
        width = block_width(base, config.side, b, name, f"block size b = 2^{q} = {b}; choose qubits_per_block with "
                            "2^q dividing {width}")  # fmt: skip
        self.config = config
        self.device = device
        self.width = width
        # one row of b(b-1)/2 skew generators per block; zero = identity (exact base model at init)
        init = torch.zeros(width // b, num_skew_params(b), dtype=base.weight.dtype)
        if config.init == "random":
            init = random_cayley_generators(width // b, b, generator, config.init_scale, base.weight.dtype)
        self.generator = nn.Parameter(init.to(base.weight.device))

    def unitaries(self) -> torch.Tensor:
        """``(n_blocks, b, b)`` orthogonal blocks Q_j. Built in float32 at least: the LU solve needs it."""
        gen = self.generator if self.generator.dtype in (torch.float32, torch.float64) else self.generator.float()
        return cayley(skew_symmetric(gen, self.config.block_size))

    def circuit(self) -> BlockUnitaryCircuit:
        return BlockUnitaryCircuit(self.unitaries(), self.config.qubits_per_block)

    def _blocks(self, v: torch.Tensor) -> torch.Tensor:
        circuit = self.circuit()
        mask = self.device_mask
        if mask is None or self.device.is_exact or mask.shape != v.shape[:-1]:
            return run_blocks(self.device, circuit, v)
        # only the masked positions go to the device (QPU time is money); the rest get the exact U_j x_j
        out = circuit.apply(v).clone()
        if mask.any():
            out[mask] = run_blocks(self.device, circuit, v[mask])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return self.base(x)
        if self.merged is not None:
            self.count_merged(x)
            return nn.functional.linear(x, *self.merged)
        if self.config.side == "input":
            return self.base(self._blocks(x))
        return self._blocks(self.base(x))

    def merged_weight(self) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """W' = W Q (input side) or W' = Q W, bias' = Q bias (output side), Q = diag(Q_1, ..., Q_n): the same map as
        the forward pass on an exact device (CUA paper, adapter structure: y = W (Q x) + bias or Q (W x + bias)), as
        ``(out_features, in_features)`` and ``(out_features,)`` tensors. None on any other device (its read-out is
        sampled, not linear)."""
        if not self.device.is_exact:
            return None
        return fold_blocks(self.base.weight, self.base.bias, self.unitaries(), self.config.side)

    def count_merged(self, x: torch.Tensor) -> None:
        n = self.generator.shape[0]
        self.device.count_circuits("block", self.config.qubits_per_block, x.numel() // self.width * n, n)

    def structure(self) -> dict:
        """``qubits_per_block``, ``block_size`` (b = 2^q), ``side``, ``n_blocks`` and ``width`` (d = n_blocks * b)."""
        c = self.config
        return self.block_structure(c.block_size, c.side, qubits_per_block=c.qubits_per_block)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"qubits_per_block={c.qubits_per_block}, side={c.side}, width={self.width}, "
            f"blocks={self.generator.shape[0]}"
        )


def inject(model: nn.Module, cfg: DictConfig, device: Device) -> list[str]:
    """Replace the configured projections by :class:`CUALinear`; return the adapted sites' names.

    Only the new generators are trainable; the caller freezes the base first.
    Raises:
        ConfigError: unknown module name, layer index out of range, width not divisible by b.
    """
    config = schema.read(cfg, CUAAdapter)
    # init=random: one seeded stream over the sites in order, so a seed names one draw of the whole adapter
    generator = torch.Generator().manual_seed(config.init_seed) if config.init == "random" else None
    names = []
    for name, parent, attr in find_targets(model, config.modules, config.layers):
        base = getattr(parent, attr)
        if not isinstance(base, nn.Linear):
            raise ConfigError(f"{name} is a {type(base).__name__}; CUA adapts nn.Linear projections")
        setattr(parent, attr, CUALinear(base, config, device, name, generator))
        names.append(name)
    return names


def describe(cfg: DictConfig) -> str:
    """Short label for results tables, e.g. ``cua(q=2, v_proj@input, layers=-1)``."""
    config = schema.read(cfg, CUAAdapter)
    layers = "all" if config.layers is None else ",".join(str(i) for i in config.layers)
    init = f", random init scale {config.init_scale:g} seed {config.init_seed}" if config.init == "random" else ""
    return f"cua(q={config.qubits_per_block}, {'+'.join(config.modules)}@{config.side}, layers={layers}{init})"
