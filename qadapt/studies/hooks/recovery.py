"""configs/study/compression_recovery.yaml's hook: the perplexity and multiple-choice rows of the base, compressed and
recovered models, the budget's learning curve and its plot, the OFT implementation check, the paper beside ours,
and ``question_diff.md`` (each model's answers question by question, McNemar's exact test on independent questions).

Per-question answers live in each run's ``mc_base.csv``, ``mc_compressed.csv`` and ``mc_adapted.csv``; a fresh clone
has no run directory, so the answers of the seed-0 cells are kept in ``results/recovery_questions.csv`` (model, run
directory), merged from the run directories that are here at each render.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ...paths import PROJECT_DIR
from ...results import estimate as est
from ...results import save_figure_atomic, write_text_atomic
from ..engine import flattens_at
from ..render import unit_matrix

SUITES = ("mmlu_0shot", "mmlu_5shot", "arc_easy", "arc_challenge")
EXTRA_COLUMNS = [
    "total_params",
    "compressed_total_params",
    "base_total_params",
    "compression_method",
    "compression_achieved",
    "compressed_perplexity",
    "recovery_pct",
    *[f"{p}{s}_{m}" for p in ("base_", "compressed_", "") for s in SUITES for m in ("acc", "acc_norm")],
]
PAPER_RECOVERY = 83.0
PAPER = (
    f"Paper (CUA, SmolLM2-135M): {PAPER_RECOVERY:g} % recovery of the compression-induced perplexity degradation with "
    "CUA adapters after CompactifAI tensor-network compression (ratio and absolute perplexities not published). The "
    "two quoted MMLU questions come from the Llama 3.1 8B experiment (base model vs. base + CUA on IBM hardware), not "
    "from the compression study: jovian planets' rings, base 'Saturn', adapted 'all of the above' (right); gene flow, "
    "base 'disruption of Hardy-Weinberg equilibrium', adapted 'an increase in genetic homogeneity' (right)."
)
QUOTED = {
    "astronomy": "Which of the jovian planets have rings?",
    "college_biology": "Gene flow between populations results in",
}
# suites whose questions are distinct from each other's: MMLU 5-shot asks MMLU 0-shot's questions again, so it is
# tested on its own, never pooled with them (McNemar's pairs must be independent)
DISTINCT_SUITES = ("mmlu_0shot", "arc_easy", "arc_challenge")
QUESTIONS = "recovery_questions.csv"


def cell_extras(study, arm: str, row: dict) -> dict:
    """The row's compression, parameter and multiple-choice columns (results/runs.csv keeps them too)."""
    return {k: row.get(k) for k in EXTRA_COLUMNS}


def extra_lines(study, result) -> list[str]:
    """The lines of compression_recovery.md beyond the engine's (see the module's docstring), and, where the first
    seed's per-question answers are found, question_diff.md beside the table. Perplexities are per token of the
    reported windows; accuracies in % of the questions scored. Source: CUA paper, SmolLM2 study (83 % recovery)."""
    cells = result.cells
    finished = cells[cells["done"].fillna(False).astype(bool)]
    test = finished[finished["phase"] == "test"]
    lines = []
    curve = finished[finished["phase"] == "curve"]
    if len(curve):
        lines += _curve(study, curve, Path(result.table))
    if test.empty:
        return lines
    ratio = json.loads(test.iloc[0]["config"])["task"]["compression"]["ratio"]
    lines = [*_rows(study, test, ratio), *_own_seeds(study, result, test), "", PAPER, *_oft_check(study, test), *lines]
    lines += [
        "",
        "Why it may differ from the paper: CompactifAI is proprietary and its ratio unpublished, so the compression "
        "here (whitened truncated SVD) and its damage differ; the training budget is CPU minutes.",
    ]
    seed0 = test[test["seed"] == study.final.seeds[0]]
    preds = _predictions(study, seed0, ratio, Path(result.table).parent)
    if "base" in preds:
        write_text_atomic(Path(result.table).parent / "question_diff.md", _question_diff(study, seed0, preds, ratio))
        lines += ["", "Question by question (seed 0; McNemar's exact test on independent questions): question_diff.md."]
    return lines


