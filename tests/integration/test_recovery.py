"""Compression recovery and multiple-choice reasoning (CUA paper, SmolLM2 study): the SVD compression, the
distillation loss, the MMLU / ARC loaders and the log-likelihood scorer, then the sweep's quick mode end to end.
(Split by kind: its unit tests are in tests/unit/test_recovery.py.)"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from qadapt.data import multiple_choice as mc
from qadapt.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_distillation_loss_is_zero_for_identical_teacher_and_student(smollm2):
    from qadapt.training.lm import kl_to_teacher

    model, tok = smollm2
    ids = tok(
        "The tower is 324 metres tall, about the same height as an 81-storey building.", return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert abs(kl_to_teacher(logits, model, ids).item()) < 1e-6
    # and it is not zero for another student: the test can fail
    assert kl_to_teacher(logits + torch.randn_like(logits), model, ids).item() > 1e-3


def test_loaders_parse_every_shared_mmlu_and_arc_file_with_the_documented_counts(data_dir):
    subjects = mc.mmlu_subjects(data_dir)
    assert len(subjects) == 57
    test, dev, val = (mc.load_mmlu(data_dir, s) for s in ("test", "dev", "val"))
    assert len(test) == 14042  # data README
    assert len(dev) == 5 * 57  # the 5 few-shot examples per subject
    assert len(val) == 1529  # not in the data README: what this copy holds (csv rows; some span several lines)
    assert {q.subject for q in test} == set(subjects)
    assert all(len(q.choices) == 4 and 0 <= q.answer < 4 for q in test + dev + val)
    counts = {
        ("arc_easy", "test"): 2376,
        ("arc_challenge", "test"): 1172,  # data README
        ("arc_easy", "train"): 2251,
        ("arc_easy", "dev"): 570,
        ("arc_challenge", "train"): 1119,
        ("arc_challenge", "dev"): 299,
    }
    for (bench, split), n in counts.items():
        items = mc.load_arc(data_dir, bench, split)
        assert len(items) == n, (bench, split)
        assert all(3 <= len(q.choices) <= 5 and 0 <= q.answer < len(q.choices) for q in items)


def test_prompts_follow_lm_eval_and_capped_selection_keeps_the_quoted_questions(data_dir):
    q = next(q for q in mc.load_mmlu(data_dir, "test", ["astronomy"]) if q.question.startswith("Which of the jovian"))
    assert (q.choices[q.answer], q.answer) == ("all of the above", 3)
    assert mc.context(q) == (
        "The following are questions (with answers) about astronomy.\n\n"
        "Question: Which of the jovian planets have rings?\nAnswer:"
    )
    assert mc.continuations(q) == [" Neptune", " Uranus", " Saturn", " all of the above"]
    assert (
        mc.context(q, fmt="letters").endswith("\nD. all of the above\nAnswer:")
        and mc.continuations(q, "letters")[3] == " D"
    )
    shots = mc.load_mmlu(data_dir, "dev", ["astronomy"])[:2]
    assert mc.context(q, shots).count("\nAnswer:") == 3
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {
            "benchmarks": ["mmlu", "arc_easy"],
            "format": "continuation",
            "subjects": ["astronomy", "college_biology"],
            "mmlu_shots": [0, 5],
            "mmlu_per_subject": [3, 1],
            "arc_questions": 7,
            "full": False,
        }
    )
    suites = {s.name: s for s in mc.suites(data_dir, cfg)}
    zero, five = suites["mmlu_0shot"], suites["mmlu_5shot"]
    for s in (zero, five):
        assert any(x.question.startswith("Gene flow between populations") for x in s.questions)
        assert any(x.question.startswith("Which of the jovian planets") for x in s.questions)
    assert {x.id for x in five.questions} <= {x.id for x in zero.questions}  # a smaller cap is a subset
    assert len(suites["arc_easy"].questions) == 7 and len(five.shots["astronomy"]) == 5
    with pytest.raises(ConfigError, match="valid choices: mmlu, arc_easy, arc_challenge"):
        mc.suites(data_dir, OmegaConf.merge(cfg, {"benchmarks": ["hellaswag"]}))
    with pytest.raises(ConfigError, match="unknown MMLU subject 'astrology'"):
        mc.suites(data_dir, OmegaConf.merge(cfg, {"subjects": ["astrology"]}))


def test_scorer_picks_the_right_answer_on_a_constructed_case(smollm2):
    from qadapt.eval.multiple_choice import accuracy, score

    model, tok = smollm2
    items = [
        mc.Question("toy", "toy", "a", "What is the capital city of France?", ("Banana", "Paris", "Seven"), 1),
        mc.Question("toy", "toy", "b", "How many legs does a spider have?", ("eight", "purple", "Tuesday"), 0),
    ]
    scored = score(model, tok, items)
    assert [s.choice for s in scored] == [1, 0]
    assert accuracy(scored)["acc"] == 1.0
    assert all(math.isclose(sum(s.probs), 1.0) for s in scored)


def test_batched_scorer_matches_plain_transformers_loglik_on_real_mmlu_items(smollm2, data_dir):
    from qadapt.eval.multiple_choice import encode_pair, score

    model, tok = smollm2
    subject = "college_biology"
    items = [q for q in mc.load_mmlu(data_dir, "test", [subject]) if q.question.startswith("Gene flow")]
    items += mc.load_mmlu(data_dir, "test", [subject])[:3] + mc.load_arc(data_dir, "arc_challenge")[:2]
    shots = {subject: mc.load_mmlu(data_dir, "dev", [subject])[:2]}
    scored = score(model, tok, items, shots, batch_tokens=600)  # several batches, left padding, 4- and 5-choice items
    for s in scored:
        ctx = mc.context(s.question, shots.get(s.question.subject, []))
        for i, answer in enumerate(mc.continuations(s.question)):
            c, a = encode_pair(tok, ctx, answer, [])
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=torch.tensor([c + a])).logits[0].double(), -1)
            plain = sum(logp[len(c) - 1 + j, t].item() for j, t in enumerate(a))
            assert abs(plain - s.loglik[i]) < 2e-3, (s.question.id, i, plain, s.loglik[i])


def _tiny_recovery_spec(tmp_path: Path) -> Path:
    """configs/study/compression_recovery.yaml on the last two layers, CUA and OFT, one rate, a 1-2 step curve,
    seeds 0 and 1,
    two MMLU subjects zero-shot (the quoted questions in) and two ARC questions per set."""
    data = yaml.safe_load((ROOT / "configs" / "study" / "compression_recovery.yaml").read_text())
    data["shared"] += [
        "task.max_bytes=4096",
        "task.max_length=256",  # 4 windows: an interval needs at least 2
        "task.stride=256",
        "task.batch_size=4",
        "task.compression.calibration_tokens=2048",
        "task.compression.layers=[-2,-1]",
        "task.mc.subjects=[astronomy,college_biology]",
        "task.mc.mmlu_shots=[0]",
        "task.mc.mmlu_per_subject=[2]",
        "task.mc.arc_questions=2",
    ]
    data["training"] = ["train.max_steps=2", "train.batch_size=2", "train.seq_len=64"]
    data["arms"].pop("lora")  # LoRA on compressed projections: test_peft_adapters_on_compressed_projections_...
    for arm in data["arms"].values():
        arm["overrides"] = [o for o in arm["overrides"] if not o.startswith("adapter.layers")] + [
            "adapter.layers=[-2,-1]"
        ]
    data["select"]["grid"] = {"default": {"train.lr": [5.0e-3]}}
    data["select"].pop("widen")
    data["select"]["curve"] = {"key": "train.max_steps", "values": [1, 2], "flat": 2.0}
    data["final"]["seeds"] = [0, 1]
    path = tmp_path / "compression_recovery.yaml"  # the hook writes question_diff.md beside the table
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_tiny_recovery_study_and_eval_mc_from_run_reproduce_it(tmp_path, data_dir):
    """The study on the real SmolLM2-135M: selection, the budget's curve, OFT taking CUA's choice, each final run
    scoring base, compressed and recovered models on the same windows; the table's recovery is the estimator's on
    those windows; `qadapt eval mc from_run=` reproduces a run's answers; another machine trains nothing."""
    from typer.testing import CliRunner

    from qadapt.cli import app
    from qadapt.results import estimate as est

    path = _tiny_recovery_spec(tmp_path)
    results = tmp_path / "results"
    where = [f"runs_dir={tmp_path / 'runs'}", f"results_dir={results}"]
    done = CliRunner().invoke(app, ["study", "run", str(path), "seeds=0", *where])
    assert done.exit_code == 0, done.output[-3000:]
    cells = pd.read_csv(results / "compression_recovery_cells.csv")
    cells = cells[cells["done"].fillna(False).astype(bool)]
    assert sorted(cells[cells["phase"] == "curve"]["arm"]) == ["cua", "cua"]  # OFT takes CUA's curve's budget
    test = cells[cells["phase"] == "test"].set_index("arm")
    assert list(test.index) == ["cua", "oft"] and set(test["seed"]) == {0}
    assert test.loc["oft", "values"] == test.loc["cua", "values"]  # the same rate and budget: chosen_from
    # the adapters on the last two layers (14 sites; 224,640 on all 210): CUA = OFT b=4 exactly
    assert list(test["trainable_params"]) == [14976, 14976]
    assert (test["compressed_perplexity"] > test["base_perplexity"]).all()
    units = pd.read_csv(results / "compression_recovery_units.csv")
    cua = units[units["arm"] == "cua"].sort_values("window")
    observed, _ = est.recovery(*(cua[[c]].to_numpy().T for c in ("nll", "base_nll", "compressed_nll")),
                               cua["tokens"].to_numpy())  # fmt: skip
    table = (results / "compression_recovery.md").read_text()
    assert "| CUA q=2 | 14,976 | train.lr=0.005, train.max_steps=" in table and f"| {observed:.2f} [" in table
    assert "OFT b=4 (seed 0 only; one run" in table and "## The budget's learning curve" in table
    diff = (results / "question_diff.md").read_text()
    assert "Which of the jovian planets have rings?" in diff and "Gene flow between populations results in" in diff
    assert "| base | compressed 0.8 |" in diff

    # the trained CUA run, evaluated again through `qadapt eval mc from_run=`: compression rebuilt, same answers
    run = Path(test.loc["cua", "run_dir"])
    row = json.loads((run / "metrics.json").read_text())
    cfg = json.loads(row["config"])
    mc_over = [
        f"task.mc.subjects=[{','.join(cfg['task']['mc']['subjects'])}]",
        "task.mc.mmlu_shots=[0]",
        "task.mc.mmlu_per_subject=[2]",
        "task.mc.arc_questions=2",
    ]
    done = CliRunner().invoke(app, ["eval", "mc", f"from_run={run}", *mc_over, *where])  # a new invocation: no memo
    assert done.exit_code == 0, done.output[-3000:]
    again = pd.read_csv(results / "runs.csv").iloc[-1]
    for suite in ("mmlu_0shot", "arc_easy", "arc_challenge"):  # zero-shot MMLU only
        assert again[f"{suite}_acc"] == pytest.approx(row[f"{suite}_acc"])
    first = pd.read_csv(run / "mc_adapted.csv")
    second = pd.read_csv(Path(again["run_dir"]) / "mc_predictions.csv")
    assert (first["choice"].values == second["choice"].values).all()
    assert max(abs(a - b) for a, b in zip(first["prob_answer"], second["prob_answer"])) < 1e-4

    # another machine: the run directories gone, every cell is reused from results/ (rows, per-window scores,
    # per-question answers) and the same tables render without training anything
    rows = len(pd.read_csv(results / "runs.csv"))
    shutil.rmtree(tmp_path / "runs")
    done = CliRunner().invoke(app, ["study", "run", str(path), "seeds=0", *where])
    assert done.exit_code == 0, done.output[-3000:]
    assert len(pd.read_csv(results / "runs.csv")) == rows
    assert (results / "compression_recovery.md").read_text().split("Commits:")[1] == table.split("Commits:")[1]
    assert (results / "question_diff.md").read_text() == diff
