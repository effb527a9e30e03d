"""WikiText-2 text, as the upstream files lay it out (``wiki.{train,valid,test}.{raw,tokens}``).

The raw test split is what perplexity is measured on. WikiText-2 train is only present when it was
downloaded from the hub; otherwise training uses the tokenized validation split, whose ``<unk>``
markers are dropped or kept explicitly (``train.unk``), and the choice is recorded in the results row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DataMissing
from ..log import log

SUBDIR = "wikitext-2"
UNK = "<unk>"
# an article starts at a level-1 heading line: " = Title = " (level 2 is " = = Section = = ")
_ARTICLE_HEADING = re.compile(r"^ = [^=].* = $")


@dataclass
class Text:
    text: str
    source: str  # e.g. "local:wikitext-2/wiki.test.raw"


def _read(data_dir: str | Path, name: str) -> Path:
    path = Path(data_dir) / SUBDIR / name
    if not path.is_file():
        raise DataMissing(
            f"{path} not found. Run `make data` (links ../shared/data or downloads WikiText-2 from the hub), "
            f"or point data_dir= / QADAPT_DATA_DIR at a directory holding {SUBDIR}/{name}"
        )
    return path


def load_eval_text(data_dir: str | Path, split: str = "test") -> Text:
    """The raw split (``wiki.<split>.raw``) as one string, line layout untouched.

    Raises:
        DataMissing: the file is absent (message says to run ``make data``).
    """
    if split not in ("test", "valid", "train"):
        raise ConfigError(f"unknown WikiText split '{split}'; valid choices: test, valid, train")
    path = _read(data_dir, f"wiki.{split}.raw")
    return Text(path.read_text(encoding="utf-8"), f"local:{SUBDIR}/{path.name}")


def handle_unk(text: str, unk: str) -> str:
    """``unk='drop'`` removes every ``<unk>`` marker (and the space before it); ``'keep'`` leaves them."""
    if unk == "keep":
        return text
    if unk == "drop":
        return re.sub(r" ?<unk>", "", text)
    raise ConfigError(f"unknown train.unk '{unk}'; valid choices: drop, keep")


def hub_train_split() -> Path | None:
    """WikiText-2 train (raw) from the hub, kept in the user cache (``data_dir`` may be a read-only link).

    None when the hub is unreachable or the download fails (the caller falls back and records it).
    """
    from ..hub import hub_reachable
    from ..paths import cache_dir
    from .fetch import download_wikitext

    root = cache_dir() / "data"
    path = root / SUBDIR / "wiki.train.raw"
    if path.is_file():
        return path
    if not hub_reachable():
        return None
    try:
        download_wikitext(root, only=("wiki.train.raw",))
    except Exception as err:  # any hub or dataset failure: fall back to the local validation split
        log(f"WikiText-2 train download failed ({type(err).__name__}: {err}); training on the validation split")
        return None
    return path if path.is_file() else None


def load_train_text(data_dir: str | Path, which: str = "auto", unk: str = "drop") -> Text:
    """Training text: WikiText-2 train (raw) when present or downloadable, else the tokenized validation split.

    Args:
        which: ``auto`` (train from ``data_dir``, else from the hub when reachable, else valid), ``train`` or ``valid``.
        unk: what to do with ``<unk>`` in the tokenized validation split (``drop`` or ``keep``).
    Raises:
        DataMissing: the needed file is absent.
    """
    if which not in ("auto", "train", "valid"):
        raise ConfigError(f"unknown train.text '{which}'; valid choices: auto, train, valid")
    train = Path(data_dir) / SUBDIR / "wiki.train.raw"
    if which == "train" or (which == "auto" and train.is_file()):
        path = _read(data_dir, "wiki.train.raw")
        return Text(path.read_text(encoding="utf-8"), f"local:{SUBDIR}/{path.name}")
    if which == "auto" and (downloaded := hub_train_split()) is not None:
        return Text(downloaded.read_text(encoding="utf-8"), "hub:Salesforce/wikitext wikitext-2-raw-v1 train")
    path = _read(data_dir, "wiki.valid.tokens")
    return Text(handle_unk(path.read_text(encoding="utf-8"), unk), f"local:{SUBDIR}/{path.name} (unk={unk})")


def split_articles(text: str) -> list[str]:
    """Articles of a WikiText split, each starting at its level-1 heading (lines kept as they are)."""
    articles: list[list[str]] = []
    for line in text.splitlines(keepends=True):
        if _ARTICLE_HEADING.match(line.rstrip("\n")) or not articles:
            articles.append([])
        articles[-1].append(line)
    return ["".join(a) for a in articles if "".join(a).strip()]
