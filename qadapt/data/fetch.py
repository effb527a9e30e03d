"""``make data``: fill ``data_dir`` from ``../shared/data`` when it exists, else download from the hub.

The hub path writes the same upstream layout (``wikitext-2/wiki.{split}.raw``, ``.tokens``) from the
``Salesforce/wikitext`` dataset, so everything downstream reads one format.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..atomic import write_text
from ..log import log
from ..paths import PROJECT_DIR

SHARED = PROJECT_DIR.parent / "shared" / "data"
# (hub config, split) -> file name in the upstream layout
WIKITEXT_FILES = {
    ("wikitext-2-raw-v1", "train"): "wiki.train.raw",
    ("wikitext-2-raw-v1", "validation"): "wiki.valid.raw",
    ("wikitext-2-raw-v1", "test"): "wiki.test.raw",
    ("wikitext-2-v1", "validation"): "wiki.valid.tokens",
    ("wikitext-2-v1", "test"): "wiki.test.tokens",
}


def rows_to_upstream(rows: list[str]) -> str:
    """Hub rows (one per line, newline kept; blank lines empty) -> upstream file text (blank line = ' ')."""
    return "".join(row if row else " \n" for row in rows)


def download_wikitext(target: Path, load_dataset=None, only: tuple[str, ...] | None = None) -> None:
    """Write WikiText-2 from the hub into ``target/wikitext-2`` in the upstream layout (atomic per file).

    ``only``: file names to fetch (default: all of ``WIKITEXT_FILES``).
    """
    if load_dataset is None:
        from datasets import load_dataset
    out = target / "wikitext-2"
    out.mkdir(parents=True, exist_ok=True)
    for (config, split), name in WIKITEXT_FILES.items():
        if (out / name).exists() or (only is not None and name not in only):
            continue
        rows = load_dataset("Salesforce/wikitext", config, split=split)["text"]
        write_text(out / name, rows_to_upstream(list(rows)))
        log(f"wrote {out / name} ({len(rows)} lines)")


def fill(data_dir: str | Path, shared: Path = SHARED) -> str:
    """Make ``data_dir`` usable; returns what was done. Idempotent."""
    data_dir = Path(data_dir)
    if (data_dir / "wikitext-2" / "wiki.test.raw").exists():
        return f"{data_dir} already holds the data"
    if shared.is_dir():
        if data_dir.is_symlink() or not data_dir.exists():
            if data_dir.is_symlink():
                data_dir.unlink()
            data_dir.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(shared.resolve(), data_dir, target_is_directory=True)
            return f"linked {data_dir} -> {shared.resolve()}"
        for item in shared.iterdir():  # an existing real directory: copy what is missing
            dest = data_dir / item.name
            if not dest.exists():
                (shutil.copytree if item.is_dir() else shutil.copy2)(item, dest)
        return f"copied {shared} into {data_dir}"
    download_wikitext(data_dir)
    return f"downloaded WikiText-2 from the hub into {data_dir}"
