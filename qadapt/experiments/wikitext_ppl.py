"""WikiText perplexity (``task=wikitext_ppl``): train an adapter on a frozen LM, score base and adapted models.

train:    model = models.load(cfg.model); sites = adapters.apply(model, cfg.adapter, device)
          base = perplexity of the model with its adapters off (fills the activation cache)
          training.fit (replacement adapters: local distillation first, the unmodified model as teacher)
          adapted = perplexity (from the activation cache); runs.finish -> one row
          device passes no gradients: train on train.device (exact), then score the trained adapter on the device
evaluate: the base model (adapter=none), a fresh adapter or a trained one (from_run=runs/<dir>), on any device;
          off the exact device the same adapter is also scored exactly on the same tokens (degradation)
"""

from __future__ import annotations

import contextlib
import copy
import json

from omegaconf import DictConfig, OmegaConf

from .. import adapters, devices, models, resources, runs, schema
from ..adapters.base import count_trainable
from ..atomic import replacing
from ..config import option_class
from ..data.wikitext import Text, load_eval_text, load_train_text
from ..errors import ConfigError
from ..eval import perplexity
from ..eval.windows import EvalSet, build_eval_set
from ..log import log
from ..memo import Memo
from ..training.distill import distill_heads, local_distill
from ..training.lm import chunk_tokens, fit, set_trainable
from ..training.options import DefaultTrain

# per-window scores of an evaluation, in the run directory: what a paired bootstrap over windows resamples
WINDOWS_FILE = "windows.csv"


def save_windows(run_dir, result: perplexity.PerplexityResult, base: perplexity.PerplexityResult | None) -> None:
    """``run_dir/windows.csv``: window index, tokens scored, summed NLL (nats) of this model and of the base model on
    the same window (blank without one). Written whole or not at all; skipped in a multi-process launch."""
    if result.window_nll is None:
        return
    from ..results import write_text_atomic

    lines = ["window,tokens,nll,base_nll"]
    base_nll = base.window_nll if base is not None and base.window_nll is not None else None
    for i, (tokens, nll) in enumerate(zip(result.window_tokens, result.window_nll)):
        lines.append(f"{i},{tokens},{nll!r},{'' if base_nll is None else repr(base_nll[i])}")
    write_text_atomic(run_dir / WINDOWS_FILE, "\n".join(lines) + "\n")


# per-token scores of an evaluation (and of its exact reference on a device): what a bootstrap over tokens resamples
TOKENS_FILE = "token_nll.npz"


def save_tokens(run_dir, result: perplexity.PerplexityResult, exact: perplexity.PerplexityResult | None) -> None:
    """``run_dir/token_nll.npz``: ``nll`` (float64 nats, every scored token in window then text order), ``window``
    (its window index) and, when the run has one, ``exact_nll`` (the same tokens under the exact device). Skipped in a
    multi-process launch."""
    if result.token_nll is None:
        return
    import io

    import numpy as np

    arrays = {
        "nll": np.concatenate(result.token_nll),
        "window": np.concatenate([np.full(len(t), i, dtype=np.int32) for i, t in enumerate(result.token_nll)]),
    }
    if exact is not None and exact.token_nll is not None:
        arrays["exact_nll"] = np.concatenate(exact.token_nll)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    with replacing(run_dir / TOKENS_FILE) as tmp:
        tmp.write_bytes(buffer.getvalue())


CURVE_FILE = "curve.csv"


