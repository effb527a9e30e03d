"""GLUE: every shared file parses to the row counts of ../shared/data/README.md; metrics on known inputs;
classification input errors (the GLUE and VTAB studies themselves: tests/{unit,integration}/test_study_scores.py).
(Split by kind: its unit tests are in tests/unit/test_glue.py.)"""

import pytest

from qadapt.data.glue import QNLI_HELDOUT, TASKS, load_glue
from qadapt.errors import ConfigError

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
