"""qadapt inside the tools researchers use, on the real SmolLM2: the lm-evaluation-harness backend (the stock
``lm_eval`` command with ``--model qadapt``) against ``qadapt eval mc`` on the same ARC-Easy questions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from qadapt import lm_eval_hook
from qadapt.config import compose
from qadapt.data.multiple_choice import suites
from qadapt.experiments import run

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["task.max_tokens=192", "task.max_length=192", "task.stride=192"]


def _cfg(tmp_path, *extra):
    return compose([*SMALL, f"results_dir={tmp_path / 'results'}", f"runs_dir={tmp_path / 'runs'}", *extra])


@pytest.fixture(scope="module")
def trained_cua(tmp_path_factory) -> str:
    """A CUA adapter (q = 2, v_proj input, last layer) trained for 2 steps: its run directory."""
    tmp = tmp_path_factory.mktemp("cua")
    row = run(
        "train",
        _cfg(
            tmp, "train.max_steps=2", "train.batch_size=2", "train.seq_len=64", "train.lr=0.05", "adapter.layers=[-1]"
        ),
        ["(test)"],
    )
    return row["run_dir"]


# lm-eval's arc_easy task (lm_eval/tasks/arc/arc_easy.yaml) over a local file of the shared ARC data
ARC_TASK = """task: qadapt_arc_easy_local
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{choices.label.index(answerKey)}}}}"
doc_to_choice: "{{{{choices.text}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""


def _arc_task(tmp_path: Path, data_dir: Path, n: int) -> Path:
    """The ARC-Easy test questions ``qadapt eval mc task.mc.arc_questions=n`` scores, in the Hugging Face ai2_arc
    layout lm-eval's arc_easy task reads, and that task's yaml pointing at them."""
    mc = compose(["task=mc", "task.mc.benchmarks=[arc_easy]", f"task.mc.arc_questions={n}"]).task.mc
    ids = {q.id for q in suites(data_dir, mc)[0].questions}
    rows = []
    for line in (data_dir / "arc" / "ARC-Easy" / "ARC-Easy-Test.jsonl").read_text().splitlines():
        item = json.loads(line)
        if item["id"] in ids:
            choices = item["question"]["choices"]
            rows.append(
                {
                    "id": item["id"],
                    "question": item["question"]["stem"],
                    "choices": {"text": [c["text"] for c in choices], "label": [c["label"] for c in choices]},
                    "answerKey": item["answerKey"],
                }
            )
    assert len(rows) == n
    folder = tmp_path / "tasks"
    folder.mkdir()
    data = folder / "arc_easy_local.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "qadapt_arc_easy_local.yaml").write_text(ARC_TASK.format(data=data))
    return folder


def _lm_eval(tmp_path: Path, tasks: Path, model_args: str) -> tuple[dict, pd.DataFrame]:
    """The stock ``lm_eval`` command with ``--model qadapt``: the task's metrics and its per-question samples."""
    if not lm_eval_hook.pth_path().exists():
        pytest.fail(f"{lm_eval_hook.pth_path()} is missing: `make setup` writes it (qadapt lm-eval-hook install)")
    out = tmp_path / "lm_eval_out"
    cmd = [
        str(Path(sys.executable).with_name("lm_eval")),
        "--model",
        "qadapt",
        "--model_args",
        model_args,
        "--tasks",
        "qadapt_arc_easy_local",
        "--include_path",
        str(tasks),
        "--batch_size",
        "8",
        "--output_path",
        str(out),
        "--log_samples",
    ]
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]["qadapt_arc_easy_local"]
    samples = pd.read_json(next(out.rglob("samples_qadapt_arc_easy_local_*.jsonl")), lines=True)
    samples["id"] = samples["doc"].map(lambda d: d["id"])
    return results, samples


