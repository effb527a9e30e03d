"""QFFN: quantum feed-forward networks and quantum attention heads ("Less Bits, More Qubits").

Source: QFFN paper (../shared/papers/002_*.txt), Section 3 (QFFN, quantum attention heads, Algorithm 1) and
Table 2 (fractions). What we implement, exactly (the paper leaves the readout and the kernel open):

Quantum feed-forward network (replaces a decoder layer's ``mlp``; the FFN's weights are deleted):

    x in R^d (the FFN's input) -> zero-pad to N = 2^n, n = ceil(log2 d); |x> = x / ||x||
    p = |U(theta) |x>|^2                       U(theta): StronglyEntanglingLayers, depth D (quantum/ansatz.py)
    y_i = ||x|| * w_i * (N p_i - 1) + b_i      i = 0..d-1 (outcomes >= d are measured and not used)

N p_i - 1 is zero for a uniform outcome distribution and signed per token, so outputs are signed although
probabilities are not; ||x|| restores the scale that normalisation removed; w, b are the only classical
parameters (2d, O(d)). Each y_i is ||x|| times a quadratic form of |x> (rank one in the rows of U), as the
gated FFN of Llama is a product of two linear maps. Parameters per replaced FFN: 3 n D + 2 d
(SmolLM2: d = 576, n = 10, D = 4 -> 120 + 1152 = 1,272, replacing 3 * 576 * 1536 = 2,654,208).
At init w = b = 0: the layer outputs zero, i.e. starts as "FFN removed".

Quantum attention head (in ``heads_per_layer`` heads of every layer; values stay classical):

    score(t, s) = tau * |<q_t| V(phi) |k_s>|^2     q_t, k_s: the head's query and key (after RoPE), normalised
                                                    and amplitude-encoded on n_h = ceil(log2 d_h) qubits (6 for 64)
    attention   = softmax over causal s of score(t, s), times the head's values

|<q|V|k>|^2 is the probability of |0...0> after S(k), V(phi), S(q)^dagger (compute-uncompute), so a device runs
one circuit per (query, key) pair. tau = exp(log_tau) is learned per head (init 10). Parameters per quantum
head: 3 n_h D_h + 1 (SmolLM2: 73). The head's q/k projections are kept (the circuit needs a query and a key),
so quantum heads remove no parameters: unlike the paper's wording, they do not lower the parameter count.

Fractions (``fraction``): quarter / half / full replace round(f L) FFNs (f = 1/4, 1/2, 1) and
floor(min(f, 1/2) H) heads per layer (full = all FFNs and half the heads, as the paper's Table 2).
Layers: ``spread`` (default; evenly spaced, e.g. every second layer for half), ``last``, or ``random``
(seeded by ``layer_seed``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from ..devices.base import Device
from ..errors import ConfigError
from ..quantum.ansatz import StronglyEntanglingCircuit, amplitude_encode, qubits_for
from ..models.layers import decoder_layers
from .base import AdapterLayer

FRACTIONS = {"quarter": 0.25, "half": 0.5, "full": 1.0}
PATTERNS = ("spread", "last", "random")
ATTENTION_NAME = "qadapt_quantum_heads"


@dataclass(frozen=True)
class QFFNConfig:
    fraction: str = "half"
    depth: int = 4
    head_depth: int = 4
    quantum_heads: bool = True
    layer_pattern: str = "spread"
    layer_seed: int = 0
    tau_init: float = 10.0

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> "QFFNConfig":
        """Raises: ConfigError for an unknown fraction or pattern (lists the choices) or a depth < 1."""
        fraction, pattern = str(cfg.get("fraction", "half")), str(cfg.get("layer_pattern", "spread"))
        if fraction not in FRACTIONS:
            raise ConfigError(f"unknown adapter.fraction '{fraction}'; valid choices: {', '.join(FRACTIONS)}")
        if pattern not in PATTERNS:
            raise ConfigError(f"unknown adapter.layer_pattern '{pattern}'; valid choices: {', '.join(PATTERNS)}")
        depth, head_depth = int(cfg.get("depth", 4)), int(cfg.get("head_depth", 4))
        if depth < 1 or head_depth < 1:
            raise ConfigError(f"adapter.depth and adapter.head_depth must be >= 1, got {depth}, {head_depth}")
        return cls(fraction, depth, head_depth, bool(cfg.get("quantum_heads", True)), pattern,
                   int(cfg.get("layer_seed", 0)), float(cfg.get("tau_init", 10.0)))


def select_layers(fraction: str, n_layers: int, pattern: str = "spread", seed: int = 0) -> list[int]:
    """Indices of the decoder layers whose FFN is replaced: m = round(f L) (halves round up) of L layers.

    spread: floor((i + 1/2) L / m), i = 0..m-1 (half of 30 -> 1, 3, ..., 29); last: the last m; random: m
    drawn with ``random.Random(seed)``. Raises: ConfigError for an unknown fraction or pattern.
    """
    if fraction not in FRACTIONS:
        raise ConfigError(f"unknown adapter.fraction '{fraction}'; valid choices: {', '.join(FRACTIONS)}")
    m = max(1, math.floor(FRACTIONS[fraction] * n_layers + 0.5))
    if pattern == "spread":
        return [math.floor((i + 0.5) * n_layers / m) for i in range(m)]
    if pattern == "last":
        return list(range(n_layers - m, n_layers))
    if pattern == "random":
        return sorted(random.Random(seed).sample(range(n_layers), m))
    raise ConfigError(f"unknown adapter.layer_pattern '{pattern}'; valid choices: {', '.join(PATTERNS)}")


def heads_per_layer(fraction: str, n_heads: int) -> int:
    """floor(min(f, 1/2) H): quarter of 9 heads -> 2, half and full -> 4."""
    return math.floor(min(FRACTIONS[fraction], 0.5) * n_heads)


def qffn_params(width: int, depth: int) -> int:
    """Parameters of one quantum FFN: 3 n D (circuit) + 2 d (readout w, b), n = ceil(log2 d)."""
    return StronglyEntanglingCircuit.num_params(qubits_for(width), depth) + 2 * width


def quantum_head_params(head_dim: int, depth: int) -> int:
    """Parameters of one quantum attention head: 3 n_h D_h + 1 (temperature)."""
    return StronglyEntanglingCircuit.num_params(qubits_for(head_dim), depth) + 1


def _circuit_probabilities(layer: AdapterLayer, circuit: StronglyEntanglingCircuit, states: torch.Tensor, outputs: int) -> torch.Tensor:
    """Probabilities of the first ``outputs`` outcomes for ``states`` ``(B, T, k)`` (zero-padded to 2^n implicitly):
    on the layer's device where its device mask allows, exactly (fused simulator) elsewhere."""
    device, mask = layer.device, layer.device_mask
    shape = (*states.shape[:-1], outputs)
    if device.is_exact or mask is None or mask.shape != states.shape[:-1]:
        return device.ansatz_probabilities(circuit, states.reshape(-1, states.shape[-1]), outputs).reshape(shape)
    probs = circuit.probabilities(states.reshape(-1, states.shape[-1]), outputs).reshape(shape).clone()
    if mask.any():
        probs[mask] = device.ansatz_probabilities(circuit, states[mask], outputs).to(probs.dtype)
    return probs


