#!/usr/bin/env python
"""results/compression_recovery.md (+ .csv, .png) and results/question_diff.md: the CUA paper's SmolLM2-135M study.

Compress SmolLM2-135M's seven projections in every layer (truncated SVD, SVD-LLM whitening) at several parameter
ratios; recover with CUA (q = 2 on every compressed projection) and, with the same sites, training and budget,
with peft's LoRA and OFT sized to CUA's parameter count; score base, compressed and recovered models on WikiText-2
perplexity, MMLU (0- and 5-shot) and ARC-Easy / ARC-Challenge; compare answers question by question.

Every cell is one ``qadapt train task=compression_recovery`` run (qadapt/experiments/compression_recovery.py) \
whose row lands in
results/runs.csv; the tables are built from those rows and the runs' per-question files. All cells run in this one
process, so the base model and each compressed model are evaluated once. Finished cells (same config, same run
directory) are reused: an interrupted sweep continues where it stopped.

    python scripts/reproduce_recovery.py select                 # learning rate per method on held-out text
    python scripts/reproduce_recovery.py curve [--steps 20,40,80,160]   # recovery against steps at those rates
    python scripts/reproduce_recovery.py final [--ratios 0.8] [--seeds 0,1,2] [--full]   # the reported table
    python scripts/reproduce_recovery.py status | --render-only      # render what is finished

Phases. Hyperparameters are chosen on the held-out slice of WikiText-2 valid (train.valid_holdout=0.1,
task.split=valid_holdout: disjoint from the training text, never the reported split), at ratio 0.8 (CURVE_RATIO):
``select`` trains CUA and the matched LoRA at every rate of LR_GRID (seed 0, the default 40 steps), extends the grid
past an end where the best rate sits (EDGE_FACTOR, EDGE_STEPS), and keeps the rate with the lowest held-out
perplexity; OFT b = 4 takes CUA's rate (the same map: an implementation cross-check, not a
control). ``curve`` trains both at their chosen rate for each budget (one run per budget, each with its own warm-up
and cosine decay) and finds where recovery flattens (CURVE_FLAT: the next doubling gains fewer points); that
budget, or the largest run when it had not flattened, is the budget of ``final``: every ratio, the compressed model,
CUA and LoRA over ``--seeds``, OFT b = 4 at ratio 0.8 seed 0, scored on WikiText-2 test (perplexity; MMLU and ARC
for seed 0). Recovery gets a two-level bootstrap interval (seeds, then evaluation windows) and LoRA a paired
difference and p-value against CUA on the same draws. Each phase reuses finished cells, so a phase or one ratio at a
time fits a session (make reproduce-recovery-select, make reproduce-recovery-curve, make reproduce-recovery
RATIOS=0.8).

Budget (default): see configs/train/recovery.yaml and configs/task/compression_recovery.yaml (steps x 4 x 128
tokens of distillation; MMLU: 3 test questions per subject zero-shot and 1 five-shot, the paper's two quoted
questions always in; ARC: 100 test questions per set; perplexity on 64 KiB of WikiText-2 test). ``--full`` scores
the whole MMLU and ARC test sets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

from qadapt.memo import Memo
from qadapt.results import load_rows, save_figure_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
MEMO = Memo()  # this process's base, compressed and decomposition results, shared by its cells

PROJECTIONS = "[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]"
# table label -> adapter overrides; LoRA r=1 is the smallest LoRA on these sites (305,280 parameters against CUA's
# 224,640); OFT with 4 x 4 blocks has exactly CUA's count (and the same block-orthogonal Cayley form: see README)
METHODS = {
    "compressed": ["adapter=none"],
    "CUA q=2": ["adapter=cua", "adapter.qubits_per_block=2", "adapter.layers=null", f"adapter.modules={PROJECTIONS}"],
    "LoRA r=1": ["adapter=lora", "adapter.r=1", "adapter.alpha=2", f"adapter.modules={PROJECTIONS}"],
    "OFT b=4": ["adapter=oft", "adapter.block_size=4", f"adapter.modules={PROJECTIONS}"],
}
# adapter learning rates tried per method in phase select (held-out text, ratio 0.8, seed 0)
LR_GRID = (2e-3, 5e-3, 1e-2)
EDGE_FACTOR, EDGE_STEPS = 2.0, 2  # a best rate at an end of the grid: the grid extends past it, doubling or halving
SELECT_METHODS = ("CUA q=2", "LoRA r=1")  # OFT b=4 takes CUA's rate: the same map (see the render's note)
CHECK_RATIO = 0.8  # OFT b=4, the implementation cross-check, runs at this ratio only (seed 0)
HELD_OUT = ["train.valid_holdout=0.1", "task.split=valid_holdout", "task.mc.benchmarks=[]"]
SUITES = ("mmlu_0shot", "mmlu_5shot", "arc_easy", "arc_challenge")
CURVE_METHODS = ("CUA q=2", "LoRA r=1")
CURVE_RATIO = 0.8
CURVE_FLAT = 2.0  # recovery points gained by the last doubling of steps below which the curve counts as flat
PAPER = (
    "Paper (CUA, SmolLM2-135M): 83 % recovery of the compression-induced perplexity degradation with CUA adapters "
    "after CompactifAI tensor-network compression (ratio and absolute perplexities not published). The two quoted "
    "MMLU questions come from the Llama 3.1 8B experiment (base model vs. base + CUA on IBM hardware), not from the "
    "compression study: jovian planets' rings, base 'Saturn', adapted 'all of the above' (right); gene flow, base "
    "'disruption of Hardy-Weinberg equilibrium', adapted 'an increase in genetic homogeneity' (right)."
)
QUOTED = {
    "astronomy": "Which of the jovian planets have rings?",
    "college_biology": "Gene flow between populations results in",
}


def common(args) -> list[str]:
    out = [
        "task=compression_recovery",
        "train=recovery",
        f"runs_dir={args.runs_dir}",
        f"results_dir={args.results_dir}",
    ]
    if args.quick:
        # the last two layers only: the whitened SVDs (float64) of all 210 projections take minutes on 2 cores
        out += ["task.max_bytes=8192", "task.compression.calibration_tokens=2048", "task.compression.layers=[-2,-1]"]
    return out


def quick_mc() -> list[str]:
    """CI check: two MMLU subjects zero-shot (the quoted questions in), two ARC questions per set."""
    return [
        "task.mc.subjects=[astronomy,college_biology]",
        "task.mc.mmlu_shots=[0]",
        "task.mc.mmlu_per_subject=[2]",
        "task.mc.arc_questions=2",
    ]


def quick_adapter(method: str) -> list[str]:
    """CI check: the adapters on the two compressed layers only, short training sequences (the full study: every
    layer, train=recovery's batches)."""
    if method == "compressed":
        return []
    return ["adapter.layers=[-2,-1]", "train.batch_size=2", "train.seq_len=64"]


def run_cell(overrides: list[str], recorded: bool = False) -> dict:
    """One cell, reused when finished; ``recorded``: also from its row in results/runs.csv when its run directory is
    not here (the select and curve phases need only the row; final needs the run's per-window and per-question
    files too, so it asks only for cells whose files are saved in results/)."""
    from qadapt.experiments import run_or_reuse

    return run_or_reuse(overrides, recorded=recorded, memo=MEMO)


def cell(phase: str, ratio: float, method: str, seed: int, lr: float | None, steps: int | None, r: dict) -> dict:
    return {
        "phase": phase,
        "ratio": ratio,
        "method": method,
        "seed": seed,
        "lr": lr,
        "steps": steps,
        "run_dir": r["run_dir"],
        "sweep_command": COMMAND,
    }


def select(args) -> list[dict]:
    """Phase select: every rate of the grid for CUA and LoRA, ratio 0.8, held-out text, seed 0; when a method's best
    rate is at an end of the grid, the grid is extended past that end (x or / EDGE_FACTOR, at most EDGE_STEPS times)
    so the chosen rate is never an edge the grid did not look past (quick: the middle rate, 2 steps)."""
    grid = LR_GRID[1:2] if args.quick else LR_GRID
    steps = 2 if args.quick else None  # None: train=recovery's max_steps
    out = []

    def one(method: str, lr: float) -> dict:
        print(f"select: {method}, lr {lr:g}", flush=True)
        over = [*common(args), *HELD_OUT, *METHODS[method], f"train.lr={lr}", f"task.compression.ratio={CURVE_RATIO}"]
        over += [f"train.max_steps={steps}"] if steps else []
        over += quick_adapter(method) if args.quick else []
        row = run_cell([*over, "seed=0"], recorded=True)
        out.append(cell("select", CURVE_RATIO, method, 0, lr, steps, row))
        return row

    for method in SELECT_METHODS:
        ppl = {lr: one(method, lr)["perplexity"] for lr in grid}
        for _ in range(0 if args.quick else EDGE_STEPS):
            best, rates = min(ppl, key=ppl.get), sorted(ppl)
            if best not in (rates[0], rates[-1]):
                break
            lr = float(f"{best * EDGE_FACTOR if best == rates[-1] else best / EDGE_FACTOR:.3g}")
            print(f"select: {method}'s best rate {best:g} is at the grid's edge: trying {lr:g}", flush=True)
            ppl[lr] = one(method, lr)["perplexity"]
    return out


def chosen_lr(table: pd.DataFrame) -> dict[str, float]:
    """Per method, the rate of the lowest held-out perplexity among the select cells; OFT b=4 takes CUA's."""
    sel = table[table["phase"] == "select"]
    if sel.empty:
        raise SystemExit("no selection cells: run `python scripts/reproduce_recovery.py select` first")
    lrs = {m: float(g.loc[g["perplexity"].idxmin(), "lr"]) for m, g in sel.groupby("method", sort=False)}
    lrs["OFT b=4"] = lrs["CUA q=2"]
    return lrs


def curve(args, lrs: dict[str, float]) -> list[dict]:
    """Phase curve: CUA and LoRA at their chosen rate, one run per budget, ratio 0.8, held-out text, seed 0."""
    from qadapt.log import progress

    out = []
    todo = [(method, steps) for method in CURVE_METHODS for steps in args.steps]
    for method, steps in progress(todo, "recovery curve", unit="cells"):
        print(f"curve: {method}, {steps} steps", flush=True)
        over = [*common(args), *HELD_OUT, *METHODS[method], f"train.lr={lrs[method]}"]
        over += [f"task.compression.ratio={CURVE_RATIO}", f"train.max_steps={steps}", "seed=0"]
        out.append(cell("curve", CURVE_RATIO, method, 0, lrs[method], steps, run_cell(over, recorded=True)))
    return out


def final_budget(table: pd.DataFrame) -> tuple[int, str]:
    """(steps of the final phase, why): where the curve flattens for every curve method, else its largest budget."""
    rows = table[table["phase"] == "curve"]
    if rows.empty:
        raise SystemExit(
            "no learning curve yet: run `python scripts/reproduce_recovery.py curve` (make reproduce-recovery-curve) "
            "first, or pass --final-steps N"
        )
    flat = flattened(rows)
    if all(v is not None for v in flat.values()):
        steps = max(flat.values())
        return steps, f"{steps} steps: where the learning curve flattens for every method (below)"
    steps = int(rows["steps"].max())
    return steps, f"{steps} steps: the largest budget of the learning curve, which had not flattened there (below)"


def final(args, lrs: dict[str, float], steps: int, keep) -> list[dict]:
    """Phase final: per ratio the compressed model, CUA and LoRA over the seeds, OFT b=4 at 0.8 (seed 0); reported
    split; multiple choice for seed 0 only. ``keep(cells)`` runs after each cell (saves the cells and their per-window
    and per-question files in results/), so a cell finished on another machine is reused from its row when its files
    are saved there."""
    from qadapt import runs
    from qadapt.config import compose
    from qadapt.log import progress

    todo = [
        (ratio, method, over, seed)
        for ratio in args.ratios
        for method, over in METHODS.items()
        if method != "OFT b=4" or ratio == CHECK_RATIO
        for seed in ([0] if method in ("compressed", "OFT b=4") else args.seeds)
    ]
    out = []
    for ratio, method, over, seed in progress(todo, "recovery final", unit="cells"):
        print(f"final: ratio {ratio:g}, {method}, seed {seed}", flush=True)
        cfg = [*common(args), *over, f"task.compression.ratio={ratio}", f"seed={seed}"]
        if method != "compressed":
            cfg += [f"train.lr={lrs[method]}", f"train.max_steps={steps}"]
        if args.full:
            cfg.append("task.mc.full=true")
        cfg += [*quick_mc(), *quick_adapter(method)] if args.quick else []
        if seed != 0:
            cfg.append("task.mc.benchmarks=[]")
        windows, questions = saved_run_dirs(Path(args.out_dir))
        run_dir = str(runs.run_dir_for(compose(cfg)))
        recorded = (method == "compressed" or run_dir in windows) and (seed != 0 or run_dir in questions)
        lr = None if method == "compressed" else lrs[method]
        row = run_cell(cfg, recorded)
        out.append(cell("final", ratio, method, seed, lr, None if lr is None else steps, row))
        keep(out)
    return out


def flattened(curve_rows: pd.DataFrame) -> dict[str, int | None]:
    """Per method, the smallest budget whose next budget (the default budgets double) gains less than CURVE_FLAT
    recovery points (None: still gaining at the largest budget run)."""
    out = {}
    for method, g in curve_rows.groupby("method", sort=False):
        g = g.sort_values("steps")
        pairs = zip(g["steps"], g["recovery_pct"], g["recovery_pct"].iloc[1:])
        out[method] = next((int(s) for s, a, b in pairs if b - a < CURVE_FLAT), None)
    return out


def curve_section(curve_rows: pd.DataFrame) -> list[str]:
    """The learning-curve section of compression_recovery.md."""
    flat = flattened(curve_rows)
    budgets = sorted({int(s) for s in curve_rows["steps"]})
    first = curve_rows.iloc[0]
    lines = [
        "## Learning curve (ratio 0.8, held-out text)",
        "",
        f"Recovery (%) on {first['eval_source']} ({int(first['tokens_scored']):,} tokens, disjoint from the training "
        f"text; base perplexity {first['base_perplexity']:.2f}, compressed {first['compressed_perplexity']:.2f}) "
        "against training steps, one run per budget (seed 0), learning rates as above. Command: "
        f"`{first['sweep_command']}`; commit {', '.join(sorted(set(curve_rows['git_commit'].astype(str))))}.",
        "",
        "| method | " + " | ".join(f"{s} steps" for s in budgets) + " |",
        "|---|" + "---:|" * len(budgets),
    ]
    for method, g in curve_rows.groupby("method", sort=False):
        by = dict(zip(g["steps"].astype(int), g["recovery_pct"]))
        lines.append(f"| {method} | " + " | ".join(f"{by[s]:.1f}" if s in by else "–" for s in budgets) + " |")
    lines.append("")
    for method, at in flat.items():
        lines.append(
            f"- {method}: flat from {at} steps (the next budget gains < {CURVE_FLAT:g} points)."
            if at
            else f"- {method}: still gaining at {max(budgets)} steps (every next budget gained >= {CURVE_FLAT:g} "
            "points): the curve had not flattened at the largest budget run here."
        )
    lines += ["", "![recovery vs training steps](recovery_curve.png)", ""]
    return lines


def plot_curve(curve_rows: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for method, g in curve_rows.groupby("method", sort=False):
        g = g.sort_values("steps")
        ax.plot(g["steps"], g["recovery_pct"], marker="o", label=method)
    ax.axhline(83, color="grey", linestyle=":", linewidth=1, label="paper: 83 %")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training steps (log scale)")
    ax.set_ylabel("recovery on held-out text (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, path)


def collect(cells_frame: pd.DataFrame, results_dir: str) -> pd.DataFrame:
    store = load_rows(results_dir)
    store = store[store["run_dir"].isin(set(cells_frame["run_dir"]))].drop_duplicates("run_dir", keep="last")
    # the cell's own fields (phase, ratio, method, seed, ...) win over the row's columns of the same name
    store = store.drop(columns=[c for c in cells_frame.columns if c != "run_dir" and c in store.columns])
    return cells_frame.merge(store, on="run_dir")


def _fmt_acc(row, prefix: str, suite: str) -> str:
    acc, norm = row.get(f"{prefix}{suite}_acc"), row.get(f"{prefix}{suite}_acc_norm")
    return "n/a" if pd.isna(acc) else f"{100 * acc:.1f} / {100 * norm:.1f}"


WINDOWS = "recovery_windows.csv"  # the final cells' per-window NLL (run directories' windows.csv), kept in results/


def final_windows(final_rows: pd.DataFrame, out_dir: Path) -> pd.DataFrame | None:
    """The final cells' per-window scores (run_dir, ratio, method, seed, window, tokens, nll, base_nll,
    compressed_nll), each cell's from its run directory when it is here, else from ``out_dir/recovery_windows.csv``
    (a cell finished on another machine); the merged frame is saved back there. None when no cell has them yet."""
    from qadapt.experiments.wikitext_ppl import WINDOWS_FILE

    saved_path = out_dir / WINDOWS
    saved = pd.read_csv(saved_path) if saved_path.exists() else pd.DataFrame()
    saved = saved if "run_dir" in saved.columns else pd.DataFrame(columns=["run_dir"])  # an older file: no keys
    frames = []
    for _, r in final_rows[final_rows["method"] != "compressed"].iterrows():
        path = Path(r["run_dir"]) / WINDOWS_FILE
        part = pd.read_csv(path) if path.exists() else saved[saved["run_dir"] == r["run_dir"]]
        if len(part):
            frames.append(part.assign(run_dir=r["run_dir"], ratio=r["ratio"], method=r["method"], seed=int(r["seed"])))
    if not frames:
        return None
    frame = pd.concat(frames, ignore_index=True)
    write_text_atomic(saved_path, frame.to_csv(index=False))
    return frame


def saved_run_dirs(out_dir: Path) -> tuple[set[str], set[str]]:
    """(run directories whose per-window scores are in recovery_windows.csv, those whose per-question answers are in
    recovery_questions.csv): the final cells a later session may reuse from their rows alone."""
    found = []
    for name in (WINDOWS, QUESTIONS):
        path = out_dir / name
        frame = pd.read_csv(path, usecols=lambda c: c == "run_dir") if path.exists() else pd.DataFrame()
        found.append(set(frame["run_dir"].astype(str)) if "run_dir" in frame.columns else set())
    return found[0], found[1]


def recovery_statistics(windows: pd.DataFrame, ratio: float) -> dict[str, dict]:
    """Per trained method at ``ratio`` (over the seeds it has): the observed mean recovery (%) with its two-level
    bootstrap interval (seeds, then windows), and for LoRA the paired difference LoRA - CUA with its p-value (the
    same draws for both). Methods with one seed get the window-level interval alone."""
    import numpy as np

    from qadapt.results import stats

    w = windows[windows["ratio"] == ratio]
    ref = w[(w["method"] == "CUA q=2")]
    if ref.empty:
        return {}
    first = ref[ref["seed"] == ref["seed"].min()].sort_values("window")
    tokens, n = first["tokens"].to_numpy(), len(first)
    out, samples = {}, {}
    for method, g in w.groupby("method", sort=False):
        nll = g.pivot(index="seed", columns="window", values="nll").to_numpy()
        seed_counts, window_counts = stats.two_level_resamples(len(nll), n, stats.RESAMPLES, seed=0)
        base = stats.window_perplexities(first["base_nll"].to_numpy()[None], tokens, window_counts)[0]
        comp = stats.window_perplexities(first["compressed_nll"].to_numpy()[None], tokens, window_counts)[0]
        rec = 100 * (comp - stats.window_perplexities(nll, tokens, window_counts)) / (comp - base)
        samples[method] = stats.seed_mean(rec, seed_counts)
        ppl = np.exp(nll.sum(1) / tokens.sum())
        b, c = (float(np.exp(first[k].sum() / tokens.sum())) for k in ("base_nll", "compressed_nll"))
        observed = float(np.mean(100 * (c - ppl) / (c - b)))
        out[method] = {
            "seeds": len(nll),
            "windows": n,
            "interval": stats.percentile(samples[method], observed, method="two-level bootstrap"),
        }
    for method in out:  # the classical control against CUA (OFT b=4 is CUA by another implementation: no test)
        if method == "LoRA r=1" and out[method]["seeds"] == out["CUA q=2"]["seeds"] and n > 1:
            diff = samples[method] - samples["CUA q=2"]
            observed = out[method]["interval"].estimate - out["CUA q=2"]["interval"].estimate
            d = stats.percentile(diff, observed, method="paired two-level bootstrap")
            out[method]["vs_cua"] = stats.PairedTest(d, stats.bootstrap_p(diff), "paired two-level bootstrap")
    return out


def _p(p: float) -> str:
    from qadapt.results import stats

    return f"< {2 / stats.RESAMPLES:g}" if p <= 2 / stats.RESAMPLES else f"{p:.3g}"


def main_table(final_rows: pd.DataFrame, windows: pd.DataFrame | None) -> list[str]:
    """One row per (ratio, method): mean perplexity over its seeds, recovery with its interval, LoRA's paired
    difference from CUA, multiple choice of seed 0."""
    lines = [
        "| ratio | model | parameters | trainable | lr | seeds | perplexity | vs base | recovery [95 % CI] | "
        "LoRA - CUA (p) | MMLU 0-shot | MMLU 5-shot | ARC-E | ARC-C |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    first = final_rows.iloc[0]
    lines.append(
        f"| 1.0 | base SmolLM2-135M | {int(first['base_total_params']):,} | 0 | | | {first['base_perplexity']:.2f} | "
        "| | | " + " | ".join(_fmt_acc(first, "base_", s) for s in SUITES) + " |"
    )
    for ratio in sorted(final_rows["ratio"].unique(), reverse=True):
        at = final_rows[final_rows["ratio"] == ratio]
        st = recovery_statistics(windows, ratio) if windows is not None else {}
        for method in METHODS:
            g = at[at["method"] == method].sort_values("seed")
            if g.empty:
                continue
            r = g.iloc[0]
            if method == "compressed":
                ppl, prefix, params, rec, vs = (
                    r["compressed_perplexity"],
                    "compressed_",
                    r["compressed_total_params"],
                    "",
                    "",
                )
                label, lr = f"compressed ({r['compression_method']})", ""
            else:
                ppl, prefix, params, label, lr = (
                    g["perplexity"].mean(),
                    "",
                    r["total_params"],
                    f"+ {method}",
                    f"{r['lr']:g}",
                )
                if method in st and st[method]["windows"] > 1:
                    ci = st[method]["interval"]
                    rec = f"{ci.estimate:.1f} % [{ci.low:.1f}, {ci.high:.1f}]"
                else:
                    rec = f"{g['recovery_pct'].mean():.1f} %"
                test = st.get(method, {}).get("vs_cua")
                vs = (
                    f"{test.difference.estimate:+.1f} [{test.difference.low:+.1f}, {test.difference.high:+.1f}] "
                    f"(p {_p(test.p)})"
                    if test
                    else ""
                )
            lines.append(
                f"| {ratio:g} | {label} | {int(params):,} | {int(r['trainable_params']):,} | {lr} | {len(g)} | "
                f"{ppl:.2f} | {100 * (ppl / r['base_perplexity'] - 1):+.1f} % | {rec} | {vs} | "
                + " | ".join(_fmt_acc(r, prefix, s) for s in SUITES)
                + " |"
            )
    return lines


def selection_table(select_rows: pd.DataFrame, lrs: dict[str, float]) -> list[str]:
    grid = sorted(select_rows["lr"].unique())
    lines = [
        "| method | " + " | ".join(f"lr {v:g}" for v in grid) + " | chosen |",
        "|---|" + "---:|" * len(grid) + "---|",
    ]
    for method, g in select_rows.groupby("method", sort=False):
        by = dict(zip(g["lr"], g["perplexity"]))
        rec = dict(zip(g["lr"], g["recovery_pct"]))
        cells = [f"{by[v]:.2f} ({rec[v]:.1f} %)" if v in by else "–" for v in grid]
        edge = " (edge of the grid)" if lrs[method] in (min(by), max(by)) else ""
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {lrs[method]:g}{edge} |")
    return lines


QUESTIONS = "recovery_questions.csv"  # every model's per-question answers, kept in results/ beside the tables


def predictions(table: pd.DataFrame, out_dir: Path) -> dict[str, pd.DataFrame]:
    """Model label -> its per-question frame (base once, compressed and each recovery per ratio): each cell's from its
    run directory when it is here, else from ``out_dir/recovery_questions.csv`` (a cell finished on another machine);
    the merged answers are saved back there, so question_diff.md re-renders from results/ alone."""
    path = out_dir / QUESTIONS
    saved = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["model", "run_dir"])
    if "run_dir" not in saved.columns:  # an older file without keys: usable only when no run directory is here
        saved = saved.assign(run_dir=None)

    def from_saved(label: str, run_dir: str | None) -> pd.DataFrame:
        part = saved[saved["model"] == label]
        part = part if run_dir is None else part[part["run_dir"] == run_dir]
        return part.drop(columns=["model", "run_dir"]).reset_index(drop=True)

    out, sources = {}, {}
    for _, r in table.iterrows():
        run = Path(r["run_dir"])
        label = f"compressed {r['ratio']:g}" if r["method"] == "compressed" else f"{r['method']} {r['ratio']:g}"
        variant = "compressed" if r["method"] == "compressed" else "adapted"
        if (run / f"mc_{variant}.csv").exists():
            out[label], sources[label] = pd.read_csv(run / f"mc_{variant}.csv"), r["run_dir"]
            if "base" not in out:
                out["base"], sources["base"] = pd.read_csv(run / "mc_base.csv"), r["run_dir"]
        elif len(from_saved(label, r["run_dir"])):
            out[label], sources[label] = from_saved(label, r["run_dir"]), r["run_dir"]
    if "base" not in out and len(from_saved("base", None)):
        out["base"] = from_saved("base", None)
        sources["base"] = saved.loc[saved["model"] == "base", "run_dir"].iloc[0]
    out = {"base": out.pop("base"), **out} if "base" in out else out
    frames = [frame.assign(model=label, run_dir=sources[label]) for label, frame in out.items()]
    if frames:
        write_text_atomic(path, pd.concat(frames, ignore_index=True).to_csv(index=False))
    return out


# suites whose questions are distinct from each other's: MMLU 5-shot asks MMLU 0-shot's questions again, so it is
# tested on its own, never pooled with them (McNemar's pairs must be independent)
DISTINCT_SUITES = ("mmlu_0shot", "arc_easy", "arc_challenge")


def compare(a: pd.DataFrame, b: pd.DataFrame, suites: tuple[str, ...] | None = None) -> dict:
    """Questions right in a and wrong in b and the reverse, with McNemar's exact test on the discordant pairs, over
    ``suites`` (default: every suite, for the listing of questions only; a test pools only distinct questions)."""
    from qadapt.results.stats import mcnemar

    m = a.merge(b, on=["suite", "id"], suffixes=("_a", "_b"))
    if suites is not None:
        m = m[m["suite"].isin(suites)]
    test = mcnemar(m["correct_a"], m["correct_b"])
    return {"n": test.n, "a_only": test.a_only, "b_only": test.b_only, "net": test.net, "p": test.p, "merged": m}


def question_diff(table: pd.DataFrame, preds: dict[str, pd.DataFrame], commit: str, command: str) -> str:
    lines = [
        "# Question by question: base, compressed, recovered and classical controls (SmolLM2-135M)",
        "",
        f"Command: `{command}` (commit {commit}). Per-question answers: `mc_base.csv`, `mc_compressed.csv`, "
        "`mc_adapted.csv` in each run directory, all of them kept in `results/recovery_questions.csv` (model, run "
        "directory). Each test pairs independent questions: MMLU 0-shot, ARC-E and ARC-C together (distinct "
        "questions), MMLU 5-shot on its own (it asks MMLU 0-shot's questions again, with five examples in front); "
        "'A right, B wrong' = A picks the right answer (plain log-likelihood) and B does not. p: McNemar's exact test "
        "on the discordant questions (two-sided binomial, 1/2); a net effect with p > 0.05 is noise.",
        "",
        PAPER,
        "",
        "## Counts",
        "",
        "| A | B | suites | questions | A right, B wrong | B right, A wrong | net for B | p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    pairs = []
    for ratio in sorted(table["ratio"].unique(), reverse=True):
        comp = f"compressed {ratio:g}"
        pairs.append(("base", comp))
        for method in [m for m in METHODS if m != "compressed"]:
            pairs.append((comp, f"{method} {ratio:g}"))
        for method in [m for m in METHODS if m not in ("compressed", "CUA q=2")]:
            pairs.append((f"{method} {ratio:g}", f"CUA q=2 {ratio:g}"))
    present = sorted(set(preds["base"]["suite"])) if "base" in preds else []
    groups = [tuple(x for x in DISTINCT_SUITES if x in present)] + [(x,) for x in present if x not in DISTINCT_SUITES]
    for a, b in pairs:
        if a in preds and b in preds:
            for suites in groups:
                c = compare(preds[a], preds[b], suites)
                lines.append(
                    f"| {a} | {b} | {' + '.join(suites)} | {c['n']} | {c['a_only']} | {c['b_only']} | {c['net']:+d} | "
                    f"{c['p']:.3f} |"
                )
    lines += [
        "",
        "## The paper's two questions",
        "",
        "Each model's choice (plain log-likelihood) and its probability among the four answers; ✓ = right.",
        "",
    ]
    base = preds["base"]
    for subject, start in QUOTED.items():
        rows = base[(base["subject"] == subject) & (base["suite"] == "mmlu_0shot")]
        qid = _quoted_id(rows, subject, start, table)
        if qid is None:
            continue
        q = _question(qid)
        lines += [
            f"**{subject}: {q.question}** (right: {'ABCD'[q.answer]}. {q.choices[q.answer]})",
            "",
            "| model | suite | choice | probability | p(right answer) |",
            "|---|---|---|---|---|",
        ]
        for label, frame in preds.items():
            for _, r in frame[frame["id"] == qid].iterrows():
                mark = "✓" if r["correct"] else "✗"
                lines.append(
                    f"| {label} | {r['suite']} | {mark} {'ABCD'[int(r['choice'])]}. {q.choices[int(r['choice'])]} | "
                    f"{r['prob_choice']:.3f} | {r['prob_answer']:.3f} |"
                )
        lines.append("")
    lines += ["## Questions recovered by CUA (wrong when compressed, right after CUA)", ""]
    for ratio in sorted(table["ratio"].unique(), reverse=True):
        a, b = f"compressed {ratio:g}", f"CUA q=2 {ratio:g}"
        if a not in preds or b not in preds:
            continue
        m = compare(preds[a], preds[b])["merged"]
        fixed = m[~m["correct_a"] & m["correct_b"]]
        lost = m[m["correct_a"] & ~m["correct_b"]]
        lines.append(f"Ratio {ratio:g}: {len(fixed)} fixed, {len(lost)} broken. First ten fixed:")
        lines.append("")
        for _, r in fixed.head(10).iterrows():
            q = _question(r["id"])
            lines.append(
                f"- [{r['suite']}] {q.question[:140]} — compressed: {q.choices[int(r['choice_a'])][:60]}; "
                f"CUA: {q.choices[int(r['choice_b'])][:60]} ✓"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


_QUESTIONS: dict[str, object] = {}


def _question(qid: str):
    """The Question behind an id (MMLU ids are ``subject/split/row``, ARC ids the official ones)."""
    if not _QUESTIONS:
        from qadapt.data import multiple_choice as mc

        data = Path(os.environ.get("QADAPT_DATA_DIR") or ROOT / "data")  # as configs/config.yaml's data_dir
        for q in mc.load_mmlu(data, "test") + mc.load_arc(data, "arc_easy") + mc.load_arc(data, "arc_challenge"):
            _QUESTIONS[q.id] = q
    return _QUESTIONS[qid]


def _quoted_id(rows: pd.DataFrame, subject: str, start: str, table) -> str | None:
    for qid in rows["id"]:
        if _question(qid).question.startswith(start):
            return qid
    return None


STYLE = {
    "compressed": ("tab:gray", "o", "-"),
    "CUA q=2": ("tab:blue", "o", "-"),
    "LoRA r=1": ("tab:orange", "s", "-"),
    "OFT b=4": ("tab:green", "x", "--"),
}  # OFT dashed with crosses: where it coincides with CUA both stay visible


def plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    base = float(table["base_perplexity"].iloc[0])
    columns = ["perplexity", "compressed_perplexity", "recovery_pct"]
    means = table.groupby(["method", "ratio"], as_index=False, sort=False)[columns].mean()  # over the seeds
    for label in METHODS:
        part = means[means["method"] == label].sort_values("ratio")
        col = "compressed_perplexity" if label == "compressed" else "perplexity"
        color, marker, line = STYLE[label]
        ax.plot(part["ratio"], part[col], linestyle=line, marker=marker, color=color, label=label)
        if label != "compressed":
            bx.plot(part["ratio"], part["recovery_pct"], linestyle=line, marker=marker, color=color, label=label)
    ax.axhline(base, color="k", linestyle=":", linewidth=1, label="base")
    ax.set_yscale("log")
    ax.set_xlabel("parameters kept in the projections (ratio)")
    ax.set_ylabel("WikiText-2 perplexity (log)")
    ax.legend(fontsize=8)
    bx.axhline(83, color="tab:red", linestyle=":", linewidth=1, label="paper: 83 %")
    bx.set_xlabel("parameters kept in the projections (ratio)")
    bx.set_ylabel("recovery of the perplexity gap (%)")
    bx.legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, path)


def _cua_equals_oft(table: pd.DataFrame) -> bool:
    """CUA q=2 and OFT b=4 reached the same perplexity at every ratio, to 1e-5 relative (float rounding apart)."""
    cua = table[table["method"] == "CUA q=2"].set_index("ratio")["perplexity"]
    oft = table[table["method"] == "OFT b=4"].set_index("ratio")["perplexity"]
    both = cua.index.intersection(oft.index)
    same_answers = all(
        (
            table[table["method"] == "CUA q=2"].set_index("ratio").loc[both, f"{s}_acc"]
            == table[table["method"] == "OFT b=4"].set_index("ratio").loc[both, f"{s}_acc"]
        ).all()
        for s in SUITES
        if f"{s}_acc" in table
    )
    return len(both) > 0 and same_answers and all(abs(cua[r] / oft[r] - 1) < 1e-5 for r in both)


def oft_check(final_rows: pd.DataFrame) -> str:
    """What the seed-0 rows say about OFT b=4 against CUA q=2: the same row to 1e-5 (a check of both implementations),
    or by how much they differ, against CUA's spread over its seeds."""
    if _cua_equals_oft(final_rows[final_rows["seed"] == 0]):
        return (
            "Their rows here agree (perplexity to 1e-5 relative, the same accuracy on every suite): OFT b=4 is CUA q=2 "
            "computed by another implementation (a check of both), not a second control; the classical control of "
            "another form is LoRA r=1."
        )
    parts = []
    for ratio, rows in final_rows.groupby("ratio"):
        cua = rows[rows["method"] == "CUA q=2"]
        oft = rows[(rows["method"] == "OFT b=4") & (rows["seed"] == 0)]
        cua0 = cua[cua["seed"] == 0]
        if oft.empty or cua0.empty:
            continue
        a, b = float(cua0["perplexity"].iloc[0]), float(oft["perplexity"].iloc[0])
        lo, hi = cua["perplexity"].min(), cua["perplexity"].max()
        inside = "inside" if lo <= b <= hi else "outside"
        parts.append(
            f"at {ratio:g}, seed 0, CUA {a:.2f} and OFT {b:.2f} ({(b / a - 1) * 100:+.2f} %), {inside} CUA's range "
            f"over its {len(cua)} seeds ({lo:.2f}-{hi:.2f})"
        )
    if not parts:
        return ""
    return (
        "Their rows here are not equal: " + "; ".join(parts) + ". The same map, computed and differentiated by "
        "different code, starts on the same path and drifts from it over the steps (where the drift starts is not "
        "isolated here); OFT b=4 is a second implementation of CUA, not a control; the classical control of another "
        "form is LoRA r=1."
    )


def render(table: pd.DataFrame, out: Path) -> None:
    """compression_recovery.md (+ .csv, .png), recovery_curve.csv (+ .png) and question_diff.md from the cells
    that are finished (``table``: the cells joined with their result rows)."""
    select_rows = table[table["phase"] == "select"]
    curve_rows = table[table["phase"] == "curve"]
    final_rows = table[table["phase"] == "final"]
    lines = ["# Compression recovery on SmolLM2-135M (CUA paper, SmolLM2 study)", ""]
    commits = sorted(set(table["git_commit"].astype(str)))
    lines += [
        f"Commands: {', '.join(f'`{c}`' for c in dict.fromkeys(table['sweep_command']))}; commit {', '.join(commits)}; "
        "rows in results/runs.csv (task=compression_recovery).",
        "",
    ]
    lrs = chosen_lr(table) if not select_rows.empty else {}
    if not select_rows.empty:
        first = select_rows.iloc[0]
        lines += [
            "## Learning rate, chosen on held-out text",
            "",
            f"Ratio {CURVE_RATIO:g}, seed 0, {int(first['train_steps'])} steps; held-out perplexity (recovery) on "
            f"{first['eval_source']} ({int(first['tokens_scored']):,} tokens, disjoint from the training text; never "
            "the reported split). The lowest perplexity chooses; a best rate at an end of the grid extends the grid "
            "past that end (doubling or halving, at most twice; a rate still at an edge after that is marked). "
            "OFT b = 4 takes CUA's rate (the same map).",
            "",
            *selection_table(select_rows, lrs),
            "",
        ]
    if not final_rows.empty:
        cfg = json.loads(final_rows["config"].iloc[-1])
        t, k = cfg["train"], cfg["task"]
        mc = k["mc"]
        windows = final_windows(final_rows, out)
        seeds = sorted(final_rows[final_rows["method"] == "CUA q=2"]["seed"].unique())
        source = final_rows["train_source"].dropna()
        shots = ", ".join(f"{n} per subject {s}-shot" for s, n in zip(mc["mmlu_shots"], mc["mmlu_per_subject"]))
        budget = (
            f"Recovery training: {t['max_steps']} steps × {t['batch_size']} × {t['seq_len']} tokens of "
            f"{source.iloc[0] if len(source) else 'WikiText-2'}"
            f", loss {t['kl_weight']:g} KL(teacher ‖ student) + {t['ce_weight']:g} CE, AdamW, warm-up "
            f"{t['warmup_steps']}, cosine decay, the chosen rate per method; seeds {', '.join(map(str, seeds))} "
            f"(OFT b = 4 at {CHECK_RATIO:g}, seed 0). Compression: {k['compression']['method']} on "
            f"{', '.join(k['compression']['modules'])} of every layer, {k['compression']['calibration_tokens']:,} "
            f"calibration tokens. Perplexity: {k['max_bytes'] or 'all'} bytes of WikiText-2 test, windows of "
            f"{k['max_length']}. MMLU (seed 0): "
            + (
                "all test questions"
                if mc["full"]
                else f"{shots} "
                f"(seeded sample, the quoted questions always in); ARC: {mc['arc_questions']} test questions per set"
            )
            + f"; {mc['format']} scoring (answer text log-likelihood), accuracy / length-normalised accuracy in %."
        )
        n_windows = int(windows["window"].nunique()) if windows is not None else 0
        lines += [
            "## Recovery on the reported split",
            "",
            budget,
            "",
            *main_table(final_rows, windows),
            "",
            "recovery = (ppl_compressed − ppl_recovered) / (ppl_compressed − ppl_base), mean over seeds; 95 % "
            "interval: "
            f"two-level percentile bootstrap (the seeds, then the {n_windows} evaluation windows; the same draws for "
            "CUA and LoRA, so LoRA − CUA is paired, with its two-sided bootstrap p). Few windows make the interval a "
            "little narrow. Parameters: the whole model after compression, adapters included; trainable: the adapter.",
            "",
            *verdicts(final_rows, windows),
            PAPER,
            "",
            "CUA with 2 qubits per block on a projection's input and peft's OFT with 4 x 4 blocks are the same "
            "block-orthogonal Cayley map (Q = (I - A)(I + A)^-1 against R = (I + S)(I - S)^-1: S = -A), both start at "
            "the identity and train with the same learning rate (AdamW is blind to a sign flip of a coordinate). "
            + oft_check(final_rows),
            "",
            "Why it may differ from the paper: CompactifAI is proprietary and its ratio unpublished, so the "
            "compression here (whitened truncated SVD) and its damage differ; the training budget is CPU minutes.",
            "",
            "![perplexity and recovery vs ratio](compression_recovery.png)",
            "",
        ]
        keep = [
            "ratio",
            "method",
            "seed",
            "lr",
            "adapter_desc",
            "compression_method",
            "compression_achieved",
            "compressed_total_params",
            "total_params",
            "trainable_params",
            "train_steps",
            "base_perplexity",
            "compressed_perplexity",
            "perplexity",
            "recovery_pct",
            *[f"{p}{s}_{m}" for p in ("base_", "compressed_", "") for s in SUITES for m in ("acc", "acc_norm", "n")],
            "train_seconds",
            "wall_seconds",
            "git_commit",
            "run_dir",
        ]
        final_rows[[c for c in keep if c in final_rows.columns]].to_csv(out / "compression_recovery.csv", index=False)
        plot(final_rows, out / "compression_recovery.png")
        seed0 = final_rows[final_rows["seed"] == 0]
        write_text_atomic(
            out / "question_diff.md",
            question_diff(seed0, predictions(seed0, out), ", ".join(commits), str(seed0["sweep_command"].iloc[0])),
        )
    else:
        lines += ["The final phase (reported split) has not run yet: `python scripts/reproduce_recovery.py final`.", ""]
    if not curve_rows.empty:
        curve_frame = curve_rows[[c for c in CURVE_COLUMNS if c in curve_rows.columns]]
        write_text_atomic(out / "recovery_curve.csv", curve_frame.to_csv(index=False))
        plot_curve(curve_frame, out / "recovery_curve.png")
        lines += curve_section(curve_frame)
    write_text_atomic(out / "compression_recovery.md", "\n".join(lines) + "\n")


def verdicts(final_rows: pd.DataFrame, windows: pd.DataFrame | None) -> list[str]:
    """What the paired intervals support, per ratio: LoRA against CUA."""
    if windows is None:
        return []
    out = []
    for ratio in sorted(final_rows["ratio"].unique(), reverse=True):
        test = recovery_statistics(windows, ratio).get("LoRA r=1", {}).get("vs_cua")
        if test is None:
            continue
        d = test.difference
        said = (
            f"LoRA r = 1 {'beats' if d.estimate > 0 else 'is beaten by'} CUA q = 2 by {abs(d.estimate):.1f} points "
            f"of recovery (p {_p(test.p)})"
            if d.excludes(0)
            else f"LoRA r = 1 and CUA q = 2 are indistinguishable at this budget (p {_p(test.p)})"
        )
        out.append(f"- Ratio {ratio:g}: {said}.")
    return out + [""] if out else []


CURVE_COLUMNS = [
    "method",
    "steps",
    "lr",
    "recovery_pct",
    "perplexity",
    "base_perplexity",
    "compressed_perplexity",
    "tokens_scored",
    "eval_source",
    "train_seconds",
    "run_id",
    "git_commit",
    "sweep_command",
]
PHASES = ("select", "curve", "final", "all", "status")


def load_cells(path: Path, starting: bool = False) -> list[dict]:
    """The cells of earlier invocations. A file from the earlier, phase-less sweep is refused for rendering and
    dropped when a ``select`` run (``starting``) begins the new sweep, which replaces it."""
    if not path.exists():
        return []
    cells = json.loads(path.read_text())
    if cells and "phase" not in cells[0]:
        if starting:
            print(f"{path} is from the earlier phase-less sweep: the new sweep replaces it", flush=True)
            return []
        raise SystemExit(
            f"{path} is from the earlier sweep (one seed, learning rates from a 10-step check, no phases): rerun "
            "`python scripts/reproduce_recovery.py select` (then curve, final) to replace it"
        )
    return cells


def merge(old: list[dict], new: list[dict]) -> list[dict]:
    """The cells of this run replace earlier cells with the same phase, ratio, method, seed, rate and steps."""
    key = lambda c: (c["phase"], c["ratio"], c["method"], c["seed"], c["lr"], c["steps"])  # noqa: E731
    fresh = {key(c) for c in new}
    return [c for c in old if key(c) not in fresh] + new


COMMAND = "python scripts/reproduce_recovery.py " + " ".join(sys.argv[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", nargs="?", choices=PHASES, default="all")
    parser.add_argument("--ratios", type=lambda s: [float(x) for x in s.split(",")], default=[0.9, 0.8, 0.7])
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    parser.add_argument("--full", action="store_true", help="the whole MMLU and ARC test sets (hours on a CPU)")
    parser.add_argument("--quick", action="store_true", help="CI check: 2 steps, two MMLU subjects, tiny slices")
    parser.add_argument("--render-only", action="store_true", help="re-render from results/ alone")
    parser.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")], default=[20, 40, 80, 160])
    parser.add_argument("--final-steps", type=int, default=None, help="final budget (default: from the curve)")
    parser.add_argument("--out-dir", default=str(ROOT / "results"))
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--results-dir", default="results")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.final_steps = [0], args.final_steps or 2
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cells_path = out / "recovery_cells.json"
    cells = load_cells(cells_path, starting=not args.render_only and args.phase in ("select", "all"))

    def save(new: list[dict]) -> None:
        nonlocal cells
        cells = merge(cells, new)
        write_text_atomic(cells_path, json.dumps(cells, indent=1) + "\n")

    def table() -> pd.DataFrame:
        return collect(pd.DataFrame(cells), args.results_dir) if cells else pd.DataFrame()

    if not args.render_only and args.phase != "status":
        if args.phase in ("select", "all"):
            save(select(args))
        if args.phase in ("curve", "all") and not args.quick:
            save(curve(args, chosen_lr(table())))
        if args.phase in ("final", "all"):
            current = table()
            steps, why = (args.final_steps, "given") if args.final_steps else final_budget(current)
            print(f"final budget: {steps} steps ({why})", flush=True)

            def keep(done: list[dict]) -> None:
                save(done)
                final_rows = table().query("phase == 'final'")
                final_windows(final_rows, out)
                predictions(final_rows[final_rows["seed"] == 0], out)

            save(final(args, chosen_lr(current), steps, keep))
    if not cells:
        raise SystemExit(f"no cells in {cells_path}: run a phase first")
    render(table(), out)
    print(f"wrote {out / 'compression_recovery.md'}")


if __name__ == "__main__":
    main()