def learning_curve(cfg: DictConfig, model, tokenizer, pad: int):
    """The learning curve's measurement for :func:`qadapt.training.lm.fit`, or None (``train.eval_every`` 0 or absent):
    perplexity on the first ``train.eval_tokens`` tokens of the held-out validation slice (``train.valid_holdout``
    of WikiText-2 valid, disjoint from the training text), in the task's windows.

    Raises:
        ConfigError: ``eval_every`` > 0 without a held-out slice (``train.valid_holdout`` = 0).
    """
    every = int(schema.value(cfg.train, DefaultTrain, "eval_every"))
    if every <= 0:
        return None
    holdout, unk = holdout_args(cfg)
    if not holdout:
        raise ConfigError(
            f"train.eval_every={every} needs a validation slice disjoint from the training text: set "
            "train.valid_holdout > 0 (e.g. 0.1)"
        )
    task = OmegaConf.merge(
        cfg.task,
        {
            "mode": "sliding",
            "max_bytes": None,
            "max_tokens": schema.value(cfg.train, DefaultTrain, "eval_tokens"),
        },
    )
    text = load_eval_text(cfg.data_dir, "valid_holdout", holdout, unk)
    windows = build_eval_set(tokenizer, text.text, text.source, task, bos_in_windows(cfg))
    size = int(cfg.task.batch_size)
    return lambda: perplexity.evaluate(model, windows, size, pad, description="validation").metrics()["perplexity"]


def save_curve(run_dir, curve: list[tuple[int, float]]) -> None:
    """``run_dir/curve.csv``: step, validation perplexity (whole or not at all)."""
    from ..results import write_text_atomic

    lines = ["step,valid_perplexity", *(f"{step},{ppl!r}" for step, ppl in curve)]
    write_text_atomic(run_dir / CURVE_FILE, "\n".join(lines) + "\n")


EXACT_DEVICE = {"name": "exact", "shots": None, "seed": 0, "positions": "all"}


def holdout_args(cfg: DictConfig) -> tuple[float, str]:
    """(``train.valid_holdout``, ``train.unk``): how the held-out validation slice is cut (qadapt/data/wikitext.py)."""
    return float(cfg.train.valid_holdout), str(cfg.train.unk)


def eval_set(cfg: DictConfig, tokenizer, text) -> EvalSet:
    """The task's evaluation windows of ``text`` (``task.mode``, ``max_length``, ``stride``, caps)."""
    return build_eval_set(tokenizer, text.text, text.source, cfg.task, bos_in_windows(cfg))


def bos_in_windows(cfg: DictConfig) -> bool:
    """``model.bos_in_windows`` (absent: the model's declared default)."""
    return bool(schema.value(cfg.model, option_class("model", cfg.model), "bos_in_windows"))


def eval_cache(cfg: DictConfig, model, windows: EvalSet):
    """Cache of the stream entering the first adapted layer, when caching is on and some layer is frozen below
    every adapter: in memory up to ``task.cache_max_gib``, on disk above it."""
    from ..cache import ActivationCache

    layers = adapters.adapter_layers(model)
    if not cfg.task.cache_activations or not layers or min(layers) == 0:
        return None
    numel = perplexity.cache_numel(windows, model.config.hidden_size, int(cfg.task.batch_size))
    dtype = model.get_input_embeddings().weight.dtype
    size = ActivationCache.gib(numel, dtype)
    on_disk = size > float(cfg.task.cache_max_gib)
    if on_disk:
        log(f"activation cache needs {size:.1f} GiB > task.cache_max_gib: kept on disk under $QADAPT_CACHE/activations")
    return ActivationCache(min(layers), on_disk, capacity=numel, dtype=dtype)


def base_evaluation(
    cfg: DictConfig, model, windows: EvalSet, pad: int, teacher=None, cacheable: bool = True, memo: Memo | None = None
) -> tuple[perplexity.PerplexityResult, object]:
    """The base model's perplexity on ``windows`` and the activation cache that pass filled (None without one): the
    model with its adapters switched off, or ``teacher`` (the unmodified copy kept by replacement adapters). Done once
    per ``memo`` (a process's runs: :class:`qadapt.memo.Memo`) for a model, task and text: a sweep's runs share it (and
    the cache, which depends only on the frozen layers below the first adapted one). ``cacheable=False``: no cache
    (the layers below will train too)."""
    fresh = None if teacher is not None or not cacheable else eval_cache(cfg, model, windows)
    layer = fresh.layer if fresh else None
    key = json.dumps(
        [
            OmegaConf.to_container(cfg.model),
            OmegaConf.to_container(cfg.task),
            str(cfg.data_dir),
            layer,
            holdout_args(cfg),
        ],
        sort_keys=True,
    )
    if memo is not None and key in memo.base_evals:
        log("base model already evaluated in this process; re-using it")
        return memo.base_evals[key]
    if teacher is not None:
        base = perplexity.evaluate(teacher, windows, int(cfg.task.batch_size), pad, description="base model")
    else:
        with adapters.adapters_disabled(model):
            base = perplexity.evaluate(
                model, windows, int(cfg.task.batch_size), pad, fill_cache=fresh, description="base model"
            )
    if memo is not None:
        memo.base_evals[key] = (base, fresh)
    return base, fresh


