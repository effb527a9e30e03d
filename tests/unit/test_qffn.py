"""QFFN math: amplitude encoding, the fused ansatz simulator against PennyLane (values and gradients), the
readout, quantum heads, fraction selection and exact parameter counts (QFFN paper, Section 3, Table 2)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pennylane as qml
import pytest
import torch
from helpers.options import adapter
from omegaconf import OmegaConf
from transformers import LlamaConfig, LlamaForCausalLM

from qadapt import adapters, devices
from qadapt.adapters import ffn_lowrank, qffn
from qadapt.adapters.base import adapter_modules
from qadapt.config import compose
from qadapt.devices.sampling import sample_counts
from qadapt.errors import ConfigError
from qadapt.quantum.ansatz import StronglyEntanglingCircuit, amplitude_encode, qubits_for

EXACT = OmegaConf.create({"name": "exact", "shots": None, "seed": 0})


def _device(name: str, **extra):
    base = {
        "exact": EXACT,
        "default_qubit": {"name": "default_qubit", "backend": "default.qubit", "shots": None, "seed": 0},
        "lightning_qubit": {"name": "lightning_qubit", "backend": "lightning.qubit", "shots": None, "seed": 0},
    }
    return devices.get(OmegaConf.merge(OmegaConf.create(base[name]), extra))


def _unit_rows(n_rows: int, width: int, seed: int) -> torch.Tensor:
    x = torch.randn(n_rows, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


def _tiny_llama(layers: int = 4) -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=128,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(cfg).eval()


def test_qubits_and_amplitude_encoding_keep_norm_and_pad():
    assert [qubits_for(d) for d in (1, 2, 3, 64, 576, 1024, 1025)] == [1, 1, 2, 6, 10, 10, 11]
    x = torch.randn(3, 5, 576, dtype=torch.float64)
    x[0, 0] = 0
    states, norms = amplitude_encode(x, 10)
    assert states.shape == (3, 5, 1024) and norms.shape == (3, 5, 1)
    torch.testing.assert_close(states.norm(dim=-1), torch.ones(3, 5, dtype=torch.float64))
    torch.testing.assert_close(norms[..., 0], x.norm(dim=-1))
    assert torch.all(states[1:, :, 576:] == 0)
    torch.testing.assert_close(states[1:, :, :576] * norms[1:], x[1:])
    torch.testing.assert_close(states[0, 0], torch.full((1024,), 1024**-0.5, dtype=torch.float64))
    with pytest.raises(ValueError, match="does not fit"):
        amplitude_encode(x, 9)


@pytest.mark.parametrize("n,depth", [(1, 2), (2, 3), (3, 4), (5, 2), (6, 4)])
def test_fused_ansatz_equals_pennylane_strongly_entangling_layers(n, depth):
    w = torch.rand(depth, n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(n)) * 2 * math.pi
    ours = StronglyEntanglingCircuit(w).unitary().numpy()
    theirs = qml.matrix(qml.StronglyEntanglingLayers(w.numpy(), wires=range(n)), wire_order=range(n))
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    np.testing.assert_allclose(ours.conj().T @ ours, np.eye(2**n), atol=1e-12)


@pytest.mark.parametrize("backend", ["default_qubit", "lightning_qubit"])
def test_ansatz_probabilities_agree_across_devices(backend):
    angles = torch.rand(4, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 6.3
    circuit = StronglyEntanglingCircuit(angles)
    states = _unit_rows(40, 32, seed=2)
    exact = _device("exact").ansatz_probabilities(circuit, states)
    other = _device(backend).ansatz_probabilities(circuit, states)
    torch.testing.assert_close(other, exact, atol=1e-6, rtol=0)
    torch.testing.assert_close(exact.sum(-1), torch.ones(40, dtype=torch.float64))


@pytest.mark.parametrize("backend", ["exact", "default_qubit", "lightning_qubit"])
def test_quantum_head_kernel_is_the_compute_uncompute_probability(backend):
    angles = torch.rand(2, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 6.3
    circuit = StronglyEntanglingCircuit(angles)
    left, right = _unit_rows(30, 16, seed=4), _unit_rows(30, 16, seed=5)
    u = qml.matrix(qml.StronglyEntanglingLayers(circuit.weights.numpy(), wires=range(4)), wire_order=range(4))
    reference = np.abs(np.einsum("na,ab,nb->n", left.numpy(), u, right.numpy())) ** 2
    got = _device(backend).overlap_probabilities(circuit, left, right)
    np.testing.assert_allclose(got.numpy(), reference, atol=1e-6)
    full = circuit.overlaps(left, right)  # all pairs, the exact training path
    np.testing.assert_allclose(torch.diagonal(full).numpy(), reference, atol=1e-12)


def test_gradients_of_fused_simulator_match_pennylane_backprop():
    n, depth = 3, 3
    w0 = torch.rand(depth, n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(6)) * 6.3
    states = _unit_rows(5, 8, seed=7)
    coeff = torch.randn(5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(8))

    w_ours = w0.clone().requires_grad_(True)
    (StronglyEntanglingCircuit(w_ours).probabilities(states) * coeff).sum().backward()

    dev = qml.device("default.qubit", wires=n)

    @qml.qnode(dev, interface="torch", diff_method="backprop")
    def circuit(s, w):
        qml.StatePrep(s, wires=range(n), normalize=False)
        qml.StronglyEntanglingLayers(w, wires=range(n))
        return qml.probs(wires=range(n))

    w_pl = w0.clone().requires_grad_(True)
    (circuit(states, w_pl) * coeff).sum().backward()
    torch.testing.assert_close(w_ours.grad, w_pl.grad, atol=1e-10, rtol=1e-8)

    # and the parameter-shift rule the paper names (one angle, on PennyLane)
    w_ps = w0.clone().requires_grad_(True)
    ps = qml.QNode(circuit.func, dev, interface="torch", diff_method="parameter-shift")
    (ps(states, w_ps) * coeff).sum().backward()
    torch.testing.assert_close(w_ours.grad, w_ps.grad, atol=1e-8, rtol=1e-6)


def test_training_after_an_evaluation_in_inference_mode():
    """The circuit's cached CNOT-ring permutations, first built in inference mode, still serve a backward pass."""
    from qadapt.quantum import ansatz

    ansatz.cnot_ring_permutation.cache_clear()
    w = torch.rand(2, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    states = _unit_rows(3, 16, seed=2)
    with torch.inference_mode():
        before = StronglyEntanglingCircuit(w.detach()).probabilities(states)
    probs = StronglyEntanglingCircuit(w).probabilities(states)
    probs[:, 0].sum().backward()
    torch.testing.assert_close(probs.detach(), before)
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_quantum_heads_unitaries_cached_in_evaluation_until_the_weights_change():
    heads = qffn.QuantumHeads(2, 8, 2, 10.0, _device("exact"), dtype=torch.float64)
    with torch.inference_mode():
        first = heads.unitaries()
        assert heads.unitaries() is first  # built once per weight version
    fresh = torch.stack([c.unitary() for c in heads.circuits()])
    torch.testing.assert_close(first, fresh.detach())
    fresh.real.sum().backward()  # the training path builds its own, with gradients
    assert heads.weights.grad is not None
    torch.optim.SGD(heads.parameters(), lr=0.1).step()  # in place: the version changes
    with torch.no_grad():
        after = heads.unitaries()
        assert after is not first
        torch.testing.assert_close(after, torch.stack([c.unitary() for c in heads.circuits()]))


def test_qffn_readout_formula_and_zero_init():
    layer = qffn.QuantumFFN(12, depth=2, device=_device("exact"), dtype=torch.float64)
    x = torch.randn(3, 7, 12, dtype=torch.float64)
    assert torch.all(layer(x) == 0)  # w = b = 0: starts as "FFN removed"
    with torch.no_grad():
        layer.scale.normal_()
        layer.bias.normal_()
    n = 4
    u = qml.matrix(qml.StronglyEntanglingLayers(layer.weights.detach().numpy(), wires=range(n)), wire_order=range(n))
    flat = x.reshape(-1, 12).numpy()
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    padded = np.pad(flat / norms, ((0, 0), (0, 4)))
    p = np.abs(padded @ u.T) ** 2
    expected = norms * layer.scale.detach().numpy() * (16 * p[:, :12] - 1) + layer.bias.detach().numpy()
    np.testing.assert_allclose(layer(x).detach().reshape(-1, 12).numpy(), expected, atol=1e-10)


def test_fraction_layer_selection():
    assert qffn.select_layers("half", 30) == list(range(1, 30, 2))
    assert qffn.select_layers("full", 30) == list(range(30))
    quarter = qffn.select_layers("quarter", 30)
    assert len(quarter) == 8 and quarter == sorted(set(quarter)) and quarter[0] == 1 and quarter[-1] == 28
    assert qffn.select_layers("half", 30, "last") == list(range(15, 30))
    r1, r2 = qffn.select_layers("half", 30, "random", 1), qffn.select_layers("half", 30, "random", 2)
    assert len(set(r1)) == 15 and r1 == qffn.select_layers("half", 30, "random", 1) and r1 != r2
    assert [qffn.heads_per_layer(f, 9) for f in ("quarter", "half", "full")] == [2, 4, 4]
    with pytest.raises(ConfigError, match="valid choices: quarter, half, full"):
        qffn.select_layers("most", 30)
    with pytest.raises(ConfigError, match="valid choices: spread, last, random"):
        qffn.QFFNConfig.from_cfg(adapter("qffn", fraction="half", layer_pattern="odd"))


def test_parameter_counts_per_fraction_on_smollm2_architecture():
    """Counted on the meta-device SmolLM2 (no weights): added = formula, replaced FFNs gone, totals decreasing."""
    from qadapt.models import build_meta

    cfg = compose([])
    base = sum(p.numel() for p in build_meta(cfg.model).parameters())
    totals = []
    for fraction, n_layers, heads in (("quarter", 8, 2), ("half", 15, 4), ("full", 30, 4)):
        model = build_meta(cfg.model)
        acfg = OmegaConf.merge(compose(["adapter=qffn"]).adapter, {"fraction": fraction})
        adapters.apply(model, acfg, _device("exact"))
        added = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert added == n_layers * (3 * 10 * 4 + 2 * 576) + 30 * heads * (3 * 6 * 4 + 1)
        assert added == qffn.param_summary(acfg, 30, 576, 9, 64)["added_params"]
        total = sum(p.numel() for p in model.parameters())
        assert total == base - n_layers * 3 * 576 * 1536 + added
        totals.append(total)
    assert totals[0] > totals[1] > totals[2]
    # the classical control: same layers, rank chosen to come nearest to QFFN-half's added parameters
    model = build_meta(cfg.model)
    lcfg = compose(["adapter=ffn_lowrank"]).adapter
    adapters.apply(model, lcfg, _device("exact"))
    assert ffn_lowrank.resolve_rank(lcfg, model.config) == 1
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 15 * (2 * 576 + 576)


@pytest.mark.parametrize("block", [256, 3])  # one block of queries; several, the last one short
def test_quantum_heads_in_a_real_transformers_attention(block, monkeypatch):
    """Heads switched off = SDPA exactly; switched on = the kernel formula, computed by hand for one layer."""
    monkeypatch.setattr(qffn.heads, "QUERY_BLOCK", block)
    model = _tiny_llama()
    ids = torch.randint(0, 128, (2, 10), generator=torch.Generator().manual_seed(0))
    reference = model(ids).logits
    adapted = copy.deepcopy(model)
    adapters.apply(adapted, adapter("qffn", fraction="half"), _device("exact"))
    heads = [m for _, m in adapter_modules(adapted) if isinstance(m, qffn.QuantumHeads)]
    assert len(heads) == 4 and all(h.n_heads == 2 for h in heads)
    for h in heads:
        h.enabled = False
    for i in range(4):  # put the original FFNs back: only attention differs from the base model now
        adapted.model.layers[i].mlp = model.model.layers[i].mlp
    torch.testing.assert_close(adapted(ids).logits, reference, atol=1e-6, rtol=0)

    # kernel scores by hand: tau |q^T V k|^2 with causal softmax, for head 0 of layer 0
    heads[0].enabled = True
    captured = {}
    attn = adapted.model.layers[0].self_attn
    hook = attn.o_proj.register_forward_pre_hook(lambda m, a: captured.setdefault("heads", a[0]))
    with torch.no_grad():
        adapted(ids)
    hook.remove()
    layer = adapted.model.layers[0]
    with torch.no_grad():
        h = layer.input_layernorm(adapted.model.embed_tokens(ids))
        q = attn.q_proj(h).view(2, 10, 4, 16).transpose(1, 2)
        k = attn.k_proj(h).view(2, 10, 2, 16).transpose(1, 2)
        v = attn.v_proj(h).view(2, 10, 2, 16).transpose(1, 2)
        cos, sin = adapted.model.rotary_emb(h, torch.arange(10)[None])
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        u = heads[0].circuits()[0].unitary()
        qn, kn = q[:, 0] / q[:, 0].norm(dim=-1, keepdim=True), k[:, 0] / k[:, 0].norm(dim=-1, keepdim=True)
        score = (qn.to(u.dtype) @ u @ kn.to(u.dtype).transpose(1, 2)).abs().square() * heads[0].log_tau.exp()[0]
        score = score.masked_fill(~torch.ones(10, 10, dtype=torch.bool).tril(), float("-inf"))
        head0 = torch.softmax(score, -1) @ v[:, 0]
    heads_out = captured["heads"].reshape(2, 10, 4, 16)  # o_proj's input: the concatenated head outputs
    torch.testing.assert_close(heads_out[:, :, 0], head0, atol=1e-5, rtol=0)
    # the blockwise exact path and the full kernel path (what devices run) agree
    q4, k4, v4 = (torch.randn(2, 2, 10, 16, generator=torch.Generator().manual_seed(i)) for i in range(3))
    tau = heads[0].log_tau.exp()[None, :, None, None]
    scores = heads[0].kernel(q4, k4, qffn.allowed_mask(None, 10, 10, "cpu")) * tau
    full = torch.softmax(scores.masked_fill(~torch.ones(10, 10, dtype=torch.bool).tril(), float("-inf")), -1) @ v4
    torch.testing.assert_close(heads[0].causal_attention(q4, k4, v4), full, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("tau", [10.0, 79.0, 200.0])  # fixed-shift softmax near its limit; beyond it, the row maximum
def test_quantum_heads_evaluation_path_equals_training_path(tau):
    """Without gradients the heads use the in-place fixed-shift softmax: same output as the autograd path, for
    strided (transformers' layout) inputs, several query blocks and a short last one."""
    heads = qffn.QuantumHeads(3, 16, 2, tau, _device("exact"))
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 37, 3, 16, generator=gen).transpose(1, 2) for _ in range(3))  # (B, h, T, d_h), strided
    trained = heads.causal_attention(q, k, v, block=8)
    assert trained.requires_grad
    with torch.no_grad():
        evaluated = heads.causal_attention(q, k, v, block=8)
    assert evaluated.isfinite().all()
    # float32 rounding of a score is ~tau * 1e-7 and moves its exponential by as much: the bar scales with tau
    torch.testing.assert_close(evaluated, trained.detach(), atol=2e-7 * max(tau, 10.0), rtol=1e-5)


