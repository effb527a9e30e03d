"""Compression recovery (CUA paper, SmolLM2-135M study): ``qadapt train task=compression_recovery adapter=cua``.

    teacher    = models.load(cfg.model)                            # the uncompressed model, frozen
    student    = compress(copy of teacher, task.compression)       # truncated SVD of the projections
    base, compressed = perplexity + multiple choice of each        # cached per process (a sweep reuses them)
    sites      = adapters.apply(student, cfg.adapter)              # cua / lora / oft on the compressed projections
    fit        : knowledge distillation, kl_weight KL(teacher || student) + ce_weight CE (train=recovery)
    recovered  = perplexity + multiple choice
    recovery   = (ppl_compressed - ppl_recovered) / (ppl_compressed - ppl_base)

``adapter=none`` stops after ``compressed`` (no training): the row of the compressed model alone. Each run writes
its per-question answers for the three models (``mc_base.csv``, ``mc_compressed.csv``, ``mc_adapted.csv``) beside
the adapter, for the question-by-question comparison of the compression_recovery study's hook (``question_diff.md``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from .. import adapters, devices, models, runs, schema
from ..adapters.base import count_trainable, freeze
from ..atomic import replacing
from ..config import option_class
from ..data import multiple_choice as mc_data
from ..data.wikitext import load_eval_text, load_train_text
from ..eval import perplexity
from ..eval.multiple_choice import evaluate_suites
from ..log import log
from ..memo import Memo
from ..models.compress import CompressionReport, compress
from ..training.lm import chunk_tokens, fit
from .wikitext_ppl import WINDOWS_FILE, eval_set, holdout_args, train_ids


def _evaluate(model, tokenizer, cfg: DictConfig, windows, label: str):
    """(perplexity metrics, multiple-choice metrics, per-question frame, the perplexity result with its windows)."""
    with adapters.merged(model):  # recovery trains and scores on the exact device: adapters folded in
        result = perplexity.evaluate(
            model, windows, int(cfg.task.batch_size), runs.pad_id(tokenizer), description=f"{label} perplexity"
        )
        ppl = result.metrics()
        log(f"{label} perplexity {ppl['perplexity']:.4f}")
        bos = bool(schema.value(cfg.model, option_class("model", cfg.model), "bos_in_windows"))
        if not cfg.task.get("mc"):
            return ppl, {}, pd.DataFrame(), result
        metrics, frame = evaluate_suites(model, tokenizer, str(cfg.data_dir), cfg.task.mc, bos, label)
    return ppl, metrics, frame, result


def _cached(key: dict, compute, memo: Memo | None):
    """``compute()``, or its result kept in ``memo`` for the same key (a sweep's base and compressed models)."""
    if memo is None:
        return compute()
    blob = json.dumps(key, sort_keys=True, default=str)
    if blob not in memo.recovery_evals:
        memo.recovery_evals[blob] = compute()
    else:
        log(f"{key['variant']} model already evaluated in this process; re-using it")
    return memo.recovery_evals[blob]


def save_windows(run_dir: Path, adapted, base, compressed) -> None:
    """``run_dir/windows.csv``: window, tokens scored, summed NLL (nats) of the recovered model (the compressed one for
    adapter=none), the base and the compressed model on the same window: what a bootstrap of recovery resamples.
    Skipped in a multi-process launch (no per-window scores there)."""
    if any(r.window_nll is None for r in (adapted, base, compressed)):
        return
    frame = pd.DataFrame(
        {
            "window": range(len(adapted.window_nll)),
            "tokens": adapted.window_tokens,
            "nll": adapted.window_nll,
            "base_nll": base.window_nll,
            "compressed_nll": compressed.window_nll,
        }
    )
    write_csv(frame, run_dir / WINDOWS_FILE)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` as CSV through a temp file and a rename."""
    with replacing(path) as tmp:
        frame.to_csv(tmp, index=False)


def calibration_chunks(cfg: DictConfig, tokenizer) -> torch.Tensor | None:
    """``(n, seq_len)`` calibration token ids for ``svd_llm``: the first ``task.compression.calibration_tokens``
    tokens of the training text (WikiText-2 train, else its validation split; never the test split scored)."""
    comp = cfg.task.compression
    n = int(comp.get("calibration_tokens") or 0)
    if comp.method != "svd_llm" or n <= 0:
        return None
    text = load_train_text(cfg.data_dir, cfg.train.text, cfg.train.unk, holdout_args(cfg)[0])
    seq = int(comp.get("calibration_seq_len", 512))
    ids = tokenizer(text.text[: 20 * n], add_special_tokens=False).input_ids[:n]
    return chunk_tokens(ids, seq)


def compressed_model(
    cfg: DictConfig, model: nn.Module, tokenizer, memo: Memo | None = None
) -> tuple[nn.Module, CompressionReport]:
    """A compressed copy of ``model`` as ``cfg.task.compression`` says (the original is left untouched).
    Deterministic: the same config gives the same weights (``qadapt eval mc from_run=`` rebuilds it)."""
    comp = cfg.task.compression
    student = copy.deepcopy(model)
    layers = comp.get("layers")
    key = json.dumps(
        [
            OmegaConf.to_container(cfg.model),
            {k: v for k, v in OmegaConf.to_container(comp).items() if k != "ratio"},
            str(cfg.data_dir),
            cfg.train.text,
            cfg.train.unk,
            holdout_args(cfg)[0],
        ],
        sort_keys=True,
    )
    report = compress(
        student,
        str(comp.method),
        float(comp.ratio),
        list(comp.modules),
        None if layers is None else list(layers),
        calibration_chunks(cfg, tokenizer),
        {} if memo is None else memo.decompositions.setdefault(key, {}),
    )
    freeze(student)  # the new factors are frozen like the rest: only an adapter on top of them trains
    log(
        f"compressed {report.sites} projections by {report.method} at ratio {report.ratio}: projection parameters "
        f"{report.projection_params_before:,} -> {report.projection_params_after:,}, model "
        f"{report.model_params_before:,} -> {report.model_params_after:,}"
    )
    return student, report


def train(cfg: DictConfig, overrides: list[str], memo: Memo | None = None) -> dict:
    """One cell of the recovery study; see the module docstring. Returns (and appends) its results row.

    Raises:
        ConfigError (bad compression or adapter config, a device that cannot train), DataMissing, ModelUnavailable,
        TrainingDiverged. No row and no adapter file are written on any error.
    """
    run = runs.start(cfg, "train", overrides)
    training = adapters.adapts(cfg.adapter)
    device = devices.get(cfg.device)
    if training:
        runs.check_trainable(cfg, device)
    mc_data.suites(cfg.data_dir, cfg.task.mc)  # a bad benchmark, subject or missing file fails before any model work
    eval_text = load_eval_text(cfg.data_dir, cfg.task.split, *holdout_args(cfg))
    train_text = (
        load_train_text(cfg.data_dir, cfg.train.text, cfg.train.unk, holdout_args(cfg)[0]) if training else None
    )
    loaded = models.load(cfg.model)
    teacher, tokenizer = loaded.model, loaded.tokenizer
    freeze(teacher.eval())
    windows = eval_set(cfg, tokenizer, eval_text)
    ppl_task = {k: v for k, v in OmegaConf.to_container(cfg.task).items() if k != "compression"}
    common = {
        "model": OmegaConf.to_container(cfg.model),
        "ppl": ppl_task,
        "data_dir": str(cfg.data_dir),
        "holdout": holdout_args(cfg),
    }
    base = _cached({**common, "variant": "base"}, lambda: _evaluate(teacher, tokenizer, cfg, windows, "base"), memo)
    student, report = compressed_model(cfg, teacher, tokenizer, memo)
    compressed = _cached(
        {**common, "variant": "compressed", "compression": OmegaConf.to_container(cfg.task.compression)},
        lambda: _evaluate(student, tokenizer, cfg, windows, "compressed"),
        memo,
    )

    sites = adapters.apply(student, cfg.adapter, device) if training else []
    trainable = count_trainable(student)
    runs.prepare(run)
    result = None
    if training:
        log(f"{adapters.describe(cfg.adapter)}: {len(sites)} sites, {trainable:,} trainable parameters")
        chunks = chunk_tokens(train_ids(cfg, tokenizer, train_text, memo), int(cfg.train.seq_len))
        result = fit(student, chunks, cfg.train, run.dir, int(cfg.seed), bool(cfg.resume), teacher=teacher, memo=memo)
        adapted = _evaluate(student, tokenizer, cfg, windows, "recovered")
    else:
        adapted = compressed

    if run.main:
        for variant, (_, _, frame, _) in zip(("base", "compressed", "adapted"), (base, compressed, adapted)):
            write_csv(frame, run.dir / f"mc_{variant}.csv")
        save_windows(run.dir, adapted[3], base[3], compressed[3])
    row = runs.row(run, model_weights=loaded.weights, model_source=loaded.source)
    trained = (
        result.row()
        if result
        else {
            "train_steps": 0,
            "train_tokens": 0,
            "train_seconds": 0.0,
            "train_loss_first": None,
            "train_loss_final": None,
        }
    )
    row.update(
        {
            "eval_source": windows.source,
            "train_source": train_text.source if training else None,
            "compression_method": report.method,
            "compression_ratio": report.ratio,
            "compression_achieved": report.achieved_ratio,
            "compressed_sites": report.sites,
            "projection_params_before": report.projection_params_before,
            "projection_params_after": report.projection_params_after,
            "base_total_params": report.model_params_before,
            "compressed_total_params": report.model_params_after,
            "adapter_sites": len(sites),
            "trainable_params": trainable,
            "added_params": trainable,
            "total_params": report.model_params_after + trainable,
            **trained,
        }
    )
    for prefix, (ppl, mc, _, _) in (("base_", base), ("compressed_", compressed), ("", adapted)):
        row.update({f"{prefix}{k}": v for k, v in {**ppl, **mc}.items()})
    gap = compressed[0]["perplexity"] - base[0]["perplexity"]
    row["recovery_pct"] = (
        100 * (compressed[0]["perplexity"] - adapted[0]["perplexity"]) / gap if gap > 0 else float("nan")
    )
    return runs.finish(run, row, student)  # adapter=none: an empty adapter file, so every run directory has one