def test_lm_eval_backend_scores_a_trained_adapter_as_qadapt_eval_mc_does(trained_cua, data_dir, tmp_path):
    n = 24
    tasks = _arc_task(tmp_path, data_dir, n)
    theirs, samples = _lm_eval(tmp_path, tasks, f"run={trained_cua},device=exact")
    ours = run(
        "eval mc",
        compose(
            [
                "task=mc",
                "task.mc.benchmarks=[arc_easy]",
                f"task.mc.arc_questions={n}",
                f"from_run={trained_cua}",
                f"results_dir={tmp_path / 'results'}",
                f"runs_dir={tmp_path / 'runs'}",
            ]
        ),
        ["(test)"],
    )
    assert ours["arc_easy_n"] == n == len(samples)
    assert theirs["acc,none"] == pytest.approx(ours["arc_easy_acc"], abs=1e-9)
    assert theirs["acc_norm,none"] == pytest.approx(ours["arc_easy_acc_norm"], abs=1e-9)
    per_question = pd.read_csv(Path(ours["run_dir"]) / "mc_predictions.csv").set_index("id")
    samples = samples.set_index("id").loc[per_question.index]
    assert (samples["acc"].astype(bool) == per_question["correct"].astype(bool)).all()
    assert (samples["acc_norm"].astype(bool) == per_question["correct_norm"].astype(bool)).all()
    # every choice's probability as qadapt's scorer gives it (6 decimals in mc_predictions.csv; other batches)
    for qid, resps in samples["filtered_resps"].items():
        lls = torch.tensor([float(r[0]) for r in resps], dtype=torch.float64)
        expected = json.loads(per_question.loc[qid, "probs"])
        assert torch.softmax(lls, 0).tolist() == pytest.approx(expected, abs=2e-5), qid  # float32 batches

    # run omitted: the base model, built in-process as lm-eval builds it; the trained run's scores differ from it
    from lm_eval.api.instance import Instance

    from qadapt import adapters
    from qadapt.integrations.harness import QadaptLM

    base = QadaptLM(device="exact", batch_size=4)
    assert adapters.structure(base.model) == {}
    first = samples.iloc[0]
    pairs = [(a["arg_0"], a["arg_1"]) for a in first["arguments"].values()]
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    base_ll = [ll for ll, _ in base.loglikelihood(requests, disable_tqdm=True)]
    trained_ll = [float(r[0]) for r in first["filtered_resps"]]
    assert max(abs(a - b) for a, b in zip(base_ll, trained_ll)) > 1e-4


# ---- export and merge ---------------------------------------------------------------------------------------------


def _fake_run(tmp_path: Path, name: str, *adapter: str) -> tuple[str, torch.nn.Module, object]:
    """A finished run directory holding ``adapter`` (on the real SmolLM2) with every adapter tensor moved off its
    identity start by a seeded N(0, 0.05^2) step, as training would: (run_dir, the qadapt model, its tokenizer)."""
    from omegaconf import OmegaConf

    from qadapt import adapters, devices, models, runs

    cfg = _cfg(tmp_path, *adapter)
    loaded = models.load(cfg.model)
    model = loaded.model
    adapters.apply(model, cfg.adapter, devices.get(cfg.device))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    run_dir = tmp_path / "runs" / name
    run_dir.mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / runs.CONFIG_FILE)
    runs.save_adapter(run_dir / runs.ADAPTER_FILE, model, cfg)
    return str(run_dir), model.eval(), loaded.tokenizer


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.fixture(scope="module")
def base_logits(smollm2_cfg, smollm2_path, text_ids) -> torch.Tensor:
    from qadapt.models import load

    return _logits(load(smollm2_cfg).model, text_ids)


@pytest.fixture(scope="module")
def text_ids(smollm2_cfg, wikitext_test) -> torch.Tensor:
    from transformers import AutoTokenizer

    from qadapt.models import _gguf_cache

    tokenizer = AutoTokenizer.from_pretrained(_gguf_cache(smollm2_cfg))
    return torch.tensor(tokenizer(wikitext_test[:400]).input_ids[:48]).unsqueeze(0)


EXPORTS = {
    # adapter overrides -> formats it exports to (the others are refused with the reason)
    "cua_input": (["adapter=cua", "adapter.layers=[-2,-1]", "adapter.modules=[v_proj,o_proj]"], ("peft", "merged")),
    "cua_output": (["adapter=cua", "adapter.layers=[-1]", "adapter.side=output"], ("merged",)),
    "rbs_order1": (
        ["adapter=rbs", "adapter.orders=[1]", "adapter.n=8", "adapter.parametrization=rbs", "adapter.modules=[v_proj]"],
        ("peft", "merged"),
    ),
    "lora": (["adapter=lora", "adapter.r=2", "adapter.layers=[-1]"], ("peft", "merged")),
    "blockdiag": (["adapter=blockdiag", "adapter.layers=[-1]"], ("merged",)),
    "norm": (["adapter=norm", "adapter.layers=[-1]"], ("merged",)),
    "oft": (["adapter=oft", "adapter.block_size=4", "adapter.layers=[-1]"], ("peft", "merged")),
    "boft": (
        ["adapter=boft", "adapter.block_size=8", "adapter.butterfly_factor=1", "adapter.modules=[v_proj]"],
        ("peft", "merged"),
    ),
    "rbs_order2": (["adapter=rbs", "adapter.orders=[1,2]", "adapter.n=8", "adapter.modules=[v_proj]"], ("merged",)),
    "full": (["adapter=full"], ("merged",)),
}


