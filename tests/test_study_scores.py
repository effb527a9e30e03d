"""Classifier studies (``final.statistic: score``): configs/study/glue.yaml, vtab.yaml, glue_ablation.yaml and their
paper-scale variants; the selection rule (1-3 ladder, ties to the lower rate), the per-task and mean estimates, the
bars, collapsed runs, and a tiny real study of every arm on all-MiniLM-L6-v2 and EfficientNet-Lite0."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from qadapt.errors import ConfigError
from qadapt.results import estimate as est
from qadapt.studies import spec as spec_module
from qadapt.studies.engine import best_point
from qadapt.studies.spec import Study, Widen

ROOT = Path(__file__).resolve().parents[1]


def test_the_ladder_widens_one_rung_at_a_time_and_ties_go_to_the_lower_rate():
    ladder = Widen(ladder=[1, 3], max_steps=2)
    assert ladder.step(1e-2, up=True) == 3e-2 and ladder.step(3e-2, up=True) == 1e-1
    assert ladder.step(1e-3, up=False) == 3e-4 and ladder.step(3e-5, up=False) == 1e-5
    assert ladder.step(3e-4, up=True) == 1e-3 and ladder.step(8e-4, up=True) == 1e-3
    assert Widen(factor=3.0, max_steps=1).step(2e-2, up=True) == 6e-2
    for bad in ({"max_steps": 1}, {"factor": 3.0, "ladder": [1, 3], "max_steps": 1}, {"ladder": [0.5], "max_steps": 1}):
        with pytest.raises(ValueError):
            Widen(**bad)
    tried = [({"train.lr": 1e-2}, 0.7), ({"train.lr": 1e-3}, 0.7), ({"train.lr": 3e-3}, 0.6)]
    assert best_point(tried, "max") == {"train.lr": 1e-3}
    assert best_point([({"train.lr": 1e-3}, float("nan")), ({"train.lr": 3e-3}, 0.1)], "max") == {"train.lr": 3e-3}
    assert best_point([({}, 0.5)], "max") == {}  # a fixed arm (head only): its one cell


def _spec(**changes) -> dict:
    data = {
        "name": "suite",
        "title": "t",
        "shared": ["model=minilm_l6", "task=glue", "train=classify"],
        "axis": {"key": "task.subtask", "name": "task", "values": ["mrpc", "stsb"]},
        "arms": {
            "quic": {"label": "QuIC", "overrides": ["adapter=rbs"]},
            "lora": {"label": "LoRA", "overrides": ["adapter=lora"]},
            "head": {"label": "head only", "overrides": ["adapter=none"], "fixed": True},
        },
        "reference": "quic",
        "select": {
            "split": "valid",
            "grid": {"default": {"train.lr": [1e-3, 3e-3]}},
            "metric": "score",
            "direction": "max",
        },  # fmt: skip
        "final": {
            "seeds": [0, 1, 2],
            "split": "test",
            "statistic": "score",
            "unit": "examples",
            "mean": {"bars": {"mrpc": 60}, "judges": ["lora"]},
        },  # fmt: skip
    }
    data.update(changes)
    return data


FINAL = {"seeds": [0, 1], "split": "test", "unit": "examples", "statistic": "score"}


@pytest.mark.parametrize(
    "change,said",
    [
        ({"final": {"seeds": [0, 1], "split": "test", "statistic": "score"}}, "final.unit"),
        ({"final": {**FINAL, "mean": {"bars": {"qnli": 70}, "judges": ["lora"]}}}, "final.mean.bars: 'qnli'"),
        ({"final": {**FINAL, "mean": {"bars": {"mrpc": 70}, "judges": ["full"]}}}, "final.mean.judges"),
        ({"axis": {"key": "task.subtask", "name": "task", "values": ["mrpc"], "overrides": {"rte": []}}}, "'rte'"),
    ],
)
def test_a_bad_score_spec_names_its_key(tmp_path, change, said):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_spec(**change)))
    with pytest.raises(ConfigError, match=said.replace("(", r"\(").replace(".", r"\.")):
        spec_module.load(str(path))


def _write_study(tmp_path: Path, shift: float = 5.0, collapse: bool = True) -> Study:
    """A 2-task, 3-arm, 3-seed score study's cells and units (no run): MRPC accuracy where LoRA is ``shift`` points
    above QuIC, STS-B where both predict with the same noise; head only's seed 1 on MRPC predicts one class."""
    study = Study.model_validate(_spec())
    rng = np.random.default_rng(0)
    cfg = {"train": {"batch_size": 8, "weight_decay": 0.01, "warmup_ratio": 0.06, "head_lr": 0.01, "epochs": 3},
           "task": {"max_length": 128}}  # fmt: skip
    n = 400
    gold = {"mrpc": rng.integers(0, 2, n).astype(float), "stsb": rng.uniform(0, 5, n)}
    cells, units = [], []
    for arm, a in study.arms.items():
        task = a.at
        sel_scores = {"lora": [0.74, 0.80], "quic": [0.70, 0.70], "head": [0.6]}[a.root]
        points = [{}] if a.fixed else [{"train.lr": 1e-3}, {"train.lr": 3e-3}]
        for point, sc in zip(points, sel_scores):
            cells.append({"arm": arm, "phase": "select", "seed": 0, "values": json.dumps(point), "done": True,
                          "score": sc, "metric": "accuracy" if task == "mrpc" else "pearson_spearman",
                          "eval_examples": 400, "run_id": f"{arm}-sel-{point}", "git_commit": "abc", "machine": "m",
                          "threads": 1})  # fmt: skip
        chosen = {} if a.fixed else {"train.lr": 3e-3 if a.root == "lora" else 1e-3}
        for seed in (0, 1, 2):
            y = gold[task]
            if task == "mrpc":
                p_right = {"quic": 0.75, "lora": 0.75 + shift / 100, "head": 0.65}[a.root]
                right = rng.random(n) < p_right
                pred = np.where(right, y, 1 - y)
                if collapse and a.root == "head" and seed == 1:
                    pred = np.zeros(n)
                score = float((pred == y).mean())
                metric = "accuracy"
            else:
                pred = y + rng.normal(0, 1.0, n)
                score = float(np.corrcoef(pred, y)[0, 1])
                metric = "pearson_spearman"
            run_id = f"{arm}-{seed}"
            cells.append({"arm": arm, "phase": "test", "seed": seed, "values": json.dumps(chosen), "done": True,
                          "score": score, "metric": metric, "adapter_params": {"quic": 100, "lora": 300, "head": 0}[
                              a.root], "head_params": 2, "eval_examples": n, "train_examples": 1000, "run_id": run_id,
                          "git_commit": "abc", "machine": "m", "threads": 1, "eval_source": f"local:{task}",
                          "config": json.dumps(cfg)})  # fmt: skip
            units.append(pd.DataFrame({"arm": arm, "seed": seed, "run_id": run_id, "example": range(n), "label": y,
                                       "prediction": pred}))  # fmt: skip
    pd.DataFrame(cells).to_csv(tmp_path / "suite_cells.csv", index=False)
    pd.concat(units).to_csv(tmp_path / "suite_units.csv", index=False)
    return study


