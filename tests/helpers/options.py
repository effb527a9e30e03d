"""A complete option block for a test: the option's own YAML as ``compose`` writes it, then the test's overrides
(the code reads validated options, so a test hands it what a user's config would hold)."""

from __future__ import annotations

from functools import cache

from omegaconf import DictConfig, OmegaConf

from qadapt.config import compose


@cache
def _composed(group: str, option: str) -> dict:
    return OmegaConf.to_container(compose([f"{group}={option}"])[group], resolve=True)


def option(group: str, name: str, **over) -> DictConfig:
    """``configs/<group>/<name>.yaml`` composed (with the default model and task), ``over`` merged on top."""
    return OmegaConf.create(_composed(group, name) | over)


def adapter(name: str, **over) -> DictConfig:
    """The ``adapter=<name>`` block with ``over`` merged on top: ``adapter("qffn", fraction="full")``."""
    return option("adapter", name, **over)
