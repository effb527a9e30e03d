"""Files written whole or not at all: every file qadapt writes for others to read (a results row, a table, a
checkpoint, an adapter, a journaled job) goes through :func:`replacing`, so a crash or a Ctrl-C never leaves half a
file where a reader (a resumed run, a second process, the next session) would take it for a whole one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` (``.<name>.<pid>.tmp<suffix>``, in the same directory, so the rename is
    atomic) to write to; when the block ends without an error it is renamed onto ``path``, else it is removed and
    the error goes on. ``suffix``: an extension a writer needs to see (``.png`` for matplotlib, ``.npy`` for numpy)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """``text`` (UTF-8) to ``path``, whole or not at all; returns the path."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
