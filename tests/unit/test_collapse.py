"""Degenerate runs are named when they finish (qadapt/results/collapse.py) and never chosen by a study's selection."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from qadapt.results.collapse import reason


def test_each_rule_names_its_collapse_and_a_healthy_run_passes():
    healthy = {"train_steps": 60, "train_loss_first": 3.795, "train_loss_final": 3.677, "perplexity": 21.0,
               "base_perplexity": 21.8}  # fmt: skip
    assert reason(healthy) is None
    assert "loss never left its start" in reason({**healthy, "train_loss_final": 3.795})
    assert "perplexity diverged (54 against base 21.8)" in reason({**healthy, "perplexity": 54.0})
    assert "perplexity diverged" in reason({**healthy, "perplexity": float("inf")})
    # untrained (an evaluation row, a random control): nothing trained, nothing to collapse
    assert reason({"perplexity": 54.0, "base_perplexity": 21.8}) is None
    # ELPV seed 1 of QuIC in results/vtab_units.csv: class 0 for every image
    assert reason({}, [0] * 1000, [0] * 566 + [1] * 434) == "one class for every example (class 0, 1,000 of 1,000)"
    assert reason({}, [0] * 999 + [1], [0] * 566 + [1] * 434) is None
    assert reason({}, [0.5] * 10, [0.1 * i for i in range(10)], regression=True) is None


def test_selection_never_chooses_a_collapsed_point():
    from qadapt.studies.render import chosen_points
    from qadapt.studies.spec import Study

    study = Study.model_validate(
        {
            "name": "s",
            "title": "t",
            "arms": {"base": {"label": "b", "kind": "untrained", "seeded": False}, "a": {"label": "a"}},
            "reference": "a",
            "select": {"split": "valid_holdout", "grid": {"default": {"train.lr": [0.01, 0.1]}}},
            "final": {"seeds": [0, 1], "split": "test", "baseline": "base"},
        }
    )
    cells = pd.DataFrame(
        {
            "arm": ["a", "a"],
            "phase": "select",
            "values": [json.dumps({"train.lr": 0.01}), json.dumps({"train.lr": 0.1})],
            "perplexity": [30.0, 12.0],  # the collapsed point scores best on the selection metric
            "collapse": [None, "loss never left its start (3.8 -> 3.8)"],
            "done": True,
        }
    )
    assert chosen_points(study, cells) == {"a": {"train.lr": 0.01}}
    assert chosen_points(study, cells.assign(collapse=None)) == {"a": {"train.lr": 0.1}}


@pytest.mark.parametrize("value", [None, float("nan"), ""])
def test_an_empty_collapse_column_is_not_a_collapse(value):
    from qadapt.studies.render import collapsed

    assert not collapsed(pd.DataFrame({"collapse": [value]})).any()
