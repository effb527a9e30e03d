"""The controls of the CUA study: free blocks (adapter=blockdiag), norm gains (adapter=norm), an untrained random CUA
(adapter.init=random), LoRA on chosen layers; the held-out WikiText-2 slice; per-window scores; the training cache a
process keeps for its next run.
(Split by kind: its unit tests are in tests/unit/test_controls.py.)"""

from __future__ import annotations

import pytest

from qadapt.data.wikitext import load_eval_text, load_train_text, split_articles, split_holdout
from qadapt.errors import ConfigError


def test_holdout_slice_is_disjoint_from_the_training_text(data_dir):
    full = load_train_text(data_dir, "valid", "drop").text
    kept = load_train_text(data_dir, "valid", "drop", holdout=0.1)
    held = load_eval_text(data_dir, "valid_holdout", holdout=0.1, unk="drop")
    assert kept.text + held.text == full  # whole articles, from the end: a cut, nothing lost or shared
    assert 0.1 <= len(held.text) / len(full) < 0.2
    assert split_articles(held.text)[0] not in kept.text
    assert "held out" in kept.source and "held out" in held.source
    assert split_holdout("x", 0.0) == ("x", "")
    with pytest.raises(ConfigError, match="train.valid_holdout > 0"):
        load_eval_text(data_dir, "valid_holdout", holdout=0.0)
    with pytest.raises(ConfigError, match="no article to train on"):
        split_holdout(" = A = \n a \n = B = \n b \n", 0.99)
