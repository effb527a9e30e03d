"""``qadapt plan``: parameter, memory and circuit figures from the architecture alone, checked by hand for the
CUA paper's Llama 3.1 8B setting and against real tensors on a small model."""

from __future__ import annotations

import re

import pytest
import torch
from helpers.tiny import tiny_llama
from typer.testing import CliRunner

from qadapt import adapters, devices
from qadapt.cli import app
from qadapt.config import compose
from qadapt.errors import ConfigError
from qadapt.resources import eval_peak_bytes, plan, saved_activation_bytes

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


def _tiny(device):
    model = tiny_llama(layers=3, vocab=101, device=device).requires_grad_(False)
    adapter = compose(["adapter.layers=[1,2]", "adapter.modules=[v_proj,up_proj]"]).adapter
    with torch.device(device):
        adapters.apply(model, adapter, devices.get(compose([]).device))
    return model


def test_meta_traces_count_what_real_tensors_hold():
    real, meta = _tiny("cpu"), _tiny("meta")
    assert saved_activation_bytes(meta, 2, 16) == saved_activation_bytes(real, 2, 16) > 0
    assert eval_peak_bytes(meta, 2, 16) == eval_peak_bytes(real, 2, 16) > 0
    # what the real backward needs: running it after the counted forward works, so nothing counted was missing
    ids = torch.zeros(2, 16, dtype=torch.long)
    real(input_ids=ids, labels=ids).loss.backward()


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


GLUE_RBS = ["model=minilm_l6", "task=glue", "train=classify", "adapter=rbs", "task.subtask=rte"]


def test_classifier_plan_counts_what_the_real_backbone_holds():
    """The meta-device MiniLM classifier of ``model.architecture`` holds the packaged weights' parameters, and the
    adapter injects the same count as on the real model; the paper's backbones match their published sizes."""
    from qadapt.classifier_plan import plan_classifier
    from qadapt.experiments.classify import adapter_param_count
    from qadapt.models.encoders import load_text_classifier

    cfg = compose(GLUE_RBS)
    p = plan_classifier(cfg)
    real = load_text_classifier(cfg.model, 2)[0]
    assert p.total_params - (p.trainable_params - p.head_params) == sum(t.numel() for t in real.parameters())
    assert p.head_params == 384 * 2 + 2 and p.trainable_params - p.head_params == adapter_param_count(cfg) > 0
    # training examples: RTE's 2,490 less the 500 of the selection slice (task.max_train=2000 does not bind)
    assert p.train_examples == 1990 and p.train_steps == 3 * 63 and p.inputs == "tokens"
    # DeBERTaV3-base: 86M backbone + 98M embedding (its model card); DINOv2-L: 304M (the DINOv2 paper)
    for model, task, size in (("deberta_v3_base", "glue", 184e6), ("dinov2_large", "vtab", 304e6)):
        meta = plan_classifier(compose([f"model={model}", f"task={task}", "train=classify", "adapter=none"]))
        assert abs(meta.total_params - meta.head_params - size) / size < 0.005, model


def _tiny_bert(device: str):
    from transformers import BertConfig, BertModel

    from qadapt.models.encoders import TextClassifier

    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    torch.manual_seed(0)
    with torch.device(device):
        return TextClassifier(BertModel(config, add_pooling_layer=False), 3)


def test_step_flops_are_the_hand_count_and_the_same_on_meta():
    """Forward FLOPs = 2 x tokens x every matrix product's weights + the attention products (QK^T and AV: 2 x 2 x B x
    T^2 x width per layer); a step of full fine-tuning is 3 forwards (backward: the input and the weight gradients)."""
    from qadapt.resources import step_flops

    batch, length = 4, 16
    flops = {}
    for device in ("cpu", "meta"):
        model = _tiny_bert(device)
        ids = torch.zeros(batch, length, dtype=torch.long, device=device)
        labels = torch.zeros(batch, dtype=torch.long, device=device)
        with torch.no_grad():
            forward = step_flops(lambda m=model, x=ids: m(x, None).sum())
        step = step_flops(lambda m=model, x=ids, y=labels: torch.nn.functional.cross_entropy(m(x, None), y))
        flops[device] = (forward, step)
    linear = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))
    tokens = batch * length
    hand = 2 * tokens * (linear - 32 * 3) + 2 * batch * 32 * 3 + 2 * (2 * 2 * batch * length * length * 32)
    assert flops["cpu"] == flops["meta"]
    assert flops["cpu"][0] == hand and flops["cpu"][1] == 3 * hand


def test_plan_cli_prices_a_vision_run():
    args = ["model=dinov2_large", "task=vtab", "train=classify", "adapter=lora", "task.image_size=224"]
    runner = CliRunner()
    out = [
        " ".join(runner.invoke(app, ["plan", *args, f"--tflops={r}"]).output.replace("│", " ").split())
        for r in (50, 25)
    ]
    assert "batch 32 x 224 x 224 px images" in out[0] and "x 75 steps over 800 examples" in out[0]
    unit = {"s": 1, "min": 60, "h": 3600}
    times = [re.search(r"([0-9.,]+) (s|min|h) at (50|25) TFLOP/s", o).groups()[:2] for o in out]
    seconds = [float(v.replace(",", "")) * unit[u] for v, u in times]
    assert seconds[1] == pytest.approx(2 * seconds[0], rel=0.02)
