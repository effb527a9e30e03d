"""The hook of the QFFN studies (configs/study/qffn_components.yaml, table1.yaml, table2.yaml, qffn_curve.yaml):
each run's parameters, local fits and learning curve (kept per cell, since a fresh clone has no run directory), the
comparisons beyond the reference, the cause of QFFN-half's loss, the learning-curve text and plot, and the paper's
figures beside ours with the speed measured by ``make reproduce-qffn-speed`` (``results/qffn_speed.csv``).

Paper figures: QFFN paper ("Less Bits, More Qubits"), Table 1 (LLaMA-7B-scale rows, WikiText-103 perplexity, speed
relative to LLaMA-7B with CPU and GPU quantum simulation) and Table 2 (the fraction of quantum sub-layers).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ...results import estimate as est
from ...results import save_figure_atomic
from ..render import unit_matrix

EXTRA_COLUMNS = [
    "total_params",
    "added_params",
    "removed_params",
    "word_perplexity",
    "bits_per_byte",
    "distill_rel_err_after",
    "head_kl_before",
    "head_kl_after",
    "curve",
]
PAPER_STEPS = 10_000
# arm -> (paper row, parameters in billions, WikiText-103 perplexity, speed vs LLaMA-7B with CPU QSim, with GPU QSim)
PAPER_T1 = {
    "base": ("LLaMA-7B", 7.0, 20.1, 1.0, 1.0),
    "gemma": ("Qwen-7B", 7.0, 18.9, 0.9, 0.9),
    "ffn_pruned": ("Distilled-4B", 4.0, 23.1, 1.4, 1.4),
    "qffn_both": ("QFFN", 3.5, 20.3, 0.6, 2.0),
}
# fraction -> (parameters in billions, perplexity, CPU QSim speed, GPU QSim speed)
PAPER_T2 = {"quarter": (4.1, 20.1, 0.8, 1.4), "half": (3.5, 20.3, 0.6, 2.0), "full": (3.0, 20.7, 0.4, 1.8)}
FRACTIONS = ("quarter", "half", "full")
SIMULATORS = ("fused", "lightning_qubit", "lightning_gpu")
CURVE_ARMS = ("base_ft", "qffn_both", "ffn_lowrank", "ffn_pruned")
SPEED_FILE = "qffn_speed.csv"


def cell_extras(study, arm: str, row: dict) -> dict | None:
    """A finished cell's parameter counts, perplexity per word and bits per byte, the new blocks' local fit, and its
    learning curve (``{step: validation perplexity}`` as JSON, from the run's ``curve.csv``); None where the run
    directory is not here (the engine keeps the recorded columns)."""
    run_dir = Path(str(row.get("run_dir")))
    if not run_dir.is_dir():
        return None
    out = {k: row.get(k) for k in EXTRA_COLUMNS if k != "curve"}
    curve = run_dir / "curve.csv"
    if curve.exists():
        c = pd.read_csv(curve)
        out["curve"] = json.dumps({str(int(s)): float(v) for s, v in zip(c["step"], c["valid_perplexity"])})
    return out


def extra_lines(study, result) -> list[str]:
    """The lines of each QFFN table beyond the engine's: see the module's docstring."""
    cells = result.cells
    test = cells[(cells["phase"] == "test") & cells["done"].fillna(False).astype(bool)]
    if test.empty:
        return []
    lines = {"qffn_components": _components, "table1": _table1, "table2": _table2, "qffn_curve": _curve}
    return lines.get(study.name, lambda *a: [])(study, result, test)


# -- shared pieces -------------------------------------------------------------------------------------------------


def _protocol(test: pd.DataFrame) -> list[str]:
    """The protocol as the runs' configs record it."""
    trained = test[test["command"] == "train"]
    if trained.empty:
        return []
    t = json.loads(trained.iloc[0]["config"])["train"]
    return [
        "",
        f"Protocol (`train=paper`, the paper's Table 3 and Algorithm 2): the whole model fine-tuned with "
        f"cross-entropy, AdamW lr {t['lr']:g}, weight decay {t['weight_decay']:g}, {t['warmup_steps']} warm-up steps "
        f"then linear decay, clipping {t['max_grad_norm']:g}, batch {t['batch_size']} x {t['seq_len']} tokens, "
        f"**{t['max_steps']} steps** (the paper: {PAPER_STEPS:,}; `train.max_steps={PAPER_STEPS} "
        "train.warmup_steps=500` runs it, `qadapt plan train=paper adapter=qffn task.max_length=128` prices it). "
        f"New blocks briefly pre-trained (Algorithm 2's option): {t['distill_steps']} local-distillation "
        f"mini-batches of {t['distill_batch']} hidden states per block (FFNs fitted to the FFN they replace, heads to "
        "the attention pattern of the head they replace), the classical replacements alike. Training text: "
        f"WikiText-2 valid without its last {t['valid_holdout']:g} of articles (WikiText-2 train is not on this "
        f"machine); the learning curve scores the first {t['eval_tokens']:,} tokens of that held-out part.",
    ]


def _mean(test: pd.DataFrame, arm: str, column: str) -> float:
    values = test.loc[test["arm"] == arm, column] if column in test else pd.Series(dtype=float)
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.mean()) if len(values) else float("nan")


