"""Where things live: the project's configs, the user cache, the data directory."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
CONFIG_DIR = PROJECT_DIR / "configs"


def cache_dir() -> Path:
    """User cache for converted weights: ``$QADAPT_CACHE``, else ``$XDG_CACHE_HOME/qadapt``, else
    ``~/.cache/qadapt``."""
    if os.environ.get("QADAPT_CACHE"):
        root = Path(os.environ["QADAPT_CACHE"])
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qadapt"
    root.mkdir(parents=True, exist_ok=True)
    return root
