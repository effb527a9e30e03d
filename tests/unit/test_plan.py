"""``qadapt plan``: parameter, memory and circuit figures from the architecture alone, checked by hand for the
CUA paper's Llama 3.1 8B setting and against real tensors on a small model.
(Split by kind: its tests on real models, data, simulators or launches are in
tests/integration/test_plan.py.)"""

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
from qadapt.resources import eval_peak_bytes, saved_activation_bytes


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


def test_a_qpu_time_cap_below_the_plans_estimate_refuses_with_the_figures():
    """device.max_qpu_seconds (issue 44): an evaluation whose estimated QPU time, as qadapt plan computes it, is above
    the cap is refused before any job, naming the estimate, the cap and the overrides; under the cap it passes and
    returns the estimate; no cap (ibm_fake's default), no estimate."""
    from qadapt.resources import check_qpu_budget, plan

    cfg = compose(["device=ibm_fake", "device.max_qpu_seconds=1"])
    p = plan(cfg)
    expected = p.circuits_per_token * p.seconds_per_circuit * 64
    with pytest.raises(ConfigError) as err:
        check_qpu_budget(cfg, 64)
    message = str(err.value)
    assert f"an estimated {expected:,.0f} s of QPU time" in message and "device.max_qpu_seconds=1:" in message
    assert (
        f"64 tokens x {p.circuits_per_token:,.0f} circuits per token" in message and "no token fits the cap" in message
    )
    ten = compose(["device=ibm_fake", f"device.max_qpu_seconds={expected / 64 * 10.5}"])
    with pytest.raises(ConfigError, match=r"send fewer tokens \(device.max_tokens=10 fits the cap\)"):
        check_qpu_budget(ten, 64)
    roomy = compose(["device=ibm_fake", f"device.max_qpu_seconds={expected * 2}"])
    assert check_qpu_budget(roomy, 64) == pytest.approx(expected)
    assert check_qpu_budget(compose(["device=ibm_fake"]), 64) is None
    assert compose(["device=ibm"]).device.max_qpu_seconds == 600
