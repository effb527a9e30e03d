"""Files written whole or not at all (qadapt/atomic.py): a failed write leaves the old file and no temp file."""

from __future__ import annotations

import pytest

from qadapt.atomic import replacing, write_text
from qadapt.results import save_figure_atomic


def test_a_write_that_fails_leaves_the_old_file_and_no_leftover(tmp_path):
    path = write_text(tmp_path / "table.md", "old\n")
    with pytest.raises(KeyboardInterrupt), replacing(path) as tmp:
        tmp.write_text("half a ta")
        raise KeyboardInterrupt
    assert path.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]
    with replacing(path) as tmp:
        assert tmp.parent == path.parent and tmp.name.startswith(".table.md.")
        tmp.write_text("new\n")
    assert path.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]


def test_a_writer_that_needs_the_extension_sees_it(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, _ = plt.subplots()
    path = save_figure_atomic(fig, tmp_path / "plot.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with replacing(tmp_path / "counts.npy", suffix=".npy") as tmp:
        np.save(tmp, np.arange(3))  # numpy appends .npy to a name without it: the suffix keeps the name it writes
    assert np.load(tmp_path / "counts.npy").tolist() == [0, 1, 2] and len(list(tmp_path.iterdir())) == 2


def test_a_hash_that_looks_like_a_number_stays_text_in_the_store(tmp_path):
    """A config hash such as 0e305232 (a float's notation) or 01234567 is read back as written, however many rows
    are appended after it (pandas would read a column of such values as numbers)."""
    from qadapt.results import append_row, load_rows

    append_row(tmp_path, {"run_dir": "runs/a-0e305232", "config_hash": "0e305232", "git_commit": "1234567e8901"})
    append_row(tmp_path, {"run_dir": "runs/b-01234567", "config_hash": "01234567", "git_commit": "123456789012"})
    append_row(tmp_path, {"run_dir": "runs/c-89abcdef", "config_hash": "89abcdef", "git_commit": "abc"})
    rows = load_rows(tmp_path)
    assert rows["config_hash"].tolist() == ["0e305232", "01234567", "89abcdef"]
    assert rows["git_commit"].tolist() == ["1234567e8901", "123456789012", "abc"]