def test_replacement_adapters_train_and_run_on_pennylane():
    model = _tiny_llama()
    ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(1))
    adapters.apply(model, adapter("qffn", fraction="full", depth=2), _device("exact"))
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert all(g is not None for g in grads.values())
    # at init w = 0, so the FFN circuit angles get no gradient yet; the readout and the heads' circuits do
    assert all(
        g.abs().sum() > 0 for n, g in grads.items() if n.endswith("mlp.scale") or n.endswith("qadapt_heads.weights")
    )
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("scale"):
                p.normal_(0, 0.05)
        exact = model(ids).logits
        adapters.set_device(model, _device("default_qubit"))
        on_pennylane = model(ids).logits
    torch.testing.assert_close(on_pennylane, exact, atol=1e-4, rtol=0)


def test_qffn_on_a_device_that_cannot_run_it_fails_clearly():
    model = _tiny_llama(2)
    fake = devices.get(compose(["device=ibm_fake"]).device)
    with pytest.raises(ConfigError, match="cannot run QFFN circuits.*valid choices: .*default_qubit.*exact"):
        adapters.apply(model, adapter("qffn"), fake)


def test_wide_register_shot_sampling():
    probs = torch.softmax(torch.randn(6, 1024, dtype=torch.float64, generator=torch.Generator().manual_seed(9)), -1)
    counts = sample_counts(probs, 8192, torch.Generator().manual_seed(0))
    assert torch.all(counts.sum(-1) == 8192)
    sigma = (probs * (1 - probs) / 8192).sqrt()
    assert torch.all((counts / 8192 - probs).abs() <= 5 * sigma + 1e-3)


