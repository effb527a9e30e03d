"""Running a study: its cells, in order, each reused when it is already finished.

A *cell* is one run of one arm: a selection run (an arm at one grid point, the selection seed, scored on the
selection split), a final training run (the chosen point at one seed; at the selection seed it is the selection run
itself), or a scoring run (``qadapt eval ppl`` on the reported split: a trained run's adapter, an untrained arm, or a
trained run under an evaluation arm's settings). Every cell goes through :func:`qadapt.experiments.run_or_reuse`: a
finished run directory with the same resolved config, else its row in ``results/runs.csv``, else it runs now. So an
interrupted study continues where it stopped, and a fresh clone reuses the committed rows. A scoring cell's
per-window scores are read from its run directory, else from the study's committed units file.

Outputs, under the study's ``results_dir``: ``<name>_cells.csv`` (one line per cell) and ``<name>_units.csv`` (one
line per scored window of every scoring cell); :mod:`qadapt.studies.render` makes the table from these alone.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..config import compose, config_hash
from ..errors import QadaptError, TrainingDiverged
from ..log import log
from ..memo import Memo
from ..results import write_text_atomic
from .spec import Study

PHASES = ("select", "final", "all")
# one line per unit (a window, or a block of tokens: ``window`` is its index); base_nll: the run's own base pass on
# the unit; exact_nll: a device evaluation's own exact pass on the same tokens (token blocks only)
# compressed_nll: a compression-recovery run's compressed model on the same unit
WINDOW_COLUMNS = ["window", "tokens", "nll", "base_nll", "exact_nll", "compressed_nll"]
# a classifier's units: one line per scored example (its index in the split, gold label, prediction)
EXAMPLE_COLUMNS = ["example", "label", "prediction"]
# the row columns a cell keeps (what the table and `study status` need)
KEPT = [
    "run_id",
    "run_dir",
    "git_commit",
    "config_hash",
    "trainable_params",
    "perplexity",
    "base_perplexity",
    "tokens_scored",
    "eval_source",
    "train_source",
    "train_steps",
    "train_loss_first",
    "train_loss_final",
    "collapse",
    "train_noise_depolarising",
    "train_noise_tv",
    "train_noise_tv_exact",
    "metric",
    "score",
    "metric_f1",
    "metric_pearson",
    "metric_spearman",
    "adapter_params",
    "head_params",
    "train_examples",
    "eval_examples",
    "wall_seconds",
    "train_seconds",
    "peak_rss_mb",
    "base_total_params",
    "machine",
    "threads",
    "torch",
    "config",
]


@dataclass(frozen=True)
class Files:
    """Where a study's outputs live."""

    table: Path
    cells: Path
    units: Path

    @classmethod
    def of(cls, study: Study, results_dir: str | Path) -> Files:
        root = Path(results_dir)
        return cls(root / f"{study.name}.md", root / f"{study.name}_cells.csv", root / f"{study.name}_units.csv")


