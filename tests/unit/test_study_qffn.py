"""The QFFN studies (configs/study/qffn_components.yaml, table1.yaml, table2.yaml, qffn_curve.yaml): the cause of
QFFN-half's loss from synthetic per-window NLLs whose answer is known, the committed tables re-rendered from their
cells alone with figures equal to the estimator's, and a tiny real study on SmolLM2-135M under the paper's protocol
(whole-model fine-tuning scored by the training run, an untrained row, a steps axis) whose cells are reused.
(Split by kind: its tests on real models, data, simulators or launches are in
tests/integration/test_study_qffn.py.)"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qadapt.results import estimate as est
from qadapt.studies import spec as spec_module
from qadapt.studies.hooks import qffn

ROOT = Path(__file__).resolve().parents[2]

SEEDS, WINDOWS, TOKENS = 3, 40, 100

LABELS = {k: k for k in ("base_ft", "qffn_ffn", "qffn_heads", "qffn_both", "ffn_removed")}


def _estimates(per_token: dict[str, float]) -> tuple[est.Estimates, dict[str, float]]:
    """Estimates of rows at these mean NLLs per token (noise sd 0.05 per window); FFNs removed, where not given,
    scored exactly like quantum FFNs only. Also each row's observed mean NLL per token."""
    rng = np.random.default_rng(0)
    nll = {m: TOKENS * (level + rng.normal(0, 0.05, size=(SEEDS, WINDOWS))) for m, level in per_token.items()}
    nll.setdefault("ffn_removed", nll["qffn_ffn"])
    e = est.estimate(nll, np.full(WINDOWS, TOKENS), "perplexity", "base_ft")
    return e, {m: v.mean() / TOKENS for m, v in nll.items()}


@pytest.mark.parametrize(
    ("ffn", "heads", "verdict"),
    [(6.0, 3.5, "the quantum FFNs cause most"), (3.5, 6.0, "the quantum heads cause most")],
)
def test_the_cause_names_the_component_with_the_larger_rise(ffn, heads, verdict):
    e, mean = _estimates({"base_ft": 3.0, "qffn_ffn": ffn, "qffn_heads": heads, "qffn_both": 6.5})
    (line,) = qffn._cause(e, LABELS)
    assert verdict in line
    rise = mean["qffn_both"] - mean["base_ft"]
    assert f"{rise:.2f} nats per token" in line
    share = {m: 100 * (mean[m] - mean["base_ft"]) / rise for m in ("qffn_ffn", "qffn_heads")}
    assert f"FFNs alone make up {share['qffn_ffn']:.0f} % of that rise and quantum heads alone " in line
    assert f"heads alone {share['qffn_heads']:.0f} %" in line
    assert "0.000 nats per token" in line  # quantum FFNs scored exactly like the removed FFNs


def test_the_cause_says_when_neither_share_is_resolved_and_when_there_is_no_loss():
    e, _ = _estimates({"base_ft": 3.0, "qffn_ffn": 4.0, "qffn_heads": 4.0, "qffn_both": 5.0})
    assert "neither component's share is resolved against the other's" in qffn._cause(e, LABELS)[0]
    e, mean = _estimates({"base_ft": 3.0, "qffn_ffn": 4.0, "qffn_heads": 3.2, "qffn_both": 5.0, "ffn_removed": 4.5})
    line = qffn._cause(e, LABELS)[0]
    assert f"{mean['ffn_removed'] - mean['qffn_ffn']:.3f} nats per token below deleting the same FFNs" in line
    e, _ = _estimates({"base_ft": 3.0, "qffn_ffn": 4.0, "qffn_heads": 3.2, "qffn_both": 2.9})
    assert "there is no loss to attribute" in qffn._cause(e, LABELS)[-1]


def test_a_perplexity_over_seeds_is_the_perplexity_of_their_mean_nll():
    """statistic perplexity pools the seeds' NLL per token before the exponential (the geometric mean of their
    perplexities), where Δ ppl % averages each seed's Δ."""
    nll = np.array([[2.0, 4.0], [3.0, 5.0]]) * 10  # two seeds, two windows of 10 tokens: 3.0 and 4.0 per token
    e = est.estimate({"a": nll, "b": nll + 10}, np.array([10, 10]), "perplexity", "a")
    assert e.arms["a"].estimate == pytest.approx(math.exp(3.5)) and e.arms["b"].estimate == pytest.approx(math.exp(4.5))
    d = est.estimate({"a": nll, "b": nll + 10}, np.array([10, 10]), "delta_ppl_pct", "a")
    assert d.arms["b"].estimate == pytest.approx(np.mean([100 * math.expm1(4.0), 100 * math.expm1(5.0)]))


@pytest.mark.parametrize("name", ["qffn_components", "table1", "table2", "qffn_curve"])
def test_the_committed_tables_render_from_their_cells_with_the_estimators_figures(tmp_path, name):
    """From the committed cells and units alone (no run directory): each row's perplexity is exp of the seeds' mean
    NLL per token on its windows, as the units file gives them, and the table says so."""
    from qadapt.studies.render import render

    for suffix in ("_cells.csv", "_units.csv"):
        shutil.copy(ROOT / "results" / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    shutil.copy(ROOT / "results" / "qffn_speed.csv", tmp_path / "qffn_speed.csv")
    study = spec_module.load(name)
    text = render(study, tmp_path, f"qadapt study render {name}").read_text()
    units = pd.read_csv(tmp_path / f"{name}_units.csv")
    cells = pd.read_csv(tmp_path / f"{name}_cells.csv")
    test = cells[cells["phase"] == "test"]
    for arm in ("qffn_both", "qffn_half", "qffn_both_steps300"):
        if arm not in study.arms:
            continue
        mine = units[units["arm"] == arm].sort_values(["seed", "window"])
        per_seed = mine.groupby("seed")["nll"].sum() / mine.groupby("seed")["tokens"].sum()
        assert len(per_seed) == 3 and set(mine["run_id"]) == set(test[test["arm"] == arm]["run_id"])
        figure = f"| {study.arms[arm].label} | "
        row = next(line for line in text.splitlines() if line.startswith(figure))
        assert f"{math.exp(per_seed.mean()):.2f} [" in row
    if name in ("qffn_components", "table1", "table2"):  # the untrained base, scored once, a row of every seed
        base = spec_module.load(name).arms["base"].label
        mine = units[units["arm"] == "base"]
        assert f"| {base} | 0 | – | {math.exp(mine['nll'].sum() / mine['tokens'].sum()):.2f} [" in text
    if name == "table1":
        assert "Gemma 3 270M, not fine-tuned: perplexity" in text and "no interval or paired test" in text
        assert "| QFFN | 3.5B | 20.3 | 0.6x | 2.0x |" in text  # the paper's row beside ours
    if name == "qffn_components":  # peft's format: a run trained and scored in one cell reports its training time
        from qadapt.studies.export import export

        export(study, tmp_path, tmp_path / "peft")
        cell = test[(test["arm"] == "qffn_both") & (test["seed"] == 0)].iloc[0]
        result = json.loads((tmp_path / "peft" / "qffn_components--qffn_both--seed0.json").read_text())
        assert result["train_info"]["train_time"] == pytest.approx(float(cell["train_seconds"]))
        assert result["run_info"]["total_time"] == pytest.approx(float(cell["wall_seconds"]))
    if name == "qffn_curve":
        assert "## 300 steps against 60, the same row and seed (paired)" in text
        assert (tmp_path / "qffn_curve.png").stat().st_size > 1000