def _count(test: pd.DataFrame, arm: str, column: str) -> str:
    value = _mean(test, arm, column)
    return f"{int(value):,}" if value == value else "–"


def _said(e: est.Estimates, arm: str, other: str, labels: dict) -> str | None:
    """``<arm> beats <other> by ...`` from the estimator, None where either is not scored."""
    if e is None or arm not in e.arms or other not in e.arms:
        return None
    return f"{labels[arm]} {est.sentence(e.difference(arm, other), labels[other], True, 'perplexity', e.seeds)}"


def _speed(table) -> pd.DataFrame:
    path = Path(table).parent / SPEED_FILE
    return pd.read_csv(path) if path.exists() else pd.DataFrame()


def _speed_of(speed: pd.DataFrame, method: str, fraction: str, simulator: str) -> str:
    """Median [min, max] over the rounds of one row's speed relative to the base model."""
    if speed.empty:
        return "not measured"
    s = speed[(speed["simulator"] == simulator) & (speed["method"] == method) & (speed["fraction"] == fraction)]
    if s.empty:
        return "n/a (no GPU)" if simulator == "lightning_gpu" else "n/a"
    v = s["speed"].to_numpy()
    return f"{np.median(v):.3g}x [{v.min():.3g}, {v.max():.3g}]" if len(v) > 1 else f"{v[0]:.3g}x"


def _speed_note(speed: pd.DataFrame) -> list[str]:
    if speed.empty:
        return ["", "Speed: not measured yet (`make reproduce-qffn-speed`)."]
    fused = speed[speed["simulator"] == "fused"]
    pl = speed[speed["simulator"] == "lightning_qubit"]
    return [
        "",
        f"Speed: forward tokens/s relative to the base SmolLM2-135M in the same round, median [min, max] over "
        f"{fused['round'].nunique()} interleaved rounds (base and every row in turn, one process, one trained run per "
        f"row, its seed in results/{SPEED_FILE}; commit `{speed['git_commit'].iloc[0]}`; `make reproduce-qffn-speed`), "
        f"{int(fused['tokens'].iloc[0]):,} test tokens in windows of 128 on our exact fused simulator, "
        f"{int(pl['tokens'].iloc[0]) if not pl.empty else 0} tokens on PennyLane lightning.qubit (one circuit per "
        "token and per (query, key) pair of a quantum head).",
    ]


def _architecture(test: pd.DataFrame) -> dict:
    return json.loads(test.iloc[0]["config"])["model"]["architecture"]


def _differences(test: pd.DataFrame) -> list[str]:
    a = _architecture(test)
    return [
        "",
        f"Why it may differ from the paper: (1) scale: SmolLM2-135M ({a['num_hidden_layers']} layers, d = "
        f"{a['hidden_size']}) instead of LLaMA-7B, so each replaced FFN is a larger share of a much smaller model; "
        "(2) budget: the paper's protocol, but a few dozen steps on 2 CPU cores instead of 10k, on WikiText-2 instead "
        "of OpenWebText (results/qffn_curve.md repeats the rows at 5x the steps); (3) readout: the paper does not say "
        'how d outputs are read from an n-qubit circuit; ours (y = ||x|| w (2^n p - 1) + b) starts as "FFN '
        'removed"; (4) quantum heads keep their q/k projections, so they add parameters instead of removing them; '
        "(5) speed: our CPU simulator is exact and fused, the paper's QSim timing is not described. Every number here "
        "is as measured.",
    ]


# -- qffn_components -----------------------------------------------------------------------------------------------