def test_layers_report_circuit_sites_and_structure():
    """What plan asks every layer: the heads' window-dependent circuits (n_heads (window + 1) / 2 per token), nothing
    for the FFN (its circuits are counted as they run); and each layer's structure as plain JSON values."""
    import json

    from qadapt.adapters.base import CircuitSite

    heads = qffn.QuantumHeads(4, 64, 3, 10.0, _device("exact"))
    assert heads.circuit_sites(2048) == [CircuitSite("overlap", 6, 4 * 2049 / 2)]
    assert heads.structure() == {"layer": "QuantumHeads", "n_heads": 4, "head_dim": 64, "qubits": 6, "depth": 3}
    ffn = qffn.QuantumFFN(576, 4, _device("exact"))
    assert ffn.circuit_sites(2048) == []
    assert ffn.structure() == {"layer": "QuantumFFN", "width": 576, "qubits": 10, "depth": 4}
    low = ffn_lowrank.LowRankFFN(48, 3)
    assert low.circuit_sites(128) == [] and low.structure() == {"layer": "LowRankFFN", "width": 48, "rank": 3}
    json.dumps([heads.structure(), ffn.structure(), low.structure()])


def test_heads_count_their_kernel_circuits_on_the_device_but_not_in_a_planning_pass():
    device = _device("exact")
    heads = qffn.QuantumHeads(2, 8, 1, 10.0, device)
    q, k, v = (torch.randn(1, 2, 5, 8, generator=torch.Generator().manual_seed(i)) for i in range(3))
    with torch.no_grad():
        heads.causal_attention(q, k, v)
        assert device.circuits_run == 2 * 5 * 6 // 2
        heads.kernel(q, k, qffn.allowed_mask(None, 5, 5, "cpu"))  # the same 15 causal pairs per head
        assert device.circuits_run == 2 * 2 * 15
        with torch.device("meta"):
            meta = qffn.QuantumHeads(2, 8, 1, 10.0, device)
        meta.causal_attention(q.to("meta"), k.to("meta"), v.to("meta"))
    assert device.circuits_run == 2 * 2 * 15


