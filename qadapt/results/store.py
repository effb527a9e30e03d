"""The tidy store: ``<results_dir>/runs.csv``, one row per run, appended atomically under a file lock.

Rows from different commands carry different columns; the file holds their union (missing = empty).
The lock serialises concurrent writers (parallel sweep jobs); the temp-file + rename means a reader
never sees a torn file, and a crash leaves the previous file intact.
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from ..atomic import replacing, write_text

STORE = "runs.csv"


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# columns that name things: read as text, never as numbers (a hash "0e305232" is not 0.0, "01234567" not 1234567)
TEXT_COLUMNS = ("run_id", "run_dir", "config_hash", "git_commit", "command", "model", "adapter", "device", "task")


def load_rows(results_dir: str | Path) -> pd.DataFrame:
    """All rows (empty frame when there are none); :data:`TEXT_COLUMNS` as text."""
    path = Path(results_dir) / STORE
    return pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}) if path.exists() else pd.DataFrame()


def append_row(results_dir: str | Path, row: dict) -> Path:
    """Append one run's row to ``runs.csv``; returns the file's path."""
    path = Path(results_dir) / STORE
    with _locked(path):
        frame = load_rows(results_dir)
        frame = pd.concat([frame, pd.DataFrame([row])], ignore_index=True) if len(frame) else pd.DataFrame([row])
        with replacing(path) as tmp:
            frame.to_csv(tmp, index=False)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temp file and a rename: a reader (or a crash) never sees half a table."""
    return write_text(path, text)


def save_figure_atomic(fig, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure through a temp file and a rename (a reader never sees half a PNG)."""
    with replacing(path, suffix=Path(path).suffix) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return Path(path)