class QuantumFFN(AdapterLayer):
    """Quantum feed-forward network replacing a decoder layer's ``mlp`` (formula in the module docstring).

    Args:
        width: d, the hidden size. depth: D. device: where the circuit runs (exact trains).
    Shapes: ``(..., d)`` -> ``(..., d)``, same dtype.
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
        probs = _circuit_probabilities(self, self.circuit(), states, self.width)
        features = probs * (2**self.n_qubits) - 1
        return (norms * self.scale * features + self.bias).to(x.dtype)

    def extra_repr(self) -> str:
        return f"width={self.width}, qubits={self.n_qubits}, depth={self.weights.shape[0]}"


class QuantumHeads(AdapterLayer):
    """The quantum attention heads of one attention module: heads 0..h-1 score with the kernel above.

    Attached to the attention module as ``qadapt_heads``; the registered attention function reads it.
    """

    adapter_name = "qffn_heads"

    def __init__(self, n_heads: int, head_dim: int, depth: int, tau_init: float, device: Device, dtype=torch.float32):
        super().__init__(None)
        self.n_heads, self.head_dim, self.n_qubits, self.device = n_heads, head_dim, qubits_for(head_dim), device
        self.weights = nn.Parameter(torch.rand(n_heads, depth, self.n_qubits, 3, dtype=dtype) * (2 * math.pi))
        self.log_tau = nn.Parameter(torch.full((n_heads,), math.log(tau_init), dtype=dtype))
        self._frozen: tuple[tuple, torch.Tensor] | None = None

    def circuits(self) -> list[StronglyEntanglingCircuit]:
        return [StronglyEntanglingCircuit(w) for w in self.weights]

    def unitaries(self) -> torch.Tensor:
        """``(h, N, N)`` complex: V_h(phi) of every head. With gradients, built from the weights on every call;
        without (evaluation), built once and reused until the weights change (in-place updates bump the version),
        as :meth:`QuantumFFN.circuit` does: a forward pass would otherwise rebuild them in every layer."""
        if torch.is_grad_enabled() or self.weights.is_meta:
            return torch.stack([c.unitary() for c in self.circuits()])
        key = (self.weights.data_ptr(), self.weights._version, self.weights.device)
        if self._frozen is None or self._frozen[0] != key:
            self._frozen = (key, torch.stack([StronglyEntanglingCircuit(w).unitary() for w in self.weights.detach()]))
        return self._frozen[1]

    def kernel(self, query: torch.Tensor, key: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """|<q_t| V_h |k_s>|^2 for every head, query t and key s.

        Args:
            query: ``(B, h, T, d_h)``; key: ``(B, h, S, d_h)``; allowed: ``(B or 1, 1, T, S)`` bool (causal/padding).
        Returns:
            ``(B, h, T, S)`` in [0, 1]; pairs that are not allowed are not sent to a device (their value is unused).
        """
        q, _ = amplitude_encode(query.to(self.weights.dtype), self.n_qubits)
        k, _ = amplitude_encode(key.to(self.weights.dtype), self.n_qubits)
        unitaries = self.unitaries()  # (h, N, N)
        vk_re = torch.einsum("bhsn,hmn->bhsm", k, unitaries.real)
        vk_im = torch.einsum("bhsn,hmn->bhsm", k, unitaries.imag)
        exact = (q @ vk_re.transpose(-1, -2)).square() + (q @ vk_im.transpose(-1, -2)).square()
        device = self.device
        if device.is_exact:
            if not allowed.is_meta:  # a meta-device pass (qadapt plan) has no mask values to count
                device.circuits_run += int(allowed.expand(exact.shape[0], 1, *exact.shape[2:]).sum()) * self.n_heads
            return exact
        # on a device: one compute-uncompute circuit per allowed (query, key) pair whose query position is masked in
        run = allowed.expand(exact.shape[0], 1, *exact.shape[2:])[:, 0]  # (B, T, S)
        if self.device_mask is not None and self.device_mask.shape == run.shape[:2]:
            run = run & self.device_mask[:, :, None]
        out = exact.detach().clone()
        b, t, s = run.nonzero(as_tuple=True)
        if b.numel():
            for h, circuit in enumerate(self.circuits()):
                out[b, h, t, s] = device.overlap_probabilities(circuit, q[b, h, t], k[b, h, s]).to(out.dtype)
        return out

    def causal_attention(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, block: int | None = None) -> torch.Tensor:
        """The heads' output softmax_s(tau_h |<q_t| V_h |k_s>|^2, s <= t) v_s, exactly (noise-free exact device),
        for a causal window without padding (S = T).

        Computed in blocks of ``block`` queries (default :data:`QUERY_BLOCK`), each scored against the keys it may
        see only: the masked half of the T x T kernel is never computed and one block's scores exist at a time
        (what flash attention does for dot-product heads). Same values as :meth:`kernel` + mask + softmax.
        Without gradients (evaluation) the scores are exponentiated in place with a fixed shift instead of the row
        maximum (:meth:`_causal_attention_inference`). Shapes: query, key, value ``(B, h, T, d_h)`` -> ``(B, h, T, d_h)``.
        """
        block = block or QUERY_BLOCK
        # contiguous per head: transformers hands over (B, T, H, d_h) memory seen as (B, H, T, d_h), and the block
        # matmuls run ~1.3x slower on that stride
        q, _ = amplitude_encode(query.to(self.weights.dtype).contiguous(), self.n_qubits)
        k, _ = amplitude_encode(key.to(self.weights.dtype).contiguous(), self.n_qubits)
        value = value.contiguous()
        unitaries = self.unitaries()  # (h, N, N)
        tau = self.log_tau.exp()
        n_batch, _, t, _ = q.shape
        self.device.circuits_run += n_batch * self.n_heads * t * (t + 1) // 2  # one circuit per allowed pair
        if not torch.is_grad_enabled() and not tau.is_meta and float(tau.max()) <= MAX_FIXED_SHIFT_TAU:
            return self._causal_attention_inference(q, k, value, unitaries, tau, block)
        vk_re = torch.einsum("bhsn,hmn->bhsm", k, unitaries.real)
        vk_im = torch.einsum("bhsn,hmn->bhsm", k, unitaries.imag)
        tau = tau[None, :, None, None]
        outputs = []
        for t0 in range(0, t, block):
            t1 = min(t, t0 + block)
            qb = q[:, :, t0:t1]
            scores = ((qb @ vk_re[:, :, :t1].transpose(-1, -2)).square() + (qb @ vk_im[:, :, :t1].transpose(-1, -2)).square()) * tau
            allowed = torch.arange(t1, device=q.device)[None, :] <= torch.arange(t0, t1, device=q.device)[:, None]
            scores = torch.where(allowed, scores, scores.new_full((), float("-inf")))
            outputs.append(torch.softmax(scores, dim=-1).to(value.dtype) @ value[:, :, :t1])
        return torch.cat(outputs, dim=2)

    @staticmethod
    def _causal_attention_inference(q, k, value, unitaries, tau, block: int) -> torch.Tensor:
        """:meth:`causal_attention` without autograd: encoded ``q``, ``k`` ``(B, h, T, N)``, ``unitaries`` ``(h, N, N)``,
        ``tau`` ``(h,)``.

        A kernel score lies in [0, tau] (|<q|V|k>|^2 is a probability), so exp(score - tau) is in [e^-tau, 1] for
        every pair: with that fixed shift in place of the row maximum nothing overflows, and for tau <=
        :data:`MAX_FIXED_SHIFT_TAU` nothing underflows to a zero row sum. The softmax then needs no pass for the
        maximum, the real and imaginary overlaps come from one batched matmul (sqrt(tau) folded into the queries),
        the exponentials are taken in place, and only each block's diagonal tile is masked.
        """
        tau = tau.to(q.dtype)
        q = q * tau.sqrt()[None, :, None, None]
        vk = torch.stack([torch.einsum("bhsn,hmn->bhsm", k, unitaries.real),
                          torch.einsum("bhsn,hmn->bhsm", k, unitaries.imag)], dim=2).transpose(-1, -2).contiguous()  # (B, h, 2, N, S)
        shift = tau[None, :, None, None]
        t = q.shape[2]
        out = value.new_empty(value.shape)
        for t0 in range(0, t, block):
            t1 = min(t, t0 + block)
            overlaps = q[:, :, None, t0:t1] @ vk[..., :t1]  # (B, h, 2, block, t1): sqrt(tau) Re/Im <q|V|k>
            weights = overlaps[:, :, 0].square_().addcmul_(overlaps[:, :, 1], overlaps[:, :, 1]).sub_(shift).exp_()
            future = torch.ones(t1 - t0, t1 - t0, dtype=torch.bool, device=q.device).triu_(1)
            weights[..., t0:t1].masked_fill_(future, 0.0)
            out[:, :, t0:t1] = (weights.to(value.dtype) @ value[:, :, :t1]) / weights.sum(-1, keepdim=True).to(value.dtype)
        return out

    def extra_repr(self) -> str:
        return f"heads={self.n_heads}, qubits={self.n_qubits}, depth={self.weights.shape[1]}"


# queries per block of QuantumHeads.causal_attention: a block's scores are (B, h, QUERY_BLOCK, <= T); 128 keeps them
# near the cache (2 x 4 heads x 128 x 2,048 floats = 8 MiB; on 2 cores 128 beat 64, 256 and 512 by 12-35 %)
QUERY_BLOCK = 128
# largest temperature for the fixed-shift softmax of evaluation: exp(-tau) must stay a normal float32 (> 1.2e-38)
MAX_FIXED_SHIFT_TAU = 80.0


def _allowed_mask(attention_mask: torch.Tensor | None, t: int, s: int, device) -> torch.Tensor:
    """Bool ``(B or 1, 1, T, S)``, True = may attend: the model's mask, or causal (aligned to the last key) if None."""
    if attention_mask is None:
        rows = torch.arange(t, device=device)[:, None] + (s - t)
        return (torch.arange(s, device=device)[None, :] <= rows)[None, None]
    if attention_mask.dtype == torch.bool:
        return attention_mask
    return attention_mask == 0  # additive float mask: 0 = attend, -inf = masked