def train_ids(cfg: DictConfig, tokenizer, text: Text, memo: Memo | None = None) -> list[int]:
    """The token ids of the training ``text`` (no special tokens), tokenised once per ``memo`` for a model and text:
    a study's cells train on the same text (WikiText-2's 1.1 MB validation split: about 1 s a run for SmolLM2's
    tokenizer)."""
    key = json.dumps([OmegaConf.to_container(cfg.model), text.source, len(text.text)], sort_keys=True)
    if memo is not None and key in memo.token_ids:
        return memo.token_ids[key]
    ids = tokenizer(text.text, add_special_tokens=False).input_ids
    if memo is not None:
        memo.token_ids[key] = ids
    return ids


def train(cfg: DictConfig, overrides: list[str], memo: Memo | None = None) -> dict:
    """``qadapt train`` on WikiText: base eval, train the adapter, adapted eval, save, append one results row.

    On a device that passes no gradients the adapter trains on :func:`training_device` (``train.device``, exact)
    and the row's perplexity is then the device's, beside ``exact_perplexity`` and ``device_degradation_pct`` on the
    same tokens (``device.max_tokens`` caps every evaluation of the run).

    Raises:
        ConfigError, DataMissing, ModelUnavailable, TrainingDiverged (no row is written on any error).
    """
    run = runs.start(cfg, "train", overrides)
    whole = schema.value(cfg.train, DefaultTrain, "trainable") == "all"  # the base weights train too (train=paper)
    if not adapters.adapts(cfg.adapter) and not whole:
        valid = ", ".join(sorted(n for n in adapters.ADAPTERS if n != "none"))
        raise ConfigError(
            f"adapter=none has nothing to train; valid choices: {valid} (or train.trainable=all: fine-tune the base)"
        )
    # device and data first: a bad choice or a missing file should fail before minutes of model loading
    device = devices.get(cfg.device)
    trainer = training_device(cfg, device)
    # trained on the simulator, then run where the user asked; device.max_tokens bounds every evaluation of the
    # run then (runs.effective capped task.max_tokens before the run was named)
    on_device = trainer is not device
    eval_text = load_eval_text(cfg.data_dir, cfg.task.split, *holdout_args(cfg))
    train_text = load_train_text(cfg.data_dir, cfg.train.text, cfg.train.unk, holdout_args(cfg)[0])
    loaded = models.load(cfg.model)
    model, tokenizer = loaded.model, loaded.tokenizer
    windows = eval_set(cfg, tokenizer, eval_text)
    base_total = sum(p.numel() for p in model.parameters())
    # a replacement adapter deletes the sub-layers it replaces: keep the unmodified model as base and teacher
    replacing = adapters.replaces(cfg.adapter)
    teacher = copy.deepcopy(model).eval().requires_grad_(False) if replacing else None
    sites = adapters.apply(model, cfg.adapter, trainer)
    added = count_trainable(model)
    set_trainable(model, cfg.train)  # train.trainable=all: the base weights train too
    trainable = count_trainable(model)
    total = sum(p.numel() for p in model.parameters())
    log(
        f"{adapters.describe(cfg.adapter)}: {len(sites)} sites, {trainable:,} trainable parameters "
        f"({schema.value(cfg.train, DefaultTrain, 'trainable')}), {total:,} in all (base {base_total:,})"
    )

    pad = runs.pad_id(tokenizer)
    # whole-model training changes every layer: no frozen prefix whose activations could be reused afterwards
    base_result, cache = base_evaluation(cfg, model, windows, pad, teacher if replacing else None, not whole, memo)
    base = base_result.metrics()
    log(f"base perplexity {base['perplexity']:.4f}")

    chunks = chunk_tokens(train_ids(cfg, tokenizer, train_text, memo), int(cfg.train.seq_len))
    # the run directory is made only now that config, device, data and model are known to be good
    runs.prepare(run)
    distilled = {}
    if replacing and int(cfg.train.distill_steps) > 0 and not run.resumed:
        replaced = sorted(int(name.split(".")[1]) for name in sites if name.endswith(".mlp"))
        distilled = local_distill(model, teacher, replaced, chunks, cfg.train, int(cfg.seed)) if replaced else {}
        if schema.value(
            cfg.train, DefaultTrain, "distill_heads"
        ):  # the quantum heads from the attention patterns they replace
            distilled.update(distill_heads(model, teacher, chunks, cfg.train, int(cfg.seed)))
    validate = learning_curve(cfg, model, tokenizer, pad)
    result = fit(
        model,
        chunks,
        cfg.train,
        run.dir,
        int(cfg.seed),
        bool(cfg.resume),
        teacher=teacher,
        validate=validate,
        memo=memo,
    )
    if result.curve:
        save_curve(run.dir, result.curve)

    with adapters.merged(model):  # trained on the exact device: fold the adapters in for the evaluation
        adapted_result = perplexity.evaluate(
            model, windows, int(cfg.task.batch_size), pad, use_cache=cache, description="adapted model"
        )
    adapted = adapted_result.metrics()
    log(f"adapted perplexity {adapted['perplexity']:.4f}")
    exact, exact_result = None, None
    if on_device:
        exact, exact_result = adapted, adapted_result
        adapted_result = device_pass(cfg, model, windows, pad, device, cache)
        adapted = adapted_result.metrics()
        log(f"on {device.describe()}: perplexity {adapted['perplexity']:.4f} (exact {exact['perplexity']:.4f})")
    save_windows(run.dir, adapted_result, base_result)
    save_tokens(run.dir, adapted_result, exact_result)

    row = runs.row(run, model_weights=loaded.weights, model_source=loaded.source)
    row.update(
        {
            "eval_source": windows.source,
            "train_source": train_text.source,
            "adapter_sites": len(sites),
            "trainable_params": trainable,
            "added_params": added,
            "base_total_params": base_total,
            "total_params": total,
            "removed_params": base_total + added - total,
            **result.row(),
            "activation_cache_layer": cache.layer if cache else None,
            "activation_cache_storage": cache.storage if cache else None,
            **distilled,
        }
    )
    row.update({f"base_{k}": v for k, v in base.items()})
    row.update(adapted)
    row["delta_ppl_pct"] = 100 * (adapted["perplexity"] / base["perplexity"] - 1)
    row.update(noise_columns(trainer))
    if on_device:
        row.update(device_columns(cfg, device))
        row["exact_perplexity"] = exact["perplexity"]
        row["exact_mean_nll"] = exact["mean_nll"]
        row["device_degradation_pct"] = 100 * (adapted["perplexity"] / exact["perplexity"] - 1)
    return runs.finish(run, row, model)