def _components(study, result, test: pd.DataFrame) -> list[str]:
    labels = {k: a.label for k, a in study.arms.items()}
    e = result.estimates
    lines = [
        *_protocol(test),
        "",
        "## Parameters and the new blocks' local fit",
        "",
        "Added: the new blocks' parameters (whole-model fine-tuning trains every parameter of every row). Local fit: "
        "after the brief pre-training, the relative error of the new FFNs against the FFNs they replace, and the KL "
        "divergence of the quantum heads' attention from the replaced heads' (before -> after), mean over seeds.",
        "",
        "| row | params (total) | added | removed | local fit after (FFN rel. err / head KL) |",
        "|---|---:|---:|---:|---:|",
    ]
    for arm in study.arms:
        if not (test["arm"] == arm).any():
            continue
        fit = []
        if _mean(test, arm, "distill_rel_err_after") == _mean(test, arm, "distill_rel_err_after"):
            fit.append(f"{_mean(test, arm, 'distill_rel_err_after'):.3f}")
        if _mean(test, arm, "head_kl_after") == _mean(test, arm, "head_kl_after"):
            fit.append(f"{_mean(test, arm, 'head_kl_before'):.3f} -> {_mean(test, arm, 'head_kl_after'):.3f} nats")
        lines.append(
            f"| {labels[arm]} | {_count(test, arm, 'total_params')} | {_count(test, arm, 'added_params')} | "
            f"{_count(test, arm, 'removed_params')} | {' / '.join(fit)} |"
        )
    pairs = [
        ("qffn_heads", "qffn_ffn", "Heads against FFNs"),
        ("qffn_ffn", "ffn_removed", "Quantum FFNs against the removed FFNs they start from"),
        ("qffn_ffn", "ffn_lowrank", "Quantum FFNs against classical low-rank FFNs of the same count"),
        ("qffn_heads", "qffn_heads_random", "The quantum heads' start (distilled against random angles)"),
    ]
    said = [(what, _said(e, a, b, labels)) for a, b, what in pairs]
    lines += ["", "Beyond the reference:", ""] + [f"- {what}: {s}." for what, s in said if s]
    lines += _cause(e, labels)
    lines += _curve_gap(test, "the tables' budget")
    lines += ["", "Longer budget and the plot: results/qffn_curve.md."]
    return lines


def _cause(e: est.Estimates | None, labels: dict) -> list[str]:
    """Which component carries QFFN-half's loss: the rise of its mean NLL per token (log perplexity) over the base
    fine-tuned, and the share of that rise each component alone makes up (they need not add to 1: they interact)."""
    keys = ("base_ft", "qffn_ffn", "qffn_heads", "qffn_both", "ffn_removed")
    if e is None or not all(k in e.arms for k in keys):
        return []
    ref, ffn, heads, both, removed = (math.log(e.arms[k].estimate) for k in keys)
    if both <= ref:
        return ["", "- Cause: QFFN-half is not above the base fine-tuned; there is no loss to attribute."]
    t = e.difference("qffn_heads", "qffn_ffn")
    main = {
        "beats": "the quantum FFNs cause most of the loss",
        "is beaten by": "the quantum heads cause most of the loss",
    }.get(est.verdict(t, True), "neither component's share is resolved against the other's")
    return [
        f"- Cause, from these rows: QFFN-half is {both - ref:.2f} nats per token above the base fine-tuned; quantum "
        f"FFNs alone make up {100 * (ffn - ref) / (both - ref):.0f} % of that rise and quantum heads alone "
        f"{100 * (heads - ref) / (both - ref):.0f} %, so {main}. The quantum FFNs are {abs(removed - ffn):.3f} nats "
        f"per token {'below' if ffn < removed else 'above'} deleting the same FFNs (their readout's start; the "
        "comparison above says whether the seeds resolve it).",
    ]


def _curves(test: pd.DataFrame) -> pd.DataFrame:
    """Every recorded learning curve: arm, seed, step, validation perplexity."""
    rows = [
        {"arm": arm, "seed": int(seed), "step": int(step), "valid_perplexity": ppl}
        for arm, seed, curve in zip(test["arm"], test["seed"], test.get("curve", [None] * len(test)))
        if isinstance(curve, str)
        for step, ppl in json.loads(curve).items()
    ]
    return pd.DataFrame(rows, columns=["arm", "seed", "step", "valid_perplexity"])


def _geo(curves: pd.DataFrame) -> pd.Series:
    """Validation perplexity by (arm, step): geometric mean over seeds."""
    return curves.groupby(["arm", "step"])["valid_perplexity"].apply(lambda v: float(np.exp(np.log(v).mean())))


