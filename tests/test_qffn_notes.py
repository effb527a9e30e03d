"""The conclusion scripts/reproduce_qffn.py writes under the component table (QFFN paper, Table 1's rows at the half
fraction): which component carries QFFN-half's perplexity loss, from synthetic per-window NLLs whose answer is known."""

import argparse
import math

import numpy as np
import pandas as pd
import pytest

from tests.helpers.scripts import load_script

qffn = load_script("reproduce_qffn")
STEPS, SEEDS, WINDOWS, TOKENS = 60, 3, 40, 100


def estimates(per_token: dict[str, float]):
    """Estimates for rows at these mean NLLs per token (noise sd 0.05 per window); FFNs removed, where not given, is
    scored exactly like quantum FFNs only. Also returns each row's observed mean NLL per token."""
    rng = np.random.default_rng(0)
    nll = {m: TOKENS * (level + rng.normal(0, 0.05, size=(SEEDS, WINDOWS))) for m, level in per_token.items()}
    nll.setdefault("ffn_removed", nll["qffn_ffn"])
    frame = pd.concat(
        pd.DataFrame(
            {"method": m, "fraction": "half", "seed": s, "steps": STEPS, "window": range(WINDOWS), "tokens": TOKENS}
        ).assign(nll=v[s])
        for m, v in nll.items()
        for s in range(SEEDS)
    )
    return qffn.Estimates(frame, [(m, "half") for m in nll], STEPS), {m: v.mean() / TOKENS for m, v in nll.items()}


def cause(per_token: dict[str, float]) -> tuple[str, dict[str, float]]:
    est, mean = estimates(per_token)
    (line,) = qffn.cause(est)
    return line, mean


@pytest.mark.parametrize(
    ("ffn", "heads", "verdict"),
    [(6.0, 3.5, "the quantum FFNs cause most"), (3.5, 6.0, "the quantum heads cause most")],
)
def test_cause_names_the_component_with_the_larger_rise(ffn, heads, verdict):
    line, mean = cause({"base_ft": 3.0, "qffn_ffn": ffn, "qffn_heads": heads, "qffn_both": 6.5})
    assert verdict in line
    rise = mean["qffn_both"] - mean["base_ft"]
    assert f"{rise:.2f} nats per token" in line
    share = {m: 100 * (mean[m] - mean["base_ft"]) / rise for m in ("qffn_ffn", "qffn_heads")}
    assert f"FFNs alone make up {share['qffn_ffn']:.0f} % of that rise and quantum heads alone " in line
    assert f"heads alone {share['qffn_heads']:.0f} %" in line
    # quantum FFNs scored exactly like the removed FFNs: said to be no better than deleting them
    assert "indistinguishable from deleting the FFNs" in line


def test_cause_says_when_neither_component_dominates_and_when_the_circuits_beat_deletion():
    line, _ = cause({"base_ft": 3.0, "qffn_ffn": 4.0, "qffn_heads": 4.0, "qffn_both": 5.0})
    assert "neither component's share is distinguishable" in line
    assert "indistinguishable from deleting" in line
    levels = {"base_ft": 3.0, "qffn_ffn": 4.0, "qffn_heads": 3.2, "qffn_both": 5.0, "ffn_removed": 4.5}
    beats, _ = cause(levels)
    assert "the quantum FFNs cause most" in beats and "do better than deleting the FFNs they replace (-" in beats
    assert "low-rank" not in beats  # no low-rank row to compare with
    assert "as much as classical low-rank FFNs" in cause(levels | {"ffn_lowrank": 4.0})[0]
    assert "as much as" not in cause(levels | {"ffn_lowrank": 3.5})[0]
    worse, _ = cause(levels | {"ffn_removed": 3.6})  # the circuits' output costs more than no FFN at all
    assert "do worse than deleting the FFNs they replace (+" in worse and "costs more than the FFNs' absence" in worse


def test_table1_claims_pair_qffn_half_with_the_dense_rows_of_its_size():
    est, _ = estimates({"base_ft": 3.0, "qffn_ffn": 4.0, "qffn_both": 5.0, "ffn_pruned": 4.0, "ffn_lowrank": 5.0})
    lines = qffn.table1_claims(est)
    assert any(line.startswith("- QFFN-half is worse than the Distilled baseline: +") for line in lines)
    assert any("QFFN-half is indistinguishable from the low-rank classical control" in line for line in lines)
    assert qffn.table1_claims(estimates({"base_ft": 3.0, "qffn_ffn": 4.0})[0]) == []