def training_device(cfg: DictConfig, device):
    """The device the adapter trains on: ``device`` itself when gradients flow through it, else ``train.device``
    (null = exact), after which ``qadapt train`` evaluates the trained adapter on ``device`` (the CUA paper's
    workflow: adapters trained classically, then executed on the QPU; NOTES.md).

    Raises:
        ConfigError: ``train.device`` is not a device option, or gradients do not flow through it; the adapter's
            circuits cannot run on ``device`` (QFFN on the IBM devices), said before any training.
    """
    from ..config import group_choices
    from ..paths import CONFIG_DIR

    if cfg.train.get("noise"):
        return noise_aware_device(cfg)
    if device.differentiable:
        return device
    adapters.require_device(cfg.adapter, device)  # apply checks the training device; the run device must run it too
    name = cfg.train.get("device") or "exact"
    if name not in group_choices("device"):
        raise ConfigError(f"train.device={name}: unknown device; valid choices: {', '.join(group_choices('device'))}")
    option = OmegaConf.load(CONFIG_DIR / "device" / f"{name}.yaml")
    option = OmegaConf.merge({"runs_dir": cfg.runs_dir}, {"device": option})
    trainer = devices.get(option.device)
    if not trainer.differentiable:
        raise ConfigError(
            f"train.device={name} cannot train: gradients do not flow through it; valid choices: exact "
            f"(train there, then run on device={cfg.device.name})"
        )
    return trainer


