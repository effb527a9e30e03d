"""The quantum feed-forward network: replaces a decoder layer's ``mlp`` (its weights are deleted).

Source: QFFN paper ("Less Bits, More Qubits", ../shared/papers/002_*.txt), Section 3.2 "Quantum Feed-Forward
Network": amplitude-encode the d-dim hidden vector on n = ceil(log2 d) qubits, a variational circuit U(theta) of
depth D, "a measurement step maps the quantum state back to a d-dimensional output". The paper leaves that map open;
ours, exactly:

    x in R^d (the FFN's input) -> zero-pad to N = 2^n; |x> = x / ||x||
    p = |U(theta) |x>|^2                       U(theta): StronglyEntanglingLayers, depth D (quantum/ansatz.py)
    y_i = ||x|| * w_i * (N p_i - 1) + b_i      i = 0..d-1 (outcomes >= d are measured and not used)

N p_i - 1 is zero for a uniform outcome distribution and signed per token, so outputs are signed although
probabilities are not; ||x|| restores the scale that normalisation removed; w, b are the only classical
parameters (2d, O(d)). Each y_i is ||x|| times a quadratic form of |x> (rank one in the rows of U), as the
gated FFN of Llama is a product of two linear maps. Parameters: 3 n D + 2 d. At init w = b = 0: the layer
outputs zero, i.e. starts as "FFN removed".
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...devices.base import Device
from ...quantum.ansatz import StronglyEntanglingCircuit, amplitude_encode, qubits_for
from ..base import AdapterLayer


def circuit_probabilities(
    layer: AdapterLayer, circuit: StronglyEntanglingCircuit, states: torch.Tensor, outputs: int
) -> torch.Tensor:
    """Probabilities of the first ``outputs`` outcomes of ``circuit`` on ``states``: on the layer's device where its
    device mask allows, exactly (fused simulator, no device, nothing counted) elsewhere.

    Args:
        layer: supplies ``device`` and ``device_mask`` ``(B, T)`` bool or None (every position on the device).
        states: ``(B, T, k)`` real unit vectors, k <= 2^n (zero padding to 2^n implicit).
        outputs: m <= 2^n.
    Returns:
        ``(B, T, m)`` in [0, 1], states' dtype; differentiable on the exact device.
    Raises:
        ConfigError: the device cannot run QFFN circuits.
    """
    device, mask = layer.device, layer.device_mask
    shape = (*states.shape[:-1], outputs)
    if device.is_exact or mask is None or mask.shape != states.shape[:-1]:
        return device.ansatz_probabilities(circuit, states.reshape(-1, states.shape[-1]), outputs).reshape(shape)
    probs = circuit.probabilities(states.reshape(-1, states.shape[-1]), outputs).reshape(shape).clone()
    if mask.any():
        probs[mask] = device.ansatz_probabilities(circuit, states[mask], outputs).to(probs.dtype)
    return probs


class QuantumFFN(AdapterLayer):
    """Quantum feed-forward network (module docstring): ``(..., d)`` -> ``(..., d)``, the input's dtype.

    Args:
        width: d, the hidden size. depth: D (>= 1). device: where the circuit runs (exact trains).
        dtype: of the parameters and the simulation (float32 or float64); inputs are cast to it and back.
    Attributes:
        weights: ``(D, n, 3)`` rotation angles in radians, uniform in [0, 2 pi) (PennyLane's initialisation).
        scale, bias: ``(d,)`` w and b, zero at init.
    Raises (forward):
        ConfigError: the device cannot run QFFN circuits (checked at injection already).
    """

    adapter_name = "qffn"

    def __init__(self, width: int, depth: int, device: Device, dtype=torch.float32):
        super().__init__(None)
        self.width, self.n_qubits, self.device = width, qubits_for(width), device
        # PennyLane's StronglyEntanglingLayers initialisation: uniform angles in [0, 2 pi)
        self.weights = nn.Parameter(torch.rand(depth, self.n_qubits, 3, dtype=dtype) * (2 * math.pi))
        self.scale = nn.Parameter(torch.zeros(width, dtype=dtype))  # w
        self.bias = nn.Parameter(torch.zeros(width, dtype=dtype))  # b
        self._frozen: tuple[tuple, StronglyEntanglingCircuit] | None = None

    def circuit(self) -> StronglyEntanglingCircuit:
        """The circuit for the current weights. Without gradients (evaluation) its fused columns U[:, :d] are built
        once and reused until the weights change (in-place updates bump the tensor version)."""
        if torch.is_grad_enabled():
            return StronglyEntanglingCircuit(self.weights)
        key = (self.weights.data_ptr(), self.weights._version, self.weights.device)
        if self._frozen is None or self._frozen[0] != key:
            plain = StronglyEntanglingCircuit(self.weights.detach())
            self._frozen = (key, StronglyEntanglingCircuit(plain.weights, plain.real_columns(self.width)))
        return self._frozen[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, norms = amplitude_encode(x.to(self.weights.dtype), self.n_qubits, pad=False)
        probs = circuit_probabilities(self, self.circuit(), states, self.width)
        features = probs * (2**self.n_qubits) - 1
        return (norms * self.scale * features + self.bias).to(x.dtype)

    def structure(self) -> dict:
        """``width`` (d), ``qubits`` (n = ceil(log2 d)) and ``depth`` (D)."""
        return {
            **super().structure(),
            "width": self.width,
            "qubits": self.n_qubits,
            "depth": int(self.weights.shape[0]),
        }

    def extra_repr(self) -> str:
        return f"width={self.width}, qubits={self.n_qubits}, depth={self.weights.shape[0]}"
