"""WikiText-2 text, as the upstream files lay it out (``wiki.{train,valid,test}.{raw,tokens}``).

The raw test split is what perplexity is measured on. WikiText-2 train is only present when it was
downloaded from the hub; otherwise training uses the tokenized validation split, whose ``<unk>``
markers are dropped or kept explicitly (``train.unk``), and the choice is recorded in the results row.

Hyperparameters are chosen on a held-out slice of the validation split (``task.split=valid_holdout``): the last
articles of ``wiki.valid.tokens`` holding at least ``train.valid_holdout`` of its characters. Training on the
validation split then leaves those articles out, so the slice is disjoint from the training text (and from the test
split, which stays the reported one).
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


HOLDOUT_SPLIT = "valid_holdout"
SPLITS = ("test", "valid", "train", HOLDOUT_SPLIT)


def split_holdout(text: str, fraction: float) -> tuple[str, str]:
    """(kept, held out) = (``text[:cut]``, ``text[cut:]``), ``cut`` at the start of an article: whole articles taken
    from the end of ``text`` until they hold at least ``fraction`` of its characters (none at 0).

    Raises:
        ConfigError: ``fraction`` outside [0, 1), or nothing would be left to train on.
    """
    if not 0 <= fraction < 1:
        raise ConfigError(f"train.valid_holdout={fraction}: expected a fraction in [0, 1)")
    if fraction == 0:
        return text, ""
    starts, offset = [], 0
    for line in text.splitlines(keepends=True):
        if _ARTICLE_HEADING.match(line.rstrip("\n")):
            starts.append(offset)
        offset += len(line)
    wanted = len(text) * (1 - fraction)
    cuts = [s for s in starts if 0 < s <= wanted]
    if not cuts:
        raise ConfigError(f"train.valid_holdout={fraction} leaves no article to train on")
    return text[: cuts[-1]], text[cuts[-1] :]


def _valid_tokens(data_dir: str | Path, unk: str) -> tuple[str, Path]:
    path = _read(data_dir, "wiki.valid.tokens")
    return handle_unk(read_text(path), unk), path


def read_text(path: Path) -> str:
    """A WikiText file's text.

    Raises:
        DataMissing: the file is not UTF-8 text, or holds no text (a damaged download: the message says how to fetch
            it again).
    """
    again = "delete it and run `make data` (or `qadapt data`) to fetch WikiText-2 again"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataMissing(f"{path} is not UTF-8 text (byte {e.start}: {e.reason}): {again}") from None
    if not text.strip():
        raise DataMissing(f"{path} is empty: {again}")
    return text


def load_eval_text(data_dir: str | Path, split: str = "test", holdout: float = 0.0, unk: str = "drop") -> Text:
    """The raw split (``wiki.<split>.raw``) as one string, line layout untouched; ``valid_holdout``: the held-out
    articles of the tokenized validation split (:func:`split_holdout` with ``holdout``, ``<unk>`` as ``unk``).

    Raises:
        DataMissing: the file is absent (message says to run ``make data``).
        ConfigError: unknown split, or ``valid_holdout`` with ``holdout`` = 0.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown WikiText split '{split}'; valid choices: {', '.join(SPLITS)}")
    if split == HOLDOUT_SPLIT:
        if not holdout:
            raise ConfigError(
                "task.split=valid_holdout needs train.valid_holdout > 0 (the fraction of WikiText-2 valid held out "
                "of training), e.g. train.valid_holdout=0.1"
            )
        text, path = _valid_tokens(data_dir, unk)
        held = split_holdout(text, holdout)[1]
        return Text(held, f"local:{SUBDIR}/{path.name} (unk={unk}), last {holdout:g} held out of training")
    path = _read(data_dir, f"wiki.{split}.raw")
    return Text(read_text(path), f"local:{SUBDIR}/{path.name}")


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


def load_train_text(data_dir: str | Path, which: str = "auto", unk: str = "drop", holdout: float = 0.0) -> Text:
    """Training text: WikiText-2 train (raw) when present or downloadable, else the tokenized validation split
    without its held-out articles (``holdout``, :func:`split_holdout`).

    Args:
        which: ``auto`` (train from ``data_dir``, else from the hub when reachable, else valid), ``train`` or ``valid``.
        unk: what to do with ``<unk>`` in the tokenized validation split (``drop`` or ``keep``).
        holdout: fraction of the validation split held out for selection (left out of training on it).
    Raises:
        DataMissing: the needed file is absent.
    """
    if which not in ("auto", "train", "valid"):
        raise ConfigError(f"unknown train.text '{which}'; valid choices: auto, train, valid")
    train = Path(data_dir) / SUBDIR / "wiki.train.raw"
    if which == "train" or (which == "auto" and train.is_file()):
        path = _read(data_dir, "wiki.train.raw")
        return Text(read_text(path), f"local:{SUBDIR}/{path.name}")
    if which == "auto" and (downloaded := hub_train_split()) is not None:
        return Text(read_text(downloaded), "hub:Salesforce/wikitext wikitext-2-raw-v1 train")
    text, path = _valid_tokens(data_dir, unk)
    if not holdout:
        return Text(text, f"local:{SUBDIR}/{path.name} (unk={unk})")
    kept = split_holdout(text, holdout)[0]
    return Text(kept, f"local:{SUBDIR}/{path.name} (unk={unk}), last {holdout:g} held out")


def split_articles(text: str) -> list[str]:
    """Articles of a WikiText split, each starting at its level-1 heading (lines kept as they are)."""
    articles: list[list[str]] = []
    for line in text.splitlines(keepends=True):
        if _ARTICLE_HEADING.match(line.rstrip("\n")) or not articles:
            articles.append([])
        articles[-1].append(line)
    return ["".join(a) for a in articles if "".join(a).strip()]