def _acc(row: pd.Series, prefix: str, suite: str) -> str:
    acc, norm = row.get(f"{prefix}{suite}_acc"), row.get(f"{prefix}{suite}_acc_norm")
    return "n/a" if acc is None or pd.isna(acc) else f"{100 * float(acc):.1f} / {100 * float(norm):.1f}"


def _rows(study, test: pd.DataFrame, ratio: float) -> list[str]:
    """Base, compressed and every arm: parameters, perplexity (mean over seeds), multiple choice of the first seed."""
    first = test.sort_values("seed").iloc[0]
    t = json.loads(first["config"])
    mc, k = t["task"]["mc"], t["task"]
    shots = ", ".join(f"{n} per subject {s}-shot" for s, n in zip(mc["mmlu_shots"], mc["mmlu_per_subject"]))
    sample = f"{shots} (seeded sample, the quoted questions always in); ARC: {mc['arc_questions']} per set"
    questions = "all test questions" if mc["full"] else sample
    base = float(first["base_perplexity"])
    lines = [
        "",
        "## Perplexity and multiple choice",
        "",
        f"Compression: {k['compression']['method']} on {', '.join(k['compression']['modules'])} of every layer, "
        f"{k['compression']['calibration_tokens']:,} calibration tokens, ratio {ratio:g}. Recovery: "
        f"{t['train']['kl_weight']:g} KL(teacher ‖ student) + {t['train']['ce_weight']:g} CE, AdamW, warm-up "
        f"{t['train']['warmup_steps']}, cosine decay. Multiple choice (seed {study.final.seeds[0]}): MMLU {questions}; "
        f"{mc['format']} scoring (answer text log-likelihood), accuracy / length-normalised accuracy in %. Parameters: "
        "the whole model after compression, adapters included.",
        "",
        "| model | parameters | trainable | seeds | perplexity | vs base | MMLU 0-shot | MMLU 5-shot | ARC-E | ARC-C |",
        "|---|---:|---:|---:|---:|---:|---|---|---|---|",
        f"| base SmolLM2-135M | {int(first['base_total_params']):,} | 0 | | {base:.2f} | | "
        + " | ".join(_acc(first, "base_", s) for s in SUITES)
        + " |",
        f"| compressed ({first['compression_method']}) | {int(first['compressed_total_params']):,} | 0 | | "
        f"{float(first['compressed_perplexity']):.2f} | "
        f"{100 * (float(first['compressed_perplexity']) / base - 1):+.1f} % | "
        + " | ".join(_acc(first, "compressed_", s) for s in SUITES)
        + " |",
    ]
    for arm, spec in study.arms.items():
        g = test[test["arm"] == arm].sort_values("seed")
        if g.empty:
            continue
        r, ppl = g.iloc[0], g["perplexity"].astype(float).mean()
        lines.append(
            f"| + {spec.label} | {int(r['total_params']):,} | {int(r['trainable_params']):,} | {len(g)} | {ppl:.2f} | "
            f"{100 * (ppl / base - 1):+.1f} % | " + " | ".join(_acc(r, "", s) for s in SUITES) + " |"
        )
    return lines