def quantum_heads_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """transformers attention function: heads 0..h-1 of ``module`` use its ``qadapt_heads`` kernel, the rest SDPA.

    Shapes as transformers' ``sdpa_attention_forward``: query ``(B, H, T, d_h)``, key/value ``(B, H_kv, S, d_h)``;
    returns ``((B, T, H, d_h), None)``.
    """
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    heads: QuantumHeads | None = getattr(module, "qadapt_heads", None)
    if heads is None or not heads.enabled:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    h, t, s = heads.n_heads, query.shape[2], key.shape[2]
    allowed = _allowed_mask(attention_mask, t, s, query.device)
    if attention_mask is None and s == t:  # plain causal: SDPA's causal kernel skips the masked half
        classical = F.scaled_dot_product_attention(query[:, h:], key[:, h:], value[:, h:], is_causal=t > 1,
                                                   dropout_p=dropout, scale=scaling)
    else:
        classical = F.scaled_dot_product_attention(query[:, h:], key[:, h:], value[:, h:], attn_mask=allowed,
                                                   dropout_p=dropout, scale=scaling)
    if heads.device.is_exact and attention_mask is None and s == t and not (dropout and module.training):
        quantum = heads.causal_attention(query[:, :h], key[:, :h], value[:, :h])  # blockwise, the masked half skipped
    else:  # padding masks, KV caches, dropout, and devices that run (query, key) circuits
        scores = heads.kernel(query[:, :h], key[:, :h], allowed) * heads.log_tau.exp()[None, :, None, None]
        scores = torch.where(allowed, scores, scores.new_full((), float("-inf")))  # (masked_fill has no meta kernel here)
        weights = torch.softmax(scores, dim=-1).to(value.dtype)
        if dropout and module.training:
            weights = F.dropout(weights, p=dropout)
        quantum = weights @ value[:, :h]
    return torch.cat([quantum, classical], dim=1).transpose(1, 2).contiguous(), None