def test_the_score_table_is_the_estimators_with_bars_per_task_tests_and_collapses_named(tmp_path):
    from qadapt.studies import scores
    from qadapt.studies.render import load_cells, render

    study = _write_study(tmp_path)
    text = render(study, tmp_path, "qadapt study run suite").read_text()
    cells, units = load_cells(study, tmp_path)
    _, mrpc, metric = scores.group_estimates(study, cells, units, "mrpc")
    _, stsb, _ = scores.group_estimates(study, cells, units, "stsb")
    assert metric == "accuracy"
    # each task's figure is the metric recomputed from the predictions, mean over seeds (x100)
    test = cells[cells["phase"] == "test"]
    for arm in ("quic", "lora", "head"):
        assert mrpc.arms[arm].estimate == pytest.approx(100 * test[test["arm"] == f"{arm}_taskmrpc"]["score"].mean())
    # a correlation's interval comes from its jackknife pseudo-values: recomputed here by leaving each example out
    u = units[(units["arm"] == "quic_taskstsb") & (units["seed"] == 0)].sort_values("example")
    full, values = scores.per_example("pearson_spearman", u["prediction"].to_numpy(), u["label"].to_numpy())
    keep = np.arange(len(u)) != 7
    loo = scores.per_example("pearson_spearman", u["prediction"].to_numpy()[keep], u["label"].to_numpy()[keep])[0]
    assert values[7] == pytest.approx(len(u) * full - (len(u) - 1) * loo, rel=1e-6)
    # the bars: LoRA's best MRPC selection score 80.0 on 400 examples (Wilson low 75.8) clears 60; STS-B has no bar
    assert "Every task passes." in text
    mean = est.combine([mrpc, stsb], "score")
    row = next(line for line in text.split("## Reported")[1].splitlines() if line.startswith("| LoRA |"))
    d = mean.versus["lora"].difference
    assert f"{mean.arms['lora'].estimate:.1f} [{mean.arms['lora'].low:.1f}, {mean.arms['lora'].high:.1f}]" in row
    assert f"{d.estimate:+.1f} [{d.low:+.1f}, {d.high:+.1f}]" in row
    # per task: the shift is on MRPC alone (interval above zero there), STS-B's difference holds zero
    m, s = mrpc.versus["lora"].difference, stsb.versus["lora"].difference
    assert m.low > 0 and s.low < 0 < s.high
    per_task = next(line for line in text.split("Per task")[1].splitlines() if line.startswith("| LoRA |"))
    assert f"{m.estimate:+.1f} [{m.low:+.1f}, {m.high:+.1f}]" in per_task
    # the collapsed run is named with its task's mean with and without it; the rows include it
    assert "head only on mrpc, seed 1: one class for every example (class 0, 400 of 400)" in text
    assert "**0.003: 80.0**" in text and "–: 60.0" in text  # chosen bold; fixed arm shown