@pytest.mark.parametrize("name", list(EXPORTS))
def test_export_gives_the_qadapt_models_logits(name, smollm2_cfg, text_ids, base_logits, tmp_path):
    """qadapt export format=peft (loaded by PeftModel.from_pretrained on the plain base) and format=merged (opened by
    AutoModelForCausalLM.from_pretrained alone) give the qadapt model's logits to 1e-5; an adapter a format cannot
    hold is refused with the reason."""
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    from qadapt.errors import ConfigError
    from qadapt.integrations.export import FORMATS, export
    from qadapt.models import load

    overrides, formats = EXPORTS[name]
    run_dir, model, _ = _fake_run(tmp_path, name, *overrides)
    expected = _logits(model, text_ids)
    assert (expected - base_logits).abs().max() > 1e-3  # the adapter does something
    for fmt in FORMATS:
        out = tmp_path / f"{name}-{fmt}"
        cfg = _cfg(tmp_path, f"from_run={run_dir}")
        if fmt not in formats:
            with pytest.raises(ConfigError, match="use format=merged"):
                export(cfg, fmt, out)
            assert not out.exists() and not list(tmp_path.glob(f".{out.name}.*"))  # nothing half-written
            continue
        export(cfg, fmt, out)
        if fmt == "peft":
            loaded = PeftModel.from_pretrained(load(smollm2_cfg).model, str(out)).eval()
        else:
            loaded = AutoModelForCausalLM.from_pretrained(str(out)).eval()
            with safe_open(str(out / "model.safetensors"), framework="pt") as f:
                saved = set(f.keys())  # noqa: SIM118
            assert saved <= set(loaded.state_dict())  # no adapter tensor left for transformers to drop silently
        # equal to 1e-5 of the logits' scale: float32 rounding of another order of operations, nothing more
        assert (_logits(loaded, text_ids) - expected).abs().max() <= 1e-5 * expected.abs().max()
        assert json.loads((out / "qadapt_export.json").read_text())["from_run"] == run_dir


def test_export_refuses_an_adapter_that_replaces_blocks(smollm2_cfg, tmp_path):
    """A run whose adapter replaces blocks (here the classical FFN control of QFFN) is refused in both formats with
    the reason, and nothing is left half-written."""
    from qadapt.errors import ConfigError
    from qadapt.integrations.export import FORMATS, export

    run_dir, _, _ = _fake_run(tmp_path, "ffn_lowrank", "adapter=ffn_lowrank", "adapter.rank=4")
    for fmt in FORMATS:
        out = tmp_path / f"ffn_lowrank-{fmt}"
        with pytest.raises(ConfigError, match="replaces blocks of the model"):
            export(_cfg(tmp_path, f"from_run={run_dir}"), fmt, out)
        assert not out.exists() and not list(tmp_path.glob(f".{out.name}.*"))


def test_merged_evaluation_equals_the_unmerged_model_and_counts_the_same_circuits(smollm2_path, text_ids, tmp_path):
    """adapters.merged(model): CUA (exact device) and LoRA folded into the weights for the block, the same logits to
    1e-5, the same circuits counted by the exact device, and everything restored after."""
    from qadapt import adapters

    _, model, _ = _fake_run(tmp_path, "cua", "adapter=cua", "adapter.layers=[-2,-1]")
    device = next(m.device for _, m in adapters.base.adapter_modules(model))
    before = device.circuits_run
    plain = _logits(model, text_ids)
    per_pass = device.circuits_run - before
    assert per_pass == 2 * 48 * 144  # 2 sites x 48 tokens x 144 blocks of 4
    with adapters.merged(model) as count:
        assert count == 2
        folded = _logits(model, text_ids)
    assert device.circuits_run - before == 2 * per_pass
    assert (folded - plain).abs().max() <= 1e-5 * plain.abs().max()
    torch.testing.assert_close(_logits(model, text_ids), plain, rtol=0, atol=0)  # unmerged again: bit for bit

    _, lora, _ = _fake_run(tmp_path, "lora", "adapter=lora", "adapter.r=2", "adapter.layers=[-1]")
    plain, weight = _logits(lora, text_ids), lora.model.layers[-1].self_attn.q_proj.base_layer.weight.clone()
    with adapters.merged(lora) as count:
        assert count == 2  # q_proj and v_proj of the last layer, by peft's own merge
        assert (_logits(lora, text_ids) - plain).abs().max() <= 1e-5 * plain.abs().max()
    torch.testing.assert_close(lora.model.layers[-1].self_attn.q_proj.base_layer.weight, weight, rtol=0, atol=1e-6)


def test_lm_eval_with_a_missing_run_says_so_in_one_line(tmp_path):
    """``lm_eval --model qadapt --model_args run=<missing dir>``: one line naming the run, exit 1, no traceback (it
    was a QadaptError traceback through lm-eval's CLI)."""
    if not lm_eval_hook.pth_path().exists():
        pytest.fail(f"{lm_eval_hook.pth_path()} is missing: `make setup` writes it (qadapt lm-eval-hook install)")
    missing = tmp_path / "no-such-run"
    cmd = [str(Path(sys.executable).with_name("lm_eval")), "--model", "qadapt", "--model_args", f"run={missing}",
           "--tasks", "arc_easy", "--output_path", str(tmp_path / "out")]  # fmt: skip
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "error: --model_args:" in done.stderr and str(missing) in done.stderr