def _gap(g: pd.Series, qffn: str, base: str) -> pd.Series:
    arms = set(g.index.get_level_values(0))
    return (g[qffn] - g[base]).dropna() if {qffn, base} <= arms else pd.Series(dtype=float)


def _closing(gap: pd.Series) -> str:
    last = gap.to_numpy()
    if len(last) >= 3 and last[-1] < last[-2] < last[-3]:
        return (
            f"still closing (smaller at each of the last three points; by {last[-2] - last[-1]:,.1f} over the last "
            f"interval against {last[-3] - last[-2]:,.1f} over the one before)"
        )
    return "not closing steadily"


def _curve_gap(test: pd.DataFrame, budget: str, qffn: str = "qffn_both", base: str = "base_ft") -> list[str]:
    gap = _gap(_geo(_curves(test)), qffn, base)
    if gap.empty:
        return []
    return [
        "",
        f"- Learning curve at {budget} (validation perplexity on the held-out slice, geometric mean over seeds): "
        "QFFN-half minus the base fine-tuned, by step: "
        + ", ".join(f"{int(s)}: {v:,.1f}" for s, v in gap.items())
        + f". The paper reports QFFN within 0.2-0.3 perplexity of its base after {PAPER_STEPS:,} steps; here the gap "
        f"ends at {gap.iloc[-1]:,.1f} and is {_closing(gap)}.",
    ]


# -- qffn_curve ----------------------------------------------------------------------------------------------------


def _curve(study, result, test: pd.DataFrame) -> list[str]:
    labels = {k: a.label for k, a in study.arms.items()}
    budgets = [v for v in study.axis.values if result.groups.get(v, (None, None))[1] is not None]
    lines = ["", "## Learning curves", "", f"![learning curves]({Path(result.table).stem}.png)"]
    for steps in budgets:
        mine = test[test["arm"].isin([f"{a}_steps{steps}" for a in CURVE_ARMS])]
        lines += _curve_gap(mine, f"{steps} steps", f"qffn_both_steps{steps}", f"base_ft_steps{steps}")
    if len(budgets) < 2:
        _plot_curve(study, test, Path(result.table).with_suffix(".png"))
        return lines
    short, long = budgets[0], budgets[-1]
    lines += ["", f"## {long} steps against {short}, the same row and seed (paired)", ""]
    seeds = sorted(set(test.loc[test["arm"] == f"base_ft_steps{long}", "seed"].astype(int)))
    for arm in CURVE_ARMS:
        a, b = f"{arm}_steps{long}", f"{arm}_steps{short}"
        e = _paired(result.units, test, a, b, seeds)
        if e is not None:
            said = est.sentence(e.versus[a], f"{short} steps", True, "perplexity", e.seeds)
            lines.append(f"- {labels[a].rsplit(',', 1)[0]}: {long} steps {said}.")
    e = result.groups[long][1]
    for other in ("ffn_lowrank", "ffn_pruned"):
        said = _said(e, f"qffn_both_steps{long}", f"{other}_steps{long}", labels)
        if said:
            lines.append(f"- At {long} steps, {said}.")
    lines += _schedule(test, short, long)
    _plot_curve(study, test, Path(result.table).with_suffix(".png"))
    return lines


def _paired(units: pd.DataFrame | None, test: pd.DataFrame, arm: str, other: str, seeds: list[int]):
    """The estimator on two arms' windows at the same seeds (perplexity; ``other`` the reference), None where either
    lacks a seed."""
    if units is None or not seeds:
        return None
    runs = set(test["run_id"])
    mine = units[units["run_id"].isin(runs) & units["seed"].isin(seeds)]
    (a, tokens), (b, other_tokens) = unit_matrix(mine, arm), unit_matrix(mine, other)
    if a.shape[0] != len(seeds) or a.shape != b.shape or not np.array_equal(tokens, other_tokens):
        return None
    return est.estimate({arm: a, other: b}, tokens.to_numpy(), "perplexity", other)


