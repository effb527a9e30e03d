"""GLUE: every shared file parses to the row counts of ../shared/data/README.md; metrics on known inputs;
classification input errors (the GLUE and VTAB studies themselves: tests/{unit,integration}/test_study_scores.py).
(Split by kind: its tests on real models, data, simulators or launches are in
tests/integration/test_glue.py.)"""

import math

import numpy as np
import pytest

from qadapt.errors import ConfigError
from qadapt.eval.metrics import score


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
