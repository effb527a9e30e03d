"""GLUE: every shared file parses to the row counts of ../shared/data/README.md; metrics on known inputs;
one real (tiny) fine-tuning run of every method through the pipeline on all-MiniLM-L6-v2."""

import math

import numpy as np
import pandas as pd
import pytest
from helpers.scripts import load_script

from qadapt.data.glue import QNLI_HELDOUT, TASKS, load_glue
from qadapt.errors import ConfigError
from qadapt.eval.metrics import score

# (task, split) -> rows, from the data README
ROWS = {
    ("sst2", "train"): 67_349,
    ("sst2", "dev"): 872,
    ("cola", "train"): 8_551,
    ("cola", "dev"): 527,
    ("mrpc", "train"): 3_668,
    ("mrpc", "dev"): 408,
    ("rte", "train"): 2_490,
    ("rte", "dev"): 277,
    ("stsb", "train"): 5_749,
    ("stsb", "dev"): 1_500,
}


@pytest.mark.parametrize("task,split", sorted(ROWS))
def test_every_shared_glue_file_parses(data_dir, task, split):
    ex = load_glue(task, split, data_dir)
    assert len(ex.labels) == len(ex.text_a) == ROWS[(task, split)]
    assert (ex.text_b is None) == (TASKS[task].hub_fields[1] is None)
    assert all(ex.text_a) and ex.source.startswith("local:")
    if task == "stsb":
        assert min(ex.labels) == 0.0 and max(ex.labels) == 5.0
    else:
        assert set(ex.labels) == {0.0, 1.0}
    if (task, split) == ("mrpc", "dev"):  # the BOM of the header and the quotes inside sentences survive parsing
        assert ex.text_b[0].startswith('"The foodservice pie business')


def test_qnli_dev_is_split_into_a_fixed_holdout(data_dir):
    train, dev = load_glue("qnli", "train", data_dir), load_glue("qnli", "dev", data_dir)
    assert len(dev.labels) == QNLI_HELDOUT and len(train.labels) + len(dev.labels) == 5_463
    assert not set(zip(train.text_a, train.text_b)) & set(zip(dev.text_a, dev.text_b))
    assert load_glue("qnli", "dev", data_dir).text_a == dev.text_a  # fixed, not run-seeded
    assert "qnli-dev-holdout" in dev.source


def test_unknown_task_and_split_list_choices(data_dir):
    with pytest.raises(ConfigError, match="valid choices: sst2, cola, mrpc, rte, stsb, qnli"):
        load_glue("mnli", "train", data_dir)
    with pytest.raises(ConfigError, match="valid choices: train, dev"):
        load_glue("rte", "test", data_dir)


def test_metrics_on_known_inputs():
    assert score("accuracy", [1, 0, 1, 1], [1, 0, 0, 1])["score"] == 0.75
    # Matthews: TP=2 TN=1 FP=1 FN=0 -> (2*1 - 1*0) / sqrt(3*2*2*1) = 2 / sqrt(12)
    assert score("matthews", [1, 0, 1, 1], [1, 0, 0, 1])["score"] == pytest.approx(2 / math.sqrt(12))
    assert score("matthews", [1, 1, 1, 1], [1, 0, 0, 1])["score"] == 0.0  # constant predictions
    out = score("pearson_spearman", [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 8.0])
    assert out["spearman"] == pytest.approx(1.0)
    pearson = 11 / math.sqrt(5 * 29)  # centred: x (-1.5 -.5 .5 1.5), y (-2.5 -1.5 -.5 4.5)
    assert out["pearson"] == pytest.approx(pearson, abs=1e-9)
    assert out["score"] == pytest.approx((1 + pearson) / 2, abs=1e-9)
    mrpc = score("accuracy_f1", [1, 0, 1, 1], [1, 0, 0, 1])
    assert mrpc == {"score": 0.75, "f1": pytest.approx(0.8)}  # precision 2/3, recall 1
    with pytest.raises(ConfigError, match="valid choices"):
        score("f1", [1], [1])