def _own_seeds(study, result, test: pd.DataFrame) -> list[str]:
    """Arms run on seeds of their own (``seeds``): their recovery on those seeds alone, outside the paired tests."""
    out = []
    for arm, spec in study.arms.items():
        if spec.seeds is None or result.units is None:
            continue
        runs = set(test[test["arm"] == arm]["run_id"])
        units = result.units[result.units["run_id"].isin(runs)]
        if units.empty:
            continue
        (nll, tokens), base, compressed = (
            unit_matrix(units, arm),
            unit_matrix(units, arm, "base_nll")[0],
            unit_matrix(units, arm, "compressed_nll")[0],
        )
        observed, linear = est.recovery(nll, base, compressed, tokens.to_numpy())
        i = est.from_linear({arm: observed}, {arm: linear}, "recovery_pct", arm).arms[arm]
        n = nll.shape[0]
        one = "; one run: the interval covers the text, not training" if n == 1 else ""
        out += ["", f"{spec.label} (seed{'s' if n > 1 else ''} {', '.join(map(str, spec.seeds))} only{one}): "
                f"recovery {i.estimate:.1f} % [{i.low:.1f}, {i.high:.1f}]."]  # fmt: skip
    return out


def _oft_check(study, test: pd.DataFrame) -> list[str]:
    """OFT b = 4 against CUA q = 2 at the first seed: the same Cayley map by two implementations."""
    first = study.final.seeds[0]
    cua = test[test["arm"] == study.reference]
    oft = test[(test["arm"] == "oft") & (test["seed"] == first)]
    cua0 = cua[cua["seed"] == first]
    if oft.empty or cua0.empty:
        return []
    a, b = float(cua0["perplexity"].iloc[0]), float(oft["perplexity"].iloc[0])
    lo, hi = cua["perplexity"].astype(float).min(), cua["perplexity"].astype(float).max()
    same = abs(b / a - 1) < 1e-5
    said = (
        "their rows agree (perplexity to 1e-5 relative): OFT b=4 is CUA q=2 by another implementation (a check of "
        "both), not a second control"
        if same
        else f"their rows are not equal: at seed {first}, CUA {a:.2f} and OFT {b:.2f} ({(b / a - 1) * 100:+.2f} %), "
        f"{'inside' if lo <= b <= hi else 'outside'} CUA's range over its {len(cua)} seeds ({lo:.2f}-{hi:.2f}); the "
        "same map, computed and differentiated by different code, starts on the same path and drifts from it over the "
        "steps"
    )
    return [
        "",
        "CUA with 2 qubits per block on a projection's input and peft's OFT with 4 x 4 blocks are the same "
        "block-orthogonal Cayley map (Q = (I - A)(I + A)^-1 against R = (I + S)(I - S)^-1: S = -A), both start at the "
        f"identity and train with the same rate and budget; {said}. The classical control of another form is LoRA r=1.",
    ]


def _curve(study, curve: pd.DataFrame, table: Path) -> list[str]:
    """The budget's learning curve on the selection split: recovery by steps per arm, where it flattens, the plot."""
    key, flat = study.select.curve.key, study.select.curve.flat
    rows = {}
    for arm, g in curve.groupby("arm", sort=False):
        rows[arm] = {json.loads(v)[key]: float(m) for v, m in zip(g["values"], g[study.select.metric])}
    values = study.select.curve.values
    first = curve.iloc[0]
    lines = [
        "",
        "## The budget's learning curve (selection split)",
        "",
        f"Recovery (%) on {first['eval_source']} ({int(first['tokens_scored']):,} tokens, disjoint from the training "
        f"text) against `{key}`, each arm at its chosen rate, one run per budget (seed {study.select.seed}); the final "
        f"budget is where a doubling gains fewer than {flat:g} points for every arm, else the largest run.",
        "",
        "| arm | " + " | ".join(f"{v:g}" for v in values) + " |",
        "|---|" + "---:|" * len(values),
    ]
    for arm, by in rows.items():
        lines.append(f"| {study.arms[arm].label} | " + " | ".join(f"{by[v]:.1f}" if v in by else "–" for v in values)
                     + " |")  # fmt: skip
    lines.append("")
    for arm, by in rows.items():
        at = flattens_at([(v, by[v]) for v in values if v in by], flat, study.select.direction)
        lines.append(
            f"- {study.arms[arm].label}: flat from {at:g} (the next budget gains < {flat:g} points)."
            if at is not None
            else f"- {study.arms[arm].label}: still gaining at {max(by):g} (every next budget gained >= {flat:g} "
            "points): the curve had not flattened at the largest budget run."
        )
    _plot_curve(study, rows, table.with_name("recovery_curve.png"))
    return [*lines, "", "![recovery vs training steps](recovery_curve.png)"]


