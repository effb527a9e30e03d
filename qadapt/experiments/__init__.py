"""One module per ``configs/task/*.yaml``; each has ``train(cfg, overrides)`` (``qadapt train``) and the two
evaluations ``qadapt eval ppl`` / ``qadapt eval mc`` have ``evaluate(cfg, overrides)``; every one returns the run's
results row (qadapt/runs.py). The CLI, launcher sweeps and the reproduce scripts reach them through :func:`run` and
:func:`run_or_reuse` only.

Adding a task: ``configs/task/<name>.yaml`` + ``qadapt/experiments/<name>.py`` + one line in :func:`_trainers`.
"""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig

from .. import runs
from ..config import compose
from ..errors import ConfigError
from ..log import log
from ..memo import Memo

# (cfg, overrides, memo) -> the run's row; memo: what this process keeps between its runs (qadapt/memo.py), or None
Job = Callable[[DictConfig, list[str], Memo | None], dict]
TASKS = ("wikitext_ppl", "glue", "vtab", "compression_recovery", "mc")
# tasks with nothing to train: what to run instead
NOT_TRAINED = {"mc": "task=mc has nothing to train; score a model with `qadapt eval mc`"}


def _trainers() -> dict[str, Job]:
    from . import classify, compression_recovery, wikitext_ppl

    return {
        "wikitext_ppl": wikitext_ppl.train,
        "glue": classify.train,
        "vtab": classify.train,
        "compression_recovery": compression_recovery.train,
    }


def _evaluations() -> dict[str, Job]:
    """``qadapt eval <what>`` -> its experiment, whatever the task's training does (``eval ppl`` scores the task's
    WikiText settings, ``eval mc`` its ``mc`` block)."""
    from . import mc, wikitext_ppl

    return {"ppl": wikitext_ppl.evaluate, "mc": mc.evaluate}


def run(command: str, cfg: DictConfig, overrides: list[str], memo: Memo | None = None) -> dict:
    """Run ``command`` (``train``, ``eval ppl``, ``eval mc``) on one composed config; returns its row. ``memo``: what
    this process keeps between its runs (a study passes one to all its cells), or None.

    Raises:
        ConfigError: an unknown task or evaluation (lists the valid ones), a task with nothing to train (says what to
        run instead), or whatever the experiment raises.
    """
    task = str(cfg.task.name)
    if task not in TASKS:
        raise ConfigError(f"task '{task}' has no experiment yet; valid choices: {', '.join(TASKS)}")
    if command == "train":
        if task in NOT_TRAINED:
            raise ConfigError(NOT_TRAINED[task])
        return _trainers()[task](cfg, overrides, memo)
    what = command.split()[-1]
    evaluations = _evaluations()
    if what not in evaluations:
        raise ConfigError(f"unknown evaluation '{what}'; valid choices: {', '.join(evaluations)}")
    return evaluations[what](cfg, overrides, memo)


def run_or_reuse(
    overrides: list[str],
    command: str = "train",
    recorded: bool = False,
    memo: Memo | None = None,
    cfg: DictConfig | None = None,
) -> dict:
    """The row of ``command`` on ``compose(overrides)``: read back from its finished run directory (same resolved
    config) when there is one, else, with ``recorded``, from its row in ``results/runs.csv`` (for sweeps that need only
    the row: the run directory may be on another machine), else run now. What every sweep uses, so an interrupted
    sweep continues where it stopped. ``memo``: what the process keeps between the runs it makes (:func:`run`).
    ``cfg``: ``compose(overrides)`` where the caller has it already (composing is most of a lookup's time).

    Raises:
        ConfigError and whatever the experiment raises.
    """
    cfg = compose(overrides) if cfg is None else cfg
    done = runs.finished(cfg, command)
    if done is not None:
        log(f"reusing the finished run {done.get('run_dir')}")
        return done
    if recorded:
        row = runs.recorded(cfg, command)
        if row is not None:
            log(f"reusing the recorded row of {row['run_dir']} ({cfg.results_dir}/runs.csv)")
            return row
    return run(command, cfg, ["qadapt", *command.split(), *overrides], memo)