def budgets(per_token: dict[str, tuple[float, float]], gaps: list[float]):
    """Cell files of the curve rows at 60 steps (3 seeds) and 300 steps (seed 0): test windows at these mean NLLs per
    token (60 steps, 300 steps), and held-out curves where QFFN-half sits ``gaps`` above the base fine-tuned at steps
    0, 50, ..., 300 (and 100 above it at every point of the 60-step runs)."""
    rng = np.random.default_rng(1)
    windows, curve = [], []
    for m, levels in per_token.items():
        for steps, level, seeds in ((60, levels[0], range(SEEDS)), (300, levels[1], [0])):
            for s in seeds:
                ident = {"method": m, "fraction": "half", "seed": s, "steps": steps}
                nll = TOKENS * (level + rng.normal(0, 0.05, size=WINDOWS))
                windows.append(pd.DataFrame({**ident, "window": range(WINDOWS), "tokens": TOKENS, "nll": nll}))
                points = range(0, 301, 50) if steps == 300 else range(0, 61, 10)
                for i, step in enumerate(points):
                    extra = (gaps[i] if steps == 300 else 100.0) if m == "qffn_both" else 0.0
                    curve.append({**ident, "step": step, "valid_perplexity": 40.0 + extra})
    args = argparse.Namespace(steps=60, long_steps=300)
    return args, {"windows": pd.concat(windows), "curve": pd.DataFrame(curve)}


def test_longer_budget_pairs_each_row_with_its_own_seed_at_the_tables_budget():
    levels = {"base_ft": (3.5, 3.4), "qffn_both": (8.0, 6.0), "ffn_lowrank": (7.0, 6.0), "ffn_pruned": (5.0, 5.0)}
    args, c = budgets(levels, [5000, 900, 400, 200, 150, 120, 110])
    text = "\n".join(qffn.long_curve_text(args, c))
    assert "### A longer budget: 300 steps (seed 0)" in text and "test windows only" in text
    assert "0: 5,000.0, 50: 900.0, 100: 400.0" in text and "it is 110.0 and still closing" in text
    assert "by 10.0 over the last interval against 30.0 over the one before" in text
    # step 50 of both runs (the 60-step run's last point below 60): the learning rate at 88 % and 18 % of its peak
    assert (
        "is 940.0 in the 300-step run (learning rate at 88 % of its peak) against 140.0 in the 60-step run (18 %)"
        in text
    )
    lines = text.splitlines()
    qffn_line = next(line for line in lines if line.startswith("- QFFN-half: quantum FFNs + quantum heads: test"))
    w = c["windows"]
    w = w[(w["method"] == "qffn_both") & (w["steps"] == 300)]
    assert f"test perplexity {math.exp(w['nll'].sum() / w['tokens'].sum()):,.2f};" in qffn_line  # one seed: no CI
    assert "300 steps is better than 60 steps (same seed): -86" in qffn_line  # e^(6-8) - 1 = -86 %
    pruned = next(line for line in lines if line.startswith("- Distilled baseline"))
    assert "300 steps is indistinguishable from 60 steps (same seed)" in pruned
    assert "- At 300 steps, QFFN-half is indistinguishable from the low-rank classical control" in text
    assert "- At 300 steps, QFFN-half is worse than the Distilled baseline: +" in text


def test_longer_budget_says_when_the_gap_stops_closing_and_is_silent_without_its_rows():
    levels = {"base_ft": (3.5, 3.4), "qffn_both": (8.0, 7.9)}
    args, c = budgets(levels, [5000, 900, 400, 200, 150, 160, 170])
    assert "it is 170.0 and not closing steadily" in "\n".join(qffn.long_curve_text(args, c))
    c["curve"] = c["curve"][c["curve"]["method"] != "qffn_both"]
    assert qffn.long_curve_text(args, c) == []


def test_speed_run_takes_the_lowest_seed_whose_weights_are_here(tmp_path):
    """The speed phase times one trained run per row: the lowest seed present on this machine, not seed 0 blindly;
    where none is present, the lowest seed, to be trained again."""
    (tmp_path / "s2").mkdir()
    (tmp_path / "s1").mkdir()
    cells = pd.DataFrame({"seed": [2, 0, 1], "run_dir": [str(tmp_path / f"s{s}") for s in (2, 0, 1)]})
    here, seed = qffn.speed_run(cells)
    assert seed == 1 and here["run_dir"].tolist() == [str(tmp_path / "s1")]
    gone = cells.assign(run_dir=[str(tmp_path / "none") for _ in range(3)])
    here, seed = qffn.speed_run(gone)
    assert here.empty and seed == 0
