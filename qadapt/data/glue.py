"""GLUE tasks from the offline copies in ``<data_dir>/glue`` (the official TSVs) or, when absent, the hub's
``nyu-mll/glue``: one parser per file layout, the same examples either way.

Splits: ``train`` and ``dev`` are the official ones. QNLI has only its dev file offline, so for QNLI the dev
rows are shuffled once with a fixed seed (0, independent of the run seed) and cut: the first
:data:`QNLI_HELDOUT` rows are the evaluation split ``dev``, the rest the training pool ``train`` (documented in
every row as ``split=qnli-dev-holdout``). With the hub, QNLI's official train and validation splits are used.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DataMissing

QNLI_HELDOUT = 1000


@dataclass(frozen=True)
class GlueTask:
    """Where a task's fields are and how it is scored.

    Attributes:
        folder: directory under ``glue/``.
        columns: (first text, second text or None, label) column indices of the TSV.
        header: the TSV has a header line.
        labels: label strings in class order (``None``: regression on a float score).
        metric: ``accuracy``, ``accuracy_f1`` (MRPC: accuracy, with F1 reported), ``matthews`` (CoLA) or
            ``pearson_spearman`` (STS-B, mean of the two).
        hub_fields: (text, text or None) field names in ``nyu-mll/glue``.
    """

    folder: str
    columns: tuple[int, int | None, int]
    header: bool
    labels: tuple[str, ...] | None
    metric: str
    hub_fields: tuple[str, str | None]
    has_train: bool = True

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)


TASKS: dict[str, GlueTask] = {
    "sst2": GlueTask("SST-2", (0, None, 1), True, ("0", "1"), "accuracy", ("sentence", None)),
    "cola": GlueTask("CoLA", (3, None, 1), False, ("0", "1"), "matthews", ("sentence", None)),
    "mrpc": GlueTask("MRPC", (3, 4, 0), True, ("0", "1"), "accuracy_f1", ("sentence1", "sentence2")),
    "rte": GlueTask("RTE", (0, 1, 2), True, ("0", "1"), "accuracy", ("sentence1", "sentence2")),
    "stsb": GlueTask("STS-B", (7, 8, 9), True, None, "pearson_spearman", ("sentence1", "sentence2")),
    "qnli": GlueTask(
        "QNLI", (1, 2, 3), True, ("entailment", "not_entailment"), "accuracy", ("question", "sentence"), False
    ),
}
SPLITS = ("train", "dev")


@dataclass(frozen=True)
class Examples:
    """Parsed rows of one split: ``text_a[i]``, ``text_b[i]`` (or None), ``labels[i]`` (class index or score)."""

    text_a: list[str]
    text_b: list[str] | None
    labels: list[float]
    source: str  # what was read: local:<path> or hub:nyu-mll/glue/<config>


def task_spec(name: str) -> GlueTask:
    """Raises ConfigError on an unknown task name (lists the valid ones)."""
    if name not in TASKS:
        raise ConfigError(f"unknown GLUE task '{name}'; valid choices: {', '.join(TASKS)}")
    return TASKS[name]


def _read_tsv(path: Path, task: GlueTask) -> Examples:
    with open(path, encoding="utf-8-sig", newline="") as handle:  # utf-8-sig: MRPC's header starts with a BOM
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    if task.header:
        rows = rows[1:]
    a, b, y = task.columns
    width = max(c for c in task.columns if c is not None) + 1
    bad = [i for i, r in enumerate(rows) if len(r) < width]
    if bad:
        raise DataMissing(
            f"{path}: {len(bad)} rows have fewer than {width} tab-separated fields (first: line {bad[0] + 1})"
        )
    if task.labels is None:
        labels = [float(r[y]) for r in rows]
    else:
        index = {name: i for i, name in enumerate(task.labels)}
        unknown = sorted({r[y] for r in rows} - set(index))
        if unknown:
            raise DataMissing(f"{path}: unknown labels {unknown[:3]}; expected {list(task.labels)}")
        labels = [float(index[r[y]]) for r in rows]
    return Examples([r[a] for r in rows], None if b is None else [r[b] for r in rows], labels, f"local:{path}")


def _from_hub(name: str, task: GlueTask, split: str) -> Examples:
    from datasets import load_dataset  # only for users with hub access

    hub_split = {"train": "train", "dev": "validation"}[split]
    try:
        ds = load_dataset("nyu-mll/glue", name, split=hub_split)
    except Exception as err:  # noqa: BLE001 - offline, missing cache: one clear message
        raise DataMissing(
            f"GLUE {name}: no local copy under data_dir/glue/{task.folder} and the hub is unreachable ({err})"
        ) from None
    first, second = task.hub_fields
    return Examples(
        list(ds[first]),
        None if second is None else list(ds[second]),
        [float(v) for v in ds["label"]],
        f"hub:nyu-mll/glue/{name}",
    )


def load_glue(name: str, split: str, data_dir: str | Path) -> Examples:
    """Examples of GLUE task ``name`` (``sst2 cola mrpc rte stsb qnli``), split ``train`` or ``dev``.

    Raises:
        ConfigError: unknown task or split (valid ones listed).
        DataMissing: malformed file, or neither a local copy nor the hub.
    """
    task = task_spec(name)
    if split not in SPLITS:
        raise ConfigError(f"unknown GLUE split '{split}'; valid choices: {', '.join(SPLITS)}")
    folder = Path(data_dir) / "glue" / task.folder
    if task.has_train or not (folder / "dev.tsv").exists():
        path = folder / f"{split}.tsv"
        return _read_tsv(path, task) if path.exists() else _from_hub(name, task, split)
    dev = _read_tsv(folder / "dev.tsv", task)  # QNLI offline: a fixed cut of dev
    order = list(range(len(dev.labels)))
    random.Random(0).shuffle(order)
    keep = order[:QNLI_HELDOUT] if split == "dev" else order[QNLI_HELDOUT:]
    pick = lambda xs: [xs[i] for i in keep]  # noqa: E731
    return Examples(pick(dev.text_a), pick(dev.text_b), pick(dev.labels), f"{dev.source} (qnli-dev-holdout:{split})")


def glue_parts(n: int, max_train: int | None, valid_examples: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """(training rows, selection rows) of a GLUE train split of ``n`` examples: a fixed shuffle (``seed``); its last
    ``valid_examples`` rows are the selection slice, the first ``max_train`` of the rest train.

    Raises:
        ConfigError: the selection slice would leave fewer than 2 training examples.
    """
    order = list(range(n))
    random.Random(seed).shuffle(order)
    if n - valid_examples < 2:
        raise ConfigError(f"task.valid_examples={valid_examples} leaves {n - valid_examples} of {n} to train on")
    rest, valid = order[: n - valid_examples], order[n - valid_examples :]
    return (rest if max_train is None else rest[: int(max_train)]), valid
