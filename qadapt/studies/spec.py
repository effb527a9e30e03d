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
        fixed: a trained arm with no hyperparameter to choose (head only: its head's rate is fixed): its one selection
        cell runs at the composed settings, for the record, and it needs no grid. compared: ``false`` for an arm
        scored on units of its own (another model's tokenizer: Gemma 3 beside SmolLM2): its cells are listed with
        their figures, outside the estimates and the paired tests. chosen_from: a trained arm whose chosen point
        (rate and budget) this arm takes, with no selection of its own (OFT b = 4 takes CUA q = 2's: the same map).
        seeds: the final seeds this arm runs, a subset of ``final.seeds`` (an implementation check run once).
    """

    label: str
    overrides: list[str] = []
    kind: Literal["trained", "untrained", "evaluation"] = "trained"
    of: str | None = None
    family: str | None = None
    seeded: bool = True
    fixed: bool = False
    chosen_from: str | None = None
    seeds: list[int] | None = Field(default=None, min_length=1)
    compared: bool = True
    scored: bool = True
    axis: bool = True
    at: int | float | str | None = None
    root: str | None = None


class Axis(_Strict):
    """What the table varies beside its arms (CUA's qubits per block): every arm whose ``axis`` is true becomes one
    arm per value, keyed ``<arm>_<name><value>``, labelled ``<label>, <name> = <value>``, with ``<key>=<value>`` added
    to its overrides (an evaluation arm then evaluates the trained arm at its own value). Each value's arms are
    compared among themselves (the reference arm at that value).

    Attributes:
        key: the override the axis sets (``adapter.qubits_per_block``). name: its short name in keys and labels
        (``q``). values: the values, in table order. to_evaluations: ``false``: the override is not added to
        evaluation arms (they take the trained run's adapter from ``from_run`` anyway; this keeps their configs those
        of evaluations recorded without it, so they are reused). overrides: value -> what arms at that value add
        besides ``<key>=<value>`` (a task's own budget: its epochs, its training cap).
    """

    key: str
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    values: list[int | float | str] = Field(min_length=1)
    to_evaluations: bool = True
    overrides: dict[str, list[str]] = {}

    @model_validator(mode="after")
    def _known_values(self) -> Axis:
        strange = [v for v in self.overrides if v not in {str(x) for x in self.values}]
        if strange:
            raise ValueError(
                f"overrides: '{strange[0]}' is not a value; valid choices: {', '.join(map(str, self.values))}"
            )
        return self


class Widen(_Strict):
    """The grid grows past an end where the best value sits, at most ``max_steps`` times, stopping at a value whose
    run diverges: the next value is the end x ``factor`` (/ ``factor`` at the low end), or the next rung of the
    ``ladder`` (mantissas of each decade: [1, 3] climbs ..., 3e-4, 1e-3, 3e-3, 1e-2, ...). Give one of the two."""

    factor: float | None = Field(default=None, gt=1)
    ladder: list[float] | None = Field(default=None, min_length=1)
    max_steps: int = Field(ge=0)

    @model_validator(mode="after")
    def _one_rule(self) -> Widen:
        if (self.factor is None) == (self.ladder is None):
            raise ValueError("give one of factor (e.g. 3.0) or ladder (e.g. [1, 3])")
        if self.ladder is not None and not all(1 <= m < 10 for m in self.ladder):
            raise ValueError(f"ladder: mantissas in [1, 10) expected, got {self.ladder}")
        return self

    def step(self, value: float, up: bool) -> float:
        """The value one step beyond ``value`` (above it where ``up``)."""
        import math

        if self.factor is not None:
            return float(f"{value * self.factor if up else value / self.factor:.4g}")
        e = math.floor(math.log10(value))
        rungs = [float(f"{m:g}e{k}") for k in range(e - 1, e + 2) for m in sorted(self.ladder)]
        if up:
            return min(r for r in rungs if r > value * (1 + 1e-9))
        return max(r for r in rungs if r < value * (1 - 1e-9))


class Curve(_Strict):
    """After each arm's point is chosen, a learning curve on the selection split chooses the budget: the arm at its
    point for each value of ``key`` (steps), and the final phase trains for the smallest value after which the next
    gains less than ``flat`` in the selection metric, for every arm (the largest of those), else for the largest value
    run (the curve had not flattened there). Arms that take another's point (``chosen_from``) take its budget too.

    Attributes:
        key: the override the curve varies (``train.max_steps``). values: ascending (``[20, 40, 80, 160]``).
        flat: the gain below which the curve counts as flat, in the selection metric's units (points of recovery).
    """

    key: str
    values: list[int | float] = Field(min_length=2)
    flat: float = Field(gt=0)

    @model_validator(mode="after")
    def _ascending(self) -> Curve:
        if list(self.values) != sorted(set(self.values)):
            raise ValueError(f"values: ascending and distinct expected, got {self.values}")
        return self


class Selection(_Strict):
    """The selection phase: one seed, every grid value of every trained arm, scored on ``split``.

    Attributes:
        split: ``task.split`` of the selection runs (e.g. ``valid_holdout``); never the reported split.
        grid: family -> {hyperparameter key -> values}; ``default`` serves arms with no family of their own.
        widen: the rule at the grid's edge (none: the grid as written). seed: the selection seed.
        metric: the row column compared (``perplexity``). direction: ``min`` or ``max``.
        overrides: settings of the selection runs only (a held-out slice of the training text:
        ``train.valid_holdout=0.1``; no multiple choice). curve: the budget's learning curve (:class:`Curve`).
    """

    split: str
    overrides: list[str] = []
    curve: Curve | None = None
    grid: dict[str, dict[str, list[float]]]
    widen: Widen | None = None
    seed: int = 0
    metric: str = "perplexity"
    direction: Literal["min", "max"] = "min"


class Mean(_Strict):
    """The mean over the axis values (GLUE's tasks) as a column of its own, with the rule of which values count,
    fixed in the spec before the final phase runs.

    Attributes:
        bars: value -> bar (score x100): the value counts only where every arm of ``judges`` clears it on the
        selection split clearly (the lower end of the 95 % interval of its best selection score,
        :func:`qadapt.results.stats.score_interval`, above the bar); a value without a bar always counts.
        judges: trained arms (spec keys) whose selection scores decide the bars (e.g. full fine-tuning and LoRA r=8).
    """

    bars: dict[str, float] = {}
    judges: list[str] = []


class Final(_Strict):
    """The final phase: each trained arm at its chosen values for every seed, each arm scored once on ``split``.

    Attributes:
        seeds: training (and drawing) seeds; at least 2. split: the reported ``task.split``.
        overrides: evaluation settings of the scored runs (``task.max_tokens=65536``).
        unit: the second random factor beside the seeds: ``windows`` (the evaluation's windows) or ``token_blocks``
        (``block_tokens`` consecutive scored tokens, the last block shorter; from the run's ``token_nll.npz``) or
        ``examples`` (a classifier's predictions, from the run's ``predictions.csv``).
        statistic: what the table reports per arm (``delta_ppl_pct``: 100 (ppl / base ppl - 1) against
        ``baseline``; ``perplexity``: over seeds, the perplexity of their mean NLL per token;
        ``device_degradation_pct``: 100 (ppl on the device / ppl exact - 1) of an evaluation arm against its own
        run's exact pass on the same tokens, CUA paper Sec. 5; needs
        ``unit: token_blocks``). baseline: the arm every Δ is taken against (``delta_ppl_pct`` only): an untrained
        arm (the base model), or a trained arm scored on the same units, then per seed (and axis value).
        in_training: each final run scores the reported split at the end of its own training (one ``qadapt train``
        per seed, its windows the units), instead of a separate ``qadapt eval ppl`` of its adapter: for protocols that
        change the whole model (QFFN's fine-tuning), whose trained weights are not an adapter to load; a classifier's
        runs (``statistic: score``) always do. later_seeds: overrides of every final seed after the first (an
        expensive evaluation run once: ``task.mc.benchmarks=[]``, multiple choice on the first seed only).
        ``recovery_pct`` (``task=compression_recovery``): 100 (ppl compressed - ppl) / (ppl compressed - ppl base),
        each run's own base and compressed passes on the same windows (CUA paper, SmolLM2 study).
    """

    seeds: list[int] = Field(min_length=2)
    split: str
    overrides: list[str] = []
    unit: Literal["windows", "token_blocks", "examples"] = "windows"
    block_tokens: int = Field(default=64, ge=1)
    statistic: Literal["delta_ppl_pct", "perplexity", "device_degradation_pct", "score", "recovery_pct"] = (
        "delta_ppl_pct"
    )
    baseline: str | None = None
    mean: Mean | None = None
    in_training: bool = False
    later_seeds: list[str] = []


class Study(_Strict):
    """A whole study: the table's title, shared overrides, arms, reference arm, the two phases and its render hook.

    Attributes:
        name: the file stem of its outputs (``<results_dir>/<name>.md``, ``<name>_cells.csv``, ``<name>_units.csv``).
        title: the table's heading. question: one sentence on what the study asks (rendered above the table).
        shared: overrides every run of every arm has. training: overrides every training run has besides (its budget:
        steps, warm-up), left out of the cells that only score (an untrained arm), whose configs they would change
        without changing what is scored. arms: key -> :class:`Arm`, in table order.
        reference: the arm every other arm is compared with. hook: a module under ``qadapt.studies.hooks`` whose
        ``extra_lines(study, result)`` adds lines (the paper's figure beside ours).
    """

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    title: str
    question: str = ""
    shared: list[str] = []
    training: list[str] = []
    arms: dict[str, Arm] = Field(min_length=2)
    reference: str
    axis: Axis | None = None
    select: Selection | None = None
    final: Final
    hook: str | None = Field(default=None, pattern=r"^[a-z0-9_]+$")

    @model_validator(mode="before")
    @classmethod
    def _expand(cls, data):
        """Every arm along the axis (see :class:`Axis`); anything malformed is left for the field checks to name."""
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("axis"), dict)
            or not isinstance(data.get("arms"), dict)
        ):
            return data
        axis = data["axis"]
        key, name, values = axis.get("key"), axis.get("name"), axis.get("values")
        if not (isinstance(key, str) and isinstance(name, str) and isinstance(values, list) and values):
            return data
        arms = {}
        per_value = axis.get("overrides") if isinstance(axis.get("overrides"), dict) else {}
        for k, arm in data["arms"].items():
            if not isinstance(arm, dict) or arm.get("axis", True) is False or arm.get("root") is not None:
                arms[k] = arm
                continue
            skip = arm.get("kind") == "evaluation" and axis.get("to_evaluations", True) is False
            for v in values:
                own = per_value.get(str(v), [])
                added = [] if skip else [f"{key}={v}", *(own if isinstance(own, list) else [])]
                new = {**arm, "overrides": [*arm.get("overrides", []), *added], "at": v, "root": k}
                new["label"] = f"{arm.get('label', k)}, {name} = {v}"
                if isinstance(arm.get("of"), str):
                    new["of"] = f"{arm['of']}_{name}{v}"
                arms[f"{k}_{name}{v}"] = new
        return {**data, "arms": arms}

    @model_validator(mode="after")
    def _consistent(self) -> Study:
        arms = list(self.arms)
        roots = list(dict.fromkeys(a.root or k for k, a in self.arms.items()))
        if self.reference not in roots:
            raise ValueError(f"reference: unknown arm '{self.reference}'; valid choices: {', '.join(roots)}")
        if self.select is not None and self.select.split == self.final.split:
            raise ValueError(
                f"final.split: '{self.final.split}' is also select.split; the reported split is scored once per final "
                "configuration and never used to choose one (e.g. select.split=valid_holdout, final.split=test)"
            )
        for key, arm in self.arms.items():
            if arm.kind == "evaluation" and arm.of not in self.arms:
                raise ValueError(f"arms.{key}.of: unknown arm '{arm.of}'; valid choices: {', '.join(arms)}")
            if arm.kind == "evaluation" and self.arms[arm.of].kind != "trained":
                raise ValueError(f"arms.{key}.of: '{arm.of}' is not a trained arm")
            if not arm.scored and arm.kind != "trained":
                raise ValueError(f"arms.{key}.scored: only a trained arm may be left unscored (scored: false)")
            if not arm.seeded and arm.kind != "untrained":
                raise ValueError(f"arms.{key}.seeded: only an untrained arm may be scored once (seeded: false)")
            if arm.kind != "evaluation" and arm.of is not None:
                raise ValueError(f"arms.{key}.of: only an arm of kind 'evaluation' evaluates another arm")
            if arm.fixed and arm.kind != "trained":
                raise ValueError(f"arms.{key}.fixed: only a trained arm has hyperparameters to fix")
            if arm.chosen_from is not None:
                sources = [k for k, a in self.arms.items() if (a.root or k) == arm.chosen_from]
                if (
                    arm.kind != "trained"
                    or not sources
                    or any(
                        self.arms[k].kind != "trained" or self.arms[k].chosen_from or self.arms[k].fixed
                        for k in sources
                    )
                ):
                    trained = sorted({a.root or k for k, a in self.arms.items() if a.kind == "trained" and not
                                      a.chosen_from and not a.fixed})  # fmt: skip
                    raise ValueError(f"arms.{key}.chosen_from: '{arm.chosen_from}' is not a trained arm with a "
                                     f"selection of its own; valid choices: {', '.join(trained)}")  # fmt: skip
            if arm.seeds is not None and not set(arm.seeds) <= set(self.final.seeds):
                raise ValueError(f"arms.{key}.seeds: {arm.seeds} is not a subset of final.seeds {self.final.seeds}")
            if arm.kind == "trained" and self.select is not None and not arm.fixed and arm.chosen_from is None:
                family = self.family(key)
                if family not in self.select.grid:
                    raise ValueError(
                        f"arms.{key}: no grid for family '{family}'; select.grid has {', '.join(self.select.grid)}"
                    )
        for family, grid in (self.select.grid if self.select else {}).items():
            if not grid:
                raise ValueError(f"select.grid.{family}: empty; give at least one hyperparameter and its values")
            for key, values in grid.items():
                if not values:
                    raise ValueError(f"select.grid.{family}.{key}: empty; give at least one value")
        if self.hook and not (Path(__file__).parent / "hooks" / f"{self.hook}.py").is_file():
            hooks = sorted(p.stem for p in (Path(__file__).parent / "hooks").glob("[a-z]*.py"))
            raise ValueError(f"hook: unknown '{self.hook}'; valid choices: {', '.join(hooks) or 'none yet'}")
        base = self.final.baseline
        if self.final.in_training and any(a.kind == "evaluation" for a in self.arms.values()):
            odd = next(k for k, a in self.arms.items() if a.kind == "evaluation")
            raise ValueError(f"arms.{odd}.kind: final.in_training runs leave no adapter to evaluate again; "
                             "valid choices: trained, untrained")  # fmt: skip
        for key in (self.reference, base):
            if key in self.arms and not self.arms[key].compared:
                raise ValueError(f"arms.{key}.compared: the reference and the baseline are compared by definition")
        if (self.final.statistic == "score") != (self.final.unit == "examples"):
            raise ValueError(
                f"final.unit: '{self.final.unit}' with statistic '{self.final.statistic}'; a classifier's score is "
                "resampled over its examples (statistic: score, unit: examples), perplexities over windows or blocks"
            )
        if self.final.statistic == "score" and any(a.kind != "trained" for a in self.arms.values()):
            odd = next(k for k, a in self.arms.items() if a.kind != "trained")
            raise ValueError(f"arms.{odd}.kind: a score study's arms are trained (each run scores its own split)")
        mean = self.final.mean
        if mean is not None:
            if self.axis is None:
                raise ValueError("final.mean: a mean over the axis values needs an axis (e.g. the tasks)")
            values = {str(v) for v in self.axis.values}
            strange = [v for v in mean.bars if v not in values]
            if strange:
                raise ValueError(f"final.mean.bars: '{strange[0]}' is not an axis value; valid choices: "
                                 f"{', '.join(map(str, self.axis.values))}")  # fmt: skip
            roots = {a.root or k for k, a in self.arms.items() if a.kind == "trained"}
            judges = [j for j in mean.judges if j not in roots]
            if judges or (mean.bars and not mean.judges):
                raise ValueError(f"final.mean.judges: {f'unknown arm {judges[0]!r}' if judges else 'none given'}; "
                                 f"valid choices: {', '.join(sorted(roots))}")  # fmt: skip
        if self.final.statistic == "device_degradation_pct":
            if self.final.unit != "token_blocks":
                raise ValueError("final.unit: device_degradation_pct needs token_blocks (each token's exact NLL)")
            evaluations = list(dict.fromkeys(a.root or k for k, a in self.arms.items() if a.kind == "evaluation"))
            if self.reference not in evaluations:
                raise ValueError(
                    f"reference: '{self.reference}' is not an evaluation arm; device_degradation_pct compares "
                    f"evaluations; valid choices: {', '.join(evaluations)}"
                )
        if self.final.statistic == "delta_ppl_pct":
            bases = list(dict.fromkeys(a.root or k for k, a in self.arms.items() if a.kind != "trained" or a.scored))
            if base is None or base not in bases:
                raise ValueError(
                    f"final.baseline: '{base}' is not a scored arm; delta_ppl_pct needs one; valid choices: "
                    f"{', '.join(bases) or 'none (add an untrained arm, e.g. overrides [adapter=none])'}"
                )
            kinds = {a.kind for k, a in self.arms.items() if (a.root or k) == base}
            if kinds == {"evaluation"} and self.final.unit != "token_blocks":
                raise ValueError(
                    f"final.unit: baseline '{base}' is an evaluation arm, whose own exact pass is the baseline: that "
                    "needs token_blocks (each token's exact NLL)"
                )
        return self

    def baseline_at(self, value) -> str | None:
        """The baseline arm's key at an axis value (the baseline itself without an axis or where it does not vary)."""
        base = self.final.baseline
        if base is None or self.axis is None or base not in self._varied():
            return base
        return f"{base}_{self.axis.name}{value}"

    def family(self, arm: str) -> str:
        """The selection grid's key for ``arm`` (its own family, else its spec key, else ``default``)."""
        spec = self.arms[arm]
        root = spec.root or arm
        return spec.family if spec.family is not None else root if root in self.select.grid else "default"

    def grid(self, arm: str) -> dict[str, list[float]]:
        """The selection grid of a trained arm (empty for a ``fixed`` arm: one cell at its composed settings)."""
        spec = self.arms[arm]
        return {} if spec.fixed or spec.chosen_from is not None else self.select.grid[self.family(arm)]

    def source(self, arm: str) -> str | None:
        """The arm whose chosen point ``arm`` takes (``chosen_from``, at the same axis value), or None."""
        spec = self.arms[arm]
        if spec.chosen_from is None:
            return None
        if spec.root is not None and spec.chosen_from in self._varied():
            return f"{spec.chosen_from}_{self.axis.name}{spec.at}"
        return spec.chosen_from

    def runs_seed(self, arm: str, seed: int) -> bool:
        """Whether ``arm`` runs final ``seed`` (its own ``seeds`` where given)."""
        return self.arms[arm].seeds is None or seed in self.arms[arm].seeds

    def groups(self) -> dict:
        """Axis value (None without an axis) -> that value's arm keys, in table order; arms the axis does not vary
        are in no group."""
        if self.axis is None:
            return {None: list(self.arms)}
        return {v: [k for k, a in self.arms.items() if a.root is not None and a.at == v] for v in self.axis.values}

    def reference_at(self, value) -> str:
        """The reference arm's key at an axis value (the reference itself without an axis)."""
        if self.axis is None:
            return self.reference
        return f"{self.reference}_{self.axis.name}{value}" if self.reference in self._varied() else self.reference

    def _varied(self) -> set[str]:
        return {a.root for a in self.arms.values() if a.root is not None}

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
    arm's overrides checked by composing them (an unknown option or key fails here, before anything runs). A spec
    with ``base: <name>`` starts from that spec: each top-level field it gives replaces the base's whole field (the
    paper-scale variant of a table: its own ``shared``, ``axis`` and ``select``, the base's arms and final phase).

    Raises:
        ConfigError: a missing file, malformed YAML, a field of the wrong type or bound, an unknown arm, a reported
            split that is also the selection split, or an arm whose overrides do not compose (exit 2 each).
    """
    path = path_of(name_or_path)
    data = _read(path)
    if "base" in data:  # another spec's fields, each top-level field given here replacing that spec's whole
        base = data.pop("base")
        if not isinstance(base, str) or path_of(base) == path:
            raise ConfigError(f"study spec {path}: base: the name of another study spec expected, got {base!r}")
        inherited = _read(path_of(base))
        inherited.pop("base", None)
        data = {**inherited, **data}
    try:
        study = Study.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"study spec {path}: {_first_error(e)}") from None
    _check_overrides(study, path)
    return study


def _read(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"study spec {path}: not readable YAML ({e}); fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"study spec {path}: expected a mapping of fields (name, title, arms, ...)")
    return data


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
        if arm.kind == "trained" and study.select is not None:
            grid = study.grid(key)
            point = [f"{k}={values[0]}" for k, values in grid.items()]
            overrides = [*study.shared, *study.training, *arm.overrides, *study.select.overrides,
                         f"task.split={study.select.split}", *point]  # fmt: skip
        elif arm.kind == "trained":
            overrides = [*study.shared, *study.training, *arm.overrides]
        else:
            overrides = [*study.shared, *arm.overrides, *study.final.overrides, f"task.split={study.final.split}"]
        try:
            compose(overrides)
        except ConfigError as e:
            raise ConfigError(f"study spec {path}: arms.{key}.overrides: {e}") from None
