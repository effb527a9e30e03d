#!/usr/bin/env python
"""results/noise_expressivity.md: the CUA paper's noise-expressivity sweep on SmolLM2-135M.

For q = 1, 2, 3, 4 qubits per block: train CUA exactly (device=exact), then evaluate the trained adapter on the
same first WikiText-2 test tokens exactly, with 8,192 shots of the exact probabilities, and on FakeFez (IBM
Heron r2 noise model, fused engine, 8,192 shots). Every device row also carries the exact perplexity on the same
tokens, so degradation = 100 (ppl_device / ppl_exact - 1). A point whose training run already exists (same config,
same run directory, finished) is reused, not retrained. Usage:

    python scripts/reproduce_noise.py [--tokens N] [--qubits 1,2,3,4]
    python scripts/reproduce_noise.py --render-only  # rewrite the table and plot from results/noise_expressivity.csv
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import pandas as pd

from qadapt.config import compose
from qadapt.experiments import run_or_reuse
from qadapt.resources import circuit_plan
from qadapt.results import save_figure_atomic, write_text_atomic
from qadapt.runs import git_commit

ROOT = Path(__file__).resolve().parents[1]

OUT = ROOT / "results" / "noise_expressivity.md"
CSV = ROOT / "results" / "noise_expressivity.csv"
PNG = ROOT / "results" / "noise_expressivity.png"
# [3rd]-party summary of the CUA paper (NOTES.md): perplexity degradation from device noise
PAPER = {2: 0.08, 3: 2.80, 4: 12.50}
BASE = ["model=smollm2_135m", "adapter=cua", "task=wikitext_ppl", "seed=0"]


def _train(q: int, tokens: int) -> dict:
    overrides = [*BASE, "device=exact", f"adapter.qubits_per_block={q}", f"task.max_tokens={tokens}"]
    return run_or_reuse(overrides)


def _evaluate(run_dir: str, device: list[str], tokens: int) -> dict:
    overrides = [*BASE, *device, f"device.max_tokens={tokens}", f"from_run={run_dir}"]
    from qadapt.experiments import run

    return run("eval ppl", compose(overrides), ["qadapt", "eval", "ppl", *overrides])


def run(tokens: int, qubits: list[int], command: str) -> pd.DataFrame:
    points = []
    for q in qubits:
        trained = _train(q, tokens)
        run_dir = trained["run_dir"]
        t0 = time.perf_counter()
        shots = _evaluate(run_dir, ["device=exact", "device.shots=8192"], tokens)
        t1 = time.perf_counter()
        fez = _evaluate(run_dir, ["device=ibm_fake"], tokens)
        t2 = time.perf_counter()
        plan = circuit_plan(compose([*BASE, f"from_run={run_dir}"]), "FakeFez", 2, 8192, 1, 0.0)
        points.append(
            {
                "q": q,
                "block": 2**q,
                "params": int(trained["trainable_params"]),
                "run_dir": run_dir,
                "train_commit": trained["git_commit"],
                "eval_commit": fez["git_commit"],
                "tokens_scored": int(fez["tokens_scored"]),
                "base_ppl": float(trained["base_perplexity"]),
                "exact_ppl": float(fez["exact_perplexity"]),
                "shots_ppl": float(shots["perplexity"]),
                "shots_degradation_pct": float(shots["device_degradation_pct"]),
                "fakefez_ppl": float(fez["perplexity"]),
                "fakefez_degradation_pct": float(fez["device_degradation_pct"]),
                "circuits_per_token": sum(p["blocks"] for p in plan),
                "circuits_run": int(fez["device_circuits"]),
                "token_circuit_cz": plan[0]["token_circuit_2q"],
                "token_circuit_depth": plan[0]["token_circuit_depth"],
                "q_cz_mean": sum(p["q_2q_mean"] for p in plan) / len(plan),
                "shots_seconds": round(t1 - t0, 1),
                "fakefez_seconds": round(t2 - t1, 1),
                "fakefez_device": fez["device_desc"],
                "machine": fez["machine"],
                "threads": fez["threads"],
                "torch": fez["torch"],
                "paper_degradation_pct": PAPER.get(q),
                "command": command,
            }
        )
        print(
            f"q={q}: exact {points[-1]['exact_ppl']:.4f}, shots {points[-1]['shots_degradation_pct']:+.3f} %, "
            f"FakeFez {points[-1]['fakefez_degradation_pct']:+.3f} %"
        )
    frame = pd.DataFrame(points)
    tmp = CSV.with_suffix(".csv.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(CSV)
    return frame


def plot(frame: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(frame["q"], frame["fakefez_degradation_pct"], "o-", label="ours: FakeFez noise model, 8,192 shots")
    ax.plot(frame["q"], frame["shots_degradation_pct"], "s--", label="ours: exact probabilities, 8,192 shots")
    paper = sorted(PAPER.items())
    ax.plot(
        [q for q, _ in paper], [d for _, d in paper], "^:", color="grey", label="paper (third-party summary), IBM QPU"
    )
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xlabel("qubits per block q (block size 2^q)")
    ax.set_ylabel("perplexity degradation vs exact (%)")
    ax.set_xticks(list(frame["q"]))
    ax.set_title(
        f"CUA on SmolLM2-135M: noise vs expressivity ({int(frame['tokens_scored'].iloc[0]):,} WikiText-2 test tokens)",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, PNG)


def render(frame: pd.DataFrame, command: str) -> None:
    plot(frame)
    first = frame.iloc[0]
    lines = [
        "# Noise–expressivity sweep: CUA on SmolLM2-135M, exact vs shots vs FakeFez noise",
        "",
        f"Command: `{command}`  ",
        f"Commits: training `{', '.join(sorted(set(frame['train_commit'])))}`, evaluation "
        f"`{', '.join(sorted(set(frame['eval_commit'])))}` · written {dt.date.today()} · machine: {first['machine']}, "
        f"{first['threads']} torch threads, torch {first['torch']}  ",
        f"Every figure covers the same first {int(first['tokens_scored']):,} scored tokens of WikiText-2 test (sliding "
        "windows of 2,048, `device.max_tokens`); every scored position's adapter circuits run on the device "
        "(`device.positions=scored`). Training: `qadapt train` defaults (v_proj input side, last 6 decoder layers, 60 "
        f"steps x 8 x 256 tokens, exact device). FakeFez: `{first['fakefez_device']}`, qiskit-aer "
        "`NoiseModel.from_backend` (depolarising + thermal relaxation on every SX/X/CZ of the chosen qubits, readout "
        "assignment errors), applied exactly by the fused engine (tested against Aer's density-matrix simulator to "
        "1e-6, and against Aer's noisy sampler).",
        "",
        "| q | block 2^q | params | circuits / token | CZ per token circuit (prep + Q) | base ppl | exact ppl | 8,192 "
        "shots ppl | Δ shots | FakeFez ppl | Δ FakeFez | paper Δ (QPU) [3rd] |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for _, r in frame.iterrows():
        paper = "—" if pd.isna(r["paper_degradation_pct"]) else f"{r['paper_degradation_pct']:.2f} %"
        lines.append(
            f"| {r['q']} | {r['block']} | {r['params']:,} | {r['circuits_per_token']:,} | {r['token_circuit_cz']} "
            f"| {r['base_ppl']:.4f} | {r['exact_ppl']:.4f} | {r['shots_ppl']:.4f} | {r['shots_degradation_pct']:+.3f} "
            f"% | {r['fakefez_ppl']:.4f} | {r['fakefez_degradation_pct']:+.3f} % | {paper} |"
        )
    fez = list(frame["fakefez_degradation_pct"])
    rising = all(b > a for a, b in zip(fez, fez[1:]))
    lines += [
        "",
        f"![degradation vs qubits per block]({PNG.name})",
        "",
        "## Reading it",
        "",
        f"- FakeFez degradation at q = {', '.join(str(q) for q in frame['q'])}: "
        f"{', '.join(f'{d:+.2f} %' for d in fez)} "
        f"({'rises with every added qubit' if rising else 'not monotone in q'}). The paper's figures (0.08 %, 2.80 %, "
        "12.50 % at q = 2, 3, 4) come from a third-party summary of a run on ibm_basquecountry; ours are a noise model "
        "of a sister Heron r2 device, so only the shape is comparable.",
        "- Shot noise alone (exact probabilities, 8,192 shots): "
        + ", ".join(f"{d:+.3f} %" for d in frame["shots_degradation_pct"])
        + "; the rest of the FakeFez degradation is gate and readout noise.",
        "- Why noise grows with q: the compiled token circuit (amplitude encoding + Q_j, transpiled for FakeFez at "
        "optimisation level 2) needs "
        + ", ".join(f"{r['token_circuit_cz']} CZ at q = {r['q']}" for _, r in frame.iterrows())
        + "; a generic b x b orthogonal block needs O(4^q) two-qubit gates, while its expressivity (b(b-1)/2 "
        "parameters per block) grows more slowly. That is the noise–expressivity transition.",
        "- Wall time per point (this machine): "
        + ", ".join(
            f"q = {r['q']}: shots {r['shots_seconds']:.0f} s, FakeFez {r['fakefez_seconds']:.0f} s for "
            f"{r['circuits_run']:,} circuits"
            for _, r in frame.iterrows()
        )
        + " (each includes the model load and the exact reference pass).",
        "",
        f"Numbers: `{CSV.relative_to(ROOT)}`; each evaluation is also a row of `results/runs.csv` (command, commit, "
        "full config).",
        "",
    ]
    write_text_atomic(OUT, "\n".join(lines))
    print(f"wrote {OUT} and {PNG}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=8192, help="WikiText-2 test tokens every figure covers")
    parser.add_argument("--qubits", default="1,2,3,4", help="qubits per block to sweep")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args(argv)
    if args.render_only:
        frame = pd.read_csv(CSV)
        return render(frame, frame["command"].iloc[0])
    git_commit()
    command = " ".join(["python scripts/reproduce_noise.py", *argv])
    frame = run(args.tokens, [int(q) for q in args.qubits.split(",")], command)
    render(frame, command)


if __name__ == "__main__":
    main(sys.argv[1:])