def _schedule(test: pd.DataFrame, short: int, long: int) -> list[str]:
    """QFFN-half and the base at the same step in both runs: what the learning-rate schedule does at equal steps."""
    g = _geo(_curves(test))
    steps = [s for s in g.get(f"qffn_both_steps{long}", pd.Series(dtype=float)).index if 0 < s < short]
    if not steps or (f"qffn_both_steps{short}", steps[-1]) not in g.index:
        return []
    step = steps[-1]
    lr = lambda total: _lr_share(test, f"qffn_both_steps{total}", step)  # noqa: E731
    return [
        "",
        f"- The schedule at equal steps (step {step}): QFFN-half's validation perplexity is "
        f"{g[(f'qffn_both_steps{long}', step)]:,.1f} in the {long}-step run (learning rate at "
        f"{100 * lr(long):.0f} % of its peak) against {g[(f'qffn_both_steps{short}', step)]:,.1f} in the "
        f"{short}-step run ({100 * lr(short):.0f} %); the base fine-tuned: {g[(f'base_ft_steps{long}', step)]:,.1f} "
        f"against {g[(f'base_ft_steps{short}', step)]:,.1f}. One held-out slice, no interval.",
    ]


def _lr_share(test: pd.DataFrame, arm: str, step: int) -> float:
    """The learning rate's share of its peak after ``step`` optimizer steps of ``arm``'s run, from the schedule its
    recorded config names (``train.schedule``, ``warmup_steps``, ``max_steps``), as transformers' scheduler gives it."""
    import torch
    from transformers import get_scheduler

    train = json.loads(test.loc[test["arm"] == arm, "config"].iloc[0])["train"]
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    schedule = get_scheduler(
        train["schedule"],
        optimizer,
        num_warmup_steps=int(train["warmup_steps"]),
        num_training_steps=int(train["max_steps"]),
    )
    for _ in range(step):
        optimizer.step()
        schedule.step()
    return float(schedule.get_last_lr()[0])


def _plot_curve(study, test: pd.DataFrame, path: Path) -> None:
    """Validation perplexity against steps, one panel per budget, each arm's geometric mean over seeds and its range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = _curves(test)
    if curves.empty:
        return
    budgets = [v for v in study.axis.values if curves["arm"].str.endswith(f"_steps{v}").any()]
    fig, axes = plt.subplots(1, len(budgets), figsize=(6 * len(budgets), 3.8), squeeze=False)
    for ax, steps in zip(axes[0], budgets, strict=True):
        for arm in CURVE_ARMS:
            m = curves[curves["arm"] == f"{arm}_steps{steps}"]
            if m.empty:
                continue
            g = m.groupby("step")["valid_perplexity"]
            mid = _geo(m)[f"{arm}_steps{steps}"]
            n = m["seed"].nunique()
            ax.plot(mid.index, mid.to_numpy(), "o-", label=f"{study.arms[f'{arm}_steps{steps}'].label} ({n} seeds)")
            ax.fill_between(mid.index, g.min().to_numpy(), g.max().to_numpy(), alpha=0.2)
        ax.set_yscale("log")
        ax.set_title(f"{steps} steps", fontsize=9)
        ax.set_xlabel("fine-tuning steps (train=paper)")
        ax.set_ylabel("validation perplexity (held-out WikiText-2 valid)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    save_figure_atomic(fig, path)


# -- table1 and table2 ---------------------------------------------------------------------------------------------


def _table1(study, result, test: pd.DataFrame) -> list[str]:
    labels = {k: a.label for k, a in study.arms.items()}
    speed = _speed(result.table)
    lines = [
        *_protocol(test),
        "",
        "## Beside the paper",
        "",
        "| model | params (total) | word ppl | bits/byte | speed, fused (CPU) | speed, lightning.qubit (CPU) | "
        "speed, lightning.gpu | paper row | paper params | paper ppl | paper CPU | paper GPU |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for arm in study.arms:
        if not (test["arm"] == arm).any():
            continue
        paper = PAPER_T1.get(arm)
        cols = f"{paper[0]} | {paper[1]}B | {paper[2]} | {paper[3]}x | {paper[4]}x" if paper else "| | | |"
        if arm == "gemma":
            sp = ("not measured (a quality reference)",) * 3
        else:
            sp = tuple(
                "1x (reference)" if arm in ("base", "base_ft") else _speed_of(speed, arm, "half", s) for s in SIMULATORS
            )
        lines.append(
            f"| {labels[arm]} | {_count(test, arm, 'total_params')} | {_mean(test, arm, 'word_perplexity'):,.2f} | "
            f"{_mean(test, arm, 'bits_per_byte'):.4f} | {' | '.join(sp)} | {cols} |"
        )
    lines += [
        "",
        "Word perplexity and bits/byte are means over seeds, on the same text for every model (they compare across "
        "tokenizers).",
        *_distilled(test),
    ]
    e = result.estimates
    claims = [_said(e, "qffn_both", other, labels) for other in ("ffn_pruned", "ffn_lowrank")]
    if any(claims):
        lines += [
            "",
            "The paper's claim (QFFN near its base and ahead of a dense model of its size), at our scale and budget:",
            "",
            *[f"- {c}." for c in claims if c],
        ]
    return lines + _speed_note(speed) + _differences(test)


def _distilled(test: pd.DataFrame) -> list[str]:
    """The Distilled row's construction, its figures from the runs: neurons kept per FFN and the parameter match."""
    pruned, qffn = _mean(test, "ffn_pruned", "total_params"), _mean(test, "qffn_both", "total_params")
    if not (pruned == pruned and qffn == qffn):
        return []
    a = _architecture(test)
    kept = _mean(test, "ffn_pruned", "added_params") / (3 * a["hidden_size"] * a["num_hidden_layers"])
    return [
        "",
        "The Distilled row: the paper's Distilled-4B is a dense model of about QFFN's size; shrinking only the FFNs "
        'QFFN replaces to QFFN-half\'s count would leave no neuron (the "FFNs removed" row of qffn_components.md), '
        f"so every layer's FFN keeps the {kept:,.0f} of {a['intermediate_size']:,} neurons with the largest weight "
        f"norms, {int(pruned):,} parameters against QFFN-half's {int(qffn):,} ({100 * (pruned / qffn - 1):+.3f} %), "
        "then the same distillation and fine-tuning (qadapt/adapters/ffn_pruned.py).",
    ]