class Runner:
    """The cells of one study invocation: ``execute=False`` only looks finished cells up (``study status``)."""

    def __init__(
        self,
        study: Study,
        extra: list[str],
        execute: bool = True,
        arms: list[str] | None = None,
        seeds: list[int] | None = None,
    ):
        self.study, self.extra, self.execute = study, list(extra), execute
        # the arms (a spec key runs every axis value of it) and final seeds whose cells may run; others are looked up
        # (an axis value runs every arm at that value: arms=rte)
        self.only = (
            {k for k, a in study.arms.items() if k in arms or a.root in arms or (a.root and str(a.at) in arms)}
            if arms
            else None
        )
        self.seeds = set(seeds) if seeds is not None else None
        self.results_dir = compose(self.extra).results_dir
        self.files = Files.of(study, self.results_dir)
        self.cells: list[dict] = []
        self.memo = Memo()  # this invocation's cells share the base model's evaluation and the activation caches
        self.units: list[pd.DataFrame] = []
        self._recorded_units = pd.read_csv(self.files.units) if self.files.units.exists() else None
        self._recorded_cells = pd.read_csv(self.files.cells) if self.files.cells.exists() else None

    # -- one cell -------------------------------------------------------------------------------------------------

    def cell(self, arm: str, phase: str, seed: int, overrides: list[str], command: str, values: dict) -> dict | None:
        """The row of one cell: reused, or (``execute``) run now; None when it is not finished and not run. A
        training run that diverges is recorded as a diverged cell (and reused as such)."""
        from .. import runs
        from ..experiments import run_or_reuse

        cfg = compose(overrides)
        line = {"arm": arm, "phase": phase, "seed": seed, "values": json.dumps(values, sort_keys=True)}
        key = config_hash(cfg)
        if self._diverged_before(key, phase):
            self.cells.append({**line, "config_hash": key, "diverged": True})
            return None
        try:
            allowed = (self.only is None or arm in self.only) and (
                self.seeds is None or phase in ("select", "curve") or seed in self.seeds
            )
            if self.execute and allowed:
                row = run_or_reuse(overrides, command, recorded=True, memo=self.memo, cfg=cfg)
            else:
                row = runs.finished(cfg, command) or runs.recorded(cfg, command)
        except TrainingDiverged as e:
            log(f"{arm} at {values}: {e}; recorded as diverged")
            self.cells.append({**line, "config_hash": key, "diverged": True})
            return None
        if row is None:
            self.cells.append({**line, "config_hash": key, "done": False})
            return None
        line.update({k: row.get(k) for k in KEPT})
        # the hash of the config this cell composed: the same whether the row came from a run directory or from
        # results/runs.csv (some recorded rows carry another hash than their directory's: issue 45)
        line.update(config_hash=key, done=True, diverged=False, command=command)
        line.update(self._extras(arm, line, row))
        if phase == "test":
            self._units(line)
        self.cells.append(line)
        return row

    def _extras(self, arm: str, line: dict, row: dict) -> dict:
        """Columns the study's hook derives from a finished cell (``cell_extras``: e.g. its circuits' compiled cost),
        else (its run directory is gone) the ones recorded for the same run in the cells file."""
        hook = self.study.hook_module()
        if hook is None or not hasattr(hook, "cell_extras"):
            return {}
        found = hook.cell_extras(self.study, arm, row)
        if found is not None:
            return found
        old = self._recorded_cells
        if old is not None and "run_id" in old:
            mine = old[old["run_id"] == line["run_id"]]
            if len(mine):
                return {k: v for k, v in mine.iloc[0].items() if k in hook.EXTRA_COLUMNS and v == v}
        return {}

    def _diverged_before(self, key: str, phase: str) -> bool:
        old = self._recorded_cells
        if old is None or "diverged" not in old:
            return False
        mine = old[(old["config_hash"] == key) & (old["phase"] == phase)]
        return bool(len(mine)) and bool(mine["diverged"].fillna(False).astype(bool).any())

    def _units(self, line: dict) -> None:
        """Per-unit scores of a scoring cell: its run directory's windows.csv, token_nll.npz or predictions.csv, else
        the committed units file.

        Raises:
            QadaptError: neither has them (the message says how to score the cell again).
        """
        unit = self.study.final.unit
        columns = unit_columns(unit)
        path = (
            Path(str(line["run_dir"]))
            / {
                "windows": "windows.csv",
                "token_blocks": "token_nll.npz",
                "examples": "predictions.csv",
            }[unit]
        )
        old = self._recorded_units
        if path.exists():
            frame = token_blocks(path, self.study.final.block_tokens) if unit == "token_blocks" else pd.read_csv(path)
            frame = frame.reindex(columns=columns)
        elif old is not None and (old["run_id"] == line["run_id"]).any():
            frame = old[old["run_id"] == line["run_id"]].reindex(columns=columns)
        else:
            raise QadaptError(
                f"{path} is missing and {self.files.units} has no units of run {line['run_id']}: score it again "
                f"(delete its row from {self.results_dir}/runs.csv, then `qadapt study run {self.study.name}`)"
            )
        self.units.append(frame.assign(arm=line["arm"], seed=line["seed"], run_id=line["run_id"]))

    # -- the overrides of each kind of cell -----------------------------------------------------------------------

    def _selection_overrides(self, arm: str, values: dict, seed: int) -> list[str]:
        """A trained run: at a grid point on the selection split, or (no selection) as the spec composes it."""
        s = self.study
        own = [*s.shared, *s.training, *self.extra, *s.arms[arm].overrides]
        if s.select is None:
            return [*own, f"seed={seed}"]
        point = [f"{k}={_number(v)}" for k, v in values.items()]
        return [*own, *s.select.overrides, f"task.split={s.select.split}", *point, f"seed={seed}"]

    def _scoring_overrides(self, seed: int) -> list[str]:
        s = self.study
        return [*s.shared, *self.extra, *s.final.overrides, f"task.split={s.final.split}", f"seed={seed}",
                *self._later(seed)]  # fmt: skip

    def _later(self, seed: int) -> list[str]:
        """``final.later_seeds`` for every final seed after the first."""
        return list(self.study.final.later_seeds) if seed != self.study.final.seeds[0] else []

    # -- the phases -----------------------------------------------------------------------------------------------

    def select(self) -> dict[str, dict]:
        """Every trained arm at every grid point (widened at an edge), the selection seed; returns the chosen point
        of each arm whose grid is complete (no selection: every trained arm, as composed)."""
        s = self.study
        if s.select is None:
            return {arm: {} for arm in s.trained()}
        chosen = {}
        for arm in s.trained():
            if s.source(arm) is not None:
                continue
            grid = s.grid(arm)
            tried = []
            for combo in itertools.product(*grid.values()):
                values = dict(zip(grid, combo))
                row = self.cell(arm, "select", s.select.seed, self._selection_overrides(arm, values, s.select.seed),
                                "train", values)  # fmt: skip
                tried.append((values, self._metric(row)))
            complete = all(v is not None for _, v in tried)
            steps = s.select.widen.max_steps if s.select.widen and complete and len(grid) == 1 else 0
            for _ in range(steps):
                values = self._beyond_edge(grid, tried)
                if values is None:
                    break
                row = self.cell(arm, "select", s.select.seed, self._selection_overrides(arm, values, s.select.seed),
                                "train", values)  # fmt: skip
                if row is None and not self.cells[-1].get("diverged"):
                    complete = False
                    break
                tried.append((values, self._metric(row)))
                if row is None:  # diverged: the edge is where it is
                    break
            best = self._best(tried) if complete else None
            if best is not None:
                chosen[arm] = best
        return self._budget(chosen)

    def _budget(self, chosen: dict[str, dict]) -> dict[str, dict]:
        """With ``select.curve``: each chosen arm at its point for every budget on the selection split, then every
        chosen point with the budget the curves give (none where a curve is not finished); arms that take another's
        point (``chosen_from``) take it here."""
        s = self.study
        curve, curves = s.select.curve, None
        if curve is not None:
            curves = {}
            for arm, point in chosen.items():
                curves[arm] = []
                for value in curve.values:
                    values = {**point, curve.key: value}
                    row = self.cell(arm, "curve", s.select.seed, self._selection_overrides(arm, values, s.select.seed),
                                    "train", values)  # fmt: skip
                    curves[arm].append((value, self._metric(row)))
        return final_points(s, chosen, curves)

    def _metric(self, row: dict | None) -> float | None:
        """A selection cell's metric: None when it is not done (or diverged), NaN when its run collapsed (done, but
        never chosen)."""
        if row is None:
            return None
        return float("nan") if _collapsed(row.get("collapse")) else row.get(self.study.select.metric)

    def _best(self, tried: list[tuple[dict, float | None]]) -> dict | None:
        """The best point by the selection metric (collapsed and diverged points never), None where none is left."""
        return best_point(tried, self.study.select.direction)

    def _beyond_edge(self, grid: dict, tried: list) -> dict | None:
        """The next value past the end of the tried values where the best one sits (None: the best is inside, or a
        value past it diverged)."""
        if any(m is None for _, m in tried):
            return None
        (key,) = grid
        widen = self.study.select.widen
        values = sorted(v[key] for v, _ in tried)
        point = self._best(tried)
        if point is None:
            return None
        best = point[key]
        if best == values[-1]:
            return {key: widen.step(values[-1], up=True)}
        if best == values[0]:
            return {key: widen.step(values[0], up=False)}
        return None

    def final(self, chosen: dict[str, dict]) -> None:
        """Untrained arms scored per seed (or once); each trained arm with a chosen point trained per seed and scored
        once on the reported split; evaluation arms score those runs under their own settings."""
        s = self.study
        trained: dict[tuple[str, int], dict] = {}
        for arm, spec in s.arms.items():
            for seed in s.final.seeds:
                if not s.runs_seed(arm, seed):
                    continue
                if spec.kind == "untrained":
                    if seed != s.final.seeds[0] and not spec.seeded:
                        continue
                    overrides = [*self._scoring_overrides(seed), *spec.overrides, *self._hooked(arm, seed, trained)]
                    self.cell(arm, "test", seed, overrides, "eval ppl", {})
                elif spec.kind == "trained" and arm in chosen and (s.final.statistic == "score" or s.final.in_training):
                    # the training run scores the split it is given (a classifier's; a whole-model fine-tuning's):
                    # trained and scored in one cell
                    values = chosen[arm]
                    point = [f"{k}={_number(v)}" for k, v in values.items()]
                    overrides = [*s.shared, *s.training, *self.extra, *spec.overrides, *s.final.overrides,
                                 f"task.split={s.final.split}", *point, f"seed={seed}", *self._later(seed)]  # fmt: skip
                    self.cell(arm, "test", seed, overrides, "train", values)
                elif spec.kind == "trained" and arm in chosen:
                    values = chosen[arm]
                    training = self._selection_overrides(arm, values, seed)
                    row = self.cell(arm, "train", seed, training, "train", values)
                    if row is None:
                        continue
                    if spec.scored:
                        overrides = [*self._scoring_overrides(seed), f"from_run={row['run_dir']}"]
                        row = self._weights_here(arm, seed, row, training, overrides)
                        self.cell(arm, "test", seed, overrides, "eval ppl", values)
                    trained[arm, seed] = row
                elif spec.kind == "evaluation" and (spec.of, seed) in trained:
                    row = trained[spec.of, seed]
                    overrides = [*self._scoring_overrides(seed), f"from_run={row['run_dir']}", *spec.overrides]
                    training = self._selection_overrides(spec.of, chosen.get(spec.of, {}), seed)
                    row = trained[spec.of, seed] = self._weights_here(spec.of, seed, row, training, overrides)
                    self.cell(arm, "test", seed, overrides, "eval ppl", chosen.get(spec.of, {}))

    def _weights_here(self, arm: str, seed: int, row: dict, training: list[str], scoring: list[str]) -> dict:
        """The trained run's row, its directory on this machine where its scoring cell still has to run: a run
        recorded on another machine (results/runs.csv holds its row, not its weights) is trained again here, with the
        same config and seed (the same directory name, so the scoring cell's config is unchanged)."""
        from .. import runs
        from ..experiments import run

        if not self.execute or Path(str(row["run_dir"])).exists():
            return row
        if (self.only is not None and arm not in self.only) or (self.seeds is not None and seed not in self.seeds):
            return row
        cfg = compose(scoring)
        if runs.finished(cfg, "eval ppl") or runs.recorded(cfg, "eval ppl"):
            return row
        log(f"{row['run_dir']} is not on this machine (its row is recorded) and its scoring is not: training it again")
        row = run("train", compose(training), ["qadapt", "train", *training], self.memo)
        for line in self.cells:  # the training cell's line takes the new run's row
            if line["arm"] == arm and line["seed"] == seed and line.get("run_dir") == row["run_dir"]:
                line.update({k: row.get(k) for k in KEPT})
        return row

    def _hooked(self, arm: str, seed: int, trained: dict) -> list[str]:
        """Overrides the study's hook derives for an untrained arm from the trained runs so far (e.g. a random
        control drawn at the trained generators' scale); none without a hook or its ``arm_overrides``."""
        hook = self.study.hook_module()
        if hook is None or not hasattr(hook, "arm_overrides"):
            return []
        return hook.arm_overrides(self.study, arm, seed, trained, self._recorded_cells)

    def save(self) -> None:
        """``<name>_cells.csv`` and ``<name>_units.csv``, each written whole."""
        write_text_atomic(self.files.cells, pd.DataFrame(self.cells).to_csv(index=False))
        if self.units:
            cols = ["arm", "seed", "run_id", *unit_columns(self.study.final.unit)]
            write_text_atomic(self.files.units, pd.concat(self.units)[cols].to_csv(index=False))