def _plot_curve(study, rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for arm, by in rows.items():
        steps = sorted(by)
        ax.plot(steps, [by[s] for s in steps], marker="o", label=study.arms[arm].label)
    ax.axhline(PAPER_RECOVERY, color="grey", linestyle=":", linewidth=1, label=f"paper: {PAPER_RECOVERY:g} %")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training steps (log scale)")
    ax.set_ylabel("recovery on held-out text (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, path)


# -- question by question ------------------------------------------------------------------------------------------


def _predictions(study, seed0: pd.DataFrame, ratio: float, results: Path) -> dict[str, pd.DataFrame]:
    """Model label -> its per-question answers (base, compressed and each arm): from the run directories that are
    here, else from results/recovery_questions.csv; the merged answers are written back there."""
    path = results / QUESTIONS
    saved = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["model", "run_dir"])

    def from_saved(label: str, run_dir: str | None) -> pd.DataFrame:
        part = saved[saved["model"] == label]
        part = part if run_dir is None else part[part["run_dir"] == run_dir]
        return part.drop(columns=["model", "run_dir"]).reset_index(drop=True)

    out, sources = {}, {}
    for _, r in seed0.iterrows():
        run, label = Path(str(r["run_dir"])), f"{study.arms[r['arm']].label} {ratio:g}"
        if (run / "mc_adapted.csv").exists():
            for name, file in ((label, "mc_adapted.csv"), (f"compressed {ratio:g}", "mc_compressed.csv"),
                               ("base", "mc_base.csv")):  # fmt: skip
                if name not in out:
                    out[name], sources[name] = pd.read_csv(run / file), str(r["run_dir"])
        elif len(from_saved(label, str(r["run_dir"]))):
            out[label], sources[label] = from_saved(label, str(r["run_dir"])), str(r["run_dir"])
    for name in ("base", f"compressed {ratio:g}"):
        if name not in out and len(from_saved(name, None)):
            out[name] = from_saved(name, None)
            sources[name] = str(saved.loc[saved["model"] == name, "run_dir"].iloc[0])
    order = ["base", f"compressed {ratio:g}"]
    out = {k: out[k] for k in order if k in out} | {k: v for k, v in out.items() if k not in order}
    if out:
        frames = [frame.assign(model=label, run_dir=sources[label]) for label, frame in out.items()]
        write_text_atomic(path, pd.concat(frames, ignore_index=True).to_csv(index=False))
    return out


def _compare(a: pd.DataFrame, b: pd.DataFrame, suites: tuple[str, ...] | None = None) -> dict:
    """Questions right in a and wrong in b and the reverse, McNemar's exact test on the discordant pairs, over
    ``suites`` (all: for listing questions only; a test pools only distinct questions)."""
    from ...results.stats import mcnemar

    m = a.merge(b, on=["suite", "id"], suffixes=("_a", "_b"))
    if suites is not None:
        m = m[m["suite"].isin(suites)]
    test = mcnemar(m["correct_a"], m["correct_b"])
    return {"n": test.n, "a_only": test.a_only, "b_only": test.b_only, "net": test.net, "p": test.p, "merged": m}


def _question_diff(study, seed0: pd.DataFrame, preds: dict, ratio: float) -> str:
    commits = ", ".join(sorted(set(seed0["git_commit"].astype(str))))
    lines = [
        "# Question by question: base, compressed, recovered and classical controls (SmolLM2-135M)",
        "",
        f"Written by `qadapt study render {study.name}` from results/{QUESTIONS} (commits of the runs: {commits}). "
        "Per-question answers: `mc_base.csv`, `mc_compressed.csv`, `mc_adapted.csv` in each run directory, all of them "
        f"kept in `results/{QUESTIONS}` (model, run directory). Each test pairs independent questions: MMLU 0-shot, "
        "ARC-E and ARC-C together (distinct questions), MMLU 5-shot on its own (it asks MMLU 0-shot's questions again, "
        "with five examples in front); 'A right, B wrong' = A picks the right answer (plain log-likelihood) and B does "
        "not. p: McNemar's exact test on the discordant questions (two-sided binomial, 1/2); a net effect with "
        "p > 0.05 is noise.",
        "",
        PAPER,
        "",
        "## Counts",
        "",
        "| A | B | suites | questions | A right, B wrong | B right, A wrong | net for B | p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    comp = f"compressed {ratio:g}"
    questions = _questions()
    labels = [f"{study.arms[a].label} {ratio:g}" for a in study.arms]
    ref = f"{study.arms[study.reference].label} {ratio:g}"
    pairs = [("base", comp), *[(comp, x) for x in labels], *[(x, ref) for x in labels if x != ref]]
    present = sorted(set(preds["base"]["suite"]))
    groups = [tuple(x for x in DISTINCT_SUITES if x in present)] + [(x,) for x in present if x not in DISTINCT_SUITES]
    for a, b in pairs:
        if a in preds and b in preds:
            for suites in groups:
                c = _compare(preds[a], preds[b], suites)
                lines.append(f"| {a} | {b} | {' + '.join(suites)} | {c['n']} | {c['a_only']} | {c['b_only']} | "
                             f"{c['net']:+d} | {c['p']:.3f} |")  # fmt: skip
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
        qid = next((i for i in rows["id"] if questions[i].question.startswith(start)), None)
        if qid is None:
            continue
        q = questions[qid]
        lines += [f"**{subject}: {q.question}** (right: {'ABCD'[q.answer]}. {q.choices[q.answer]})", "",
                  "| model | suite | choice | probability | p(right answer) |", "|---|---|---|---|---|"]  # fmt: skip
        for label, frame in preds.items():
            for _, r in frame[frame["id"] == qid].iterrows():
                mark = "✓" if r["correct"] else "✗"
                choice = f"{mark} {'ABCD'[int(r['choice'])]}. {q.choices[int(r['choice'])]}"
                lines.append(f"| {label} | {r['suite']} | {choice} | {r['prob_choice']:.3f} | {r['prob_answer']:.3f} |")
        lines.append("")
    lines += ["## Questions recovered by CUA (wrong when compressed, right after CUA)", ""]
    if comp in preds and ref in preds:
        m = _compare(preds[comp], preds[ref])["merged"]
        fixed, lost = m[~m["correct_a"] & m["correct_b"]], m[m["correct_a"] & ~m["correct_b"]]
        lines += [f"Ratio {ratio:g}: {len(fixed)} fixed, {len(lost)} broken. First ten fixed:", ""]
        for _, r in fixed.head(10).iterrows():
            q = questions[r["id"]]
            lines.append(f"- [{r['suite']}] {q.question[:140]} — compressed: {q.choices[int(r['choice_a'])][:60]}; "
                         f"CUA: {q.choices[int(r['choice_b'])][:60]} ✓")  # fmt: skip
        lines.append("")
    return "\n".join(lines) + "\n"


def _questions() -> dict:
    """Every MMLU and ARC test question by id (MMLU ids ``subject/split/row``, ARC ids the official ones), from the
    data directory (``QADAPT_DATA_DIR``, else ``data/``, as configs/config.yaml's ``data_dir``)."""
    from ...data import multiple_choice as mc

    data = Path(os.environ.get("QADAPT_DATA_DIR") or PROJECT_DIR / "data")
    found = mc.load_mmlu(data, "test") + mc.load_arc(data, "arc_easy") + mc.load_arc(data, "arc_challenge")
    return {q.id: q for q in found}