def test_a_task_below_its_bar_leaves_the_mean_and_is_starred(tmp_path):
    from qadapt.studies.render import render

    study = Study.model_validate(_spec(final={**_spec()["final"], "mean": {"bars": {"mrpc": 79}, "judges": ["lora"]}}))
    _write_study(tmp_path)
    text = render(study, tmp_path, "c").read_text()
    assert "Not passed at this budget, left out of the mean: mrpc." in text
    assert "| arm | mrpc * | stsb |" in text and "Mean over every task, mrpc included" in text


def test_a_task_stopped_between_seeds_waits_outside_the_table(tmp_path):
    from qadapt.studies.render import render

    study = _write_study(tmp_path)
    cells = pd.read_csv(tmp_path / "suite_cells.csv")
    cells = cells[~((cells["arm"] == "lora_taskstsb") & (cells["seed"] == 2) & (cells["phase"] == "test"))]
    cells.to_csv(tmp_path / "suite_cells.csv", index=False)
    text = render(study, tmp_path, "c").read_text()
    assert "Not scored on every seed yet (left out below until they are): stsb." in text
    assert "stsb ((P+S)/2)" not in text and "mrpc (acc)" in text


@pytest.mark.parametrize("name,model,task,epochs", [("glue_paper", "deberta_v3_base", "rte", 10),
                                                    ("vtab_paper", "dinov2_large", "digits", 100)])  # fmt: skip
def test_paper_scale_is_one_spec_away_and_fails_at_once_without_the_hub(name, model, task, epochs, monkeypatch):
    """configs/study/<suite>_paper.yaml (make reproduce-<suite> SCALE=paper): the QuIC paper's backbone and budget on
    the CPU spec's arms, every arm's overrides composing; `qadapt plan` prices it without the weights; offline, the
    first cell stops at once with what to do."""
    from typer.testing import CliRunner

    from qadapt.classifier_plan import plan_classifier
    from qadapt.cli import app
    from qadapt.config import compose

    study = spec_module.load(name)
    base = spec_module.load(name.removesuffix("_paper"))
    assert [a.label for a in study.arms.values()] == [a.label for a in base.arms.values()]
    assert study.select.grid["default"]["train.lr"] == [2e-4, 4e-4, 8e-4]  # the paper's range (NOTES.md)
    arm = study.arms[f"quic_task{task}"]
    overrides = [*study.shared, *arm.overrides, "task.split=valid"]
    cfg = compose(overrides)
    assert cfg.model.name == model and int(cfg.train.epochs) == epochs
    priced = plan_classifier(cfg)
    steps = epochs * -(-(1990 if "glue" in name else 800) // (32 if "glue" in name else 64))
    assert priced.sites == (24 if "glue" in name else 48) and priced.train_steps == steps
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    done = CliRunner().invoke(app, ["train", *overrides, "runs_dir=/nonexistent"])
    said = " ".join(done.output.split())
    assert done.exit_code != 0 and cfg.model.hub_id in said and "model.path=" in said and "Traceback" not in said
    import huggingface_hub.constants

    from qadapt import hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: False)
    done = CliRunner().invoke(app, ["train", *overrides, "runs_dir=/nonexistent"])
    said = " ".join(done.output.split())
    assert done.exit_code != 0 and "not in the local Hugging Face cache" in said and "model.path=" in said


QUICK = {
    "glue": (
        "rte",
        [
            "task.max_train=32",
            "task.max_eval=32",
            "task.valid_examples=32",
            "task.max_length=32",
            "train.max_steps=2",
            "train.batch_size=8",
            "train.epochs=1",
        ],
    ),  # fmt: skip
    "vtab": ("digits", ["task.max_test=32", "task.image_size=32", "train.max_steps=2", "train.batch_size=8"]),
}


