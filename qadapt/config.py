"""Hydra compose API: overrides in, resolved config out; sweep expansion for ``--multirun``.

``compose(["adapter=cua", "adapter.qubits_per_block=3"])`` returns the same config Hydra's
``@hydra.main`` would, without Hydra taking over the process (the CLI is Typer's).
"""

from __future__ import annotations

import hashlib
import itertools
import json

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError
from .paths import CONFIG_DIR

GROUPS = ("model", "adapter", "device", "task", "train")


def group_choices(group: str) -> list[str]:
    """Option names of a config group, from the yaml files in ``configs/<group>/``."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def _check_choices(overrides: list[str]) -> None:
    # Hydra's own message for a missing option is long; ours names the valid ones first.
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.lstrip("+~")
        if sep and key in GROUPS and value not in group_choices(key):
            raise ConfigError(
                f"unknown {key} '{value}'; valid choices: {', '.join(group_choices(key))}"
            )


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Resolved config for ``overrides`` (Hydra syntax).

    Raises:
        ConfigError: unknown group option (message lists the valid choices), unknown key, bad syntax.
    """
    overrides = list(overrides)
    _check_choices(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=overrides)
    except MissingConfigException as err:
        raise ConfigError(str(err)) from None
    except HydraException as err:
        raise ConfigError(str(err)) from None
    finally:
        GlobalHydra.instance().clear()
    OmegaConf.resolve(cfg)
    return cfg


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


def config_hash(cfg: DictConfig, ignore: tuple[str, ...] = ("resume", "run_name", "threads")) -> str:
    """Stable 8-hex-digit hash of the resolved config (run-level bookkeeping keys ignored)."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in ignore:
        data.pop(key, None)
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:8]
