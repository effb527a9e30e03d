"""VTAB-style suite: the offline image sets and their VTAB-1k split, the packaged EfficientNet-Lite0 on real
photographs and QuIC on its convolutions (the study of every method: tests/{unit,integration}/test_study_scores.py).
(Split by kind: its unit tests are in tests/unit/test_vtab.py.)"""

import numpy as np
import pytest

from qadapt.data.images import SETS, vtab_split
from qadapt.errors import ConfigError

SIZES = {"mnist": (10_000, 28, 10), "digits": (1_797, 8, 10), "animal_mnist": (10_000, 28, 10), "elpv": (2_624, 300, 4)}


@pytest.mark.parametrize("name", sorted(SETS))
def test_image_sets_load_and_split_by_the_vtab_1k_protocol(data_dir, name):
    n, side, classes = SIZES[name]
    parts = vtab_split(name, data_dir)
    assert [len(parts[k].labels) for k in ("train", "val", "test")] == [800, 200, n - 1000]
    assert parts["train"].images.shape[1:] == (side, side) and parts["train"].classes == classes
    assert set(np.unique(np.concatenate([p.labels for p in parts.values()]))) == set(range(classes))
    for p in parts.values():
        assert p.images.dtype == np.float32 and 0 <= p.images.min() and p.images.max() <= 1
    again = vtab_split(name, data_dir, max_test=50)  # fixed split: the same train images, the test capped
    assert np.array_equal(again["train"].labels, parts["train"].labels) and len(again["test"].labels) == 50


def test_unknown_image_set_lists_choices(data_dir):
    with pytest.raises(ConfigError, match="valid choices: mnist, digits, animal_mnist, elpv"):
        vtab_split("cifar10", data_dir)
