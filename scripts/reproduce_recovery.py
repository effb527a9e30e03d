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

    python scripts/reproduce_recovery.py [--ratios 0.9,0.8,0.7] [--full] [--quick] [--render-only]
    python scripts/reproduce_recovery.py --curve [--steps 20,40,80,160]   # the learning curve (held-out text)

The learning curve: CUA and the matched LoRA at ratio 0.8, one run per training budget (each with its own warm-up
and cosine decay), recovery measured on the held-out slice of WikiText-2 valid (train.valid_holdout=0.1,
task.split=valid_holdout; disjoint from the training text, never the reported test split), multiple choice skipped.
It says at which budget recovery stops improving (CURVE_FLAT: the last doubling of steps gains less than that many
points), the budget the headline rows should use; results/recovery_curve.csv and .png, and a section of
compression_recovery.md.

Budget (default): see configs/train/recovery.yaml and configs/task/compression_recovery.yaml (40 steps x 4 x 128
tokens of distillation; MMLU: 3 test questions per subject zero-shot and 1 five-shot, the paper's two quoted
questions always in; ARC: 100 test questions per set; perplexity on 64 KiB of WikiText-2 test). ``--full`` scores
the whole MMLU and ARC test sets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

from qadapt.results import load_rows, save_figure_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]

PROJECTIONS = "[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]"
# table label -> adapter overrides; LoRA r=1 is the smallest LoRA on these sites (305,280 parameters against CUA's
# 224,640); OFT with 4 x 4 blocks has exactly CUA's count (and the same block-orthogonal Cayley form: see README)
METHODS = {
    "compressed": ["adapter=none"],
    "CUA q=2": ["adapter=cua", "adapter.qubits_per_block=2", "adapter.layers=null", f"adapter.modules={PROJECTIONS}"],
    "LoRA r=1": ["adapter=lora", "adapter.r=1", "adapter.alpha=2", f"adapter.modules={PROJECTIONS}"],
    "OFT b=4": ["adapter=oft", "adapter.block_size=4", f"adapter.modules={PROJECTIONS}"],
}
# adapter learning rates (the same budget otherwise); from a 10-step check at ratio 0.8 (see README)
LR = {"compressed": None, "CUA q=2": 5e-3, "LoRA r=1": 2e-3, "OFT b=4": 5e-3}
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


def cells(args) -> list[tuple[float, str, list[str]]]:
    common = [
        "task=compression_recovery",
        "train=recovery",
        f"runs_dir={args.runs_dir}",
        f"results_dir={args.results_dir}",
    ]
    if args.full:
        common.append("task.mc.full=true")
    if args.quick:
        common += [
            "train.max_steps=2",
            "task.max_bytes=8192",
            "task.mc.subjects=[astronomy,college_biology]",
            "task.mc.mmlu_per_subject=[2,1]",
            "task.mc.arc_questions=4",
            "task.compression.calibration_tokens=2048",
        ]
    out = []
    for ratio in args.ratios:
        for label, over in METHODS.items():
            lr = [f"train.lr={LR[label]}"] if LR[label] else []
            out.append((ratio, label, [*common, *over, *lr, f"task.compression.ratio={ratio}", "seed=0"]))
    return out


def curve(args) -> pd.DataFrame:
    """One run per (method, budget) on the held-out slice; returns the curve's rows (results/recovery_curve.csv)."""
    common = [
        "task=compression_recovery",
        "train=recovery",
        f"runs_dir={args.runs_dir}",
        f"results_dir={args.results_dir}",
        "train.valid_holdout=0.1",
        "task.split=valid_holdout",
        "task.mc.benchmarks=[]",
        f"task.compression.ratio={CURVE_RATIO}",
        "seed=0",
    ]
    if args.quick:
        common += ["task.max_bytes=8192", "task.compression.calibration_tokens=2048"]
    command = "python scripts/reproduce_recovery.py " + " ".join(sys.argv[1:])
    rows = []
    for label in CURVE_METHODS:
        for steps in args.steps:
            over = [*common, *METHODS[label], f"train.lr={LR[label]}", f"train.max_steps={steps}"]
            print(f"curve: {label}, {steps} steps", flush=True)
            r = run_cell(over)
            rows.append(
                {
                    "method": label,
                    "steps": steps,
                    "recovery_pct": r["recovery_pct"],
                    "perplexity": r["perplexity"],
                    "base_perplexity": r["base_perplexity"],
                    "compressed_perplexity": r["compressed_perplexity"],
                    "tokens_scored": r["tokens_scored"],
                    "eval_source": r["eval_source"],
                    "train_seconds": r["train_seconds"],
                    "lr": LR[label],
                    "run_id": r["run_id"],
                    "git_commit": r["git_commit"],
                    "sweep_command": command,
                }
            )
    return pd.DataFrame(rows)


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
    budgets = sorted(set(curve_rows["steps"]))
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
        by = dict(zip(g["steps"], g["recovery_pct"]))
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


