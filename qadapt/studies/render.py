"""A study's table, from its committed cells and units files alone (no run directory is read).

Every figure comes from data: the selection grid and choice from the selection cells, the test rows from the scoring
cells, every interval, paired test and p-value from :func:`qadapt.results.estimate.estimate`, every verdict from
:func:`qadapt.results.estimate.verdict`; counts (seeds, windows, tokens) are counted, never typed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import QadaptError
from ..results import estimate as est
from ..results import write_text_atomic
from .engine import Files, best_point, done, final_points
from .engine import short as _short
from .spec import Study


@dataclass(frozen=True)
class Result:
    """What a render hook sees: the cells, the arms scored on every seed, the chosen points, the estimates (of the
    first axis value; every value's in ``groups``)."""

    cells: pd.DataFrame
    units: pd.DataFrame | None
    complete: list[str]
    chosen: dict[str, dict]
    estimates: est.Estimates | None
    groups: dict = field(default_factory=dict)  # axis value -> (complete arms, estimates); {None: ...} without one
    table: Path | None = None  # the table being written (a hook's figure goes beside it)


def load_cells(study: Study, results_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The study's cells and units files.

    Raises:
        QadaptError: no cells file (the study has not run; the message names the command).
    """
    files = Files.of(study, results_dir)
    if not files.cells.exists():
        raise QadaptError(f"{files.cells} is missing: run `qadapt study run {study.name}` first")
    try:
        cells = pd.read_csv(files.cells)
        units = pd.read_csv(files.units) if files.units.exists() else None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise QadaptError(
            f"{files.cells} or {files.units} is damaged ({e}); rerun `qadapt study run {study.name}`"
        ) from None
    return cells, units


def chosen_points(study: Study, cells: pd.DataFrame) -> dict[str, dict]:
    """Per trained arm with a complete grid: the point whose selection run scored best (diverged cells excluded);
    without a selection phase, every trained arm at no point (as composed)."""
    if study.select is None:
        return {arm: {} for arm in study.trained()}
    sel = cells[(cells["phase"] == "select") & done(cells)]
    out = {}
    for arm in study.trained():
        if study.source(arm) is not None:
            continue
        mine = sel[sel["arm"] == arm]
        grid = study.grid(arm)
        tried = [json.loads(v) for v in mine["values"]]
        needed = [dict(zip(grid, combo)) for combo in _product(grid)]
        if mine.empty or any(point not in tried for point in needed):
            continue
        fine = mine[~collapsed(mine)]
        tried = [(json.loads(v), float(m)) for v, m in zip(fine["values"], fine[study.select.metric])]
        best = best_point(tried, study.select.direction)
        if best is not None:
            out[arm] = best
    curve, curves = study.select.curve, None
    if curve is not None:
        rows = cells[(cells["phase"] == "curve") & done(cells) & ~collapsed(cells)]
        curves = {}
        for arm, point in out.items():
            mine = rows[rows["arm"] == arm]
            found = {json.loads(v)[curve.key]: float(m) for v, m in zip(mine["values"], mine[study.select.metric])
                     if {k: x for k, x in json.loads(v).items() if k != curve.key} == point}  # fmt: skip
            curves[arm] = [(v, found.get(v)) for v in curve.values]
    return final_points(study, out, curves)


def collapsed(cells: pd.DataFrame) -> pd.Series:
    """Which cells' runs collapsed (qadapt/results/collapse.py: a reason in their ``collapse`` column)."""
    if "collapse" not in cells:
        return pd.Series(False, index=cells.index)
    return cells["collapse"].map(lambda v: isinstance(v, str) and bool(v))


def _flag(line: pd.Series, key: str) -> bool:
    value = line.get(key)
    return bool(value) if value is not None and value == value else False


def _product(grid: dict) -> list[tuple]:
    import itertools

    return list(itertools.product(*grid.values()))


def unit_matrix(units: pd.DataFrame, arm: str, column: str = "nll") -> tuple[np.ndarray, pd.Series]:
    """One arm's per-unit scores from a units file: ``(S, W)`` values of ``column`` (nats summed over the unit's
    tokens; seeds and units in ascending order) and the ``(W,)`` tokens per unit (a Series indexed by unit)."""
    w = units[units["arm"] == arm].drop_duplicates(["seed", "window"]).sort_values(["seed", "window"])
    return w.pivot(index="seed", columns="window", values=column).to_numpy(), w.groupby("window")["tokens"].first()


def estimates(
    study: Study, cells: pd.DataFrame, units: pd.DataFrame | None, group=None
) -> tuple[list[str], est.Estimates | None]:
    """The arms of one axis value (``group``; all arms without an axis) scored on the seeds the reference arm (and a
    per-seed baseline) has so far, every final seed once the study is done, and their estimates against that
    value's reference arm on those seeds (None when the reference has no seed scored)."""
    test = cells[(cells["phase"] == "test") & done(cells)]
    base_arm = study.baseline_at(group)
    stat = study.final.statistic
    ref = study.reference_at(group)
    have = {a: set(test[test["arm"] == a]["seed"].astype(int)) for a in study.arms}
    seeds = [s for s in sorted(study.final.seeds) if s in have[ref]]
    if stat == "delta_ppl_pct" and study.arms[base_arm].seeded:
        seeds = [s for s in seeds if s in have[base_arm]]
    complete = [
        arm
        for arm in study.groups()[group]
        # the baseline arm is a row of its own only where its exact pass, not its scores, is the baseline
        if (arm != base_arm or study.arms[arm].kind == "evaluation")
        and seeds
        and study.arms[arm].compared
        # an arm the seed does not change (the base model) is scored once and stands for every seed
        and (set(seeds) <= have[arm] if study.arms[arm].seeded else study.final.seeds[0] in have[arm])
    ]
    if units is None or ref not in complete:
        return complete, None
    once = {a for a, spec in study.arms.items() if not spec.seeded}
    units = units[
        units["run_id"].isin(set(test["run_id"]))
        & (units["seed"].isin(seeds) | (units["arm"].isin(once) & (units["seed"] == study.final.seeds[0])))
    ]

    def matrix(arm: str, column: str = "nll") -> tuple[np.ndarray, pd.Series]:
        values, tokens = unit_matrix(units, arm, column)
        if arm in once and values.shape[0] == 1:  # the same scores for every seed: no seed variance
            values = np.repeat(values, len(seeds), axis=0)
        return values, tokens

    _, tokens = matrix(ref)
    numerators = {}
    base = None
    if stat == "delta_ppl_pct":
        own_exact = study.arms[base_arm].kind == "evaluation"  # its run's exact pass is the baseline
        b, base_tokens = matrix(base_arm, "exact_nll" if own_exact else "nll")
        if not b.size or not np.array_equal(base_tokens.to_numpy(), tokens.to_numpy()):
            return complete, None
        if study.arms[base_arm].seeded:  # scored per seed: each seed against its own
            if b.shape[0] != len(seeds):
                return complete, None
            base = b
        else:
            base = b[0]
    if stat == "recovery_pct":  # each run's own base and compressed passes on the same windows
        observed, linear = {}, {}
        for arm in complete:
            nll, own = matrix(arm)
            if not np.array_equal(own.to_numpy(), tokens.to_numpy()):
                raise QadaptError(f"{arm}: scored on other units than {ref}; rerun its final phase")
            base_nll, compressed = matrix(arm, "base_nll")[0], matrix(arm, "compressed_nll")[0]
            observed[arm], linear[arm] = est.recovery(nll, base_nll, compressed, tokens.to_numpy())
        found = _estimated(study, est.from_linear, observed, linear, stat, ref)
        return complete, dataclasses.replace(found, seed_ids=tuple(seeds))
    scored = [a for a in complete if stat != "device_degradation_pct" or study.arms[a].kind == "evaluation"]
    for arm in scored:
        nll, own = matrix(arm)
        if not np.array_equal(own.to_numpy(), tokens.to_numpy()):
            raise QadaptError(f"{arm}: scored on other units than {ref}; rerun its final phase")
        if stat == "device_degradation_pct":
            numerators[arm] = nll - matrix(arm, "exact_nll")[0]
        else:
            numerators[arm] = nll - base if base is not None else nll
    transform = "delta_ppl_pct" if stat == "device_degradation_pct" else stat
    found = _estimated(study, est.estimate, numerators, tokens.to_numpy(), transform, ref)
    return complete, dataclasses.replace(found, seed_ids=tuple(seeds))


def _estimated(study: Study, function, *args):
    """The estimator's answer, its refusals (fewer than 2 units, no gap to recover) as a user's error."""
    try:
        return function(*args)
    except ValueError as e:
        raise QadaptError(
            f"study {study.name}: {e}; score more units (a longer text: task.max_bytes, task.max_tokens; shorter "
            "windows: task.max_length) and render again"
        ) from None


def render(study: Study, results_dir: str | Path, command: str) -> Path:
    """Write ``<results_dir>/<name>.md`` from the study's cells and units files; returns its path.

    Raises:
        QadaptError: the cells file is missing or damaged.
    """
    cells, units = load_cells(study, results_dir)
    labels = {k: a.label for k, a in study.arms.items()}
    chosen = chosen_points(study, cells)
    finished = cells[done(cells)]
    commits = ", ".join(f"`{c}` ({n})" for c, n in finished["git_commit"].value_counts().sort_index().items())
    first = finished.iloc[0] if len(finished) else None
    machine = f"{first['machine']}, {int(first['threads'])} torch threads" if first is not None else "–"
    lines = [
        f"# {study.title}",
        "",
        *([study.question, ""] if study.question else []),
        f"Command: `{command}`  ",
        f"Commits: {commits or '–'} · written {dt.date.today()} · {len(finished)} cells · machine: {machine}  ",
        f"Shared by every arm: `{' '.join(study.shared)}`.  ",
    ]
    score = study.final.statistic == "score"
    if score:
        from . import scores

        lines += scores.training_line(finished, study)
    else:
        lines += _training_line(finished, study)
    if study.axis is not None and study.axis.overrides:
        lines[-1] += (
            "Per "
            + study.axis.name
            + ": "
            + "; ".join(f"{v} `{' '.join(o)}`" for v, o in study.axis.overrides.items())
            + ".  "
        )
    sel = study.select
    if sel is None:
        trained = finished[(finished["phase"] == "train") | (finished.get("command") == "train")]
        rate = f"learning rate {json.loads(trained['config'].iloc[0])['train']['lr']:g}, " if len(trained) else ""
        lines.append(
            f"Hyperparameters: {rate}fixed, not selected (the overrides above, else qadapt's defaults in configs/); "
            "the same for every arm and seed."
        )
    else:
        step = (
            f"by x{sel.widen.factor:g}"
            if sel.widen and sel.widen.factor
            else f"on the {'-'.join(f'{m:g}' for m in sel.widen.ladder)} ladder"
            if sel.widen
            else ""
        )
        widen = (
            f", the grid widened {step} past an end where the best value sits, at most {sel.widen.max_steps} times"
            if sel.widen
            else ""
        )
        per = f" per {study.axis.name}" if score and study.axis else ""
        lines += [
            f"Selection: seed {sel.seed}, {sel.direction}imum {sel.metric} on `task.split={sel.split}`{per}{widen}; "
            f"the reported split (`task.split={study.final.split}`) is scored once per chosen configuration."
            + (
                " Grid per family: "
                + "; ".join(f"{f} {', '.join(f'{k} {_listed(v)}' for k, v in g.items())}" for f, g in sel.grid.items())
                + "."
                if score
                else ""
            ),  # fmt: skip
            "",
            "## Selection",
            "",
        ]
    if sel is not None and score:
        lines += scores.selection_lines(study, cells, chosen, labels)
    elif sel is not None:
        lines += _selection_table(study, cells, chosen, labels)
        held = cells[(cells["phase"] == "select") & done(cells)]
        if len(held):
            h = held.iloc[0]
            lines += [
                "",
                f"Scored: {h['eval_source']}, {int(h['tokens_scored']):,} tokens; the base model there: perplexity "
                f"{float(h['base_perplexity']):.4f}.",
            ]
        edge = _at_edge(study, cells, chosen)
        if edge:
            lines += ["", f"Chosen at an end of the values tried, widening included (a wider grid might choose "
                      f"differently): {', '.join(labels[a] for a in edge)}."]  # fmt: skip
    path = Files.of(study, results_dir).table
    hook = study.hook_module()
    if score:
        reported, per_value, mean, counted = scores.reported_lines(study, cells, units, labels, chosen)
        lines += reported
        if hook is not None and hasattr(hook, "extra_lines"):
            groups = {g: (list(e.arms), e) for g, e in per_value.items()}
            found = mean if mean is not None else next(iter(per_value.values()), None)
            lines += hook.extra_lines(study, Result(cells, units, list(found.arms) if found else [], chosen, found,
                                                    groups, path))  # fmt: skip
        write_text_atomic(path, "\n".join(lines) + "\n")
        return path
    groups = {g: estimates(study, cells, units, g) for g in study.groups()}
    lines += ["", f"## Reported: `task.split={study.final.split}`", ""]
    if all(found is None for _, found in groups.values()):
        lines.append(f"Not scored yet: `qadapt study run {study.name} phase=final` (finished cells are reused).")
    else:
        lines += _test_table(study, cells, groups, labels)
    if hook is not None and hasattr(hook, "extra_lines"):
        complete, found = next(iter(groups.values()))
        lines += hook.extra_lines(study, Result(cells, units, complete, chosen, found, groups, path))
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def _selection_table(study: Study, cells: pd.DataFrame, chosen: dict, labels: dict) -> list[str]:
    sel = cells[cells["phase"] == "select"]
    points = sorted({v for v in sel["values"]}, key=lambda v: sorted(json.loads(v).items()))
    head = [", ".join(f"{k}={_short(x)}" for k, x in json.loads(v).items()) for v in points]
    lines = [
        "| arm | params | " + " | ".join(head) + " | chosen |",
        "|---|---:|" + "---:|" * len(points) + "---|",
    ]
    for arm in study.trained():
        mine = sel[sel["arm"] == arm].set_index("values")
        if mine.empty:
            continue
        figures = []
        for v in points:
            if v not in mine.index:
                figures.append("–")
            elif _flag(mine.loc[v], "diverged"):
                figures.append("diverged")
            elif not _flag(mine.loc[v], "done"):
                figures.append("not run")
            elif isinstance(mine.loc[v].get("collapse"), str) and mine.loc[v, "collapse"]:
                figures.append(f"{float(mine.loc[v, study.select.metric]):.4f} (collapsed)")
            else:
                figures.append(f"{float(mine.loc[v, study.select.metric]):.4f}")
        params = mine["trainable_params"].dropna()
        count = f"{int(params.iloc[0]):,}" if len(params) else "–"
        pick = ", ".join(f"{k}={_short(x)}" for k, x in chosen[arm].items()) if arm in chosen else "not finished"
        lines.append(f"| {labels[arm]} | {count} | {' | '.join(figures)} | {pick} |")
    return lines


def _listed(values: list) -> str:
    """``[0.001, 0.003, 0.01]``: grid values as the spec writes them."""
    return "[" + ", ".join(_short(x) for x in values) + "]"


def _training_line(finished: pd.DataFrame, study: Study) -> list[str]:
    """The training budget every trained cell shares, from the first training cell's config (none: no line)."""
    trained = finished[finished["train_steps"].notna()] if "train_steps" in finished else finished.iloc[0:0]
    if trained.empty:
        return []
    # the final phase's budget where there is one (a selection or curve may train for fewer steps)
    final = trained[trained["phase"].isin(["train", "test"])]
    t = (final if len(final) else trained).iloc[0]
    train = json.loads(t["config"])["train"]
    return [
        f"Training: {t['train_source']}; {int(t['train_steps'])} steps x {train['batch_size']} x {train['seq_len']} "
        f"tokens, AdamW, {train['schedule']} schedule, {train['warmup_steps']} warm-up steps, "
        + ("the budget the selection's learning curve chose (below), " if study.select and study.select.curve else "")
        + (
            f"per {study.axis.name} as below.  "
            if study.axis and study.axis.key == "train.max_steps"
            else "the same for every arm and seed.  "
        )  # fmt: skip
    ]


def _at_edge(study: Study, cells: pd.DataFrame, chosen: dict) -> list[str]:
    """Arms whose chosen value of a one-hyperparameter grid is the smallest or largest value their selection ran."""
    sel = cells[(cells["phase"] == "select") & done(cells)]
    out = []
    for arm, point in chosen.items():
        if len(point) != 1:
            continue
        ((key, value),) = point.items()
        tried = [json.loads(v)[key] for v in sel[sel["arm"] == arm]["values"]]
        if len(tried) > 1 and value in (min(tried), max(tried)):
            out.append(arm)
    return out


def _seed_count(study: Study, found: list) -> str:
    """``3 seeds``, or while the final phase is under way, ``1 of 3 seeds so far (seed 0; one run: the intervals
    cover the text, not training)``; per axis value where the values have different seeds."""
    total = len(study.final.seeds)

    def one(e: est.Estimates) -> str:
        if e.seeds == total:
            return f"{total} seeds"
        ids = ", ".join(map(str, e.seed_ids))
        alone = "; one run: the intervals cover the text, not training" if e.seeds == 1 else ""
        return f"{e.seeds} of {total} seeds so far (seed{'s' if e.seeds > 1 else ''} {ids}{alone})"

    said = {g: one(e) for g, _, e in found}
    if len(set(said.values())) == 1:
        return next(iter(said.values()))
    return "; ".join(f"{study.axis.name} = {g}: {text}" for g, text in said.items())


NAMES = {"delta_ppl_pct": "Δ ppl %", "perplexity": "perplexity", "device_degradation_pct": "Δ vs own exact %",
         "recovery_pct": "recovery %"}  # fmt: skip
UNITS = {"delta_ppl_pct": "points of Δ ppl", "perplexity": "perplexity", "device_degradation_pct": "points of Δ",
         "recovery_pct": "points of recovery"}  # fmt: skip


def _test_table(study, cells, groups: dict, labels: dict) -> list[str]:
    """The reported split's rows (each axis value's arms against its reference), then the verdict sentences."""
    test = cells[(cells["phase"] == "test") & done(cells)]
    stat = study.final.statistic
    found = [(g, c, e) for g, (c, e) in groups.items() if e is not None]
    _, _, e0 = found[0]
    ref0 = study.reference_at(found[0][0])
    first = test[test["arm"] == ref0].iloc[0]
    lower = est.LOWER_IS_BETTER[stat if stat in est.LOWER_IS_BETTER else "delta_ppl_pct"]
    unit_name = {"windows": "windows", "token_blocks": f"blocks of {study.final.block_tokens} tokens"}
    against = f"{labels[study.reference_at(study.axis.values[0])].rsplit(',', 1)[0]}" if study.axis else labels[ref0]
    lines = [
        f"Scored: {first['eval_source']}, {int(first['tokens_scored']):,} tokens in {e0.units} "
        f"{unit_name[study.final.unit]}, {_seed_count(study, found)}. 95 % intervals: crossed random-effects t over "
        f"the seeds and the {unit_name[study.final.unit].split(' of ')[0]} (both vary; ANOVA variance components, "
        "Satterthwaite's degrees of freedom, S - 1 where the seeds dominate; qadapt/results/estimate.py); each arm "
        "against "
        f"{against}{f' at the same {study.axis.name}' if study.axis else ''} on the same seeds and units (paired), "
        "p two-sided, df its degrees of freedom.",
    ]
    if stat == "delta_ppl_pct":
        name = study.baseline_at(found[0][0])
        base = test[test["arm"] == name]
        if len(base) and not study.arms[name].seeded:
            lines[-1] += (
                f" Δ ppl = 100 (ppl / base ppl - 1) per seed against {labels[name]} "
                f"(perplexity {float(base['perplexity'].iloc[0]):.4f}), then the mean over seeds."
            )
        elif len(base):
            root = study.arms[name].label.rsplit(",", 1)[0] if study.axis else labels[name]
            if study.arms[name].kind == "evaluation":
                root = f"the exact pass of {root} (its trained run scored exactly on the same tokens)"
            lines[-1] += (
                f" Δ ppl = 100 (ppl / base ppl - 1) per seed against {root} at the same seed"
                f"{f' and {study.axis.name}' if study.axis else ''}, then the mean over seeds."
            )
    if stat == "device_degradation_pct":
        lines[-1] += (
            " Δ vs own exact = 100 (ppl on the device / ppl of the same adapter exact - 1) on the same tokens, per "
            "seed, then the mean over seeds."
        )
    if not json.loads(first["config"])["task"].get("score_first", False):
        lines[-1] += " Each window's first token is not scored (`task.score_first=false`)."
    # a perplexity statistic is its own column; a Δ beside the perplexity its rows average
    mean_column = stat != "perplexity"
    sign = "+" if stat not in ("perplexity", "recovery_pct") else ""
    lines += [
        "",
        f"| arm | params | chosen | {'perplexity (mean) | ' if mean_column else ''}{NAMES[stat]} [95 % CI] | vs "
        f"{against} [95 % CI] | p | df | train loss first → last |",
        "|---|---:|---|---:|---:|---:|---:|---:|" + ("---:|" if mean_column else ""),
    ]
    # the training runs: their own phase, or (final.in_training) the scoring cells themselves
    trained = cells[((cells["phase"] == "train") | ((cells["phase"] == "test") & (cells.get("command") == "train")))
                    & done(cells)]  # fmt: skip
    fallen: list[tuple[str, list[int]]] = []
    for _, complete, estimates in found:
        for arm in complete:
            g = test[(test["arm"] == arm) & test["seed"].isin(estimates.seed_ids)]
            ci = estimates.arms.get(arm)
            vs, p, df = "–", "–", "–"
            if arm in estimates.versus:
                d = estimates.versus[arm]
                vs = f"{d.difference.estimate:+.2f} [{d.difference.low:+.2f}, {d.difference.high:+.2f}]"
                p = est.p_text(d.p).removeprefix("p = ").removeprefix("p ")
                df = f"{estimates.df[arm]:.1f}"
            values = json.loads(g["values"].iloc[0])
            pick = ", ".join(f"{k}={_short(x)}" for k, x in values.items()) or "–"
            params = g["trainable_params"].dropna()
            count = f"{int(params.iloc[0]):,}" if len(params) else "–"
            mine = trained["arm"] == (study.arms[arm].of or arm)
            runs = trained[mine & trained["seed"].isin(estimates.seed_ids)]
            loss = (
                f"{runs['train_loss_first'].astype(float).mean():.3f} → "
                f"{runs['train_loss_final'].astype(float).mean():.3f}"
                if len(runs) and runs["train_loss_first"].notna().all()
                else "untrained"
            )
            figure = f"{ci.estimate:{sign}.2f} [{ci.low:{sign}.2f}, {ci.high:{sign}.2f}]" if ci is not None else "–"
            bad = runs[collapsed(runs)] if len(runs) else runs
            if len(bad):
                seeds = ", ".join(f"seed {int(r['seed'])}: {r['collapse']}" for _, r in bad.iterrows())
                figure += f" (collapsed: {seeds})"
                fallen.append((arm, sorted(int(x) for x in bad["seed"])))
            mean = f"{g['perplexity'].astype(float).mean():.4f} | " if mean_column else ""
            lines.append(f"| {labels[arm]} | {count} | {pick} | {mean}{figure} | {vs} | {p} | {df} | {loss} |")
    for arm, seeds in fallen:
        g = test[test["arm"] == arm]
        kept = g[~g["seed"].isin(seeds)]
        without = f"{kept['perplexity'].astype(float).mean():.4f}" if len(kept) else "no seed left"
        lines += [
            "",
            f"{labels[arm]}: its training collapsed at seed {', '.join(map(str, seeds))} (named in its row); its mean "
            f"perplexity is {g['perplexity'].astype(float).mean():.4f} with and {without} without "
            f"{'it' if len(seeds) == 1 else 'them'}; the interval and test above include every seed.",
        ]
    listed = {a for _, c, _ in found for a in c}
    evaluations = {k for k, a in study.arms.items() if a.kind == "evaluation"}
    bases = {study.baseline_at(g) for g in study.groups()} - evaluations
    unscored = {k for k, a in study.arms.items() if not a.scored}
    # arms on units or seeds of their own: listed apart (their hook reports them)
    apart = [a for a, spec in study.arms.items() if not spec.compared or spec.seeds is not None]
    missing = [labels[a] for a in study.arms if a not in listed | bases | unscored | set(apart)]
    if missing:
        lines += ["", f"Not scored on every seed yet: {', '.join(missing)}."]
    for arm in (a for a in apart if not study.arms[a].compared):
        g = test[test["arm"] == arm]
        if len(g):
            lines += ["", f"{labels[arm]}: perplexity {g['perplexity'].astype(float).mean():.4f} on "
                      f"{int(g['tokens_scored'].iloc[0]):,} tokens of its own tokenizer ({g['eval_source'].iloc[0]}); "
                      "its units are not the others', so it has no interval or paired test here."]  # fmt: skip
    lines += ["", "What the rows support:", ""]
    for group, _, estimates in found:
        ref = study.reference_at(group)
        for arm, test_ in estimates.versus.items():
            said = est.sentence(test_, labels[ref], lower, UNITS[stat], estimates.seeds)
            lines.append(f"- {labels[arm]} {said}.")
    return lines
