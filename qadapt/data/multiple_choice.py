"""MMLU and AI2 ARC from the offline copies in ``<data_dir>`` (see the data README), and their prompts.

Files: ``mmlu/{dev,val,test}/<subject>_<split>.csv`` (no header: question, A, B, C, D, answer letter; ``dev``
holds the 5 few-shot examples of each subject) and ``arc/ARC-{Easy,Challenge}/ARC-*-{Train,Dev,Test}.jsonl``
(official jsonl). Prompts follow lm-evaluation-harness:

* ``continuation`` (default; lm-eval ``mmlu_continuation``, ``arc_easy``, ``arc_challenge``): context
  ``"Question: {q}\\nAnswer:"``, each answer scored as the continuation ``" {answer text}"``;
* ``letters`` (lm-eval ``mmlu``): the choices listed as ``A. ...`` and the continuations ``" A"`` ... ``" D"``.

MMLU prompts start with ``"The following are (multiple choice) questions (with answers) about {subject}.\\n\\n"``;
k-shot prompts put the first k ``dev`` questions of the same subject, answered, before the question, separated by
a blank line. ARC has no shots here (lm-eval scores it zero-shot).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DataMissing

BENCHMARKS = ("mmlu", "arc_easy", "arc_challenge")
FORMATS = ("continuation", "letters")
MMLU_SPLITS = ("dev", "val", "test")
ARC_SPLITS = {"train": "Train", "dev": "Dev", "test": "Test"}
ARC_FOLDERS = {"arc_easy": "ARC-Easy", "arc_challenge": "ARC-Challenge"}


@dataclass(frozen=True)
class Question:
    """One multiple-choice item. ``answer`` indexes ``choices``; ``id`` is unique within its benchmark."""

    benchmark: str
    subject: str
    id: str
    question: str
    choices: tuple[str, ...]
    answer: int


def _require(path: Path) -> Path:
    if not path.exists():
        raise DataMissing(f"{path} not found; run `make data` (links ../shared/data) or set data_dir=")
    return path


def mmlu_subjects(data_dir: str | Path) -> list[str]:
    """The 57 subject names, from the ``test`` files present."""
    folder = _require(Path(data_dir) / "mmlu" / "test")
    return sorted(p.name.removesuffix("_test.csv") for p in folder.glob("*_test.csv"))


def load_mmlu(data_dir: str | Path, split: str = "test", subjects: list[str] | None = None) -> list[Question]:
    """MMLU questions of ``split`` for ``subjects`` (None = all 57), in file order; ids ``<subject>/<split>/<row>``.

    Raises:
        ConfigError: unknown split or subject (lists the valid ones).
        DataMissing: the files are not in ``data_dir``.
    """
    if split not in MMLU_SPLITS:
        raise ConfigError(f"unknown MMLU split '{split}'; valid choices: {', '.join(MMLU_SPLITS)}")
    known = mmlu_subjects(data_dir)
    for s in subjects or []:
        if s not in known:
            raise ConfigError(f"unknown MMLU subject '{s}'; valid choices: {', '.join(known)}")
    out = []
    for subject in subjects or known:
        path = _require(Path(data_dir) / "mmlu" / split / f"{subject}_{split}.csv")
        with open(path, newline="", encoding="utf-8") as f:
            for i, row in enumerate(csv.reader(f)):
                if len(row) != 6 or row[5] not in "ABCD":
                    raise DataMissing(
                        f"{path}:{i + 1}: expected question, 4 choices, answer letter; got {len(row)} fields"
                    )
                out.append(
                    Question("mmlu", subject, f"{subject}/{split}/{i}", row[0], tuple(row[1:5]), "ABCD".index(row[5]))
                )
    return out


def load_arc(data_dir: str | Path, benchmark: str, split: str = "test") -> list[Question]:
    """ARC-Easy or ARC-Challenge questions (3 to 5 choices; numeric answer keys 1-4 mapped like letters).

    Raises:
        ConfigError: unknown benchmark or split.  DataMissing: the file is not in ``data_dir``.
    """
    if benchmark not in ARC_FOLDERS or split not in ARC_SPLITS:
        raise ConfigError(
            f"unknown ARC set '{benchmark}' / split '{split}'; valid choices: "
            f"{', '.join(ARC_FOLDERS)} / {', '.join(ARC_SPLITS)}"
        )
    folder = ARC_FOLDERS[benchmark]
    path = _require(Path(data_dir) / "arc" / folder / f"{folder}-{ARC_SPLITS[split]}.jsonl")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        labels = [c["label"] for c in item["question"]["choices"]]
        out.append(
            Question(
                benchmark,
                benchmark,
                item["id"],
                item["question"]["stem"],
                tuple(c["text"] for c in item["question"]["choices"]),
                labels.index(item["answerKey"]),
            )
        )
    return out


def load(
    data_dir: str | Path, benchmark: str, split: str = "test", subjects: list[str] | None = None
) -> list[Question]:
    """Questions of one benchmark (``mmlu``, ``arc_easy``, ``arc_challenge``).

    Raises:
        ConfigError: unknown benchmark, split or subject.  DataMissing: files not in ``data_dir``.
    """
    if benchmark == "mmlu":
        return load_mmlu(data_dir, split, subjects)
    if benchmark in ARC_FOLDERS:
        return load_arc(data_dir, benchmark, split)
    raise ConfigError(f"unknown benchmark '{benchmark}'; valid choices: {', '.join(BENCHMARKS)}")


def _subject_title(subject: str) -> str:
    return subject.replace("_", " ")


def _body(q: Question, fmt: str) -> str:
    if fmt == "letters":
        listed = "".join(f"\n{'ABCDE'[i]}. {c}" for i, c in enumerate(q.choices))
        return f"{q.question.strip()}{listed}\nAnswer:"
    return f"Question: {q.question.strip()}\nAnswer:"


def continuations(q: Question, fmt: str = "continuation") -> list[str]:
    """The strings scored after the context, one per choice (leading space included, as lm-eval)."""
    if fmt == "letters":
        return [f" {'ABCDE'[i]}" for i in range(len(q.choices))]
    return [f" {c}" for c in q.choices]


def context(q: Question, shots: list[Question] = (), fmt: str = "continuation") -> str:
    """The prompt before the answer: MMLU's subject line, the answered shots, then the question.

    Raises:
        ConfigError: unknown format.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown task.mc.format '{fmt}'; valid choices: {', '.join(FORMATS)}")
    head = ""
    if q.benchmark == "mmlu":
        kind = "multiple choice questions" if fmt == "letters" else "questions"
        head = f"The following are {kind} (with answers) about {_subject_title(q.subject)}.\n\n"
    answered = "".join(f"{_body(s, fmt)}{continuations(s, fmt)[s.answer]}\n\n" for s in shots)
    return head + answered + _body(q, fmt)