@pytest.mark.parametrize("metric", ["accuracy", "accuracy_f1", "matthews", "pearson_spearman"])
def test_resampled_scores_equal_the_score_of_the_drawn_examples(metric):
    import numpy as np

    from qadapt.eval.metrics import resampled_scores
    from qadapt.results.stats import two_level_resamples

    rng = np.random.default_rng(0)
    n = 60
    if metric == "pearson_spearman":
        labels = rng.uniform(0, 5, n)
        preds = np.round(labels + rng.normal(0, 1.0, n), 1)  # ties among the originals too
    else:
        labels = rng.integers(0, 2, n).astype(float)
        preds = np.where(rng.uniform(size=n) < 0.8, labels, 1 - labels)
    _, counts = two_level_resamples(1, n, n_resamples=20, seed=1)
    got = resampled_scores(metric, preds, labels, counts)
    whole = resampled_scores(metric, preds, labels, np.ones((1, n)))[0]
    assert whole == pytest.approx(score(metric, preds.tolist(), labels.tolist())["score"], abs=1e-12)
    for b in range(20):
        drawn = np.repeat(np.arange(n), counts[b])
        expected = score(metric, preds[drawn].tolist(), labels[drawn].tolist())
        assert got[b] == pytest.approx(expected["score"], abs=1e-9)


def test_glue_selection_slice_is_fixed_and_never_trained_on():
    from qadapt.data.glue import glue_parts

    train, valid = glue_parts(1000, 640, 500)
    assert len(train) == 500 and len(valid) == 500  # max_train is capped by what the slice leaves
    train, valid = glue_parts(5000, 640, 500)
    assert len(train) == 640 and len(valid) == 500 and not set(train) & set(valid)
    assert glue_parts(5000, None, 500)[0][:640] == train  # the same first examples whatever the cap
    assert glue_parts(5000, 640, 500) == (train, valid)  # fixed: no dependence on the run seed
    with pytest.raises(ConfigError, match="valid_examples"):
        glue_parts(100, None, 99)


