"""Classifier studies (``final.statistic: score``): configs/study/glue.yaml, vtab.yaml, glue_ablation.yaml and their
paper-scale variants; the selection rule (1-3 ladder, ties to the lower rate), the per-task and mean estimates, the
bars, collapsed runs, and a tiny real study of every arm on all-MiniLM-L6-v2 and EfficientNet-Lite0.
(Split by kind: its tests on real models, data, simulators or launches are in
tests/integration/test_study_scores.py.)"""

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