def run_cell(overrides: list[str]) -> dict:
    from qadapt.experiments import run_or_reuse

    return run_or_reuse(overrides)


def sweep(args) -> pd.DataFrame:
    command = "python scripts/reproduce_recovery.py " + " ".join(sys.argv[1:])
    rows, t0 = [], time.perf_counter()
    todo = cells(args)
    for i, (ratio, label, over) in enumerate(todo):
        print(
            f"[{i + 1}/{len(todo)}] ratio {ratio} {label} ({(time.perf_counter() - t0) / 60:.1f} min so far)",
            flush=True,
        )
        r = run_cell(over)
        rows.append({"ratio": ratio, "method": label, "run_dir": r["run_dir"], "sweep_command": command})
    return pd.DataFrame(rows)


def collect(cells_frame: pd.DataFrame, results_dir: str) -> pd.DataFrame:
    store = load_rows(results_dir)
    store = store[store["run_dir"].isin(set(cells_frame["run_dir"]))].drop_duplicates("run_dir", keep="last")
    return cells_frame.merge(store, on="run_dir")


def _fmt_acc(row, prefix: str, suite: str) -> str:
    acc, norm = row.get(f"{prefix}{suite}_acc"), row.get(f"{prefix}{suite}_acc_norm")
    return "n/a" if pd.isna(acc) else f"{100 * acc:.1f} / {100 * norm:.1f}"


