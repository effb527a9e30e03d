"""The QFFN studies (configs/study/qffn_components.yaml, table1.yaml, table2.yaml, qffn_curve.yaml): the cause of
QFFN-half's loss from synthetic per-window NLLs whose answer is known, the committed tables re-rendered from their
cells alone with figures equal to the estimator's, and a tiny real study on SmolLM2-135M under the paper's protocol
(whole-model fine-tuning scored by the training run, an untrained row, a steps axis) whose cells are reused.
(Split by kind: its unit tests are in tests/unit/test_study_qffn.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _tiny_spec(tmp_path: Path) -> Path:
    """qffn_curve.yaml cut to 1 and 2 steps on a short slice: the base model untrained (no axis), the base fine-tuned
    and QFFN at a quarter, seeds 0 and 1."""
    data = yaml.safe_load((ROOT / "configs" / "study" / "qffn_components.yaml").read_text())
    data.update(name="qffn_curve", title="tiny")  # the hook renders a study by its name
    data["shared"] = [o for o in data["shared"] if not o.startswith("task.max_bytes")] + ["task.max_bytes=2048"]
    data["training"] = [
        "train.distill_steps=2",
        "train.eval_tokens=64",
        "train.batch_size=2",
        "train.seq_len=32",
        "train.distill_tokens=256",
        "train.distill_batch=64",
    ]
    data["arms"] = {
        "base": {**data["arms"]["base"], "axis": False},
        "base_ft": data["arms"]["base_ft"],
        "qffn": {"label": "QFFN, quarter", "overrides": ["adapter=qffn", "adapter.fraction=quarter"]},
    }
    data["axis"] = {
        "key": "train.max_steps",
        "name": "steps",
        "values": [1, 2],
        "overrides": {str(n): ["train.warmup_steps=0", f"train.save_every={n}", "train.eval_every=1"] for n in (1, 2)},
    }
    data["final"]["seeds"] = [0, 1]
    data["hook"] = "qffn"
    path = tmp_path / "qffn_tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_tiny_real_qffn_study_scores_its_training_runs_and_reuses_them_elsewhere(tmp_path, data_dir):
    """Whole-model fine-tuning under train=paper on the real SmolLM2-135M: each final run scores the test windows
    itself (no second evaluation), the untrained base stands for every seed, the curve is kept per cell, and on
    another machine (the run directories gone) a second invocation trains nothing and keeps every figure."""
    from typer.testing import CliRunner

    from qadapt.cli import app

    path = _tiny_spec(tmp_path)
    where = [f"runs_dir={tmp_path / 'runs'}", f"results_dir={tmp_path / 'results'}"]
    done = CliRunner().invoke(app, ["study", "run", str(path), "seeds=0", *where])
    assert done.exit_code == 0, done.output[-3000:]
    results = tmp_path / "results"
    cells = pd.read_csv(results / "qffn_curve_cells.csv")
    assert set(cells[~cells["done"].astype(bool)]["seed"]) == {1}  # seed 1 listed, not run (seeds=0)
    test = cells[cells["done"].astype(bool)].set_index("arm")
    assert set(test.index) == {"base", "base_ft_steps1", "base_ft_steps2", "qffn_steps1", "qffn_steps2"}
    assert set(cells["phase"]) == {"test"} and (test["command"] != "eval ppl").sum() == 4  # scored by training
    assert test.loc["base", "command"] == "eval ppl" and test.loc["base", "trainable_params"] == 0
    # a quarter: 8 of 30 FFNs removed (3 x 576 x 1536 each); the whole model trained (train=paper)
    assert test.loc["qffn_steps1", "removed_params"] == 8 * 3 * 576 * 1536
    assert test.loc["qffn_steps1", "trainable_params"] == test.loc["qffn_steps1", "total_params"]
    assert [sorted(map(int, json.loads(test.loc[f"base_ft_steps{n}", "curve"]))) for n in (1, 2)] == [[0, 1], [0, 1, 2]]
    units = pd.read_csv(results / "qffn_curve_units.csv")
    assert units.groupby("run_id")["tokens"].sum().nunique() == 1  # every row on the same windows
    assert units.groupby("run_id")["nll"].sum().nunique() == 5  # fine-tuning moved the base weights
    text = (results / "qffn_curve.md").read_text()
    assert "1 of 2 seeds so far" in text
    assert "## 2 steps against 1, the same row and seed (paired)" in text and (results / "qffn_curve.png").exists()
    rows = len(pd.read_csv(results / "runs.csv"))

    shutil.rmtree(tmp_path / "runs")  # another machine: only results/ travels
    again = CliRunner().invoke(app, ["study", "run", str(path), "seeds=0", *where])
    assert again.exit_code == 0, again.output[-3000:]
    assert len(pd.read_csv(results / "runs.csv")) == rows  # nothing trained or scored again
    kept = pd.read_csv(results / "qffn_curve_cells.csv")
    kept = kept[kept["done"].astype(bool)].set_index(["arm", "seed"]).sort_index()
    first = cells[cells["done"].astype(bool)].set_index(["arm", "seed"]).sort_index()
    for column in ("perplexity", "curve", "removed_params", "run_id"):
        assert kept[column].equals(first[column]), column
    assert (results / "qffn_curve.md").read_text().split("Commits:")[1] == text.split("Commits:")[1]
