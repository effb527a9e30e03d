"""Multiple-choice reasoning (``task=mc``, ``qadapt eval mc``): MMLU (0- and 5-shot) and ARC accuracy by answer
log-likelihood, of the base model or of a trained run (its adapter, and its compression when it is a
compression-recovery run). Per-question answers go to ``<run dir>/mc_predictions.csv``.
"""

from __future__ import annotations

import contextlib

from omegaconf import DictConfig

from .. import adapters, runs, schema
from ..config import option_class
from ..data import multiple_choice as mc_data
from ..errors import ConfigError
from ..eval.multiple_choice import evaluate_suites
from . import run_model
from .compression_recovery import write_csv


def evaluate(cfg: DictConfig, overrides: list[str], memo=None) -> dict:
    """``qadapt eval mc``: one row (acc, acc_norm, n per suite) and the per-question answers.

    Raises:
        ConfigError (no ``task.mc`` block: use task=mc or task=compression_recovery; a run trained on another
        model), DataMissing, ModelUnavailable, QadaptError (``from_run`` is not a finished run, or is damaged).
    """
    if not cfg.task.get("mc"):
        raise ConfigError(
            f"task={cfg.task.name} has no multiple-choice settings; use task=mc or task=compression_recovery"
        )
    if not cfg.task.mc.benchmarks:
        raise ConfigError("task.mc.benchmarks is empty: nothing to score; valid choices: mmlu, arc_easy, arc_challenge")
    run = runs.start(cfg, "eval mc", overrides)
    mc_data.suites(cfg.data_dir, cfg.task.mc)
    built = run_model.build(cfg)
    model, report = built.model, built.compression
    label = f"{cfg.model.name} {adapters.describe(cfg.adapter) if built.trained is not None else 'base'}"
    with adapters.merged(model) if built.device.is_exact else contextlib.nullcontext():  # folded in on the exact device
        metrics, frame = evaluate_suites(
            model,
            built.tokenizer,
            str(cfg.data_dir),
            cfg.task.mc,
            bool(schema.value(cfg.model, option_class("model", cfg.model), "bos_in_windows")),
            label,
        )
    runs.prepare(run)
    if run.main:
        write_csv(frame, run.dir / "mc_predictions.csv")
    row = runs.row(run, model_weights=built.loaded.weights, model_source=built.loaded.source)
    row.update(
        {
            "from_run": cfg.from_run,
            "mc_format": cfg.task.mc.format,
            "compression_ratio": report.ratio if report else None,
            "total_params": sum(p.numel() for p in model.parameters()),
            **metrics,
        }
    )
    return runs.finish(run, row)