def _table2(study, result, test: pd.DataFrame) -> list[str]:
    speed = _speed(result.table)
    e = result.estimates
    lines = [
        *_protocol(test),
        "",
        "## Beside the paper",
        "",
        "| fraction | params (total) | removed | added | speed, fused (CPU) | speed, lightning.qubit (CPU) | "
        "speed, lightning.gpu | paper params | paper ppl | paper CPU | paper GPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    plotted = []
    for fraction in FRACTIONS:
        arm = f"qffn_{fraction}"
        if not (test["arm"] == arm).any():
            continue
        p = PAPER_T2[fraction]
        sp = [_speed_of(speed, "qffn_both", fraction, s) for s in SIMULATORS]
        lines.append(
            f"| {fraction} | {_count(test, arm, 'total_params')} | {_count(test, arm, 'removed_params')} | "
            f"{_count(test, arm, 'added_params')} | {' | '.join(sp)} | {p[0]}B | {p[1]} | {p[2]}x | {p[3]}x |"
        )
        if e is not None and arm in e.arms:
            fused = speed[(speed["simulator"] == "fused") & (speed["method"] == "qffn_both")] if len(speed) else speed
            median = fused[fused["fraction"] == fraction]["speed"].median() if len(fused) else float("nan")
            plotted.append((fraction, e.arms[arm].estimate, p, median))
    lines += _speed_note(speed) + _differences(test)
    if plotted:
        base_ft = e.arms["base_ft"].estimate if e is not None and "base_ft" in e.arms else None
        _plot_table2(plotted, base_ft, Path(result.table).with_suffix(".png"))
        lines += ["", f"![perplexity and speed vs fraction]({Path(result.table).stem}.png)"]
    return lines


def _plot_table2(rows: list[tuple], base_ft: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [FRACTIONS.index(f) for f, *_ in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    ax1.plot(x, [r[1] for r in rows], "o-", label="ours (SmolLM2-135M)")
    if base_ft is not None:
        ax1.axhline(base_ft, color="black", linewidth=0.6, linestyle="--", label="base, same fine-tuning")
    ax1.set_yscale("log")
    ax1b = ax1.twinx()
    ax1b.plot(x, [r[2][1] for r in rows], "^:", color="grey", label="paper (LLaMA-7B scale)")
    ax1.set_ylabel("WikiText-2 test perplexity (ours)")
    ax1b.set_ylabel("paper perplexity", color="grey")
    ax2.plot(x, [r[3] for r in rows], "o-", label="ours: fused simulator (CPU)")
    ax2.plot(x, [r[2][2] for r in rows], "^:", color="grey", label="paper: CPU QSim")
    ax2.plot(x, [r[2][3] for r in rows], "v:", color="darkgrey", label="paper: GPU QSim")
    ax2.set_ylabel("speed relative to base model")
    for ax in (ax1, ax2):
        ax.set_xticks(range(3), FRACTIONS)
        ax.set_xlabel("fraction of quantum sub-layers")
    ax1.legend(fontsize=7, loc="upper left")
    ax1b.legend(fontsize=7, loc="lower right")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    save_figure_atomic(fig, path)