def noise_aware_device(cfg: DictConfig):
    """``train.noise=<fake backend>``: the differentiable depolarising-plus-readout model of that backend's noise on
    CUA's block circuits (qadapt/devices/noise_surrogate.py), compiled at the run device's optimisation level.

    Raises:
        ConfigError: the adapter is not CUA (the model is of CUA's block circuits), ``train.device`` names another
            device, or an unknown backend (lists the valid ones).
    """
    from ..devices.noise_surrogate import NoiseSurrogateDevice

    if adapters.circuits(cfg.adapter) != "blocks":
        valid = ", ".join(f"adapter={a}" for a in adapters.block_circuit_adapters())
        raise ConfigError(
            f"train.noise models block circuits; adapter={cfg.adapter.name} runs none (valid choices: {valid})"
        )
    if cfg.train.get("device") not in (None, "exact"):
        raise ConfigError(f"train.noise={cfg.train.noise} trains on its noise model; leave train.device null")
    level = int(cfg.device.get("optimization_level", 2))  # a device that compiles nothing (exact): the IBM default
    return NoiseSurrogateDevice(str(cfg.train.noise), optimization_level=level, seed=int(cfg.seed))


def device_pass(cfg: DictConfig, model, windows: EvalSet, pad: int, device, cache) -> perplexity.PerplexityResult:
    """The adapted model's perplexity with its adapter sites on ``device`` (circuits sampled, noisy or sent to
    hardware; only the scored positions with ``device.positions=scored``), from the activation cache ``cache``
    of the frozen prefix when there is one. On the exact device the adapters are folded into the weights for the pass
    (base-model speed, the same circuits counted)."""
    adapters.set_device(model, device)
    with adapters.merged(model) if device.is_exact else contextlib.nullcontext():
        return perplexity.evaluate(
            model,
            windows,
            int(cfg.task.batch_size),
            pad,
            use_cache=cache,
            scored_only=device.positions == "scored",
            description=f"{cfg.model.name} {cfg.adapter.name} on {device.describe()}",
        )


def noise_columns(trainer) -> dict:
    """Noise-aware training (``train.noise``): the fitted model and how close it is to the fused engine."""
    fits = getattr(trainer, "fits", None)
    if not fits:
        return {}
    fit = fits[max(fits)]
    return {
        "train_device_desc": trainer.describe(),
        "train_noise_depolarising": fit.depolarising,
        "train_noise_tv": fit.tv_surrogate,
        "train_noise_tv_exact": fit.tv_exact,
    }


def device_columns(cfg: DictConfig, device) -> dict:
    """The row's account of what ran on ``device``: its description, job ids, positions, token cap and circuits."""
    return {
        "device_desc": device.describe(),
        "device_job_ids": " ".join(getattr(device, "job_ids", [])),
        "device_positions": device.positions,
        "device_max_tokens": cfg.device.get("max_tokens"),
        "device_circuits": device.circuits_run,
        "device_mitigation": getattr(device, "mitigation", "none"),
        "device_calibration_circuits": getattr(device, "calibration_circuits", 0),
        "device_calibration_shots": getattr(device, "calibration_shots", 0),
        "device_qpu_seconds_used": getattr(getattr(device, "jobs", None), "qpu_seconds_used", None),
        "device_records": json.dumps(device.records(), sort_keys=True) if hasattr(device, "records") else None,
    }


