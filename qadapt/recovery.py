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
the adapter, for the question-by-question comparison of ``scripts/reproduce_recovery.py``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import time
from pathlib import Path

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import save_file
from torch import nn

from . import adapters, devices, models
from .adapters.base import count_trainable, freeze
from .compress import CompressionReport, compress
from .data import multiple_choice as mc_data
from .data.wikitext import load_eval_text, load_train_text
from .distributed import barrier, ranks
from .errors import ConfigError
from .log import log
from .results import append_row
from .tasks import multiple_choice, perplexity
from .train import chunk_tokens, fit

# evaluations already done in this process: key -> (perplexity metrics, mc metrics, per-question frame)
_EVALS: dict[str, tuple[dict, dict, pd.DataFrame]] = {}
# SVDs of the uncompressed projections, per (model, method, calibration): every ratio of a sweep truncates the same
_DECOMPOSITIONS: dict[str, dict] = {}
MC_COLUMNS = ("suite", "benchmark", "subject", "id", "answer", "choice", "choice_norm", "correct", "correct_norm",
              "prob_choice", "prob_answer", "probs")


def predictions_frame(name: str, scored: list[multiple_choice.Scored]) -> pd.DataFrame:
    """One row per question: the right answer, the model's choice (plain and length-normalised), its probabilities."""
    rows = []
    for s in scored:
        probs = s.probs
        rows.append({"suite": name, "benchmark": s.question.benchmark, "subject": s.question.subject, "id": s.question.id,
                     "answer": s.question.answer, "choice": s.choice, "choice_norm": s.choice_norm, "correct": s.correct,
                     "correct_norm": s.correct_norm, "prob_choice": probs[s.choice], "prob_answer": probs[s.question.answer],
                     "probs": json.dumps([round(p, 6) for p in probs])})
    return pd.DataFrame(rows, columns=list(MC_COLUMNS))


def evaluate_mc(model: nn.Module, tokenizer, data_dir: str, mc_cfg: DictConfig, bos: bool, label: str) -> tuple[dict, pd.DataFrame]:
    """Every suite of ``mc_cfg``: metrics ``{<suite>_acc, <suite>_acc_norm, <suite>_n}`` and the per-question frame."""
    metrics, frames = {}, []
    for suite in mc_data.suites(data_dir, mc_cfg):
        scored = multiple_choice.score(model, tokenizer, suite.questions, suite.shots, str(mc_cfg.format),
                                       int(mc_cfg.batch_tokens), int(mc_cfg.max_length), bos, f"{label} {suite.name}")
        acc = multiple_choice.accuracy(scored)
        metrics.update({f"{suite.name}_{k}": v for k, v in acc.items()})
        frames.append(predictions_frame(suite.name, scored))
        log(f"{label} {suite.name}: acc {acc['acc']:.3f}, acc_norm {acc['acc_norm']:.3f} ({acc['n']} questions)")
    return metrics, pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(MC_COLUMNS))


def _evaluate(model, tokenizer, cfg: DictConfig, eval_set, label: str) -> tuple[dict, dict, pd.DataFrame]:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ppl = perplexity.evaluate(model, eval_set, int(cfg.task.batch_size), pad, description=f"{label} perplexity").metrics()
    log(f"{label} perplexity {ppl['perplexity']:.4f}")
    bos = bool(cfg.model.get("bos_in_windows", False))
    metrics, frame = evaluate_mc(model, tokenizer, str(cfg.data_dir), cfg.task.mc, bos, label) if cfg.task.get("mc") else ({}, pd.DataFrame())
    return ppl, metrics, frame


def _cached(key: dict, compute) -> tuple[dict, dict, pd.DataFrame]:
    blob = json.dumps(key, sort_keys=True, default=str)
    if blob not in _EVALS:
        _EVALS[blob] = compute()
    else:
        log(f"{key['variant']} model already evaluated in this process; re-using it")
    return _EVALS[blob]


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def calibration_chunks(cfg: DictConfig, tokenizer) -> torch.Tensor | None:
    """``(n, seq_len)`` calibration token ids for ``svd_llm``: the first ``task.compression.calibration_tokens``
    tokens of the training text (WikiText-2 train, else its validation split; never the test split scored)."""
    comp = cfg.task.compression
    n = int(comp.get("calibration_tokens") or 0)
    if comp.method != "svd_llm" or n <= 0:
        return None
    text = load_train_text(cfg.data_dir, cfg.train.text, cfg.train.unk)
    seq = int(comp.get("calibration_seq_len", 512))
    ids = tokenizer(text.text[: 20 * n], add_special_tokens=False).input_ids[:n]
    return chunk_tokens(ids, seq)