def _register_attention(model: nn.Module) -> None:
    """Route the model's attention through :func:`quantum_heads_attention` (SDPA masks; classical heads unchanged)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, quantum_heads_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    model.set_attn_implementation(ATTENTION_NAME)


def _attention_module(layer: nn.Module) -> nn.Module:
    attn = getattr(layer, "self_attn", None)
    if attn is None or not hasattr(attn, "head_dim"):
        raise ConfigError(f"{type(layer).__name__}: no self_attn with head_dim (quantum heads need a Llama-style attention)")
    return attn


def inject(model: nn.Module, cfg: DictConfig, device: Device) -> list[str]:
    """Replace the FFNs of the selected layers by :class:`QuantumFFN` (their weights are deleted) and, with
    ``quantum_heads``, give every layer's attention :class:`QuantumHeads`. Returns the replaced/added site names.

    Raises:
        ConfigError: bad config values, a device that cannot run QFFN circuits, or a model without ``mlp``/``self_attn``.
    """
    config = QFFNConfig.from_cfg(cfg)
    if not device.supports_ansatz:
        raise ConfigError(device._no_ansatz())
    stack = decoder_layers(model)
    hidden = model.config.hidden_size
    dtype = next(model.parameters()).dtype
    dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    sites = []
    for idx in select_layers(config.fraction, len(stack), config.layer_pattern, config.layer_seed):
        if not hasattr(stack[idx], "mlp"):
            raise ConfigError(f"decoder layer {idx} has no mlp to replace")
        stack[idx].mlp = QuantumFFN(hidden, config.depth, device, dtype).to(next(stack[idx].parameters()).device)
        sites.append(f"layers.{idx}.mlp")
    if config.quantum_heads:
        n_q = heads_per_layer(config.fraction, model.config.num_attention_heads)
        if n_q:
            for idx, layer in enumerate(stack):
                attn = _attention_module(layer)
                attn.qadapt_heads = QuantumHeads(n_q, attn.head_dim, config.head_depth, config.tau_init, device, dtype)
                sites.append(f"layers.{idx}.self_attn.qadapt_heads")
            _register_attention(model)
    return sites


def param_summary(cfg: DictConfig, n_layers: int, hidden: int, n_heads: int, head_dim: int) -> dict:
    """Exact added parameters of a QFFN config from the architecture alone (checked against counted ones in tests)."""
    config = QFFNConfig.from_cfg(cfg)
    layers = select_layers(config.fraction, n_layers, config.layer_pattern, config.layer_seed)
    heads = heads_per_layer(config.fraction, n_heads) if config.quantum_heads else 0
    ffn, head = qffn_params(hidden, config.depth), quantum_head_params(head_dim, config.head_depth)
    return {"layers": layers, "ffn_params_each": ffn, "quantum_heads_per_layer": heads, "head_params_each": head,
            "added_params": len(layers) * ffn + n_layers * heads * head}


def describe(cfg: DictConfig) -> str:
    """Short label, e.g. ``qffn(half, D=4, heads 4/layer, spread)``."""
    c = QFFNConfig.from_cfg(cfg)
    heads = f", heads D={c.head_depth}" if c.quantum_heads else ", no quantum heads"
    return f"qffn({c.fraction}, D={c.depth}{heads}, {c.layer_pattern})"