def test_the_classical_control_imports_no_quantum_adapter():
    """ffn_lowrank and the shared replacement module import neither qadapt.adapters.qffn nor a device back end."""
    import ast
    from pathlib import Path

    root = Path(ffn_lowrank.__file__).parent
    for name in ("ffn_lowrank.py", "replacement.py"):
        tree = ast.parse((root / name).read_text())
        modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in modules if "qffn" in m or m.startswith(("pennylane", "qiskit"))], (name, modules)


def test_components_isolate_heads_only_and_ffns_only():
    """adapter.quantum_ffn=false keeps every FFN and adds the heads alone; quantum_heads=false replaces the FFNs
    alone; both off is refused (nothing would be quantum)."""
    from qadapt.adapters.qffn import QuantumFFN, QuantumHeads

    half = {"fraction": "half", "depth": 2, "head_depth": 2}
    heads_only = _tiny_llama()
    sites = adapters.apply(heads_only, adapter("qffn", **half, quantum_ffn=False), _device("exact"))
    assert sites and all("qadapt_heads" in s for s in sites)
    assert not any(isinstance(m, QuantumFFN) for m in heads_only.modules())
    assert sum(isinstance(m, QuantumHeads) for m in heads_only.modules()) == 4  # every layer of 4
    ffn_only = _tiny_llama()
    sites = adapters.apply(ffn_only, adapter("qffn", **half, quantum_heads=False), _device("exact"))
    assert len(sites) == 2 and all(s.endswith(".mlp") for s in sites)  # half of 4 layers
    assert sum(isinstance(m, QuantumFFN) for m in ffn_only.modules()) == 2
    assert not any(isinstance(m, QuantumHeads) for m in ffn_only.modules())
    with pytest.raises(ConfigError, match="nothing quantum"):
        adapters.apply(_tiny_llama(), adapter("qffn", **half, quantum_ffn=False, quantum_heads=False), None)