def evaluate(cfg: DictConfig, overrides: list[str], memo: Memo | None = None) -> dict:
    """``qadapt eval ppl``: perplexity of the base model (adapter=none), a fresh adapter, or a trained one
    (``from_run=runs/<dir>``: that run's adapter config and weights).

    On a device other than noise-free exact (shots, noise, hardware), the same adapter is first evaluated exactly
    on the same tokens (its activation cache reused by the device pass), and the row reports both perplexities
    and the degradation ``100 (ppl_device / ppl_exact - 1)``. ``device.max_tokens`` caps the tokens evaluated
    (as ``task.max_tokens``, the smaller wins); ``device.positions=scored`` sends only scored positions to the device.

    Raises:
        ConfigError, DataMissing, ModelUnavailable, QadaptError (a damaged or unfinished ``from_run``).
    """
    run = runs.start(cfg, "eval ppl", overrides)  # the adapter of from_run and the device's token cap are in cfg now
    trained = runs.load_trained(cfg.from_run, cfg.model.name) if cfg.from_run else None
    device = devices.get(cfg.device)
    eval_text = load_eval_text(cfg.data_dir, cfg.task.split, *holdout_args(cfg))
    loaded = models.load(cfg.model)
    model, tokenizer = loaded.model, loaded.tokenizer
    windows = eval_set(cfg, tokenizer, eval_text)
    # a cap on QPU time: refused here, before the exact reference and the first job (device.max_qpu_seconds)
    positions = windows.n_scored if device.positions == "scored" else sum(len(w.tokens) - 1 for w in windows.windows)
    qpu_estimate = resources.check_qpu_budget(cfg, positions)
    adapters.apply(model, cfg.adapter, device)
    if trained is not None:
        trained.load_into(model)
    elif (
        adapters.adapts(cfg.adapter)
        and schema.value(cfg.adapter, option_class("adapter", cfg.adapter), "init") == "identity"
    ):
        log(
            f"adapter={cfg.adapter.name} without from_run= is untrained (identity at init): "
            "this measures the base model"
        )
    pad = runs.pad_id(tokenizer)
    reference, reference_result, cache, base = None, None, None, None
    whole = trained is not None and trained.whole_model  # no base model or frozen prefix inside these weights
    if adapters.adapts(cfg.adapter) and device.is_exact and not adapters.replaces(cfg.adapter) and not whole:
        # the base model on the same windows (once per process), so the row carries the adapter's change; a
        # replacement adapter deleted what it replaced, so switching it off is not the base model: no base there
        base, cache = base_evaluation(cfg, model, windows, pad, memo=memo)
        log(f"base perplexity {base.metrics()['perplexity']:.4f}")
    elif adapters.adapts(cfg.adapter):
        cache = None if whole else eval_cache(cfg, model, windows)
        adapters.set_device(model, devices.get(OmegaConf.create(EXACT_DEVICE)))
        with adapters.merged(model):  # the exact reference as `qadapt eval ppl` on the exact device computes it
            reference_result = perplexity.evaluate(
                model, windows, int(cfg.task.batch_size), pad, fill_cache=cache, description="exact reference"
            )
            reference = reference_result.metrics()
        log(f"exact perplexity {reference['perplexity']:.4f} on the same {reference['tokens_scored']:,} tokens")
        adapters.set_device(model, device)
    result = device_pass(cfg, model, windows, pad, device, cache)
    metrics = result.metrics()
    runs.prepare(run)
    save_windows(run.dir, result, base)
    save_tokens(run.dir, result, reference_result)
    row = runs.row(run, model_weights=loaded.weights, model_source=loaded.source)
    n_adapter = sum(t.numel() for t in adapters.adapter_state_dict(model).values())
    row.update(
        {
            "eval_source": windows.source,
            "from_run": cfg.from_run,
            "trainable_params": n_adapter,
            "added_params": n_adapter,
            "total_params": sum(p.numel() for p in model.parameters()),
            **device_columns(cfg, device),
            "device_qpu_seconds_estimated": qpu_estimate,
        }
    )
    row.update(metrics)
    if base is not None:
        row.update({f"base_{k}": v for k, v in base.metrics().items()})
        row["delta_ppl_pct"] = 100 * (metrics["perplexity"] / row["base_perplexity"] - 1)
    if reference is not None:
        row["exact_perplexity"] = reference["perplexity"]
        row["exact_mean_nll"] = reference["mean_nll"]
        row["device_degradation_pct"] = 100 * (metrics["perplexity"] / reference["perplexity"] - 1)
    return runs.finish(run, row)