@pytest.mark.integration
@pytest.mark.parametrize("suite", ["glue", "vtab"])
def test_a_tiny_real_study_trains_every_arm_and_reuses_its_cells(tmp_path, data_dir, suite):
    """configs/study/<suite>.yaml cut to one task, one rate per family, 2 steps per run and seed 0 of the final
    phase, given as a path: every arm trains through the one pipeline on the real backbone, the table has every row,
    the parameter counts follow the documented formulas, and a second run trains nothing."""
    from typer.testing import CliRunner

    from qadapt.cli import app

    task, quick = QUICK[suite]
    data = yaml.safe_load((ROOT / "configs" / "study" / f"{suite}.yaml").read_text())
    data["name"] = f"{suite}_quick"
    data["shared"] = [o for o in data["shared"] if not o.startswith(("train.max_steps", "task.max_test"))] + quick
    data["axis"] = {**data["axis"], "values": [task], "overrides": {}}
    data["select"]["grid"] = {family: {"train.lr": values["train.lr"][1:2]} for family, values in
                              data["select"]["grid"].items()}  # fmt: skip
    data["select"].pop("widen")
    data["final"]["seeds"] = [0, 1]
    data["final"].pop("mean", None)
    path = tmp_path / f"{suite}_quick.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    where = [f"runs_dir={tmp_path / 'runs'}", f"results_dir={tmp_path / 'results'}"]
    done = CliRunner().invoke(app, ["study", "run", str(path), "seeds=0", *where])
    assert done.exit_code == 0, done.output[-3000:]
    cells = pd.read_csv(tmp_path / "results" / f"{suite}_quick_cells.csv")
    sel = cells[cells["phase"] == "select"].set_index("arm")
    assert sel["done"].all() and len(sel) == len(data["arms"])  # every arm trained through the one pipeline
    params = {k.removesuffix(f"_task{task}"): int(v) for k, v in sel["adapter_params"].items()}
    assert params["head"] == 0 and params["full"] > 3_000_000 and params["quic"] < params["lora_r8"]
    if suite == "glue":
        sites, d = 12, 384  # query and value in 6 layers, width 384
        assert params["quic"] == sites * (d // 36) * 28  # n = 8: C(8,1) + C(8,2) = 36 per block, 28 angles
        assert params["lora_r8"] == sites * 8 * (d + d) and params["lora_r1"] == sites * (d + d)
        assert params["oft_b32"] == sites * (d // 32) * (32 * 31 // 2) and params["oft_b2"] == sites * (d // 2)
        assert params["boft"] == sites * ((d // 8) * 64 + d)
    # 2 steps can leave an arm predicting one class for every selection example: never chosen, never trained on the
    # reported split, and named; every other arm has its seed-0 final cell and no seed-1 one (seeds=0)
    text = (tmp_path / "results" / f"{suite}_quick.md").read_text()
    test = cells[cells["phase"] == "test"]
    collapsed = [a for a in data["arms"] if isinstance(sel.loc[f"{a}_task{task}", "collapse"], str)]
    for arm in data["arms"]:
        mine = test[test["arm"] == f"{arm}_task{task}"]
        finished = mine["done"].fillna(False).astype(bool)
        if arm in collapsed:
            assert mine.empty and data["arms"][arm]["label"] in text.split("No point chosen")[1].split("\n")[0]
        else:
            assert set(mine[finished]["seed"]) == {0}, arm
    assert all(a["label"] in text for a in data["arms"].values())
    if "quic" not in collapsed:
        assert "1 of 2 seeds so far" in text and "Paper (" in text
        units = pd.read_csv(tmp_path / "results" / f"{suite}_quick_units.csv")
        quic = units[units["arm"] == f"quic_task{task}"]
        row = test[(test["arm"] == f"quic_task{task}") & (test["seed"] == 0)].iloc[0]
        if row["metric"] == "accuracy":  # the table's figure is the run's own score, recomputed from its predictions
            assert (np.rint(quic["prediction"]) == np.rint(quic["label"])).mean() == pytest.approx(row["score"])
    rows = len(pd.read_csv(tmp_path / "results" / "runs.csv"))
    again = CliRunner().invoke(app, ["study", "run", str(path), "seeds=0", *where])
    assert again.exit_code == 0 and len(pd.read_csv(tmp_path / "results" / "runs.csv")) == rows
