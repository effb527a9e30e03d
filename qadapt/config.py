"""Hydra compose API: overrides in, resolved and type-checked config out; sweep expansion for ``--multirun``.

``compose(["adapter=cua", "adapter.qubits_per_block=3"])`` returns the same config Hydra's ``@hydra.main`` would,
without Hydra taking over the process (the CLI is Typer's), after checking every key against the typed schema of its
option (its class in the ``options.py`` of the room that reads it, :data:`SCHEMAS`): a value of the wrong type or
range is a :class:`ConfigError` (exit 2) naming the key and what it accepts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import typing
from collections.abc import Mapping
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException
from pydantic import Field

from .adapters.options import (
    BlockDiagAdapter,
    BOFTAdapter,
    CUAAdapter,
    FFNLowRankAdapter,
    FFNPrunedAdapter,
    FullAdapter,
    LoRAAdapter,
    NoAdapter,
    NormTuningAdapter,
    OFTAdapter,
    QFFNAdapter,
    RBSAdapter,
)
from .data.options import CompressionRecoveryTask, GlueOptions, MCTask, VtabTask, WikitextPPLTask
from .devices.options import ExactOptions, IBMFakeOptions, IBMOptions, PennyLaneOptions
from .errors import ConfigError
from .models.options import (
    DebertaV3Base,
    Dinov2Large,
    EfficientNetLite0,
    Gemma3_270M,
    Llama31_8B,
    Llama_7B,
    MiniLM_L6,
    Qwen_7B,
    SmolLM2_135M,
)
from .paths import CONFIG_DIR
from .schema import GROUPS, Option, PosInt, Seed, Text, check_block, hash_neutral, named, show
from .training.options import ClassifyTrain, DefaultTrain, NewBlocksTrain, PaperTrain, RecoveryTrain

# keys that never change a run by themselves, left out of config_hash: run bookkeeping, and model.adapter_targets, the
# default of adapter.modules (what a run adapts is adapter.modules, resolved and hashed; the hashes of runs made before
# the key existed stay the same)
HASH_IGNORED = ("resume", "run_name", "threads", "model.adapter_targets")


class RootConfig(Option):
    """Run-level keys of ``configs/config.yaml`` (the groups model, adapter, device, task, train have their own)."""

    seed: Seed = Field(description="global random seed: torch, batch order, adapter and head init, sampled subsets")
    data_dir: Text = Field(description="datasets `make data` prepared (path; default env QADAPT_DATA_DIR, else data)")
    results_dir: Text = Field(description="the tidy results store runs.csv and the committed tables (path)")
    runs_dir: Text = Field(description="one directory per training run: config, checkpoints, weights, metrics (path)")
    run_name: Text | None = Field(description="run directory name in runs_dir; null = <model>-<adapter>-<config hash>")
    resume: bool = Field(description="continue an interrupted training run from its last checkpoint, same batches")
    from_run: Text | None = Field(
        description="evaluation: a finished training run directory whose adapter config and weights are "
        "loaded (path); null = the adapter of this config, untrained"
    )
    threads: PosInt | None = Field(description="torch intra-op threads (CPU threads per process); null = torch's")


# ---------------------------------------------------------------------------------------------------------------
# registry: group -> option name -> its class (the option names are the classes' ``name`` literals; train options
# have no name key and are listed with theirs)

_TRAIN = {
    "default": DefaultTrain,
    "new_blocks": NewBlocksTrain,
    "paper": PaperTrain,
    "recovery": RecoveryTrain,
    "classify": ClassifyTrain,
}


SCHEMAS: dict[str, dict[str, type[Option]]] = {
    "model": named(
        SmolLM2_135M,
        Gemma3_270M,
        Llama31_8B,
        Llama_7B,
        Qwen_7B,
        MiniLM_L6,
        DebertaV3Base,
        EfficientNetLite0,
        Dinov2Large,
    ),
    "adapter": named(
        CUAAdapter,
        QFFNAdapter,
        FFNLowRankAdapter,
        FFNPrunedAdapter,
        RBSAdapter,
        BlockDiagAdapter,
        NormTuningAdapter,
        LoRAAdapter,
        OFTAdapter,
        BOFTAdapter,
        FullAdapter,
        NoAdapter,
    ),
    "device": named(ExactOptions, PennyLaneOptions, IBMFakeOptions, IBMOptions),
    "task": named(WikitextPPLTask, GlueOptions, VtabTask, CompressionRecoveryTask, MCTask),
    "train": _TRAIN,
}


def option_class(group: str, block: Any) -> type[Option]:
    """The class of the option a block of keys of ``group`` names (``cfg.adapter`` -> :class:`CUAAdapter`).

    Raises:
        ConfigError: the block's ``name`` is not an option of ``group``.
    """
    cls = SCHEMAS[group].get(str(block.get("name")))
    if cls is None:
        raise ConfigError(f"{group}.name={show(block.get('name'))}: expected one of {', '.join(SCHEMAS[group])}")
    return cls


def declared(group: str) -> list[str]:
    """Every key some option of ``group`` declares, sorted."""
    return sorted({name for cls in SCHEMAS.get(group, {}).values() for name in cls.model_fields})


def validate(cfg: Any, choices: Mapping[str, str | None]) -> None:
    """Check a composed, resolved config against the options it chose (``choices``: group -> option, as Hydra's
    ``hydra.runtime.choices``).

    Raises:
        ConfigError: every problem found, in one line joined by ``;`` (the key, the value, what the key accepts).
    """
    problems = check_block({k: cfg[k] for k in cfg.keys() if k not in GROUPS}, RootConfig, "", "the root config")
    for group in GROUPS:
        chosen = choices.get(group)
        if group not in cfg or chosen is None:
            problems.append(f"{group}: no {group} chosen; add {group}=<option>")
            continue
        cls = SCHEMAS[group].get(chosen)
        if cls is None:
            raise ConfigError(
                f"{group}={chosen} has no schema: add a class for configs/{group}/{chosen}.yaml to its room's "
                "options.py and to SCHEMAS"
            )
        block = cfg[group]
        if not isinstance(block, (DictConfig, dict)):
            problems.append(f"{group}={show(block)}: expected a block of keys (choose an option with {group}=<option>)")
            continue
        problems += check_block(block, cls, f"{group}.", f"{group}={chosen}")
        given = block.get("name")
        if (
            "name" in cls.model_fields
            and given != chosen
            and given in typing.get_args(cls.model_fields["name"].annotation)
        ):
            # one class serves several options (the PennyLane simulators): the name must still be the chosen one's
            problems.append(
                f"{group}.name={show(given)}: expected {chosen!r} (the name of {group}={chosen}; choose another "
                f"option with {group}=<option>)"
            )
    if problems:
        raise ConfigError("; ".join(problems))


def group_choices(group: str) -> list[str]:
    """Option names of a config group, from the yaml files in ``configs/<group>/``."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def _check_choices(overrides: list[str]) -> None:
    # Hydra's own message for a missing option is long; ours names the valid ones first.
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.lstrip("+~")
        if sep and key in GROUPS and value not in group_choices(key):
            raise ConfigError(f"unknown {key} '{value}'; valid choices: {', '.join(group_choices(key))}")


