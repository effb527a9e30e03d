"""A study spec: the comparison a table makes, written as data (``configs/study/<name>.yaml`` or any YAML path).

A study compares *arms* (an adapter, a control, the base model) under one protocol: every arm shares the study's
overrides; a trained arm's hyperparameters are chosen on the selection split (a grid per arm, widened where the best
value sits at an end), then it is trained at the chosen value for each final seed and scored once on the reported
split; the estimator (:mod:`qadapt.studies.estimate`) gives each arm its interval and each arm its paired comparison
with the reference arm. The fields, their types and bounds are declared once, here (pydantic, strict); a bad spec
is a :class:`~qadapt.errors.ConfigError` (exit 2) naming the key and what it accepts, before anything runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigError
from ..paths import CONFIG_DIR

STUDY_DIR = CONFIG_DIR / "study"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Arm(_Strict):
    """One row of the study's table.

    Attributes:
        label: the row's name in the table. overrides: what this arm adds to the shared overrides (``adapter=lora``,
        ``adapter.r=1``). kind: ``trained`` (selected, trained per seed, then scored), ``untrained`` (scored as
        composed, once per seed: the base model, a random draw) or ``evaluation`` (arm ``of``'s trained runs scored
        again with ``overrides`` as evaluation settings: another device, a mitigation). family: the grid this arm's
        selection uses (``select.grid``'s key; default: the arm's own key, else ``default``). seeded: ``false`` for
        an untrained arm that the seed does not change (the base model): scored once, at the first final seed.
    """

    label: str
    overrides: list[str] = []
    kind: Literal["trained", "untrained", "evaluation"] = "trained"
    of: str | None = None
    family: str | None = None
    seeded: bool = True


class Widen(_Strict):
    """The grid grows past an end where the best value sits: next value = end x ``factor`` (or / ``factor`` at the
    low end), at most ``max_steps`` times, stopping at a value whose run diverges."""

    factor: float = Field(gt=1)
    max_steps: int = Field(ge=0)


class Selection(_Strict):
    """The selection phase: one seed, every grid value of every trained arm, scored on ``split``.

    Attributes:
        split: ``task.split`` of the selection runs (e.g. ``valid_holdout``); never the reported split.
        grid: family -> {hyperparameter key -> values}; ``default`` serves arms with no family of their own.
        widen: the rule at the grid's edge (none: the grid as written). seed: the selection seed.
        metric: the row column compared (``perplexity``). direction: ``min`` or ``max``.
    """

    split: str
    grid: dict[str, dict[str, list[float]]]
    widen: Widen | None = None
    seed: int = 0
    metric: str = "perplexity"
    direction: Literal["min", "max"] = "min"


class Final(_Strict):
    """The final phase: each trained arm at its chosen values for every seed, each arm scored once on ``split``.

    Attributes:
        seeds: training (and drawing) seeds; at least 2. split: the reported ``task.split``.
        overrides: evaluation settings of the scored runs (``task.max_tokens=65536``).
        unit: what the bootstrap resamples inside a seed (``windows``). statistic: what the table reports per arm
        (``delta_ppl_pct``: 100 (ppl / base ppl - 1) against ``baseline``; ``perplexity``).
        baseline: the untrained arm every Δ is taken against (``delta_ppl_pct`` only).
    """

    seeds: list[int] = Field(min_length=2)
    split: str
    overrides: list[str] = []
    unit: Literal["windows"] = "windows"
    statistic: Literal["delta_ppl_pct", "perplexity"] = "delta_ppl_pct"
    baseline: str | None = None


class Study(_Strict):
    """A whole study: the table's title, shared overrides, arms, reference arm, the two phases and its render hook.

    Attributes:
        name: the file stem of its outputs (``<results_dir>/<name>.md``, ``<name>_cells.csv``, ``<name>_units.csv``).
        title: the table's heading. question: one sentence on what the study asks (rendered above the table).
        shared: overrides every run of every arm has. arms: key -> :class:`Arm`, in table order.
        reference: the arm every other arm is compared with. hook: a module under ``qadapt.studies.hooks`` whose
        ``extra_lines(study, result)`` adds lines (the paper's figure beside ours).
    """

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    title: str
    question: str = ""
    shared: list[str] = []
    arms: dict[str, Arm] = Field(min_length=2)
    reference: str
    select: Selection
    final: Final
    hook: str | None = Field(default=None, pattern=r"^[a-z0-9_]+$")

    @model_validator(mode="after")
    def _consistent(self) -> Study:
        arms = list(self.arms)
        if self.reference not in self.arms:
            raise ValueError(f"reference: unknown arm '{self.reference}'; valid choices: {', '.join(arms)}")
        if self.select.split == self.final.split:
            raise ValueError(
                f"final.split: '{self.final.split}' is also select.split; the reported split is scored once per final "
                "configuration and never used to choose one (e.g. select.split=valid_holdout, final.split=test)"
            )
        for key, arm in self.arms.items():
            if arm.kind == "evaluation" and arm.of not in self.arms:
                raise ValueError(f"arms.{key}.of: unknown arm '{arm.of}'; valid choices: {', '.join(arms)}")
            if arm.kind == "evaluation" and self.arms[arm.of].kind != "trained":
                raise ValueError(f"arms.{key}.of: '{arm.of}' is not a trained arm")
            if not arm.seeded and arm.kind != "untrained":
                raise ValueError(f"arms.{key}.seeded: only an untrained arm may be scored once (seeded: false)")
            if arm.kind != "evaluation" and arm.of is not None:
                raise ValueError(f"arms.{key}.of: only an arm of kind 'evaluation' evaluates another arm")
            if arm.kind == "trained":
                family = self.family(key)
                if family not in self.select.grid:
                    raise ValueError(
                        f"arms.{key}: no grid for family '{family}'; select.grid has {', '.join(self.select.grid)}"
                    )
        for family, grid in self.select.grid.items():
            if not grid:
                raise ValueError(f"select.grid.{family}: empty; give at least one hyperparameter and its values")
            for key, values in grid.items():
                if not values:
                    raise ValueError(f"select.grid.{family}.{key}: empty; give at least one value")
        if self.hook and not (Path(__file__).parent / "hooks" / f"{self.hook}.py").is_file():
            hooks = sorted(p.stem for p in (Path(__file__).parent / "hooks").glob("[a-z]*.py"))
            raise ValueError(f"hook: unknown '{self.hook}'; valid choices: {', '.join(hooks) or 'none yet'}")
        base = self.final.baseline
        if self.final.statistic == "delta_ppl_pct":
            if base is None or base not in self.arms or self.arms[base].kind != "untrained":
                untrained = [k for k, a in self.arms.items() if a.kind == "untrained"]
                raise ValueError(
                    f"final.baseline: '{base}' is not an untrained arm; delta_ppl_pct needs one; valid choices: "
                    f"{', '.join(untrained) or 'none (add an untrained arm, e.g. overrides [adapter=none])'}"
                )
        return self

    def family(self, arm: str) -> str:
        """The selection grid's key for ``arm``."""
        own = self.arms[arm].family
        return own if own is not None else arm if arm in self.select.grid else "default"

    def hook_module(self):
        """The render hook's module (``qadapt.studies.hooks.<hook>``), or None."""
        import importlib

        return importlib.import_module(f"qadapt.studies.hooks.{self.hook}") if self.hook else None

    def trained(self) -> list[str]:
        return [k for k, a in self.arms.items() if a.kind == "trained"]


def path_of(name_or_path: str) -> Path:
    """``configs/study/<name>.yaml`` for a name, the file itself for a path.

    Raises:
        ConfigError: no such study (the message lists the named ones).
    """
    given = Path(name_or_path)
    if given.suffix in (".yaml", ".yml") or given.parent != Path("."):
        if not given.is_file():
            raise ConfigError(f"study spec {given}: no such file")
        return given
    path = STUDY_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        named = sorted(p.stem for p in STUDY_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown study '{name_or_path}'; valid choices: {', '.join(named)} (or a path to a .yaml)")
    return path


def load(name_or_path: str) -> Study:
    """The study spec named ``name_or_path`` (``configs/study/<name>.yaml``) or at that path, validated, with every
    arm's overrides checked by composing them (an unknown option or key fails here, before anything runs).

    Raises:
        ConfigError: a missing file, malformed YAML, a field of the wrong type or bound, an unknown arm, a reported
            split that is also the selection split, or an arm whose overrides do not compose (exit 2 each).
    """
    path = path_of(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"study spec {path}: not readable YAML ({e}); fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"study spec {path}: expected a mapping of fields (name, title, arms, ...)")
    try:
        study = Study.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"study spec {path}: {_first_error(e)}") from None
    _check_overrides(study, path)
    return study


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    return f"{key}: {message}" if key else message


def _check_overrides(study: Study, path: Path) -> None:
    """Compose the selection run of every arm (and the final scoring of every untrained arm): an unknown option, key
    or value fails with the arm named."""
    from ..config import compose

    for key, arm in study.arms.items():
        if arm.kind == "trained":
            grid = study.select.grid[study.family(key)]
            point = [f"{k}={values[0]}" for k, values in grid.items()]
            overrides = [*study.shared, *arm.overrides, f"task.split={study.select.split}", *point]
        else:
            overrides = [*study.shared, *arm.overrides, *study.final.overrides, f"task.split={study.final.split}"]
        try:
            compose(overrides)
        except ConfigError as e:
            raise ConfigError(f"study spec {path}: arms.{key}.overrides: {e}") from None
