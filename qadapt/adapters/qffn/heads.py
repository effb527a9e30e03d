"""Quantum attention heads: a learned quantum kernel in place of the dot-product score, and its fast exact paths.

Source: QFFN paper ("Less Bits, More Qubits", ../shared/papers/002_*.txt), Section 3.2 "Quantum Attention Heads":
"queries and keys are first projected to dimension d_h, then passed into a quantum circuit that computes an
interaction or kernel. The measured output, representing attention scores, is used to weight the value vectors".
The paper leaves the kernel open; ours, exactly (in ``n_heads`` heads of every layer; values stay classical):

    score(t, s) = tau * |<q_t| V(phi) |k_s>|^2     q_t, k_s: the head's query and key (after RoPE), normalised
                                                    and amplitude-encoded on n_h = ceil(log2 d_h) qubits (6 for 64)
    attention   = softmax over causal s of score(t, s), times the head's values

|<q|V|k>|^2 is the probability of |0...0> after S(k), V(phi), S(q)^dagger (compute-uncompute), so a device runs one
circuit per head and allowed (query, key) pair: n_heads * T (T + 1) / 2 for a causal window of T tokens.
tau = exp(log_tau) is learned per head (init 10). Parameters per quantum head: 3 n_h D_h + 1 (SmolLM2: 73). The
head's q/k projections are kept (the circuit needs a query and a key), so quantum heads remove no parameters.

On the exact device the kernel is two real matmuls against V's real and imaginary parts (:meth:`QuantumHeads.kernel`)
and a causal window runs blockwise without the masked half (:meth:`QuantumHeads.causal_attention`); both count the
circuits they stand for on the device (outside a meta-device planning pass: :meth:`QuantumHeads.circuit_sites`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...devices.base import Device
from ...quantum.ansatz import StronglyEntanglingCircuit, amplitude_encode, qubits_for
from ..base import AdapterLayer, CircuitSite

# queries per block of QuantumHeads.causal_attention: a block's scores are (B, h, QUERY_BLOCK, <= T); 128 keeps them
# near the cache (2 x 4 heads x 128 x 2,048 floats = 8 MiB; on 2 cores 128 beat 64, 256 and 512 by 12-35 %)
QUERY_BLOCK = 128
# largest temperature for the fixed-shift softmax of evaluation: exp(-tau) must stay a normal float32 (> 1.2e-38)
MAX_FIXED_SHIFT_TAU = 80.0


class QuantumHeads(AdapterLayer):
    """The quantum attention heads of one attention module: heads 0..h-1 score with the kernel above.

    Attached to the attention module as ``qadapt_heads``; the registered attention function
    (:func:`qadapt.adapters.qffn.attention.quantum_heads_attention`) reads it.

    Args:
        n_heads: h. head_dim: d_h. depth: D_h (>= 1). tau_init: initial temperature (> 0). device: where the
            kernel circuits run. dtype: of the parameters and the simulation.
    Attributes:
        weights: ``(h, D_h, n_h, 3)`` rotation angles in radians, uniform in [0, 2 pi).
        log_tau: ``(h,)`` log temperatures.
    """

    adapter_name = "qffn_heads"

    def __init__(self, n_heads: int, head_dim: int, depth: int, tau_init: float, device: Device, dtype=torch.float32):
        super().__init__(None)
        self.n_heads, self.head_dim, self.n_qubits, self.device = n_heads, head_dim, qubits_for(head_dim), device
        self.weights = nn.Parameter(torch.rand(n_heads, depth, self.n_qubits, 3, dtype=dtype) * (2 * math.pi))
        self.log_tau = nn.Parameter(torch.full((n_heads,), math.log(tau_init), dtype=dtype))
        self._frozen: tuple[tuple, torch.Tensor] | None = None

    def circuits(self) -> list[StronglyEntanglingCircuit]:
        """V_h(phi) of every head as a circuit description (what a device runs)."""
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
            On the exact device, computed as matmuls and counted as h circuits per allowed pair; on another, one
            device circuit per head and allowed pair whose query position is in the device mask (the rest exact).
        Raises:
            ConfigError: the device cannot run QFFN circuits.
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
                pairs = int(allowed.expand(exact.shape[0], 1, *exact.shape[2:]).sum())
                device.count_circuits("overlap", self.n_qubits, pairs * self.n_heads, self.n_heads)
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

    def causal_attention(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, block: int | None = None
    ) -> torch.Tensor:
        """The heads' output softmax_s(tau_h |<q_t| V_h |k_s>|^2, s <= t) v_s, exactly (noise-free exact device),
        for a causal window without padding (S = T).

        Computed in blocks of ``block`` queries (default :data:`QUERY_BLOCK`), each scored against the keys it may
        see only: the masked half of the T x T kernel is never computed and one block's scores exist at a time
        (what flash attention does for dot-product heads). Same values as :meth:`kernel` + mask + softmax.
        Without gradients (evaluation) the scores are exponentiated in place with a fixed shift instead of the row
        maximum (:meth:`_causal_attention_inference`). Counts B h T (T + 1) / 2 circuits on the device (none on the
        meta device). Shapes: query, key, value ``(B, h, T, d_h)`` -> ``(B, h, T, d_h)``.
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
        if not q.is_meta:  # a planning pass asks circuit_sites instead: the count per token depends on the window
            circuits = n_batch * self.n_heads * t * (t + 1) // 2  # one per head and allowed pair
            self.device.count_circuits("overlap", self.n_qubits, circuits, self.n_heads)
        if not torch.is_grad_enabled() and not tau.is_meta and float(tau.max()) <= MAX_FIXED_SHIFT_TAU:
            return self._causal_attention_inference(q, k, value, unitaries, tau, block)
        vk_re = torch.einsum("bhsn,hmn->bhsm", k, unitaries.real)
        vk_im = torch.einsum("bhsn,hmn->bhsm", k, unitaries.imag)
        tau = tau[None, :, None, None]
        outputs = []
        for t0 in range(0, t, block):
            t1 = min(t, t0 + block)
            qb = q[:, :, t0:t1]
            scores = (
                (qb @ vk_re[:, :, :t1].transpose(-1, -2)).square() + (qb @ vk_im[:, :, :t1].transpose(-1, -2)).square()
            ) * tau
            allowed = torch.arange(t1, device=q.device)[None, :] <= torch.arange(t0, t1, device=q.device)[:, None]
            scores = torch.where(allowed, scores, scores.new_full((), float("-inf")))
            outputs.append(torch.softmax(scores, dim=-1).to(value.dtype) @ value[:, :, :t1])
        return torch.cat(outputs, dim=2)

    @staticmethod
    def _causal_attention_inference(q, k, value, unitaries, tau, block: int) -> torch.Tensor:
        """:meth:`causal_attention` without autograd: encoded ``q``, ``k`` ``(B, h, T, N)``, ``unitaries``
        ``(h, N, N)``, ``tau`` ``(h,)``.

        A kernel score lies in [0, tau] (|<q|V|k>|^2 is a probability), so exp(score - tau) is in [e^-tau, 1] for
        every pair: with that fixed shift in place of the row maximum nothing overflows, and for tau <=
        :data:`MAX_FIXED_SHIFT_TAU` nothing underflows to a zero row sum. The softmax then needs no pass for the
        maximum, the real and imaginary overlaps come from one batched matmul (sqrt(tau) folded into the queries),
        the exponentials are taken in place, and only each block's diagonal tile is masked.
        """
        tau = tau.to(q.dtype)
        q = q * tau.sqrt()[None, :, None, None]
        vk = torch.stack(
            [torch.einsum("bhsn,hmn->bhsm", k, unitaries.real), torch.einsum("bhsn,hmn->bhsm", k, unitaries.imag)],
            dim=2,
        )
        vk = vk.transpose(-1, -2).contiguous()  # (B, h, 2, N, S)
        shift = tau[None, :, None, None]
        t = q.shape[2]
        out = value.new_empty(value.shape)
        for t0 in range(0, t, block):
            t1 = min(t, t0 + block)
            overlaps = q[:, :, None, t0:t1] @ vk[..., :t1]  # (B, h, 2, block, t1): sqrt(tau) Re/Im <q|V|k>
            weights = overlaps[:, :, 0].square_().addcmul_(overlaps[:, :, 1], overlaps[:, :, 1]).sub_(shift).exp_()
            future = torch.ones(t1 - t0, t1 - t0, dtype=torch.bool, device=q.device).triu_(1)
            weights[..., t0:t1].masked_fill_(future, 0.0)
            out[:, :, t0:t1] = (weights.to(value.dtype) @ value[:, :, :t1]) / weights.sum(-1, keepdim=True).to(
                value.dtype
            )
        return out

    def circuit_sites(self, window: int) -> list[CircuitSite]:
        """One overlap circuit per head and allowed (query, key) pair: a causal query at position t sees t + 1 keys,
        n_heads * (window + 1) / 2 circuits per token on average over a window of ``window`` tokens."""
        return [CircuitSite("overlap", self.n_qubits, self.n_heads * (window + 1) / 2)]

    def structure(self) -> dict:
        """``n_heads`` (h), ``head_dim`` (d_h), ``qubits`` (n_h = ceil(log2 d_h)) and ``depth`` (D_h)."""
        return {
            **super().structure(),
            "n_heads": self.n_heads,
            "head_dim": self.head_dim,
            "qubits": self.n_qubits,
            "depth": int(self.weights.shape[1]),
        }

    def extra_repr(self) -> str:
        return f"heads={self.n_heads}, qubits={self.n_qubits}, depth={self.weights.shape[1]}"