def done(cells: pd.DataFrame) -> pd.Series:
    """Which cells finished (a row was found or made)."""
    return cells["done"].fillna(False).astype(bool) if "done" in cells else pd.Series(False, index=cells.index)


def short(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def unit_columns(unit: str) -> list[str]:
    """The columns of one unit's line in a units file."""
    return EXAMPLE_COLUMNS if unit == "examples" else WINDOW_COLUMNS


def final_points(study: Study, chosen: dict[str, dict], curves: dict | None) -> dict[str, dict]:
    """The final points: with learning ``curves`` (``select.curve``) every chosen point with the budget they give
    (none where a curve is not finished); then the arms that take another's point (``chosen_from``) take it."""
    if curves is not None:
        key, found = study.select.curve.key, budget(curves, study.select.curve.flat, study.select.direction)
        chosen = {arm: {**point, key: found} for arm, point in chosen.items()} if found is not None else {}
    for arm in study.trained():
        if study.source(arm) in chosen:
            chosen[arm] = chosen[study.source(arm)]
    return chosen


def budget(curves: dict[str, list[tuple[float, float | None]]], flat: float, direction: str) -> float | None:
    """The budget a set of learning curves gives (``select.curve``): per arm the smallest value after which the next
    gains less than ``flat`` in the metric (``direction``: which way is a gain), the largest of those over the arms;
    where an arm's curve never flattens, the largest value run. None where a point is missing or collapsed.

    Args:
        curves: arm -> [(budget, metric)] in ascending budget.
    """
    if not curves or any(m is None or m != m for points in curves.values() for _, m in points):
        return None
    flats = [flattens_at(points, flat, direction) for points in curves.values()]
    if all(f is not None for f in flats):
        return max(flats)
    return max(v for points in curves.values() for v, _ in points)


def flattens_at(points: list[tuple[float, float]], flat: float, direction: str) -> float | None:
    """Where one learning curve flattens: the smallest budget after which the next one gains less than ``flat`` in the
    metric (``direction``: which way is a gain); None where every next budget gained at least ``flat``.

    Args:
        points: [(budget, metric)] in ascending budget, every metric known.
    """
    sign = 1 if direction == "max" else -1
    gains = [(a, sign * (mb - ma)) for (a, ma), (_, mb) in zip(points, points[1:])]
    return next((a for a, gain in gains if gain < flat), None)


def best_point(tried: list[tuple[dict, float | None]], direction: str) -> dict | None:
    """The best point of a selection by its metric (``min`` or ``max``), collapsed (NaN) and unfinished (None)
    points never; a tie goes to the smallest point (a learning-rate tie to the lower rate). None where none is left."""
    scored = sorted(((v, m) for v, m in tried if m is not None and m == m), key=lambda vm: tuple(vm[0].values()))
    if not scored:
        return None
    pick = min if direction == "min" else max
    return pick(scored, key=lambda vm: vm[1])[0]


def _collapsed(value) -> bool:
    """Whether a row's ``collapse`` column names a reason (empty, None and NaN: it did not collapse)."""
    return isinstance(value, str) and bool(value)


def token_blocks(path: Path, size: int) -> pd.DataFrame:
    """Per block of ``size`` consecutive scored tokens of a run's ``token_nll.npz`` (window, then text order; the last
    block shorter): its index (``window``), token count and NLL sums (nats), with the device run's exact pass.

    Raises:
        QadaptError: the file is damaged (the message says to score the run again).
    """
    import numpy as np

    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files if k in ("nll", "exact_nll")}
    except (OSError, ValueError) as e:
        raise QadaptError(f"{path} is damaged ({e}): delete its run directory and score it again") from None
    index = np.arange(len(arrays["nll"])) // size
    frame = pd.DataFrame({"window": index, "tokens": 1, **arrays})
    return frame.groupby("window", as_index=False).sum()


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def run(
    study: Study,
    phase: str = "all",
    extra: list[str] = (),
    execute: bool = True,
    arms: list[str] | None = None,
    seeds: list[int] | None = None,
) -> Runner:
    """Run (or with ``execute=False`` only look up) ``study``'s ``phase`` (``select``, ``final`` or ``all``), for
    ``arms`` (spec keys, one axis value's key, or an axis value: every arm at it) and final ``seeds`` only when given,
    and write its cells and units files.

    Raises:
        ConfigError: an unknown phase, arm or seed. QadaptError: a scoring cell whose per-unit scores are nowhere.
    """
    from ..errors import ConfigError

    if phase not in PHASES:
        raise ConfigError(f"phase: unknown '{phase}'; valid choices: {', '.join(PHASES)}")
    names = list(dict.fromkeys([*(a.root for a in study.arms.values() if a.root), *study.arms]))
    names += [str(v) for v in (study.axis.values if study.axis else [])]
    unknown = [a for a in arms or [] if a not in names]
    if unknown:
        raise ConfigError(f"arms: unknown arm '{unknown[0]}'; valid choices: {', '.join(names)}")
    strange = [s for s in seeds or [] if s not in study.final.seeds]
    if strange:
        raise ConfigError(f"seeds: {strange[0]} is not a final seed; valid choices: {study.final.seeds}")
    # every cell is visited so the cells file is whole; only the named phase's cells run (the other's are looked up)
    runner = Runner(study, extra, execute and phase in ("select", "all"), arms, seeds)
    chosen = runner.select()
    runner.execute = execute and phase in ("final", "all")
    runner.final(chosen)
    runner.save()
    return runner


def status(study: Study, extra: list[str] = ()) -> str:
    """Every cell of ``study`` as a markdown table (arm, phase, seed, point, done, the seconds its run took) and the
    counts done and left; nothing runs and nothing is written."""
    runner = Runner(study, list(extra), execute=False)
    runner.final(runner.select())
    frame = pd.DataFrame(runner.cells)
    frame["state"] = [
        "diverged" if d is True else "done" if ok is True else "left"
        for d, ok in zip(frame.get("diverged", [None] * len(frame)), frame.get("done", [None] * len(frame)))
    ]
    cols = [c for c in ["arm", "phase", "seed", "values", "state", "wall_seconds", "run_id"] if c in frame]
    done = int((frame["state"] == "done").sum())
    left = int((frame["state"] == "left").sum())
    note = (
        f"{study.name}: {done} cells done, {left} left"
        + (f", {int((frame['state'] == 'diverged').sum())} diverged" if (frame["state"] == "diverged").any() else "")
        + " (final cells of arms whose selection is not finished are not listed yet)"
    )
    return note + "\n\n" + frame[cols].to_markdown(index=False)
