"""``qadapt plan``: parameter, memory and circuit figures from the architecture alone, checked by hand for the
CUA paper's Llama 3.1 8B setting and against real tensors on a small model.
(Split by kind: its unit tests are in tests/unit/test_plan.py.)"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from qadapt.cli import app
from qadapt.config import compose
from qadapt.errors import ConfigError
from qadapt.resources import plan

LLAMA_CUA = [
    "model=llama31_8b",
    "adapter=cua",
    "adapter.qubits_per_block=2",
    "adapter.modules=[v_proj]",
    "adapter.layers=[0]",
]


def test_llama31_8b_cua_plan_matches_hand_counts():
    p = plan(compose(LLAMA_CUA))
    h, i, kv, v, n = 4096, 14336, 8 * 128, 128256, 32
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * i + 2 * h  # q, o; k, v; gate, up, down; two RMSNorms
    base = 2 * v * h + n * per_layer + h  # embeddings, untied LM head, layers, final norm
    assert base == 8_030_261_248
    assert p.trainable_params == 6_144 == (h // 4) * 6  # 1,024 blocks x 6 Cayley generators (paper: ~6k)
    assert p.total_params == base + 6_144
    assert 0 <= p.weights_bytes - 2 * p.total_params <= 1024  # bfloat16, plus the rotary table
    assert p.trainable_state_bytes == 3 * 6_144 * 2  # gradients + AdamW's two moments, bfloat16 like the weights
    assert p.first_trainable_layer is None  # layer 0: nothing frozen below
    [site] = p.circuit_sites
    assert (site.site, site.kind, site.qubits, site.circuits_per_token) == (
        "layers.0.self_attn.v_proj",
        "block",
        2,
        1024,
    )
    assert p.circuits_per_token == 1024
    assert p.train_tokens == (8, 256) and p.eval_tokens == (2, 2048)
    # activations: every one of the 32 layers sits above the adapter and saves for backward; with the adapter in the
    # last layer only that layer and the LM head do. Linear in the batch (no T^2 attention matrix on SDPA's path).
    last = plan(compose([*LLAMA_CUA[:-1], "adapter.layers=[-1]", "train.batch_size=1"]))
    first = plan(compose([*LLAMA_CUA, "train.batch_size=1"]))
    assert first.train_activation_bytes * 8 == pytest.approx(
        p.train_activation_bytes, rel=1e-3
    )  # rotary tables: per sequence
    assert last.first_trainable_layer == 31 and last.train_activation_bytes < first.train_activation_bytes / 5
    # float32 logits of one sequence alone: 256 x 128,256 x 4 bytes, for the cross-entropy's backward
    assert last.train_activation_bytes > 256 * v * 4


def test_llama31_8b_on_ibm_fake_gives_gate_counts_and_qpu_time():
    from qadapt.devices.qiskit_compile import PAPER_SECONDS_PER_CIRCUIT

    p = plan(compose([*LLAMA_CUA, "device=ibm_fake", "device.max_tokens=10"]))
    [site] = p.circuit_sites
    assert p.backend == "FakeFez" and p.shots == 8192 and p.eval_tokens_on_device == 10
    # Mottonen state preparation of 2 qubits (1 CNOT pair at most) + a 2-qubit Q (<= 3 CZ), after optimisation
    assert 1 <= site.two_qubit_gates <= 5 and site.depth > 0
    # FakeFez's own durations: a measurement is 1.56 us, a CZ 84 ns; every shot waits the 250 us repetition delay
    assert p.rep_delay_s == pytest.approx(250e-6)
    assert 1.56e-6 < site.duration_s < 10e-6
    assert p.seconds_per_circuit == pytest.approx(8192 * (site.duration_s + 250e-6))
    assert 2.06 < p.seconds_per_circuit < 2.14  # not the press summary's 11.9 s
    result = CliRunner().invoke(app, ["plan", *LLAMA_CUA, "device=ibm_fake", "device.max_tokens=10"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "1,024 per token" in text and "8,388,608 per token" in text
    assert f"{1024 * p.seconds_per_circuit / 3600:,.2f} h per token at {p.seconds_per_circuit:.2f} s" in text
    assert f"{1024 * p.seconds_per_circuit / 3600 * 10:,.2f} h for 10 tokens" in text
    assert f"{1024 * PAPER_SECONDS_PER_CIRCUIT / 3600:,.2f} h per token" in text  # the paper's rate, beside it
    assert p.mitigation == "none" and p.calibration_shots is None and "mitigation" not in text
    mitigated = plan(compose([*LLAMA_CUA, "device=ibm_fake", "device.mitigation=readout"]))
    assert mitigated.calibration_shots == 2 * 8192 and mitigated.mitigation.startswith("readout")
    hardware = plan(compose([*LLAMA_CUA, "device=ibm", "device.dynamical_decoupling=XpXm", "device.twirling=both"]))
    assert "dynamical decoupling XpXm" in hardware.mitigation and "twirling (both)" in hardware.mitigation


def test_plan_covers_other_adapters_and_refuses_what_it_cannot_count():
    qffn = plan(compose(["adapter=qffn"]))  # SmolLM2-135M, half the FFNs and 4 quantum heads per layer
    ffn = [s for s in qffn.circuit_sites if s.kind == "ansatz"]
    heads = [s for s in qffn.circuit_sites if s.kind == "overlap"]
    assert len(ffn) == 15 and all(s.circuits_per_token == 1 and s.qubits == 10 for s in ffn)
    assert len(heads) == 30 and all(s.circuits_per_token == 4 * (2048 + 1) / 2 for s in heads)
    lora = plan(compose(["adapter=lora", "adapter.modules=[q_proj,v_proj]"]))
    assert lora.circuit_sites == [] and lora.trainable_params == 30 * 8 * (576 + 576 + 576 + 192)
    with pytest.raises(ConfigError, match="no architecture block.*smollm2_135m"):
        plan(compose(["model=minilm_l6", "model.architecture=null"]))