@pytest.mark.integration
def test_quick_glue_sweep_trains_every_method_on_real_minilm(tmp_path, data_dir):
    """scripts/reproduce_quic.py glue --quick on RTE, one seed: every method runs through the one pipeline on the real
    all-MiniLM-L6-v2, the table has every row, and the parameter counts follow the documented formulas."""
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "tables"
    cmd = [
        sys.executable,
        str(root / "scripts" / "reproduce_quic.py"),
        "glue",
        "--quick",
        "--tasks",
        "rte",
        "--seeds",
        "0",
        "--jobs",
        "1",
        "--out-dir",
        str(out),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--results-dir",
        str(tmp_path / "results"),
    ]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(out / "glue.csv").set_index("method")
    params = table["adapter_params"].to_dict()
    sites, d = 12, 384  # query and value in 6 layers, width 384
    assert params["QuIC C1+C2 (ours)"] == sites * (d // 36) * 28  # n = 8: C(8,1) + C(8,2) = 36 per block, 28 angles
    assert params["LoRA r=8"] == sites * 8 * (d + d)
    assert params["OFT b=32"] == sites * (d // 32) * (32 * 31 // 2)
    assert params["BOFT b=8 m=1"] == sites * ((d // 8) * 64 + d)
    assert params["head only"] == 0 and params["full fine-tuning"] > 22_000_000
    matched = [m for m in params if "(matched)" in m]
    assert len(matched) == 2  # the matched LoRA and OFT are the nearest sizes to QuIC's count
    assert abs(params[matched[0]] - params["QuIC C1+C2 (ours)"]) <= abs(
        sites * 2 * (d + d) - params["QuIC C1+C2 (ours)"]
    )
    assert table["rte_mean"].between(0, 100).all()
    text = (out / "glue.md").read_text()
    assert "QuIC C1+C2 (ours)" in text and "Paper (DeBERTaV3-base" in text and (out / "glue.png").stat().st_size > 1000


def test_cli_classification_input_errors_exit_2_with_the_fix():
    from typer.testing import CliRunner

    from qadapt.cli import app

    runner = CliRunner()
    wrong_model = runner.invoke(app, ["train", "task=glue", "train=classify"])  # default model is a causal LM
    assert wrong_model.exit_code == 2 and "valid choices: minilm_l6, deberta_v3_base" in " ".join(
        wrong_model.output.split()
    )
    no_train = runner.invoke(app, ["train", "task=glue", "model=minilm_l6"])
    assert no_train.exit_code == 2 and "train=classify" in no_train.output
    bad_task = runner.invoke(app, ["train", "task=glue", "model=minilm_l6", "train=classify", "task.subtask=mnli"])
    assert bad_task.exit_code == 2 and "sst2, cola, mrpc, rte, stsb, qnli" in " ".join(bad_task.output.split())


def _reproduce_quic():
    return load_script("reproduce_quic")


@pytest.mark.parametrize(
    "suite,model,task,epochs", [("glue", "deberta_v3_base", "rte", 10), ("vtab", "dinov2_large", "digits", 100)]
)
def test_paper_scale_is_one_option_away_and_fails_at_once_without_the_hub(suite, model, task, epochs, monkeypatch):
    """`--scale paper` (make reproduce-<suite> SCALE=paper): the QuIC paper's backbone and budget, every method's
    overrides composing and validating; offline, the first cell stops at once with what to do."""
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from qadapt.cli import app
    from qadapt.config import compose

    quic = _reproduce_quic()
    args = SimpleNamespace(suite=suite, scale="paper", quick=False, epochs=None, runs_dir="runs", results_dir="results")
    common = quic.budget(args, task)
    for label, over in quic.methods(suite, 1, 2).items():
        for lr in quic.grid(args, over):
            cfg = compose([*common, *over, *quic.rate(lr), f"task.subtask={task}", "task.split=valid"])
            assert cfg.model.name == model and int(cfg.train.epochs) == epochs, label
    assert quic.grid(args, ["adapter=rbs"]) == (2e-4, 4e-4, 8e-4)  # the paper's range (NOTES.md)
    # priced by qadapt plan without the weights: the adapters inject into the paper's backbone (its own targets)
    from qadapt.classifier_plan import plan_classifier

    rows = quic.methods(suite, 1, 2)
    for label in ("QuIC C1+C2 (ours)",) if suite == "glue" else ("BOFT b=8 m=1",):  # one each: seconds per plan
        priced = plan_classifier(compose([*common, *rows[label], f"task.subtask={task}"]))
        steps = epochs * -(-(1990 if suite == "glue" else 800) // (32 if suite == "glue" else 64))
        assert priced.sites == (24 if suite == "glue" else 48) and priced.train_steps == steps, label
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    done = CliRunner().invoke(app, ["train", *common, "adapter=rbs", f"task.subtask={task}", "runs_dir=/nonexistent"])
    # either the pre-check (not cached, hub unreachable) or the loader's own failure; both name the weights and
    # the override that provides them, and neither is a traceback
    said = " ".join(done.output.split())
    hub_id = compose([*common, "adapter=rbs", f"task.subtask={task}"]).model.hub_id
    assert done.exit_code != 0 and hub_id in said and "model.path=" in said and "Traceback" not in said
    # the CI machine's path: HF_HUB_OFFLINE unset when huggingface_hub was imported, the hub unreachable
    import huggingface_hub.constants

    from qadapt import hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: False)
    done = CliRunner().invoke(app, ["train", *common, "adapter=rbs", f"task.subtask={task}", "runs_dir=/nonexistent"])
    said = " ".join(done.output.split())
    assert done.exit_code != 0 and "not in the local Hugging Face cache" in said and "model.path=" in said


def test_a_rate_chosen_at_an_end_of_its_grid_is_flagged():
    """The selection table names a rate chosen at the grid's highest or lowest value (the grid may not bracket the
    best rate); a rate inside the grid, a one-value grid and head-only's missing rate are not flagged."""
    grid_edge = _reproduce_quic().grid_edge
    grid = [1e-3, 3e-3, 1e-2]
    assert grid_edge(grid, 1e-2) == "highest"
    assert grid_edge(list(reversed(grid)), 1e-3) == "lowest"
    assert grid_edge(grid, 3e-3) is None
    assert grid_edge([1e-3], 1e-3) is None
    assert grid_edge([float("nan")], float("nan")) is None


def test_p_values_read_as_text():
    module = _reproduce_quic()
    assert module.p_text(0.123) == "p = 0.123"
    assert module.p_text(0.0) == f"p < {2 / module.RESAMPLES:g}"


def test_the_grid_widens_one_ladder_step_beyond_an_end_choice_and_no_further_than_allowed():
    """A best rate at the top of the rates tried asks for the next rate up on the 1-3 ladder (1e-2 -> 3e-2; at the
    bottom, 1e-3 -> 3e-4; 3e-5 -> 1e-5), a bracketed one for nothing, and a side already widened ``steps`` times for
    nothing; ties in the selection score go to the lowest rate."""
    quic = _reproduce_quic()
    base = (1e-3, 3e-3, 1e-2)
    assert quic.ladder_step(1e-2, up=True) == 3e-2 and quic.ladder_step(3e-2, up=True) == 1e-1
    assert quic.ladder_step(1e-3, up=False) == 3e-4 and quic.ladder_step(3e-5, up=False) == 1e-5
    assert quic.ladder_step(3e-4, up=True) == 1e-3 and quic.ladder_step(8e-4, up=True) == 1e-3
    assert quic.widened(list(base), 1e-2, base, steps=2) == 3e-2
    assert quic.widened(list(base), 1e-3, base, steps=2) == 3e-4
    assert quic.widened(list(base), 3e-3, base, steps=2) is None
    assert quic.widened([*base, 3e-2], 3e-2, base, steps=2) == 1e-1
    assert quic.widened([*base, 3e-2, 1e-1], 1e-1, base, steps=2) is None
    assert quic.widened([*base, 3e-2], 3e-2, base, steps=0) is None
    assert quic.widened([None], None, (None,), steps=2) is None
    scores = pd.DataFrame({"lr": [1e-2, 1e-3, 3e-3], "score": [0.7, 0.7, 0.6]})
    assert quic.best_rate(scores) == 1e-3
    assert quic.best_rate(pd.DataFrame({"lr": [float("nan")], "score": [0.5]})) is None


def _ablation_frames(noise_free: float, seeds=(0, 1, 2), n=200):
    """Final rows, predictions and selection rows of a two-variant STS-B ablation: C1+C2 predicts the label with
    noise 0.5, "C1+C2, no orthogonality" with noise ``noise_free``."""
    rng = np.random.default_rng(0)
    labels = rng.uniform(0, 5, n)
    final, preds, select = [], [], []
    for method, noise in (("C1+C2", 0.5), ("C1+C2, no orthogonality", noise_free)):
        for seed in seeds:
            p = labels + noise * rng.standard_normal(n)
            final.append(
                {
                    "method": method,
                    "task": "stsb",
                    "seed": seed,
                    "lr": 3e-3,
                    "adapter_params": 3360,
                    "metric": "pearson_spearman",
                    "metric_pearson": 0.9,
                    "metric_spearman": 0.9,
                }
            )
            preds += [
                {"method": method, "task": "stsb", "seed": seed, "example": i, "label": y, "prediction": q}
                for i, (y, q) in enumerate(zip(labels, p))
            ]
        select += [{"method": method, "lr": lr, "score": sc} for lr, sc in ((1e-3, 0.5), (3e-3, 0.7), (1e-2, 0.6))]
    return pd.DataFrame(final), pd.DataFrame(preds), pd.DataFrame(select)


def test_ablation_reports_intervals_and_a_paired_test_against_c1_c2():
    """The STS-B ablation says a variant scores below C1+C2 only when the paired interval excludes zero: a variant
    with four times the prediction noise is reported below with a small p; the same noise is indistinguishable."""
    quic = _reproduce_quic()
    worse = "\n".join(quic.ablation_lines(*_ablation_frames(2.0)))
    assert "C1+C2, no orthogonality scores below C1+C2 by" in worse and "p < 0.001" in worse
    assert "**0.003: 70.0**" in worse  # the chosen rate and every validation score are in the table
    same = "\n".join(quic.ablation_lines(*_ablation_frames(0.5)))
    assert "C1+C2, no orthogonality is indistinguishable from C1+C2 at this budget" in same


def test_reported_rows_trained_at_a_rate_the_selection_no_longer_chooses_are_named():
    """After a grid widens, a final row trained at the old choice is named until the final phase runs again; head
    only (no rate) and rows at the chosen rate are not."""
    stale_finals = _reproduce_quic().stale_finals
    final = pd.DataFrame(
        {
            "method": ["QuIC", "QuIC", "LoRA", "LoRA", "head only"],
            "task": ["mrpc"] * 5,
            "seed": [0, 1, 0, 2, 0],
            "lr": [1e-2, 1e-2, 3e-3, 1e-3, np.nan],
        }
    )
    chosen = {("QuIC", "mrpc"): 3e-2, ("LoRA", "mrpc"): 3.0000000000000003e-3, ("head only", "mrpc"): None}
    assert stale_finals(final, chosen) == [
        "QuIC on mrpc (trained at 0.01, seeds 0, 1; chosen 0.03)",
        "LoRA on mrpc (trained at 0.001, seed 2; chosen 0.003)",
    ]


def test_per_task_differences_detect_a_shift_on_one_task_only():
    """Per-task paired differences on generated bootstrap samples: a method 5 points above QuIC on one task (same
    draws, small noise) is reported with an interval above zero there and an interval spanning zero on the other
    task, where it equals QuIC up to noise; a task out of the mean is starred."""
    quic = _reproduce_quic()
    rng = np.random.default_rng(0)
    ref, other = quic.REFERENCE, "LoRA r=1 (matched)"
    shared = {t: rng.normal(70, 2, 2000) for t in ("mrpc", "rte")}
    samples = {
        (ref, "mrpc"): shared["mrpc"],
        (ref, "rte"): shared["rte"],
        (other, "mrpc"): shared["mrpc"] + 5 + rng.normal(0, 0.5, 2000),
        (other, "rte"): shared["rte"] + rng.normal(0, 1, 2000),
    }
    observed = {k: float(v.mean()) for k, v in samples.items()}
    lines = quic.per_task_differences(observed, samples, [ref, other], ["mrpc", "rte"], counted=["mrpc"])
    assert lines[3] == "| method | mrpc | rte * |"
    mrpc, rte = lines[5].split(" | ")[1:3]
    low, high = (float(x) for x in mrpc.split("[")[1].split("]")[0].split(", "))
    assert 3 < low < 5 < high < 7 and "p < 0.001" in mrpc
    low, high = (float(x) for x in rte.split("[")[1].split("]")[0].split(", "))
    assert low < 0 < high


def test_saved_predictions_of_a_run_shared_by_two_cells_stay_one_per_example(tmp_path):
    """QuIC C1+C2 fills a main cell and the ablation's reference cell with one run. When its run directory is gone
    (a fresh checkout), its predictions come from the file's earlier version, which holds them once per cell; saving
    again, as every phase does, keeps one prediction per example and cell instead of doubling them each time."""
    from types import SimpleNamespace

    quic = _reproduce_quic()
    run_dir = str(tmp_path / "runs" / "gone")  # never created
    cells = pd.DataFrame(
        {
            "table": ["main", "ablation"],
            "method": ["QuIC C1+C2 (ours)", "C1+C2"],
            "task": ["stsb", "stsb"],
            "seed": [0, 0],
            "phase": ["final", "final"],
            "run_dir": [run_dir, run_dir],
        }
    )
    one_run = pd.DataFrame({"example": range(5), "label": np.linspace(0, 5, 5), "prediction": np.linspace(1, 4, 5)})
    earlier = pd.concat([one_run.assign(**row) for row in cells.drop(columns="phase").to_dict("records")])
    path = tmp_path / "glue_predictions.csv"
    earlier.to_csv(path, index=False)
    args = SimpleNamespace(out_dir=str(tmp_path), suite="glue", results_dir=str(tmp_path))
    for _ in range(3):
        quic.save_predictions(cells, args)
    saved = pd.read_csv(path)
    assert saved.groupby(["table", "method"]).size().to_dict() == {
        ("ablation", "C1+C2"): 5,
        ("main", "QuIC C1+C2 (ours)"): 5,
    }
    for _, g in saved.groupby("table"):
        assert g.sort_values("example")["prediction"].tolist() == one_run["prediction"].tolist()


def test_a_task_stopped_between_seeds_stays_out_of_the_table_until_its_phase_completes():
    """A final phase interrupted after seed 0 of a task keeps its runs; the table covers only the tasks with every
    method at every seed, in the suite's order, so no mean mixes one-seed and three-seed tasks."""
    complete_tasks = _reproduce_quic().complete_tasks
    rows = [(t, m, s) for t in ("sst2", "mrpc") for m in ("QuIC", "LoRA") for s in (0, 1, 2)]
    rows += [("qnli", m, 0) for m in ("QuIC", "LoRA")] + [("cola", "QuIC", s) for s in (0, 1, 2)]
    final = pd.DataFrame(rows, columns=["task", "method", "seed"])
    assert complete_tasks(final, ["cola", "sst2", "qnli", "mrpc", "rte"]) == ["sst2", "mrpc"]
    assert complete_tasks(final[final["task"] == "qnli"], ["qnli"]) == ["qnli"]  # one seed everywhere is complete