def _unresolvable_key(node, prefix: str = "") -> str | None:
    """Dotted key of the first value in ``node`` whose interpolation does not resolve (OmegaConf.resolve does not
    say which)."""
    keys = list(node.keys()) if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        name = f"{prefix}.{key}" if prefix else str(key)
        try:
            value = node[key]
        except OmegaConfBaseException:
            return name
        if isinstance(value, (DictConfig, ListConfig)):
            found = _unresolvable_key(value, name)
            if found:
                return found
    return None


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Resolved config for ``overrides`` (Hydra syntax), checked against the option classes of :data:`SCHEMAS`.

    Raises:
        ConfigError: unknown group option (message lists the valid choices), unknown key, bad syntax, an
            interpolation that does not resolve, a value of the wrong type or range (names the key and what it accepts).
    """
    overrides = declared_forced(list(overrides))
    _check_choices(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            # the hydra node only tells which option each group took (train has no name key); dropped below
            cfg = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=True)
    except MissingConfigException as err:
        raise ConfigError(str(err)) from None
    except HydraException as err:
        raise ConfigError(_undeclared(str(err))) from None
    finally:
        GlobalHydra.instance().clear()
    choices = {group: cfg.hydra.runtime.choices.get(group) for group in GROUPS}
    with open_dict(cfg):
        del cfg["hydra"]
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        key = _unresolvable_key(cfg)
        raise ConfigError(f"{key + ': ' if key else ''}{str(err).splitlines()[0]}") from None
    validate(cfg, choices)
    return cfg


def declared_forced(overrides: list[str]) -> list[str]:
    """``overrides`` with ``group.key=value`` made ``++group.key=value`` (set it, or add it where absent) for every
    ``key`` an option of ``group`` declares: an option's YAML may leave a declared key out (so that the hashes of runs
    recorded before it existed stay the same; ``train.eval_every`` under ``train=default``), and a documented option
    is settable as documented (Hydra refuses a plain override of an absent key). An undeclared key, or one inside a
    nested section, is left as it is: Hydra's refusal of it becomes :func:`_undeclared`'s message."""
    out = []
    for item in overrides:
        key, sep, _ = item.partition("=")
        group, dot, field = key.partition(".")
        forced = sep and dot and key[:1] not in "+~" and group in SCHEMAS and field in declared(group)
        out.append(f"++{item}" if forced else item)
    return out


def _undeclared(message: str) -> str:
    """Hydra's refusal of an unknown key (which suggests ``+key``) as ours: the key and the keys its group declares."""
    found = re.match(r"Could not override '(\w+)\.([\w.]+)'", message)
    if not found or found.group(1) not in SCHEMAS:
        return message
    group = found.group(1)
    return f"{group}.{found.group(2)}: unknown key; {group} declares: {', '.join(declared(group))}"


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """Cartesian product of Hydra sweep overrides: ``["a=1,2", "b=x,y"]`` -> 4 override lists.

    Same semantics as Hydra's basic sweeper (comma lists, ``range()``, ``choice()``).
    """
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(overrides)
    except HydraException as err:
        raise ConfigError(str(err)) from None
    axes = []
    for ov in parsed:
        if ov.is_sweep_override():
            key = ov.get_key_element()
            axes.append([f"{key}={v}" for v in ov.sweep_string_iterator()])
        else:
            axes.append([ov.input_line])
    return [list(point) for point in itertools.product(*axes)]


def config_hash(cfg: DictConfig, ignore: tuple[str, ...] = HASH_IGNORED) -> str:
    """Stable 8-hex-digit hash of the resolved config (``ignore``: dotted keys left out, by default run-level
    bookkeeping and the adapter-target default; and every key an option declares with ``schema.added_later`` while
    at its default, so runs recorded before the key existed keep their directories)."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in ignore:
        *parents, last = key.split(".")
        block = data
        for parent in parents:
            block = block.get(parent) if isinstance(block, dict) else None
        if isinstance(block, dict):
            block.pop(last, None)
    for group in GROUPS:  # keys added after runs existed, at the value that means the old behaviour (added_later)
        block = data.get(group)
        if not isinstance(block, dict):
            continue
        options = SCHEMAS[group].values() if group == "train" else [SCHEMAS[group].get(str(block.get("name")))]
        for cls in filter(None, options):
            for key, old in hash_neutral(cls).items():
                if key in block and block[key] == old:
                    block.pop(key)
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:8]
