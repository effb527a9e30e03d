"""GLUE: every shared file parses to the row counts of ../shared/data/README.md; metrics on known inputs;
classification input errors (the GLUE and VTAB studies themselves: tests/test_study_scores.py)."""

import math

import numpy as np
import pytest

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
