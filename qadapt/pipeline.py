"""The one train/eval path every command goes through.

    model   = models.load(cfg.model)
    adapted = adapters.apply(model, cfg.adapter, devices.get(cfg.device))
    base    = perplexity.evaluate(... adapters disabled ..., fills the activation cache)
    train.fit(adapted, chunks, cfg.train)
    metrics = perplexity.evaluate(... adapted ..., reuses the activation cache)
    results.append_row(row)
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, save_file

from . import __version__, adapters, devices, models
from .adapters.base import count_trainable
from .config import config_hash
from .data.wikitext import load_eval_text, load_train_text
from .distributed import barrier, ranks
from .log import log
from .errors import ConfigError, QadaptError
from .paths import PROJECT_DIR
from .results import append_row
from .tasks import perplexity
from .distill import local_distill
from .train import chunk_tokens, fit

TASKS = ("wikitext_ppl", "glue", "vtab", "compression_recovery", "mc")
CLASSIFICATION = ("glue", "vtab")  # trained and scored by qadapt/classify.py
# base evaluations already done in this process (a sweep re-uses them): key -> (metrics, activation cache)
_BASE_EVALS: dict[str, tuple[dict, perplexity.ActivationCache | None]] = {}


@functools.cache
def git_commit() -> str:
    """HEAD of the project checkout, with ``-dirty`` when tracked files outside ``results/`` differ; ``unknown``
    outside git.

    Cached: read once when the first run of a process starts, i.e. the code that process is running.
    """
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=PROJECT_DIR, capture_output=True, text=True, check=True).stdout.strip()
        # results/ is what runs write (runs.csv, tables): a sweep appending its own rows is not a change of the code
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
                               cwd=PROJECT_DIR, capture_output=True, text=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _setup(cfg: DictConfig) -> None:
    git_commit()  # the commit of the code this process loaded, before anything can change on disk
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(int(cfg.seed))
    if cfg.task.name not in TASKS:
        raise ConfigError(f"task '{cfg.task.name}' has no pipeline yet; valid choices: {', '.join(TASKS)}")


def run_dir_for(cfg: DictConfig) -> Path:
    """``runs_dir/<run_name>``, default ``runs_dir/<model>-<adapter>-<config hash>`` (same config, same dir: resumable)."""
    name = cfg.run_name or f"{cfg.model.name}-{cfg.adapter.name}-{config_hash(cfg)}"
    return Path(cfg.runs_dir) / name


def _base_row(cfg: DictConfig, command: str, overrides: list[str], loaded: models.LoadedModel, run_id: str) -> dict:
    return {
        "run_id": run_id,
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "qadapt_version": __version__,
        "command": command,
        "overrides": " ".join(overrides),
        "model": cfg.model.name,
        "model_weights": loaded.weights,
        "model_source": loaded.source,
        "adapter": cfg.adapter.name,
        "adapter_desc": adapters.registry.describe(cfg.adapter),
        "device": cfg.device.name,
        "shots": cfg.device.get("shots"),
        "task": cfg.task.name,
        "mode": cfg.task.get("mode"),
        "max_length": cfg.task.get("max_length"),
        "stride": cfg.task.get("stride"),
        "max_tokens": cfg.task.get("max_tokens"),
        "seed": cfg.seed,
        "config": json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "processes": ranks().world,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
    }


def _eval_set(cfg: DictConfig, tokenizer, text) -> perplexity.EvalSet:
    return perplexity.build_eval_set(tokenizer, text.text, text.source, cfg.task, bool(cfg.model.get("bos_in_windows", False)))


def _eval_cache(cfg: DictConfig, model, eval_set: perplexity.EvalSet) -> perplexity.ActivationCache | None:
    """Cache of the stream entering the first adapted layer, when caching is on and some layer is frozen below
    every adapter: in memory up to ``task.cache_max_gib``, on disk above it."""
    layers = adapters.adapter_layers(model)
    if not cfg.task.cache_activations or not layers or min(layers) == 0:
        return None
    size = perplexity.ActivationCache.size_gib(eval_set, model.config.hidden_size, int(cfg.task.batch_size))
    on_disk = size > float(cfg.task.cache_max_gib)
    if on_disk:
        log(f"activation cache needs {size:.1f} GiB > task.cache_max_gib: kept on disk under $QADAPT_CACHE/activations")
    return perplexity.ActivationCache(min(layers), on_disk)


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def run_train(cfg: DictConfig, overrides: list[str]) -> dict:
    """``qadapt train``: base eval, train the adapter, adapted eval, save, append one results row.

    Raises:
        ConfigError, DataMissing, ModelUnavailable, TrainingDiverged (no row is written on any error).
    """
    _setup(cfg)
    if cfg.task.name in CLASSIFICATION:  # adapter=none there = head-only fine-tuning
        from .classify import run_train_classify

        return run_train_classify(cfg, overrides, run_dir_for(cfg))
    if cfg.task.name == "compression_recovery":  # adapter=none there = the compressed model alone
        from .recovery import run_train_recovery

        return run_train_recovery(cfg, overrides, run_dir_for(cfg))
    if cfg.task.name == "mc":
        raise ConfigError("task=mc has nothing to train; score a model with `qadapt eval mc`")
    if cfg.adapter.name == "none":
        valid = ", ".join(sorted(n for n in adapters.ADAPTERS if n != "none"))
        raise ConfigError(f"adapter=none has nothing to train; valid choices: {valid}")
    t0 = time.perf_counter()
    # device and data first: a bad choice or a missing file should fail before minutes of model loading
    device = devices.get(cfg.device)
    if not device.differentiable:
        raise ConfigError(
            f"device={cfg.device.name} (shots={cfg.device.get('shots')}) cannot train: gradients do not flow through it. "
            "Train with device=exact, then evaluate the trained adapter there: "
            f"qadapt eval ppl from_run=runs/<dir> device={cfg.device.name}"
        )
    eval_text = load_eval_text(cfg.data_dir, cfg.task.split)
    train_text = load_train_text(cfg.data_dir, cfg.train.text, cfg.train.unk)
    loaded = models.load(cfg.model)
    model, tokenizer = loaded.model, loaded.tokenizer
    eval_set = _eval_set(cfg, tokenizer, eval_text)
    base_total = sum(p.numel() for p in model.parameters())
    # a replacement adapter deletes the sub-layers it replaces: keep the unmodified model as base and teacher
    replacing = cfg.adapter.name in adapters.registry.REPLACEMENTS
    teacher = copy.deepcopy(model).eval().requires_grad_(False) if replacing else None
    sites = adapters.apply(model, cfg.adapter, device)
    trainable = count_trainable(model)
    total = sum(p.numel() for p in model.parameters())
    log(f"{adapters.registry.describe(cfg.adapter)}: {len(sites)} sites, {trainable:,} trainable parameters, "
        f"{total:,} in all (base {base_total:,})")

    # base model: evaluated with the adapters switched off; fills the cache of frozen lower layers
    fresh = None if replacing else _eval_cache(cfg, model, eval_set)
    layer = fresh.layer if fresh else None
    key = json.dumps([OmegaConf.to_container(cfg.model), OmegaConf.to_container(cfg.task), str(cfg.data_dir), layer], sort_keys=True)
    if key in _BASE_EVALS:
        base, cache = _BASE_EVALS[key]
        log("base model already evaluated in this process; re-using it")
    else:
        cache = fresh
        if replacing:
            base = perplexity.evaluate(teacher, eval_set, int(cfg.task.batch_size), _pad_id(tokenizer),
                                       description="base model").metrics()
        else:
            with adapters.adapters_disabled(model):
                base = perplexity.evaluate(model, eval_set, int(cfg.task.batch_size), _pad_id(tokenizer),
                                           fill_cache=cache, description="base model").metrics()
        _BASE_EVALS[key] = (base, cache)
    log(f"base perplexity {base['perplexity']:.4f}")

    chunks = chunk_tokens(tokenizer(train_text.text, add_special_tokens=False).input_ids, int(cfg.train.seq_len))
    # the run directory is made only now that config, device, data and model are known to be good
    run_dir = run_dir_for(cfg)
    main = ranks().is_main  # in a multi-process launch only process 0 writes (qadapt/distributed.py)
    if main:
        if run_dir.exists() and not cfg.resume:
            log(f"{run_dir} exists; starting it over (resume=true continues it instead)")
            for stale in ("adapter.safetensors", "metrics.json"):
                (run_dir / stale).unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run_dir / "config.yaml")
    barrier()
    distilled = {}
    if replacing and int(cfg.train.get("distill_steps", 0)) > 0 and not (cfg.resume and (run_dir / "checkpoint.pt").exists()):
        replaced = sorted(int(name.split(".")[1]) for name in sites if name.endswith(".mlp"))
        distilled = local_distill(model, teacher, replaced, chunks, cfg.train, int(cfg.seed))
    result = fit(model, chunks, cfg.train, run_dir, int(cfg.seed), bool(cfg.resume), teacher=teacher)

    adapted = perplexity.evaluate(model, eval_set, int(cfg.task.batch_size), _pad_id(tokenizer),
                                  use_cache=cache, description="adapted model").metrics()
    log(f"adapted perplexity {adapted['perplexity']:.4f}")

    # write the adapter, then the row: a run that fails above leaves neither
    if main:
        save_file(adapters.adapter_state_dict(model), run_dir / "adapter.safetensors")
    run_id = f"{run_dir.name}-{dt.datetime.now().strftime('%Y%m%d%H%M%S')}"
    row = _base_row(cfg, "train", overrides, loaded, run_id)
    row.update({
        "run_dir": str(run_dir),
        "eval_source": eval_set.source,
        "train_source": train_text.source,
        "adapter_sites": len(sites),
        "trainable_params": trainable,
        "added_params": trainable,
        "base_total_params": base_total,
        "total_params": total,
        "removed_params": base_total + trainable - total,
        "train_steps": result.steps,
        "train_tokens": result.tokens,
        "train_seconds": result.seconds,
        "train_loss_first": result.first_loss,
        "train_loss_final": result.final_loss,
        "activation_cache_layer": cache.layer if cache else None,
        "activation_cache_storage": cache.storage if cache else None,
        "train_cache_layer": result.cache_layer,
        "train_cache_storage": result.cache_storage,
        **distilled,
    })
    row.update({f"base_{k}": v for k, v in base.items()})
    row.update(adapted)
    row["delta_ppl_pct"] = 100 * (adapted["perplexity"] / base["perplexity"] - 1)
    row["wall_seconds"] = time.perf_counter() - t0
    row["peak_rss_mb"] = perplexity.peak_rss_mb()
    if main:
        (run_dir / "metrics.json").write_text(json.dumps(row, indent=2, default=str))
        append_row(cfg.results_dir, row)
    return row


def load_run_config(run_dir: str | Path) -> DictConfig:
    """The resolved config saved by a finished training run.

    Raises:
        QadaptError: ``run_dir`` lacks ``config.yaml`` or ``adapter.safetensors``.
    """
    path = Path(run_dir) / "config.yaml"
    if not path.exists() or not (Path(run_dir) / "adapter.safetensors").exists():
        raise QadaptError(f"{run_dir} is not a finished training run (needs config.yaml and adapter.safetensors)")
    return OmegaConf.load(path)


EXACT_DEVICE = {"name": "exact", "shots": None, "seed": 0, "positions": "all"}


def run_eval_ppl(cfg: DictConfig, overrides: list[str]) -> dict:
    """``qadapt eval ppl``: perplexity of the base model (adapter=none), a fresh adapter, or a trained one
    (``from_run=runs/<dir>``: that run's adapter config and weights).

    On a device other than noise-free exact (shots, noise, hardware), the same adapter is first evaluated exactly
    on the same tokens (its activation cache reused by the device pass), and the row reports both perplexities
    and the degradation ``100 (ppl_device / ppl_exact - 1)``. ``device.max_tokens`` caps the tokens evaluated
    (as ``task.max_tokens``, the smaller wins); ``device.positions=scored`` sends only scored positions to the device.
    """
    _setup(cfg)
    t0 = time.perf_counter()
    if cfg.device.get("max_tokens") is not None:
        caps = [int(v) for v in (cfg.task.max_tokens, cfg.device.max_tokens) if v is not None]
        cfg.task.max_tokens = min(caps)
    weights = None
    if cfg.from_run:
        saved = load_run_config(cfg.from_run)
        if saved.model.name != cfg.model.name:
            raise ConfigError(f"{cfg.from_run} was trained on model={saved.model.name}, not {cfg.model.name}")
        cfg.adapter = saved.adapter
        weights = load_file(str(Path(cfg.from_run) / "adapter.safetensors"))
    device = devices.get(cfg.device)
    eval_text = load_eval_text(cfg.data_dir, cfg.task.split)
    loaded = models.load(cfg.model)
    model, tokenizer = loaded.model, loaded.tokenizer
    eval_set = _eval_set(cfg, tokenizer, eval_text)
    adapters.apply(model, cfg.adapter, device)
    if weights is not None:
        adapters.load_adapter_state(model, weights)
    elif cfg.adapter.name != "none":
        log(f"adapter={cfg.adapter.name} without from_run= is untrained (identity at init): this measures the base model")
    scored_only = device.positions == "scored"
    reference, cache = None, None
    if cfg.adapter.name != "none" and not device.is_exact:
        cache = _eval_cache(cfg, model, eval_set)
        adapters.set_device(model, devices.get(OmegaConf.create(EXACT_DEVICE)))
        reference = perplexity.evaluate(model, eval_set, int(cfg.task.batch_size), _pad_id(tokenizer), fill_cache=cache,
                                        description="exact reference").metrics()
        log(f"exact perplexity {reference['perplexity']:.4f} on the same {reference['tokens_scored']:,} tokens")
        adapters.set_device(model, device)
    metrics = perplexity.evaluate(model, eval_set, int(cfg.task.batch_size), _pad_id(tokenizer), use_cache=cache,
                                  scored_only=scored_only, description=f"{cfg.model.name} {cfg.adapter.name} on {device.describe()}").metrics()
    row = _base_row(cfg, "eval ppl", overrides, loaded, f"eval-{config_hash(cfg)}-{dt.datetime.now().strftime('%Y%m%d%H%M%S')}")
    n_adapter = sum(t.numel() for t in adapters.adapter_state_dict(model).values())
    row.update({"eval_source": eval_set.source, "from_run": cfg.from_run, "trainable_params": n_adapter, "added_params": n_adapter,
                "total_params": sum(p.numel() for p in model.parameters()),
                "device_desc": device.describe(), "device_job_ids": " ".join(getattr(device, "job_ids", [])),
                "device_positions": device.positions, "device_max_tokens": cfg.device.get("max_tokens"),
                "device_circuits": device.circuits_run})
    row.update(metrics)
    if reference is not None:
        row["exact_perplexity"] = reference["perplexity"]
        row["exact_mean_nll"] = reference["mean_nll"]
        row["device_degradation_pct"] = 100 * (metrics["perplexity"] / reference["perplexity"] - 1)
    row["wall_seconds"] = time.perf_counter() - t0
    if ranks().is_main:
        append_row(cfg.results_dir, row)
    return row


def count_params(cfg: DictConfig) -> dict:
    """Parameter counts from the architecture alone (meta device, no weights): total, adapter, sites."""
    model = models.build_meta(cfg.model)
    total = sum(p.numel() for p in model.parameters())
    sites = adapters.apply(model, cfg.adapter, devices.get(cfg.device))
    added = count_trainable(model)
    after = sum(p.numel() for p in model.parameters())
    return {"model": cfg.model.name, "adapter": adapters.registry.describe(cfg.adapter), "sites": len(sites),
            "base_params": total, "adapter_params": added, "removed_params": total + added - after, "total_params": after}


def fill_data(cfg: DictConfig) -> str:
    """``qadapt data``: link or download the datasets into ``cfg.data_dir``; returns what was done."""
    from .data.fetch import fill

    return fill(cfg.data_dir)



def circuit_plan(cfg: DictConfig, backend_name: str, optimization_level: int, shots: int, tokens: int,
                 seconds_per_circuit: float) -> list[dict]:
    """``qadapt circuits``: per adapter site, the compiled cost of its block circuits on an IBM backend.

    Block unitaries come from ``from_run`` (a trained adapter) or, without it, from seeded random generators
    (an untrained adapter is the identity, which compiles to nothing). No model weights are loaded: the sites
    come from the architecture on the meta device.
    Returns one dict per site: blocks (= circuits per token), qubits, depth / 1q / 2q gate counts of Q alone
    (mean, max) and of a token's full circuit (amplitude encoding + Q + measurement), circuits and shots for
    ``tokens`` tokens, and QPU time at ``seconds_per_circuit``.
    """
    import numpy as np

    from .devices.qiskit_compile import compile_blocks, fake_backend
    from .quantum import cayley, num_skew_params, skew_symmetric

    backend = fake_backend(backend_name)
    if cfg.from_run:
        saved = load_run_config(cfg.from_run)
        cfg.adapter = saved.adapter
        weights = load_file(str(Path(cfg.from_run) / "adapter.safetensors"))
    model = models.build_meta(cfg.model)
    adapters.apply(model, cfg.adapter, devices.get(OmegaConf.create({"name": "exact", "shots": None, "seed": 0})))
    gen = torch.Generator().manual_seed(int(cfg.seed))
    rows = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        n_blocks, n_params = param.shape
        b = next(bb for bb in (2**k for k in range(1, 12)) if num_skew_params(bb) == n_params)
        gens = weights[name].double() if cfg.from_run else torch.randn(n_blocks, n_params, generator=gen, dtype=torch.float64) * 0.3
        unitaries = cayley(skew_symmetric(gens, b)).numpy()
        q_only = compile_blocks(unitaries, backend, optimization_level, int(cfg.seed))
        full = compile_blocks(unitaries[:1], backend, optimization_level, int(cfg.seed), with_state_prep=True)[0]
        circuits = n_blocks * tokens
        rows.append({
            "site": name.removeprefix("model.").removesuffix(".generator"),
            "blocks": n_blocks, "qubits": int(np.log2(b)),
            "q_depth_mean": float(np.mean([c.depth for c in q_only])), "q_depth_max": max(c.depth for c in q_only),
            "q_2q_mean": float(np.mean([c.two_qubit for c in q_only])), "q_2q_max": max(c.two_qubit for c in q_only),
            "q_1q_mean": float(np.mean([c.one_qubit for c in q_only])),
            "token_circuit_depth": full.depth, "token_circuit_2q": full.two_qubit, "token_circuit_ops": full.ops,
            "tokens": tokens, "circuits": circuits, "shots_total": circuits * shots,
            "qpu_hours": circuits * seconds_per_circuit / 3600,
            "source": "trained" if cfg.from_run else "random generators (seeded)",
        })
    return rows