def test_quantum_heads_distilled_to_the_classical_attention_pattern():
    """Head distillation records the teacher's queries and keys (after RoPE) of the replaced heads, leaves the
    teacher's attention implementation as it was, and lowers the KL from the classical attention pattern."""
    import copy

    from qadapt.training.distill import distill_heads

    teacher = _tiny_llama(2)
    student = copy.deepcopy(teacher)
    half = adapter("qffn", fraction="half", depth=2, head_depth=2, quantum_ffn=False)
    adapters.apply(student, half, _device("exact"))
    implementation = teacher.config._attn_implementation
    chunks = torch.randint(0, 128, (8, 16), generator=torch.Generator().manual_seed(3))
    cfg = OmegaConf.create(
        {"distill_tokens": 128, "distill_steps": 80, "distill_batch": 64, "distill_lr": 0.05, "batch_size": 4}
    )
    out = distill_heads(student, teacher, chunks, cfg, seed=0)
    assert teacher.config._attn_implementation == implementation
    assert out["head_kl_after"] < 0.7 * out["head_kl_before"], out


def test_pruned_ffn_keeps_the_largest_neurons_and_matches_qffn_parameters():
    """adapter=ffn_pruned (the Distilled baseline): keeping every neuron is the FFN itself; keeping k takes the k of
    largest ||gate_j|| ||up_j|| ||down_:,j||; neurons=auto matches QFFN's total parameters with the same fraction to
    within one neuron per layer (SmolLM2-135M's architecture, on the meta device)."""
    from qadapt.adapters.ffn_pruned import PrunedFFN, matched_neurons, neuron_importance

    model = _tiny_llama(2)
    mlp = model.model.layers[0].mlp
    x = torch.randn(5, 48)
    whole = PrunedFFN(mlp, torch.arange(96))
    assert torch.allclose(whole(x), mlp(x), atol=1e-6)
    score = neuron_importance(mlp)
    sites = adapters.apply(model, adapter("ffn_pruned", neurons=10), _device("exact"))
    assert sites == ["layers.0.mlp", "layers.1.mlp"]
    kept = model.model.layers[0].mlp
    assert kept.neurons == 10 and kept.gate_proj.weight.shape == (10, 48) and kept.down_proj.weight.shape == (48, 10)
    top = torch.topk(score, 10).indices.sort().values
    assert torch.equal(kept.gate_proj.weight, mlp.gate_proj.weight[top])
    assert torch.equal(kept.down_proj.weight, mlp.down_proj.weight[:, top])
    with pytest.raises(ConfigError, match="neurons"):
        adapters.apply(_tiny_llama(2), adapter("ffn_pruned", neurons=97), _device("exact"))

    smol = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9)
    for fraction in ("quarter", "half", "full"):
        k = matched_neurons(adapter("ffn_pruned", fraction=fraction), smol)
        q = qffn.param_summary(adapter("qffn", fraction=fraction), 30, 576, 9, 64)
        target = 30 * 3 * 576 * 1536 - len(q["layers"]) * 3 * 576 * 1536 + q["added_params"]
        assert abs(30 * 3 * 576 * k - target) <= 30 * 3 * 576 / 2, fraction
    assert matched_neurons(adapter("ffn_pruned", fraction="half"), smol) in (768, 769)
