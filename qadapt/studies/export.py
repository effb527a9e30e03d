"""A study's final cells in peft's method-comparison result format (``peft/method_comparison/*/results/*.json``).

One JSON file per arm and seed, ``<out>/<study>--<arm>--seed<s>.json``, with peft's three sections: ``run_info``
(when, how long, the experiment's name, its training config and adapter config), ``train_info`` (training time,
trainable and total parameters, status, the scored metrics; on a CPU the process's peak resident memory in bytes
stands where peft records accelerator memory) and ``meta_info`` (package versions, system). Every figure comes from
the study's committed cells file: the rows the runs recorded, not this process.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pandas as pd

from ..errors import ConfigError
from ..results import write_text_atomic
from .render import done, load_cells
from .spec import Study

FORMATS = ("peft",)


def _number(value):
    return None if value is None or value != value else value.item() if hasattr(value, "item") else value


def _package_info(torch_version) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("transformers", "peft", "datasets", "qadapt"):
        try:
            out[f"{name}-version"] = version(name)
        except PackageNotFoundError:
            out[f"{name}-version"] = None
        out[f"{name}-commit-hash"] = None
    out["torch-version"] = torch_version
    out["torch-commit-hash"] = None
    return out


def peft_result(study: Study, arm: str, test: pd.Series, trained: pd.Series | None, base: float | None) -> dict:
    """One cell in peft's format: ``test`` is the scoring cell, ``trained`` the training cell it scored (None for an
    untrained arm), ``base`` the baseline arm's perplexity on the same split (the base of the study's Δ)."""
    config = json.loads(test["config"])
    source = json.loads(trained["config"]) if trained is not None else config
    train = source.get("train", {})
    train_row = trained if trained is not None else test
    metrics = {
        "step": _number(train_row.get("train_steps")),
        f"{study.final.split} perplexity": _number(test.get("perplexity")),
        f"{study.final.split} base perplexity": base,
        f"{study.final.split} tokens": _number(test.get("tokens_scored")),
    }
    peaks = [float(x) for x in (test.get("peak_rss_mb"), train_row.get("peak_rss_mb")) if _number(x) is not None]
    return {
        "run_info": {
            "created_at": str(train_row.get("run_id", "")).rsplit("-", 1)[-1],
            "total_time": float(test.get("wall_seconds") or 0)
            + (float(train_row.get("wall_seconds") or 0) if train_row.get("run_id") != test.get("run_id") else 0.0),
            "experiment_name": f"{study.name}/{arm}--seed{int(test['seed'])}",
            "peft_branch": None,
            "train_config": {
                "model_id": source["model"].get("hub_id") or source["model"]["name"],
                "dtype": source["model"].get("dtype"),
                "max_seq_length": train.get("seq_len"),
                "batch_size": train.get("batch_size"),
                "batch_size_eval": config["task"].get("batch_size"),
                "max_steps": train.get("max_steps"),
                "seed": int(test["seed"]),
                "grad_norm_clip": train.get("max_grad_norm"),
                "optimizer_type": "AdamW",
                "optimizer_kwargs": {"lr": train.get("lr"), "weight_decay": train.get("weight_decay")},
                "lr_scheduler": train.get("schedule"),
            },
            "peft_config": source.get("adapter"),
            "error_msg": "",
            "qadapt_run_id": test.get("run_id"),
            "qadapt_trained_run_id": None if trained is None else trained.get("run_id"),
            "git_commit": test.get("git_commit"),
        },
        "train_info": {
            "accelerator_memory_reserved_avg": None,
            "accelerator_memory_max": None,
            "accelerator_memory_reserved_99th": None,
            "cpu_memory_max": int(max(peaks) * 2**20) if peaks else None,
            "train_time": _number(train_row.get("train_seconds")) if trained is not None else 0.0,
            "file_size": None,
            "num_trainable_params": int(_number(test.get("trainable_params")) or 0),
            "num_total_params": _number(test.get("base_total_params")),
            "status": "success",
            "metrics": [metrics],
        },
        "meta_info": {
            "model_info": {"sha": None, "created_at": None},
            "dataset_info": {
                "train": _number(train_row.get("train_source")),
                study.final.split: _number(test.get("eval_source")),
            },
            # the run recorded its torch version only; the others are those installed when this file was written
            "package_info": _package_info(_number(test.get("torch"))),
            "system_info": {"system": platform.system(), "machine": test.get("machine"), "accelerator": None},
            "pytorch_info": f"torch {_number(test.get('torch'))}, {_number(test.get('threads'))} threads",
        },
    }


def export(study: Study, results_dir: str | Path, out: str | Path, fmt: str = "peft") -> list[Path]:
    """Write every final cell of ``study`` (its arms' scoring cells, per seed) in ``fmt`` under ``out``.

    Raises:
        ConfigError: an unknown format. QadaptError: the study has no cells file.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"format: unknown '{fmt}'; valid choices: {', '.join(FORMATS)}")
    cells, _ = load_cells(study, results_dir)
    finished = cells[done(cells)]
    test = finished[finished["phase"] == "test"]
    train = finished[finished["phase"] == "train"]
    paths = []
    baseline = test[test["arm"] == study.final.baseline]
    base = float(baseline["perplexity"].iloc[0]) if len(baseline) else None
    for arm, spec in study.arms.items():
        for _, cell in test[test["arm"] == arm].iterrows():
            source = spec.of if spec.kind == "evaluation" else arm
            mine = train[(train["arm"] == source) & (train["seed"] == cell["seed"])]
            trained = mine.iloc[0] if spec.kind != "untrained" and len(mine) else None
            if trained is None and cell.get("command") == "train":  # trained and scored in one run (in_training)
                trained = cell
            path = Path(out) / f"{study.name}--{arm}--seed{int(cell['seed'])}.json"
            result = peft_result(study, arm, cell, trained, base)
            write_text_atomic(path, json.dumps(result, indent=2, allow_nan=False) + "\n")
            paths.append(path)
    return paths
