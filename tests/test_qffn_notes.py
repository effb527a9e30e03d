"""The conclusion scripts/reproduce_qffn.py writes under the component table (QFFN paper, Table 1's rows at the half
fraction): which component carries QFFN-half's perplexity loss, from synthetic per-window NLLs whose answer is known."""

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


def test_table1_claims_pair_qffn_half_with_the_dense_rows_of_its_size():
    est, _ = estimates({"base_ft": 3.0, "qffn_ffn": 4.0, "qffn_both": 5.0, "ffn_pruned": 4.0, "ffn_lowrank": 5.0})
    lines = qffn.table1_claims(est)
    assert any(line.startswith("- QFFN-half is worse than the Distilled baseline: +") for line in lines)
    assert any("QFFN-half is indistinguishable from the low-rank classical control" in line for line in lines)
    assert qffn.table1_claims(estimates({"base_ft": 3.0, "qffn_ffn": 4.0})[0]) == []