def main_table(table: pd.DataFrame) -> list[str]:
    lines = [
        "| ratio | model | parameters | trainable | perplexity | vs base | recovery | MMLU 0-shot | MMLU 5-shot | "
        "ARC-E | ARC-C |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    first = table.iloc[0]
    lines.append(
        f"| 1.0 | base SmolLM2-135M | {int(first['base_total_params']):,} | 0 | {first['base_perplexity']:.2f} | | | "
        + " | ".join(_fmt_acc(first, "base_", s) for s in SUITES)
        + " |"
    )
    for _, r in table.iterrows():
        if r["method"] == "compressed":
            ppl, prefix, params, rec = r["compressed_perplexity"], "compressed_", int(r["compressed_total_params"]), ""
        else:
            ppl, prefix, params, rec = r["perplexity"], "", int(r["total_params"]), f"{r['recovery_pct']:.1f} %"
        label = f"compressed ({r['compression_method']})" if r["method"] == "compressed" else f"+ {r['method']}"
        lines.append(
            f"| {r['ratio']:g} | {label} | {params:,} | {int(r['trainable_params']):,} | {ppl:.2f} | "
            f"{100 * (ppl / r['base_perplexity'] - 1):+.1f} % | {rec} | "
            + " | ".join(_fmt_acc(r, prefix, s) for s in SUITES)
            + " |"
        )
    return lines


QUESTIONS = "recovery_questions.csv"  # every model's per-question answers, kept in results/ beside the tables


def predictions(table: pd.DataFrame, out_dir: Path) -> dict[str, pd.DataFrame]:
    """Model label -> its per-question frame (base once, compressed and each recovery per ratio): from the run
    directories when they are here (then also saved as ``out_dir/recovery_questions.csv``), else from that file, so
    question_diff.md re-renders from results/ alone."""
    out = {}
    if all((Path(d) / "mc_base.csv").exists() for d in table["run_dir"]):
        for _, r in table.iterrows():
            run = Path(r["run_dir"])
            out.setdefault("base", pd.read_csv(run / "mc_base.csv"))
            if r["method"] == "compressed":
                out[f"compressed {r['ratio']:g}"] = pd.read_csv(run / "mc_compressed.csv")
            else:
                out[f"{r['method']} {r['ratio']:g}"] = pd.read_csv(run / "mc_adapted.csv")
        frames = [frame.assign(model=label) for label, frame in out.items()]
        pd.concat(frames, ignore_index=True).to_csv(out_dir / QUESTIONS, index=False)
        return out
    saved = pd.read_csv(out_dir / QUESTIONS)
    return {
        label: part.drop(columns="model").reset_index(drop=True) for label, part in saved.groupby("model", sort=False)
    }


def compare(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """Questions right in a and wrong in b and the reverse, with McNemar's exact test on the discordant pairs."""
    from qadapt.results.stats import mcnemar

    m = a.merge(b, on=["suite", "id"], suffixes=("_a", "_b"))
    test = mcnemar(m["correct_a"], m["correct_b"])
    return {"n": test.n, "a_only": test.a_only, "b_only": test.b_only, "net": test.net, "p": test.p, "merged": m}


def question_diff(table: pd.DataFrame, preds: dict[str, pd.DataFrame], commit: str, command: str) -> str:
    lines = [
        "# Question by question: base, compressed, recovered and classical controls (SmolLM2-135M)",
        "",
        f"Command: `{command}` (commit {commit}). Per-question answers: `mc_base.csv`, `mc_compressed.csv`, "
        "`mc_adapted.csv` in each run directory. A question counts once per suite (MMLU 0-shot, MMLU 5-shot, ARC-E, "
        "ARC-C); 'A right, B wrong' = A picks the right answer (plain log-likelihood) and B does not. p: McNemar's "
        "exact test on the discordant questions (two-sided binomial, 1/2); a net effect with p > 0.05 is noise.",
        "",
        PAPER,
        "",
        "## Counts",
        "",
        "| A | B | questions | A right, B wrong | B right, A wrong | net for B | p |",
        "|---|---|---|---|---|---|---|",
    ]
    pairs = []
    for ratio in sorted(table["ratio"].unique(), reverse=True):
        comp = f"compressed {ratio:g}"
        pairs.append(("base", comp))
        for method in [m for m in METHODS if m != "compressed"]:
            pairs.append((comp, f"{method} {ratio:g}"))
        for method in [m for m in METHODS if m not in ("compressed", "CUA q=2")]:
            pairs.append((f"{method} {ratio:g}", f"CUA q=2 {ratio:g}"))
    for a, b in pairs:
        if a in preds and b in preds:
            c = compare(preds[a], preds[b])
            lines.append(f"| {a} | {b} | {c['n']} | {c['a_only']} | {c['b_only']} | {c['net']:+d} | {c['p']:.3f} |")
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
    for label in METHODS:
        part = table[table["method"] == label].sort_values("ratio")
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
    )
    return len(both) > 0 and same_answers and all(abs(cua[r] / oft[r] - 1) < 1e-5 for r in both)


def render(table: pd.DataFrame, args, command: str) -> None:
    out = Path(args.out_dir)
    commits = sorted(set(table["git_commit"].astype(str)))
    cfg = json.loads(table["config"].iloc[-1])
    t, k = cfg["train"], cfg["task"]
    mc = k["mc"]
    budget = (
        f"Recovery training: {t['max_steps']} steps × {t['batch_size']} × {t['seq_len']} tokens of "
        f"{table['train_source'].dropna().iloc[0] if table['train_source'].notna().any() else 'WikiText-2'}, loss "
        f"{t['kl_weight']:g} KL(teacher ‖ student) + {t['ce_weight']:g} CE, AdamW, warm-up {t['warmup_steps']}, cosine "
        f"decay, lr per method (CUA {LR['CUA q=2']:g}, LoRA {LR['LoRA r=1']:g}, OFT {LR['OFT b=4']:g}). Compression: "
        f"{k['compression']['method']} on {', '.join(k['compression']['modules'])} of every layer, "
        f"{k['compression']['calibration_tokens']:,} calibration tokens. Perplexity: {k['max_bytes'] or 'all'} bytes "
        f"of WikiText-2 test, windows of {k['max_length']}. MMLU: "
        + (
            "all test questions"
            if mc["full"]
            else f"{', '.join(f'{n} per subject {s}-shot' for s, n in zip(mc['mmlu_shots'], mc['mmlu_per_subject']))} "
            f"(seeded sample, the quoted questions always in); ARC: {mc['arc_questions']} test questions per set"
        )
        + f"; {mc['format']} scoring (answer text log-likelihood), accuracy / length-normalised accuracy in %."
    )
    lines = [
        "# Compression recovery on SmolLM2-135M (CUA paper, SmolLM2 study)",
        "",
        f"Command: `{command}`; commit {', '.join(commits)}; rows in results/runs.csv (task=compression_recovery).",
        "",
        budget,
        "",
        *main_table(table),
        "",
        "recovery = (ppl_compressed − ppl_recovered) / (ppl_compressed − ppl_base). Parameters: the whole model after "
        "compression, adapters included; trainable: the adapter alone.",
        "",
        PAPER,
        "",
        "CUA with 2 qubits per block on a projection's input and peft's OFT with 4 x 4 blocks are the same "
        "block-orthogonal Cayley map (Q = (I - A)(I + A)^-1 against R = (I + S)(I - S)^-1: S = -A), both start at "
        "the identity and train with the same learning rate; AdamW is blind to a sign flip of a coordinate, so "
        "the two follow the same path"
        + (
            " and their rows here agree (perplexity to 1e-5 relative, the same accuracy on every suite, no question "
            "answered differently: see question_diff.md): OFT b=4 is CUA q=2 computed by another implementation (a "
            "check of both), not a second control; the classical control of another form is LoRA r=1 (36 % more "
            "parameters)"
            if _cua_equals_oft(table)
            else ""
        )
        + ".",
        "",
        "Why it may differ from the paper: CompactifAI is proprietary and its ratio unpublished, so the compression "
        "here (whitened truncated SVD) and its damage differ; the training budget is a few CPU minutes.",
        "",
        "![perplexity and recovery vs ratio](compression_recovery.png)",
        "",
    ]
    curve_path = out / "recovery_curve.csv"
    if curve_path.exists():
        lines += curve_section(pd.read_csv(curve_path))
    write_text_atomic(out / "compression_recovery.md", "\n".join(lines) + "\n")
    keep = [
        "ratio",
        "method",
        "adapter_desc",
        "compression_method",
        "compression_achieved",
        "compressed_total_params",
        "total_params",
        "trainable_params",
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
    table[[c for c in keep if c in table.columns]].to_csv(out / "compression_recovery.csv", index=False)
    plot(table, out / "compression_recovery.png")
    write_text_atomic(
        out / "question_diff.md", question_diff(table, predictions(table, out), ", ".join(commits), command)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratios", type=lambda s: [float(x) for x in s.split(",")], default=[0.9, 0.8, 0.7])
    parser.add_argument("--full", action="store_true", help="the whole MMLU and ARC test sets (hours on a CPU)")
    parser.add_argument("--quick", action="store_true", help="CI check: 2 steps, two MMLU subjects, tiny slices")
    parser.add_argument(
        "--render-only", action="store_true", help="re-render from the last sweep's cells and the store"
    )
    parser.add_argument("--curve", action="store_true", help="the learning curve at ratio 0.8 on held-out text")
    parser.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")], default=[20, 40, 80, 160])
    parser.add_argument("--out-dir", default=str(ROOT / "results"))
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--results-dir", default="results")
    args = parser.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cells_path = out / "recovery_cells.json"
    if args.curve:
        rows = curve(args)
        write_text_atomic(out / "recovery_curve.csv", rows.to_csv(index=False))
        plot_curve(rows, out / "recovery_curve.png")
        print(f"wrote {out / 'recovery_curve.csv'}")
        if not cells_path.exists():
            return
        args.render_only = True
    if args.render_only:
        frame = pd.read_json(cells_path)
    else:
        frame = sweep(args)
        frame.to_json(cells_path, orient="records", indent=1)
    table = collect(frame, args.results_dir)
    render(table, args, str(frame["sweep_command"].iloc[0]))
    print(f"wrote {out / 'compression_recovery.md'} and {out / 'question_diff.md'}")


if __name__ == "__main__":
    main()
