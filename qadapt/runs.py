"""The run lifecycle every experiment goes through: prepare, finish, reuse, load.

    run = runs.prepare(cfg, "train", overrides)      # run directory (fresh or resumed), config.yaml
    ...                                              # the experiment trains and scores
    runs.finish(run, row, model)                     # adapter.safetensors (+ structure), metrics.json, one row

A run directory, whatever the task, holds:

- ``config.yaml``: the resolved config;
- ``adapter.safetensors`` (training runs): the trainable tensors, with the adapter's config and per-site structure
  in the safetensors metadata (:func:`save_adapter`), read back by :func:`load_trained`;
- ``metrics.json``: the run's results row (the same dict appended to ``results/runs.csv``);
- task extras (``checkpoint.pt`` while training, ``mc_*.csv`` per-question answers).

One row schema: :data:`ROW_COLUMNS` names and explains every column any experiment writes (docs/results-row.md is
generated from it by :func:`columns_markdown` and a test keeps the two equal); :func:`finish` refuses an
undocumented column.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import os
import platform
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from . import __version__, adapters, schema
from .atomic import replacing
from .config import config_hash
from .distributed import barrier, ranks
from .errors import ConfigError, QadaptError
from .log import log
from .paths import PROJECT_DIR
from .process import peak_rss_mb
from .results import append_row
from .training.options import DefaultTrain

CONFIG_FILE = "config.yaml"
ADAPTER_FILE = "adapter.safetensors"
METRICS_FILE = "metrics.json"
CHECKPOINT_FILE = "checkpoint.pt"
ADAPTER_FORMAT = "qadapt-adapter/1"

# Every column of results/runs.csv: name -> meaning (unit). Names with <...> are families (one column per value).
ROW_COLUMNS: dict[str, str] = {
    # identity and provenance (every row)
    "run_id": "unique id of this row: <run directory name>-<UTC timestamp>",
    "time": "UTC time the row was written (ISO 8601)",
    "git_commit": "HEAD of the qadapt checkout that ran, -dirty when tracked files outside results/ differed",
    "qadapt_version": "qadapt's package version",
    "command": "the CLI command: train, eval ppl or eval mc",
    "overrides": "the Hydra overrides of this run, space-separated",
    "run_dir": "the run directory (config.yaml, adapter.safetensors, metrics.json)",
    "config": "the resolved config as JSON",
    "config_hash": "8-hex-digit hash of the resolved config (run-level bookkeeping keys ignored)",
    "model": "model config name (model=)",
    "model_weights": "what the weights are (checkpoint and precision)",
    "model_source": "where the weights were loaded from (package, hub id, path)",
    "adapter": "adapter config name (adapter=)",
    "adapter_desc": "short label of the adapter and its size, e.g. cua(q=2,input)",
    "device": "device config name (device=)",
    "shots": "measurements per circuit (empty: exact probabilities)",
    "task": "task config name (task=)",
    "subtask": "GLUE task or image set (classification tasks)",
    "mode": "perplexity windowing: sliding or documents",
    "max_length": "tokens per evaluation window (or classifier input length)",
    "stride": "tokens a sliding window advances",
    "max_tokens": "cap on evaluated tokens (empty: the whole split)",
    "seed": "run seed (initialisation, batch order, shot sampling)",
    "torch": "torch version",
    "threads": "torch intra-op threads",
    "processes": "processes of a distributed launch (1 without)",
    "machine": "CPU architecture and core count",
    "from_run": "the trained run an evaluation loaded (empty: base model or untrained adapter)",
    "wall_seconds": "wall-clock seconds of the whole command (s)",
    "peak_rss_mb": "peak resident memory of the process (MiB)",
    # data
    "eval_source": "the evaluated text or examples and where they came from",
    "train_source": "the training text or examples and where they came from",
    "train_examples": "training examples (classification)",
    "eval_examples": "evaluated examples (classification)",
    # parameters
    "adapter_sites": "modules the adapter wraps or replaces",
    "trainable_params": "parameters trained (adapter, plus the head for classification)",
    "added_params": "parameters the adapter adds to the base model",
    "adapter_params": "trainable adapter parameters, head excluded (classification)",
    "head_params": "parameters of the linear classification head",
    "backbone_params": "parameters of the backbone without the head (classification)",
    "base_total_params": "parameters of the base model",
    "total_params": "parameters of the evaluated model",
    "removed_params": "parameters deleted by a replacement adapter (QFFN, its classical control)",
    # training
    "train_steps": "optimizer steps",
    "train_tokens": "training tokens seen (steps x accumulation x batch x sequence length)",
    "train_seconds": "wall seconds of the training loop (s)",
    "train_loss_first": "training loss of the first step (nats per token, or the task loss)",
    "train_loss_final": "mean training loss of the last log_every steps (last 10 for classification)",
    "collapse": "why the run collapsed (qadapt/results/collapse.py: a loss that never left its start, a diverged "
    "perplexity, one class for every example); empty: it did not",
    "train_cache_layer": "decoder layer whose input stream training cached (empty: no cache)",
    "train_cache_storage": "where the training activation cache lived: memory or disk",
    "curve_points": "learning-curve points in curve.csv (train.eval_every; empty: no curve)",
    "curve_final_ppl": "validation perplexity at the last learning-curve point (train.eval_every)",
    "distill_rel_err_before": "replacement blocks: mean relative error to the replaced FFN before local distillation",
    "distill_rel_err_after": "replacement blocks: mean relative error after local distillation",
    "distill_tokens": "hidden states per layer used for local distillation",
    "distill_seconds": "wall seconds of local distillation (s)",
    "head_kl_before": "quantum heads: mean KL from the classical attention pattern before head distillation (nats)",
    "head_kl_after": "quantum heads: mean KL from the classical attention pattern after head distillation (nats)",
    "head_distill_seconds": "wall seconds of the quantum heads' distillation (s)",
    # perplexity (wikitext_ppl, compression_recovery); base_/compressed_ prefixes: the same for those models
    "perplexity": "token perplexity exp(NLL / tokens)",
    "mean_nll": "mean negative log-likelihood per scored token (nats)",
    "word_perplexity": "exp(NLL / words), words as whitespace-separated strings",
    "bits_per_byte": "NLL / (UTF-8 bytes x ln 2)",
    "tokens_scored": "tokens scored",
    "words": "words of the scored text",
    "bytes": "UTF-8 bytes of the scored text",
    "eval_seconds": "wall seconds of the evaluation pass (s)",
    "tokens_per_s": "scored tokens per second of the evaluation pass",
    "delta_ppl_pct": "100 (perplexity / base_perplexity - 1) (%)",
    "activation_cache_layer": "decoder layer whose input stream evaluation cached (empty: no cache)",
    "activation_cache_storage": "where the evaluation activation cache lived: memory or disk",
    "base_<metric>": "a perplexity or multiple-choice metric of the base model (adapters off or the teacher)",
    "compressed_<metric>": "a metric of the compressed model before recovery (compression_recovery)",
    # devices
    "device_desc": "the device and its settings, e.g. ibm_fake(FakeFez, shots=8192)",
    "device_job_ids": "hardware or sampler job ids, space-separated",
    "device_positions": "which positions ran on the device: scored or all",
    "device_max_tokens": "cap on the tokens evaluated on the device",
    "device_circuits": "circuits the device ran",
    "train_device_desc": "noise-aware training: the noise model the adapter trained through and its fitted strength",
    "train_noise_depolarising": "its depolarising strength lambda for the adapter's block size (0 = noiseless)",
    "train_noise_tv": "mean total-variation distance of that model to the fused engine's outcome distributions "
    "(held-out blocks and inputs)",
    "train_noise_tv_exact": "the same distance for the noiseless distribution (what the model has to explain)",
    "device_mitigation": "error mitigation applied to the device's counts: none or readout",
    "device_calibration_circuits": "readout-calibration circuits run for the mitigation (circuits)",
    "device_calibration_shots": "their shots in all (shots)",
    "device_records": "the IBM devices' records, JSON: backend, its calibration time (the properties compiled "
    "against), the physical qubits each block is measured on, shots, sampler and options, the readout "
    "calibration's circuits and shots, qiskit and qiskit-ibm-runtime versions",
    "device_qpu_seconds_used": "QPU time the evaluation's jobs used, as the service measured each (seconds; "
    "job.usage() or its metrics; empty where the sampler reports none: Aer, the fused engine)",
    "device_qpu_seconds_estimated": "QPU time the evaluation was estimated to need before its first job, as qadapt "
    "plan estimates it (seconds; only where device.max_qpu_seconds caps it)",
    "exact_perplexity": "the same adapter evaluated exactly on the same tokens",
    "exact_mean_nll": "mean NLL of the exact evaluation (nats)",
    "device_degradation_pct": "100 (perplexity / exact_perplexity - 1) (%)",
    # classification
    "metric": "the task's metric: accuracy, matthews, accuracy_f1 or pearson_spearman",
    "score": "the metric's value (0..1; correlations -1..1)",
    "metric_<name>": "the metric's components (e.g. accuracy and f1 for MRPC)",
    # compression recovery
    "compression_method": "svd or svd_llm",
    "compression_ratio": "parameters kept in each compressed projection (asked)",
    "compression_achieved": "parameters kept in the compressed projections (achieved)",
    "compressed_sites": "projections compressed",
    "projection_params_before": "parameters of the compressed projections before compression",
    "projection_params_after": "parameters of the compressed projections after compression",
    "compressed_total_params": "parameters of the compressed model",
    "recovery_pct": "100 (ppl_compressed - ppl_recovered) / (ppl_compressed - ppl_base) (%)",
    # multiple choice
    "mc_format": "answer format: continuation or letters",
    "<suite>_acc": "accuracy on a multiple-choice suite (mmlu_0shot, mmlu_5shot, arc_easy, arc_challenge)",
    "<suite>_acc_norm": "accuracy with answers scored per byte (length-normalised)",
    "<suite>_n": "questions in the suite",
}
# family columns: prefix / suffix rules standing for the <...> entries above
_FAMILIES = (
    re.compile(r"^(base|compressed)_(.+)$"),
    re.compile(r"^metric_\w+$"),
    re.compile(r"^(mmlu_0shot|mmlu_5shot|arc_easy|arc_challenge)_(acc|acc_norm|n)$"),  # the <suite>_ entries
)


def documented(column: str) -> bool:
    """Whether ``column`` is in :data:`ROW_COLUMNS`, by name or as a member of a family."""
    if column in ROW_COLUMNS:
        return True
    prefixed = _FAMILIES[0].match(column)
    if prefixed:
        return documented(prefixed.group(2))
    return any(rule.match(column) for rule in _FAMILIES[1:])


def columns_markdown() -> str:
    """docs/results-row.md: the table of :data:`ROW_COLUMNS` (tests/unit/test_architecture.py keeps the file equal to
    it)."""
    lines = [
        "# The results row",
        "",
        "Every command appends one row to `results/runs.csv` (and writes the same dict to its run directory's",
        "`metrics.json`). The columns, from `qadapt.runs.ROW_COLUMNS` (regenerate this page with",
        "`python -c \"from qadapt.runs import columns_markdown; print(columns_markdown(), end='')\" "
        "> docs/results-row.md`);",
        "a row holds the columns its experiment measures, the file their union. Names with `<...>` are families.",
        "",
        "| column | meaning (unit) |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {meaning} |" for name, meaning in ROW_COLUMNS.items()]
    return "\n".join(lines) + "\n"


@functools.cache
def git_commit() -> str:
    """HEAD of the project checkout, with ``-dirty`` when tracked files outside ``results/`` differ; ``unknown``
    outside git.

    Cached: read once when the first run of a process starts, i.e. the code that process is running.
    """
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
        ).stdout.strip()
        # results/ is what runs write (runs.csv, tables): a sweep appending its own rows is not a change of the code
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_dir_for(cfg: DictConfig, command: str = "train") -> Path:
    """``runs_dir/<run_name>``; default ``runs_dir/<model>-<adapter>-<config hash>`` for training and
    ``runs_dir/eval-<ppl|mc>-<config hash>`` for evaluations (same config, same directory: resumable, reusable)."""
    if cfg.get("run_name"):
        return Path(cfg.runs_dir) / str(cfg.run_name)
    if command == "train":
        return Path(cfg.runs_dir) / f"{cfg.model.name}-{cfg.adapter.name}-{config_hash(cfg)}"
    return Path(cfg.runs_dir) / f"eval-{command.split()[-1]}-{config_hash(cfg)}"


@dataclass
class Run:
    """One command on one config: where it writes and what it started from.

    Attributes:
        cfg: the resolved config. command: ``train``, ``eval ppl`` or ``eval mc``. overrides: the Hydra overrides.
        dir: the run directory. started: ``time.perf_counter()`` at :func:`start`. main: this process writes
        (process 0 of a distributed launch). resumed: a training run continued from its checkpoint. config_hash: the
        hash that named the directory, of the :func:`effective` config (the row records it; the ``config.yaml`` saved
        there hashes to it).
    """

    cfg: DictConfig
    command: str
    overrides: list[str]
    dir: Path
    started: float = field(default_factory=time.perf_counter)
    main: bool = True
    resumed: bool = False
    config_hash: str = ""


def effective(cfg: DictConfig, command: str) -> DictConfig:
    """Fill in ``cfg`` (in place; returned) with what ``command`` takes beyond what it composed, so that a run is
    named after the config that runs and its ``config.yaml`` hashes to its directory's name: an evaluation of a
    trained run (``from_run``) takes that run's adapter (from its ``config.yaml``, else from its recorded row: the
    run may be on another machine); ``device.max_tokens`` caps ``task.max_tokens`` wherever the device evaluates (an
    evaluation; a training run that trains elsewhere, on the exact device or a noise model, then evaluates there).
    Where ``from_run`` is found neither way, the adapter is left as composed (the command then says what is wrong).
    """
    from . import devices

    if command.startswith("eval") and cfg.get("from_run"):
        adapter = trained_adapter(cfg, cfg.from_run)
        if adapter is not None:
            cfg.adapter = adapter
    device = cfg.get("device")
    cap = device.get("max_tokens") if device is not None else None
    if cap is not None and "max_tokens" in (cfg.get("task") or {}):  # a task that scores tokens
        elsewhere = command == "train" and (
            cfg.train.get("noise") or not devices.gradients_flow(device)  # trained elsewhere, evaluated on it
        )
        if command == "eval ppl" or elsewhere:
            cfg.task.max_tokens = min(int(v) for v in (cfg.task.get("max_tokens"), cap) if v is not None)
    return cfg


def trained_adapter(cfg: DictConfig, run_dir: str | Path) -> DictConfig | None:
    """The adapter block of the training run ``run_dir``: its ``config.yaml``, else its row in
    ``cfg.results_dir/runs.csv``; None where neither has it."""
    config = Path(run_dir) / CONFIG_FILE
    if config.exists():
        try:
            return OmegaConf.load(config).adapter
        except Exception:  # a damaged file: load_trained names it when the command loads the run
            return None
    from .results import load_rows

    rows = load_rows(cfg.results_dir)
    if not len(rows) or "config" not in rows:
        return None
    mine = rows[(rows["run_dir"].astype(str) == str(run_dir)) & (rows["command"] == "train")]
    if not len(mine) or not isinstance(mine["config"].iloc[-1], str):
        return None
    return OmegaConf.create(json.loads(mine["config"].iloc[-1])).get("adapter")


def start(cfg: DictConfig, command: str, overrides: list[str]) -> Run:
    """Set up the process for a run (seed, threads, the commit of the code that runs) and time it from here. The
    config is made :func:`effective` first, then names the run. Nothing is written yet: :func:`prepare` makes the
    directory once the inputs are known to be good."""
    effective(cfg, command)
    git_commit()  # the commit of the code this process loaded, before anything can change on disk
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(int(cfg.seed))
    return Run(
        cfg, command, list(overrides), run_dir_for(cfg, command), main=ranks().is_main, config_hash=config_hash(cfg)
    )


def prepare(run: Run) -> Run:
    """Make the run directory and save ``config.yaml``. A training run without ``resume=true`` starts over: the old
    adapter, metrics and checkpoint go first, so a failed run never leaves an earlier result behind."""
    if run.main:
        if run.dir.exists() and not run.cfg.get("resume"):
            if (run.dir / METRICS_FILE).exists():
                log(f"{run.dir} exists; starting it over (resume=true continues it instead)")
            for stale in (ADAPTER_FILE, METRICS_FILE):
                (run.dir / stale).unlink(missing_ok=True)
        run.dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(run.cfg, run.dir / CONFIG_FILE)
    run.resumed = bool(run.cfg.get("resume")) and (run.dir / CHECKPOINT_FILE).exists()
    barrier()
    return run


def row(run: Run, *, model_weights: str | None = None, model_source: str | None = None) -> dict:
    """The columns every row starts with (provenance, config, machine); experiments add their own."""
    cfg = run.cfg
    return {
        "run_id": f"{run.dir.name}-{dt.datetime.now().strftime('%Y%m%d%H%M%S')}",
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "qadapt_version": __version__,
        "command": run.command,
        "overrides": " ".join(run.overrides),
        "run_dir": str(run.dir),
        "model": cfg.model.name,
        "model_weights": model_weights,
        "model_source": model_source,
        "adapter": cfg.adapter.name,
        "adapter_desc": adapters.describe(cfg.adapter),
        "device": cfg.device.name,
        "shots": cfg.device.get("shots"),
        "task": cfg.task.name,
        "subtask": cfg.task.get("subtask"),
        "mode": cfg.task.get("mode"),
        "max_length": cfg.task.get("max_length"),
        "stride": cfg.task.get("stride"),
        "max_tokens": cfg.task.get("max_tokens"),
        "seed": int(cfg.seed),
        "config": json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True),
        "config_hash": run.config_hash or config_hash(cfg),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "processes": ranks().world,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
    }


def finish(run: Run, result: dict, model: nn.Module | None = None) -> dict:
    """Close a run: its adapter (when ``model`` is given), ``metrics.json`` and one row in ``results/runs.csv``, in
    that order (a run that fails before leaves no row). Adds ``wall_seconds`` and ``peak_rss_mb``; returns the row.

    Raises:
        ValueError: a column missing from :data:`ROW_COLUMNS` (document it there first).
    """
    result = {**result, "wall_seconds": time.perf_counter() - run.started, "peak_rss_mb": peak_rss_mb()}
    if "collapse" not in result:
        from .results.collapse import reason

        result["collapse"] = reason(result)
    undocumented = [k for k in result if not documented(k)]
    if undocumented:
        raise ValueError(f"results columns without a description in qadapt.runs.ROW_COLUMNS: {undocumented}")
    if run.main:
        run.dir.mkdir(parents=True, exist_ok=True)
        if model is not None:
            save_adapter(run.dir / ADAPTER_FILE, model, run.cfg)
        write_json_atomic(run.dir / METRICS_FILE, result)
        append_row(run.cfg.results_dir, result)
        # the checkpoint only resumes an unfinished run; with train.trainable=all it holds the whole model and AdamW's
        # two moments (about 1.6 GB for SmolLM2-135M), so a sweep would fill the disk
        (run.dir / CHECKPOINT_FILE).unlink(missing_ok=True)
    return result


def write_json_atomic(path: Path, data: dict) -> None:
    """``data`` as indented JSON through a temp file and a rename (never half a file)."""
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str))


def save_adapter(path: Path, model: nn.Module, cfg: DictConfig) -> None:
    """The trainable tensors of ``model`` (:func:`qadapt.adapters.adapter_state_dict`) as safetensors, with the
    metadata ``format`` (:data:`ADAPTER_FORMAT`), ``model`` (config name), ``adapter`` (the adapter config, JSON) and
    ``structure`` (per site, what the adapter layer reports: block size, qubits, side...; JSON). Atomic."""
    from safetensors.torch import save_file

    metadata = {
        "format": ADAPTER_FORMAT,
        "model": str(cfg.model.name),
        "adapter": json.dumps(OmegaConf.to_container(cfg.adapter, resolve=True), sort_keys=True),
        "structure": json.dumps(adapters.structure(model), sort_keys=True, default=str),
    }
    with replacing(path) as tmp:
        save_file(adapters.adapter_state_dict(model), str(tmp), metadata=metadata)


@dataclass
class Trained:
    """A finished training run read back by :func:`load_trained`.

    Attributes:
        dir: the run directory. cfg: its resolved config. weights: the adapter tensors by qualified parameter name.
        metadata: the safetensors metadata (``format``, ``model``, ``adapter``, ``structure``; JSON strings).
    """

    dir: Path
    cfg: DictConfig
    weights: dict[str, torch.Tensor]
    metadata: dict[str, str]

    @property
    def whole_model(self) -> bool:
        """Trained with ``train.trainable=all`` (the QFFN paper's protocol): the weights are the whole model's, so
        neither the base model (adapters off) nor a frozen-prefix activation cache can be had from it."""
        train = self.cfg.get("train") or {}
        return schema.value(train, DefaultTrain, "trainable") == "all"

    def load_into(self, model: nn.Module) -> None:
        """Load the weights into ``model``, injected with this run's adapter config (every parameter of it for a
        whole-model run). Raises: ConfigError when names or shapes differ (another adapter config)."""
        if self.whole_model:
            model.requires_grad_(True)
        adapters.load_adapter_state(model, self.weights)

    @property
    def structure(self) -> dict:
        """Per adapter site, the structure saved with the weights (empty for files written before it was saved)."""
        return json.loads(self.metadata.get("structure", "{}"))


def load_trained(run_dir: str | Path, model_name: str | None = None) -> Trained:
    """The config and adapter weights of a finished training run.

    Raises:
        QadaptError: ``run_dir`` is not a finished run (no ``config.yaml`` or ``adapter.safetensors``), or one of its
            files is damaged or truncated (the message names the file and what to do).
        ConfigError: the run was trained on another model than ``model_name``.
    """
    from safetensors import SafetensorError, safe_open

    run_dir = Path(run_dir)
    config, weights_file = run_dir / CONFIG_FILE, run_dir / ADAPTER_FILE
    legacy = run_dir / "trained.safetensors"  # classification runs before the one run schema
    if not weights_file.exists() and legacy.exists():
        weights_file = legacy
    if not config.exists() or not weights_file.exists():
        raise QadaptError(
            f"{run_dir} is not a finished training run (needs {CONFIG_FILE} and {ADAPTER_FILE}); "
            "train it with qadapt train, or point from_run= at a finished run"
        )
    try:
        cfg = OmegaConf.load(config)
    except Exception as err:  # yaml's and OmegaConf's errors have no common base
        raise QadaptError(f"{config} is damaged ({type(err).__name__}); delete {run_dir} and train it again") from None
    try:
        with safe_open(str(weights_file), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            weights = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise QadaptError(
            f"{weights_file} is damaged or truncated ({str(err).splitlines()[0][:120]}); delete {run_dir} "
            "and train it again (qadapt train with the overrides in its config.yaml)"
        ) from None
    if model_name is not None and cfg.model.name != model_name:
        raise ConfigError(f"{run_dir} was trained on model={cfg.model.name}, not {model_name}")
    return Trained(run_dir, cfg, weights, metadata)


def finished(cfg: DictConfig, command: str = "train") -> dict | None:
    """The row of the finished run of ``cfg`` (same resolved config, same run directory), or None.

    Finished = ``metrics.json`` written (the last step of :func:`finish`) and, for training, ``adapter.safetensors``.
    """
    for run_dir in directories(cfg, command):
        metrics = run_dir / METRICS_FILE
        if not metrics.exists() or (command == "train" and not (run_dir / ADAPTER_FILE).exists()):
            continue
        try:
            return json.loads(metrics.read_text())
        except json.JSONDecodeError:
            continue  # a damaged metrics file: the run is done again
    return None


def directories(cfg: DictConfig, command: str) -> list[Path]:
    """Where ``cfg``'s run of ``command`` is: the directory named after its :func:`effective` config, then (where it
    differs) the one named after the config as composed, which is how runs were named before 2026-12-07 (an
    evaluation of a trained run, a device token cap), so that their rows and directories are still found."""
    named = run_dir_for(effective(copy.deepcopy(cfg), command), command)
    composed = run_dir_for(cfg, command)
    return [named] if composed == named else [named, composed]


def recorded(cfg: DictConfig, command: str = "train") -> dict | None:
    """The last row of ``cfg``'s run in ``cfg.results_dir/runs.csv`` (same run directory name, hence same config
    hash, same command), or None. Run directories are not committed; the store is, so a sweep continued on another
    machine (a later session, a CI worker) can reuse a finished cell's row when it needs nothing else of the run.
    Empty cells read back as None.
    """
    import pandas as pd

    from .results import load_rows

    rows = load_rows(cfg.results_dir)
    if not len(rows) or "run_dir" not in rows or "command" not in rows:
        return None
    for run_dir in directories(cfg, command):
        mine = rows[(rows["run_dir"].astype(str) == str(run_dir)) & (rows["command"] == command)]
        if len(mine):
            break
    else:
        return None
    row = mine.iloc[-1]
    return {k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def pad_id(tokenizer) -> int:
    """The id that pads batches: the tokenizer's pad token, else its end-of-sequence token."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def check_trainable(cfg: DictConfig, device) -> None:
    """Raise when the run cannot train here.

    Raises:
        ConfigError: ``device`` passes no gradients.
    """
    if not device.differentiable:
        raise ConfigError(
            f"device={cfg.device.name} (shots={cfg.device.get('shots')}) cannot train: gradients do not flow through "
            "it. Train with device=exact, then evaluate the trained adapter there: "
            f"qadapt eval ppl from_run=runs/<dir> device={cfg.device.name}"
        )
