"""The table of a classifier study (``final.statistic: score``): arms in rows, the axis values (tasks) in columns,
from the committed cells and units (every scored example's label and prediction) alone.

Each task's scores are the metric recomputed from the predictions (x100, mean over seeds); its intervals and paired
tests come from :func:`qadapt.results.estimate.from_linear` on per-example values (an accuracy's correct answers; a
Matthews or rank correlation's jackknife pseudo-values, :func:`qadapt.results.estimate.jackknife`); the mean over
tasks from :func:`qadapt.results.estimate.combine`; the words from :func:`qadapt.results.estimate.sentence`.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd

from ..errors import QadaptError
from ..eval.metrics import resampled_scores
from ..results import estimate as est
from ..results import stats
from ..results.collapse import reason
from .engine import done
from .engine import short as _short
from .spec import Study

# how a metric is named in a column head
SHORT = {"accuracy": "acc", "accuracy_f1": "acc", "matthews": "MCC", "pearson_spearman": "(P+S)/2"}
# a score's per-example values are its own where it is a mean over examples (no jackknife needed)
MEANS = ("accuracy", "accuracy_f1")


# leave-one-out scores computed this many at a time: memory O(LOO_BLOCK x N), not O(N^2)
LOO_BLOCK = 256


def per_example(metric: str, predictions: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """One seed's score x100 and its ``(N,)`` per-example values whose spread is the score's: an accuracy's correct
    answers x100, else the jackknife pseudo-values (Efron & Tibshirani 1993, ch. 11) of the score x100 from its N
    leave-one-out scores, :data:`LOO_BLOCK` at a time.

    Args:
        metric: qadapt/eval/metrics.py's name (``accuracy``, ``matthews``, ``pearson_spearman``, ...).
        predictions, labels: ``(N,)`` each. Raises: ConfigError: an unknown metric.
    """
    n = len(labels)
    full = 100 * float(resampled_scores(metric, predictions, labels, np.ones((1, n)))[0])
    if metric in MEANS:
        return full, 100 * (np.rint(predictions) == np.rint(labels)).astype(float)
    loo = np.concatenate([100 * resampled_scores(metric, predictions, labels, _left_out(n, start))
                          for start in range(0, n, LOO_BLOCK)])  # fmt: skip
    return full, est.jackknife([full], loo[None, :])[0]


def _left_out(n: int, start: int) -> np.ndarray:
    """``(B, n)`` resample counts: row i leaves example ``start + i`` out, every other once."""
    rows = np.arange(start, min(start + LOO_BLOCK, n))
    counts = np.ones((len(rows), n))
    counts[np.arange(len(rows)), rows] = 0
    return counts


def root(study: Study, arm: str) -> str:
    """The spec arm an expanded arm comes from (``quic`` of ``quic_taskrte``; an arm the axis does not vary: itself)."""
    return study.arms[arm].root or arm


def label(study: Study, name: str) -> str:
    """The label of a spec arm (``quic``), without the axis value its expanded arms add."""
    if name in study.arms:
        return study.arms[name].label
    arm = next(a for k, a in study.arms.items() if a.root == name)
    return arm.label.removesuffix(f", {study.axis.name} = {arm.at}")


def group_estimates(study: Study, cells: pd.DataFrame, units: pd.DataFrame | None, group) -> tuple:
    """One axis value's (task's) arms scored on every seed the reference has, and their estimates keyed by the spec's
    arm names (so tasks combine): ``(complete root arms, Estimates | None, metric)``.

    Raises:
        QadaptError: arms or seeds scored on different examples.
    """
    test = cells[(cells["phase"] == "test") & done(cells)]
    ref = study.reference_at(group)
    arms = study.groups()[group]
    have = {a: set(test[test["arm"] == a]["seed"].astype(int)) for a in arms}
    seeds = [s for s in sorted(study.final.seeds) if s in have.get(ref, set())]
    complete = [a for a in arms if seeds and set(seeds) <= have[a]]
    if units is None or ref not in complete:
        return [root(study, a) for a in complete], None, None
    mine = test[test["arm"] == ref]
    metric = str(mine["metric"].iloc[0])
    units = units[units["run_id"].isin(set(test["run_id"]))]
    observed, linear, order = {}, {}, None
    for arm in complete:
        scores, values = [], []
        for seed in seeds:
            one = units[(units["arm"] == arm) & (units["seed"] == seed)].drop_duplicates("example")
            one = one.sort_values("example")
            if order is None:
                order = one["example"].to_numpy()
            if not np.array_equal(one["example"].to_numpy(), order):
                raise QadaptError(f"{arm}, seed {seed}: scored on other examples than {ref}; rerun its final phase")
            full, y = per_example(metric, one["prediction"].to_numpy(float), one["label"].to_numpy(float))
            scores.append(full)
            values.append(y)
        observed[root(study, arm)] = float(np.mean(scores))
        linear[root(study, arm)] = np.stack(values)
    found = est.from_linear(observed, linear, "score", study.reference)
    return [root(study, a) for a in complete], dataclasses.replace(found, seed_ids=tuple(seeds)), metric


def counted_values(study: Study, cells: pd.DataFrame, labels: dict) -> tuple[list, list[str], str]:
    """The axis values that count in the mean under ``final.mean``'s bars, the lines that say so, and the verdict
    (values whose judges' selection is not finished count until it is)."""
    mean = study.final.mean
    values = list(study.axis.values)
    if mean is None or not mean.bars:
        return values, [], ""
    sel = cells[(cells["phase"] == "select") & done(cells)]
    clear, failing = [], []
    for v in values:
        if str(v) not in mean.bars:
            continue
        for judge in mean.judges:
            g = sel[sel["arm"] == f"{judge}_{study.axis.name}{v}"]
            if g.empty:
                continue
            best = g.iloc[int(np.argmax(g["score"].astype(float).to_numpy()))]
            ci = stats.score_interval(float(best["score"]), int(best["eval_examples"]), str(best["metric"]))
            clear.append(f"{v} {label(study, judge)} {100 * ci.estimate:.1f} [{100 * ci.low:.1f}, "
                         f"{100 * ci.high:.1f}]")  # fmt: skip
            if 100 * ci.low <= mean.bars[str(v)]:
                failing.append(v)
    counted = [v for v in values if v not in failing]
    bars = ", ".join(f"{v} {b:g}" for v, b in mean.bars.items())
    judges = " and ".join(label(study, j) for j in mean.judges)
    if not failing:
        verdict = " Every task passes."
    elif counted:
        verdict = f" Not passed at this budget, left out of the mean: {', '.join(map(str, dict.fromkeys(failing)))}."
    else:
        counted, verdict = values, " No task passes at this budget: the mean below covers every task."
    line = (
        f"Bars (score x100, `final.mean.bars` of the spec): {bars}. A task counts in the mean when "
        f"{judges} pass them clearly on the selection split: the lower end of the 95 % interval of each one's best "
        "selection score (Wilson for an accuracy, Fisher's z for MCC and (P+S)/2; one run) above the bar: "
        f"{'; '.join(clear)}.{verdict}"
    )
    return counted, [line], verdict


def selection_lines(study: Study, cells: pd.DataFrame, chosen: dict, labels: dict) -> list[str]:
    """The selection table: each arm's grid points and scores (x100) per task, the chosen one bold."""
    sel = cells[cells["phase"] == "select"]
    groups = study.groups()
    values = list(groups)
    head = [str(v) for v in values] if study.axis else ["score"]
    lines = ["| arm | " + " | ".join(head) + " |", "|---|" + "---|" * len(values)]
    edges = []
    roots = list(dict.fromkeys(root(study, a) for a in study.trained()))
    for r in roots:
        figures = []
        for v in values:
            arm = next((a for a in groups[v] if root(study, a) == r), None)
            mine = sel[sel["arm"] == arm] if arm else sel.iloc[0:0]
            points = []
            mine = mine.assign(_order=[tuple(json.loads(v).values()) for v in mine["values"]]).sort_values("_order")
            for _, c in mine.iterrows():
                point = json.loads(c["values"])
                name = ", ".join(_short(x) for x in point.values()) or "–"
                if c.get("diverged") is True:
                    points.append(f"{name}: diverged")
                    continue
                if not bool(c.get("done")):
                    points.append(f"{name}: not run")
                    continue
                figure = f"{name}: {100 * float(c['score']):.1f}"
                if isinstance(c.get("collapse"), str) and c["collapse"]:
                    figure += " (collapsed)"
                bold = arm in chosen and point == chosen[arm] and len(mine) > 1
                points.append(f"**{figure}**" if bold else figure)
            tried = [json.loads(x) for x in mine["values"]]
            keys = list(chosen.get(arm, {}))
            if (
                len(keys) == 1
                and len(tried) > 1
                and chosen[arm][keys[0]]
                in (
                    min(t[keys[0]] for t in tried),
                    max(t[keys[0]] for t in tried),
                )
            ):
                edges.append(f"{label(study, r)}{f' on {v}' if study.axis else ''}")
            figures.append(", ".join(points) or "–")
        lines.append(f"| {label(study, r)} | " + " | ".join(figures) + " |")
    keys = sorted({k for a in study.trained() for k in study.grid(a)})
    lines += ["", f"Bold: the chosen {', '.join(keys) or 'point'} (value: selection score x100)."]
    if edges:
        lines += [
            "Chosen at an end of the values tried, widening included (a wider grid might choose differently): "
            + "; ".join(edges)
            + "."
        ]
    return lines


def reported_lines(study: Study, cells: pd.DataFrame, units: pd.DataFrame | None, labels: dict, chosen: dict):
    """The reported split's table, its notes and the sentences it supports; returns ``(lines, per-value estimates,
    mean estimates or None, counted values)``."""
    groups = {g: group_estimates(study, cells, units, g) for g in study.groups()}
    scored = [g for g, (_, e, _) in groups.items() if e is not None]
    test = cells[(cells["phase"] == "test") & done(cells)]
    lines = []
    counted, bar_lines, _ = counted_values(study, cells, labels) if study.axis else ([None], [], "")
    lines += bar_lines
    lines += ["", f"## Reported: `task.split={study.final.split}` (score x100: mean over seeds [95 % interval])", ""]
    # an arm without a chosen point (every selection run collapsed or diverged) has no final cell to wait for
    unchosen = [a for g in groups for a in study.groups()[g] if a not in chosen and _selection_done(cells, a)]
    expected = {g: [a for a in study.groups()[g] if a not in unchosen] for g in groups}
    if unchosen:
        lines += ["No point chosen, so not trained on the reported split (every selection run collapsed or diverged; "
                  "the selection table shows them): " + ", ".join(labels[a] for a in unchosen) + ".", ""]  # fmt: skip
    if not scored:
        lines.append(f"Not scored yet: `qadapt study run {study.name} phase=final` (finished cells are reused).")
        return lines, {}, None, counted
    waiting = [g for g in groups if g not in scored or len(groups[g][0]) < len(expected[g])]
    estimates = {g: groups[g][1] for g in scored}
    arms = groups[scored[0]][0]
    ready = [g for g in scored if groups[g][0] == arms and estimates[g].seed_ids == estimates[scored[0]].seed_ids]
    total = len(study.final.seeds)
    seeds = estimates[scored[0]].seed_ids
    some = f"{len(seeds)} of {total} seeds so far" if len(seeds) < total else ""
    first = test[test["arm"] == study.reference_at(scored[0])].iloc[0]
    lines.append(
        f"Seeds {list(seeds)}{f' ({some})' if some else ''}; {first['eval_source']}"
        + (" and the other tasks' reported splits" if study.axis and len(scored) > 1 else "")
        + ". 95 % intervals: crossed random-effects t over the seeds and the examples (the metric's per-example "
        "values: an accuracy's correct answers, a correlation's jackknife pseudo-values; ANOVA variance components, "
        "Satterthwaite's degrees of freedom, S - 1 where the seeds dominate; qadapt/results/estimate.py); each arm "
        f"against {label(study, study.reference)} on the same seeds and examples (paired), p two-sided, df its "
        "degrees of freedom."
        + (
            " The mean is over the tasks that count (the bars above), each task weighing the same."
            if study.final.mean and study.final.mean.bars
            else " The mean is over every task, each weighing the same."
            if study.final.mean
            else ""
        )  # fmt: skip
    )
    if waiting:
        lines += ["", "Not scored on every seed yet (left out below until they are): "
                  + ", ".join(str(g) for g in waiting) + "."]  # fmt: skip
    in_mean = [g for g in ready if g in counted]
    mean = est.combine([estimates[g] for g in in_mean], "score") if study.final.mean and in_mean else None
    metrics = {g: groups[g][2] for g in ready}
    head = [f"{g} ({SHORT.get(metrics[g], metrics[g])})" if study.axis else SHORT.get(metrics[g], metrics[g])
            for g in ready]  # fmt: skip
    focus = mean if mean is not None else estimates[ready[0]]
    lines += [
        "",
        "| arm | params | " + " | ".join(head) + (" | mean" if mean else "") + " | vs reference [95 % CI] | p | df |",
        "|---|---:|" + "---:|" * len(ready) + ("---:|" if mean else "") + "---:|---:|---:|",
    ]

    def ci(i: stats.Interval) -> str:
        return f"{i.estimate:.1f} [{i.low:.1f}, {i.high:.1f}]"

    for arm in arms:
        rows = test[test["arm"].map(lambda a: root(study, a)) == arm]
        params = rows["adapter_params"].dropna()
        count = f"{int(params.iloc[0]):,}" if len(params) else "–"
        vs, p, df = "–", "–", "–"
        if arm in focus.versus:
            d = focus.versus[arm].difference
            vs = f"{d.estimate:+.1f} [{d.low:+.1f}, {d.high:+.1f}]"
            p = est.p_text(focus.versus[arm].p).removeprefix("p = ").removeprefix("p ")
            df = f"{focus.df[arm]:.1f}"
        cells_ = [ci(estimates[g].arms[arm]) for g in ready] + ([ci(mean.arms[arm])] if mean else [])
        lines.append(f"| {label(study, arm)} | {count} | " + " | ".join(cells_) + f" | {vs} | {p} | {df} |")
    if mean is not None and set(in_mean) != set(ready):
        every = est.combine([estimates[g] for g in ready], "score")
        left = [str(g) for g in ready if g not in in_mean]
        lines += [
            "",
            f"Mean over every task, {', '.join(left)} included (the bars leave {'it' if len(left) == 1 else 'them'} "
            "out of the mean above): " + "; ".join(f"{label(study, a)} {ci(every.arms[a])}" for a in arms) + ".",
        ]
    lines += collapsed_lines(study, cells, units, ready)
    if len(ready) > 1:
        lines += [
            "",
            f"Per task, vs {label(study, study.reference)} (paired difference x100 [95 % interval], p"
            + ("; * = not in the mean" if mean is not None and set(in_mean) != set(ready) else "")
            + "):",
            "",
            "| arm | " + " | ".join(f"{g}{'' if g in in_mean or mean is None else ' *'}" for g in ready) + " |",
            "|---|" + "---:|" * len(ready),
        ]
        for arm in arms:
            if arm == study.reference:
                continue
            figures = []
            for g in ready:
                t = estimates[g].versus[arm]
                d = t.difference
                figures.append(f"{d.estimate:+.1f} [{d.low:+.1f}, {d.high:+.1f}], {est.p_text(t.p)}")
            lines.append(f"| {label(study, arm)} | " + " | ".join(figures) + " |")
    lines += reported_metrics(study, test, ready)
    over = " (the mean over the tasks that count):" if study.final.mean and study.final.mean.bars else " (the mean):"
    lines += ["", "What the rows support" + (over if mean else ":"), ""]
    for arm, t in focus.versus.items():
        said = est.sentence(t, label(study, study.reference), False, "points", focus.seeds)
        lines.append(f"- {label(study, arm)} ({count_of(test, study, arm)} params) {said}.")
    return lines, {g: estimates[g] for g in ready}, mean, in_mean


def _selection_done(cells: pd.DataFrame, arm: str) -> bool:
    """Whether every selection cell of ``arm`` finished (done or diverged): then no point chosen means none will be."""
    mine = cells[(cells["phase"] == "select") & (cells["arm"] == arm)]
    finished = done(mine) | mine.get("diverged", pd.Series(False, index=mine.index)).fillna(False).astype(bool)
    return bool(len(mine)) and bool(finished.all())


def count_of(test: pd.DataFrame, study: Study, arm: str) -> str:
    """A spec arm's adapter parameters as the table writes them (``7,028``; ``–`` when no scored cell has them)."""
    params = test[test["arm"].map(lambda a: root(study, a)) == arm]["adapter_params"].dropna()
    return f"{int(params.iloc[0]):,}" if len(params) else "–"


def collapsed_lines(study: Study, cells: pd.DataFrame, units: pd.DataFrame | None, values: list) -> list[str]:
    """The reported runs that collapsed (one class for every example; qadapt/results/collapse.py), each named with
    its task's mean over seeds with and without it; the rows above include every seed."""
    if units is None:
        return []
    test = cells[(cells["phase"] == "test") & done(cells)]
    named = []
    for _, c in test.iterrows():
        g = study.arms[c["arm"]].at
        if study.axis is not None and g not in values:
            continue
        mine = units[units["run_id"] == c["run_id"]]
        why = reason({}, mine["prediction"], mine["label"], regression=c["metric"] == "pearson_spearman")
        if why is None and not (isinstance(c.get("collapse"), str) and c["collapse"]):
            continue
        why = why or c["collapse"]
        scores = test[test["arm"] == c["arm"]]
        rest = scores[scores["seed"] != c["seed"]]["score"].astype(float)
        where = f" on {g}" if study.axis else ""
        named.append(
            f"{label(study, root(study, c['arm']))}{where}, seed {int(c['seed'])}: {why}. Its mean{where} is "
            f"{100 * scores['score'].astype(float).mean():.1f} with and {100 * rest.mean():.1f} without it."
        )
    if not named:
        return []
    return ["", "Collapsed runs (named, not dropped: the rows above include every seed): " + " ".join(named)]


def reported_metrics(study: Study, test: pd.DataFrame, values: list) -> list[str]:
    """The other metrics a benchmark reports beside its headline (MRPC's F1, STS-B's Pearson and Spearman), mean
    over seeds from the rows."""
    names = {"metric_f1": "F1", "metric_pearson": "Pearson", "metric_spearman": "Spearman"}
    parts = []
    for arm in dict.fromkeys(root(study, a) for a in study.trained()):
        said = []
        for g in values:
            rows = test[test["arm"].map(lambda a: root(study, a)) == arm]
            rows = rows[rows["arm"].map(lambda a: study.arms[a].at) == g] if study.axis else rows
            figures = [f"{n} {100 * rows[c].astype(float).mean():.1f}" for c, n in names.items()
                       if c in rows and rows[c].notna().any()]  # fmt: skip
            if figures:
                said.append(f"{g if study.axis else ''} {', '.join(figures)}".strip())
        if said:
            parts.append(f"{label(study, arm)}: {'; '.join(said)}")
    return ["", "As the benchmark reports them (mean over seeds): " + " · ".join(parts) + "."] if parts else []


def training_line(finished: pd.DataFrame, study: Study) -> list[str]:
    """The budget every run shares, from the configs: steps or epochs (per task), batch, data, optimiser."""
    trained = finished[finished["train_examples"].notna()] if "train_examples" in finished else finished.iloc[0:0]
    if trained.empty:
        return []
    cfg = json.loads(trained.iloc[0]["config"])
    t, k = cfg["train"], cfg["task"]
    per = []
    for g, arms in study.groups().items():
        mine = trained[trained["arm"].isin(arms)]
        if mine.empty:
            continue
        c = json.loads(mine.iloc[0]["config"])
        budget = f"{c['train']['max_steps']} steps" if c["train"].get("max_steps") else f"{c['train']['epochs']} epochs"
        per.append(f"{g + ' ' if g is not None else ''}{int(mine['train_examples'].max()):,} examples x {budget}")
    size = f"max length {k['max_length']} tokens" if k.get("max_length") else f"images at {k.get('image_size')} px"
    buckets = ", length-bucketed batches" if t.get("length_buckets") else ""
    return [
        f"Training (every arm, every seed): training examples x budget: {'; '.join(per)}; batch {t['batch_size']}, "
        f"{size}{buckets}; AdamW, weight decay {float(t['weight_decay']):g}, warm-up {float(t['warmup_ratio']):g}, "
        f"linear decay; the head at lr {float(t['head_lr']):g} (`train.head_lr`, fixed, not selected).  "
    ]