def compressed_model(cfg: DictConfig, model: nn.Module, tokenizer) -> tuple[nn.Module, CompressionReport]:
    """A compressed copy of ``model`` as ``cfg.task.compression`` says (the original is left untouched).
    Deterministic: the same config gives the same weights (``qadapt eval mc from_run=`` rebuilds it)."""
    comp = cfg.task.compression
    student = copy.deepcopy(model)
    layers = comp.get("layers")
    key = json.dumps([OmegaConf.to_container(cfg.model), {k: v for k, v in OmegaConf.to_container(comp).items() if k != "ratio"},
                      str(cfg.data_dir), cfg.train.text, cfg.train.unk], sort_keys=True)
    report = compress(student, str(comp.method), float(comp.ratio), list(comp.modules), None if layers is None else list(layers),
                      calibration_chunks(cfg, tokenizer), _DECOMPOSITIONS.setdefault(key, {}))
    freeze(student)  # the new factors are frozen like the rest: only an adapter on top of them trains
    log(f"compressed {report.sites} projections by {report.method} at ratio {report.ratio}: projection parameters "
        f"{report.projection_params_before:,} -> {report.projection_params_after:,}, model {report.model_params_before:,} "
        f"-> {report.model_params_after:,}")
    return student, report


def run_train_recovery(cfg: DictConfig, overrides: list[str], run_dir: Path) -> dict:
    """One cell of the recovery study; see the module docstring. Returns (and appends) its results row.

    Raises:
        ConfigError (bad compression or adapter config, a device that cannot train), DataMissing, ModelUnavailable,
        TrainingDiverged. No row and no adapter file are written on any error.
    """
    from .pipeline import _base_row, _eval_set

    t0 = time.perf_counter()
    training = cfg.adapter.name != "none"
    device = devices.get(cfg.device)
    if training and not device.differentiable:
        raise ConfigError(f"device={cfg.device.name} cannot train (no gradients); train with device=exact")
    mc_data.suites(cfg.data_dir, cfg.task.mc)  # a bad benchmark, subject or missing file fails before any model work
    eval_text = load_eval_text(cfg.data_dir, cfg.task.split)
    train_text = load_train_text(cfg.data_dir, cfg.train.text, cfg.train.unk) if training else None
    loaded = models.load(cfg.model)
    teacher, tokenizer = loaded.model, loaded.tokenizer
    freeze(teacher.eval())
    eval_set = _eval_set(cfg, tokenizer, eval_text)
    common = {"model": OmegaConf.to_container(cfg.model), "ppl": {k: v for k, v in OmegaConf.to_container(cfg.task).items()
                                                                 if k != "compression"}, "data_dir": str(cfg.data_dir)}
    base = _cached({**common, "variant": "base"}, lambda: _evaluate(teacher, tokenizer, cfg, eval_set, "base"))
    student, report = compressed_model(cfg, teacher, tokenizer)
    compressed = _cached({**common, "variant": "compressed", "compression": OmegaConf.to_container(cfg.task.compression)},
                         lambda: _evaluate(student, tokenizer, cfg, eval_set, "compressed"))

    sites = adapters.apply(student, cfg.adapter, device) if training else []
    trainable = count_trainable(student)
    main = ranks().is_main  # in a multi-process launch only process 0 writes (qadapt/distributed.py)
    if main:
        if run_dir.exists() and not cfg.resume:
            for stale in ("adapter.safetensors", "metrics.json"):  # a fresh run must not leave an old result behind
                (run_dir / stale).unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run_dir / "config.yaml")
    barrier()
    result = None
    if training:
        log(f"{adapters.registry.describe(cfg.adapter)}: {len(sites)} sites, {trainable:,} trainable parameters")
        chunks = chunk_tokens(tokenizer(train_text.text, add_special_tokens=False).input_ids, int(cfg.train.seq_len))
        result = fit(student, chunks, cfg.train, run_dir, int(cfg.seed), bool(cfg.resume), teacher=teacher)
        adapted = _evaluate(student, tokenizer, cfg, eval_set, "recovered")
        if main:
            save_file(adapters.adapter_state_dict(student), run_dir / "adapter.safetensors")
    else:
        adapted = compressed

    for variant, (_, _, frame) in zip(("base", "compressed", "adapted"), (base, compressed, adapted)):
        if main:
            _write_csv(frame, run_dir / f"mc_{variant}.csv")
    run_id = f"{run_dir.name}-{dt.datetime.now().strftime('%Y%m%d%H%M%S')}"
    row = _base_row(cfg, "train", overrides, loaded, run_id)
    row.update({
        "run_dir": str(run_dir), "eval_source": eval_set.source, "train_source": train_text.source if training else None,
        "compression_method": report.method, "compression_ratio": report.ratio,
        "compression_achieved": report.achieved_ratio, "compressed_sites": report.sites,
        "projection_params_before": report.projection_params_before, "projection_params_after": report.projection_params_after,
        "base_total_params": report.model_params_before, "compressed_total_params": report.model_params_after,
        "adapter_sites": len(sites), "trainable_params": trainable, "added_params": trainable,
        "total_params": report.model_params_after + trainable,
        "train_steps": result.steps if result else 0, "train_tokens": result.tokens if result else 0,
        "train_seconds": result.seconds if result else 0.0,
        "train_loss_first": result.first_loss if result else None, "train_loss_final": result.final_loss if result else None,
    })
    for prefix, (ppl, mc, _) in (("base_", base), ("compressed_", compressed), ("", adapted)):
        row.update({f"{prefix}{k}": v for k, v in {**ppl, **mc}.items()})
    gap = compressed[0]["perplexity"] - base[0]["perplexity"]
    row["recovery_pct"] = 100 * (compressed[0]["perplexity"] - adapted[0]["perplexity"]) / gap if gap > 0 else float("nan")
    row["wall_seconds"] = time.perf_counter() - t0
    row["peak_rss_mb"] = perplexity.peak_rss_mb()
    if main:
        (run_dir / "metrics.json").write_text(json.dumps(row, indent=2, default=str))
        append_row(cfg.results_dir, row)
    return row