# the two questions the CUA paper quotes (subject -> start of the question); always in a capped MMLU selection
QUOTED = {
    "astronomy": "Which of the jovian planets have rings?",
    "college_biology": "Gene flow between populations results in",
}


@dataclass(frozen=True)
class Suite:
    """One scored set: ``name`` (e.g. ``mmlu_5shot``, ``arc_easy``), its questions and the shots per subject."""

    name: str
    questions: list[Question]
    shots: dict[str, list[Question]]


def _sample(items: list[Question], cap: int | None, seed: str) -> list[Question]:
    """The first ``cap`` of a seeded permutation (so a smaller cap gives a subset of a larger one), file order kept."""
    if cap is None or cap >= len(items):
        return list(items)
    import random

    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    keep = set(order[:cap])
    keep |= {i for i, q in enumerate(items) if q.subject in QUOTED and q.question.startswith(QUOTED[q.subject])}
    return [q for i, q in enumerate(items) if i in keep]


def suites(data_dir: str | Path, mc) -> list[Suite]:
    """The scored sets a ``task.mc`` config asks for (see ``configs/task/mc.yaml``).

    MMLU: the test questions of ``mc.subjects`` (None = all 57), one suite per entry of ``mc.mmlu_shots`` with
    ``mc.mmlu_per_subject[i]`` questions per subject (a seeded sample, fixed across runs, the paper's two quoted
    questions always included; null = all), shots from the ``dev`` split. ARC: ``mc.arc_questions`` test
    questions per set (seeded sample; null = all), zero-shot. ``mc.full=true`` lifts every cap.

    Raises:
        ConfigError: unknown benchmark, subject or format, shots > 5 (MMLU dev has 5 per subject), or
        ``mmlu_shots`` and ``mmlu_per_subject`` of different lengths.
    """
    full = bool(mc.get("full", False))
    subjects = list(mc.subjects) if mc.get("subjects") else None
    out = []
    for bench in mc.benchmarks:
        if bench not in BENCHMARKS:
            raise ConfigError(
                f"unknown benchmark '{bench}' in task.mc.benchmarks; valid choices: {', '.join(BENCHMARKS)}"
            )
        if bench == "mmlu":
            shots_list, caps = list(mc.mmlu_shots), list(mc.mmlu_per_subject)
            if len(shots_list) != len(caps):
                raise ConfigError("task.mc.mmlu_shots and task.mc.mmlu_per_subject need one entry each per suite")
            test = load_mmlu(data_dir, "test", subjects)
            dev = load_mmlu(data_dir, "dev", subjects)
            for k, cap in zip(shots_list, caps):
                if not 0 <= int(k) <= 5:
                    raise ConfigError(f"task.mc.mmlu_shots entries must be 0..5 (MMLU dev has 5 per subject), got {k}")
                chosen = []
                for subject in dict.fromkeys(q.subject for q in test):
                    chosen += _sample(
                        [q for q in test if q.subject == subject],
                        None if full or cap is None else int(cap),
                        f"mmlu-{subject}",
                    )
                shots = {
                    s: [q for q in dev if q.subject == s][: int(k)] for s in dict.fromkeys(q.subject for q in chosen)
                }
                out.append(Suite(f"mmlu_{int(k)}shot", chosen, shots))
        else:
            cap = mc.get("arc_questions")
            out.append(
                Suite(
                    bench,
                    _sample(load_arc(data_dir, bench, "test"), None if full or cap is None else int(cap), bench),
                    {},
                )
            )
    return out
