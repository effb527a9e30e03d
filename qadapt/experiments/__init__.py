"""One module per ``configs/task/*.yaml``; each has ``train(cfg, overrides)`` and/or ``evaluate(cfg, overrides)``
returning the run's results row (qadapt/runs.py). The CLI, launcher sweeps and the reproduce scripts reach them
through :func:`run` and :func:`run_or_reuse` only.

Adding a task: ``configs/task/<name>.yaml`` + ``qadapt/experiments/<name>.py`` + one line in :data:`EXPERIMENTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import DictConfig

from .. import runs
from ..config import compose
from ..errors import ConfigError
from ..log import log


@dataclass(frozen=True)
class Experiment:
    """What a task can do: ``train`` (``qadapt train``) and ``evaluate`` (``qadapt eval <evaluates>``); either may be
    None, with ``why`` saying what to run instead."""

    module: str
    train: Callable[[DictConfig, list[str]], dict] | None
    evaluate: Callable[[DictConfig, list[str]], dict] | None
    why: str = ""


def _load() -> dict[str, Experiment]:
    from . import classify, compression_recovery, mc, wikitext_ppl

    return {
        "wikitext_ppl": Experiment("wikitext_ppl", wikitext_ppl.train, wikitext_ppl.evaluate),
        "glue": Experiment("classify", classify.train, None, "score a classifier with qadapt train (it evaluates)"),
        "vtab": Experiment("classify", classify.train, None, "score a classifier with qadapt train (it evaluates)"),
        # the recovery task's perplexity and multiple-choice evaluations: eval ppl / eval mc task=compression_recovery
        "compression_recovery": Experiment("compression_recovery", compression_recovery.train, wikitext_ppl.evaluate),
        "mc": Experiment("mc", None, mc.evaluate, "task=mc has nothing to train; score a model with `qadapt eval mc`"),
    }


TASKS = ("wikitext_ppl", "glue", "vtab", "compression_recovery", "mc")
# `qadapt eval <what>` -> the experiment whose evaluate runs it, whatever the task's training does
EVALUATIONS = {"ppl": "wikitext_ppl", "mc": "mc"}


def get(task: str) -> Experiment:
    """The experiment of ``task`` (``cfg.task.name``).

    Raises:
        ConfigError: no experiment for that task (lists the valid ones).
    """
    table = _load()
    if task not in table:
        raise ConfigError(f"task '{task}' has no experiment yet; valid choices: {', '.join(TASKS)}")
    return table[task]


def run(command: str, cfg: DictConfig, overrides: list[str]) -> dict:
    """Run ``command`` (``train``, ``eval ppl``, ``eval mc``) on one composed config; returns its row.

    Raises:
        ConfigError: the task cannot do that (the message says what to run instead), or whatever the experiment raises.
    """
    experiment = get(str(cfg.task.name))
    if command == "train":
        if experiment.train is None:
            raise ConfigError(experiment.why)
        return experiment.train(cfg, overrides)
    what = command.split()[-1]
    if what not in EVALUATIONS:
        raise ConfigError(f"unknown evaluation '{what}'; valid choices: {', '.join(EVALUATIONS)}")
    evaluate = get(EVALUATIONS[what]).evaluate
    return evaluate(cfg, overrides)


def run_or_reuse(overrides: list[str], command: str = "train") -> dict:
    """The row of ``command`` on ``compose(overrides)``: read back from its finished run directory (same resolved
    config) when there is one, else run now. What every sweep uses, so an interrupted sweep continues where it stopped.

    Raises:
        ConfigError and whatever the experiment raises.
    """
    cfg = compose(overrides)
    done = runs.finished(cfg, command)
    if done is not None:
        log(f"reusing the finished run {runs.run_dir_for(cfg, command)}")
        return done
    return run(command, cfg, ["qadapt", *command.split(), *overrides])