def run_eval_mc(cfg: DictConfig, overrides: list[str]) -> dict:
    """``qadapt eval mc``: MMLU / ARC accuracy of the base model, or of a trained run (``from_run=runs/<dir>``: its
    adapter, and its compression when it is a compression-recovery run). Per-question answers go to
    ``runs_dir/<eval name>/mc_predictions.csv``; one row (acc, acc_norm, n per suite) to the results store.

    Raises:
        ConfigError (no ``task.mc`` block: use task=mc or task=compression_recovery; a run trained on another
        model), DataMissing, ModelUnavailable, QadaptError (``from_run`` is not a finished run).
    """
    from .config import config_hash
    from .pipeline import _base_row, load_run_config

    if not cfg.task.get("mc"):
        raise ConfigError(f"task={cfg.task.name} has no multiple-choice settings; use task=mc or task=compression_recovery")
    t0 = time.perf_counter()
    mc_data.suites(cfg.data_dir, cfg.task.mc)
    saved = None
    if cfg.from_run:
        saved = load_run_config(cfg.from_run)
        if saved.model.name != cfg.model.name:
            raise ConfigError(f"{cfg.from_run} was trained on model={saved.model.name}, not {cfg.model.name}")
        cfg.adapter = saved.adapter
    loaded = models.load(cfg.model)
    model, tokenizer = loaded.model, loaded.tokenizer
    report = None
    if saved is not None and saved.task.get("compression"):
        model, report = compressed_model(saved, model, tokenizer)
    if saved is not None:
        from safetensors.torch import load_file

        adapters.apply(model, saved.adapter, devices.get(cfg.device))
        adapters.load_adapter_state(model, load_file(str(Path(cfg.from_run) / "adapter.safetensors")))
    label = f"{cfg.model.name} {adapters.registry.describe(cfg.adapter) if saved is not None else 'base'}"
    metrics, frame = evaluate_mc(model.eval(), tokenizer, str(cfg.data_dir), cfg.task.mc,
                                 bool(cfg.model.get("bos_in_windows", False)), label)
    name = f"eval-mc-{config_hash(cfg)}"
    out_dir = Path(cfg.runs_dir) / name
    if ranks().is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_csv(frame, out_dir / "mc_predictions.csv")
    row = _base_row(cfg, "eval mc", overrides, loaded, f"{name}-{dt.datetime.now().strftime('%Y%m%d%H%M%S')}")
    row.update({"from_run": cfg.from_run, "run_dir": str(out_dir), "mc_format": cfg.task.mc.format,
                "compression_ratio": report.ratio if report else None,
                "total_params": sum(p.numel() for p in model.parameters()), **metrics,
                "wall_seconds": time.perf_counter() - t0, "peak_rss_mb": perplexity.peak_rss_mb()})
    if ranks().is_main:
        append_row(cfg.results_dir, row)
    return row
