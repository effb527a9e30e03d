"""Hydra compose API: overrides in, resolved and type-checked config out; sweep expansion for ``--multirun``.

``compose(["adapter=cua", "adapter.qubits_per_block=3"])`` returns the same config Hydra's
``@hydra.main`` would, without Hydra taking over the process (the CLI is Typer's), after checking every key
against the typed schema of its option (``qadapt/schema.py``): a value of the wrong type or range is a
:class:`ConfigError` (exit 2) naming the key and what it accepts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError
from .paths import CONFIG_DIR
from .schema import GROUPS, SCHEMAS, declared, hash_neutral, validate

# keys that never change a run by themselves, left out of config_hash: run bookkeeping, and model.adapter_targets, the
# default of adapter.modules (what a run adapts is adapter.modules, resolved and hashed; the hashes of runs made before
# the key existed stay the same)
HASH_IGNORED = ("resume", "run_name", "threads", "model.adapter_targets")


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
    """Resolved config for ``overrides`` (Hydra syntax), checked against the schemas in ``qadapt/schema.py``.

    Raises:
        ConfigError: unknown group option (message lists the valid choices), unknown key, bad syntax, an
            interpolation that does not resolve, a value of the wrong type or range (names the key and what it accepts).
    """
    overrides = list(overrides)
    _check_choices(overrides)
    while True:
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
                # the hydra node only tells which option each group took (train has no name key); dropped below
                cfg = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=True)
            break
        except MissingConfigException as err:
            raise ConfigError(str(err)) from None
        except HydraException as err:
            appended = _declared_append(overrides, str(err))
            if appended is None:
                raise ConfigError(_undeclared(str(err))) from None
            overrides = appended
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


def _declared_append(overrides: list[str], message: str) -> list[str] | None:
    """``overrides`` with ``key=value`` made ``+key=value`` where Hydra refused to override ``key`` because the option's
    YAML leaves it out (so that the hashes of runs recorded before it existed stay the same) although its schema
    declares it (``train.eval_every`` under ``train=default``): a documented option is settable as documented. None
    where the refusal is about anything else (the schema check that follows names an undeclared key)."""
    found = re.match(r"Could not override '([\w.]+)'", message)
    if not found:
        return None
    key = found.group(1)
    group, _, field = key.partition(".")
    if field not in declared(group):
        return None
    out = [f"+{o}" if o.partition("=")[0] == key else o for o in overrides]
    return out if out != overrides else None


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
