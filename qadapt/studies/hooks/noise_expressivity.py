"""configs/study/noise_expressivity.yaml's hook: each FakeFez cell's compiled circuit cost (recorded when the cell
finishes, since a fresh clone has no trained weights to compile), the paper's figures beside ours, and the plot."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

# [3rd]-party summary of the CUA paper (../shared/papers/NOTES.md): perplexity degradation from device noise on
# ibm_basquecountry, by qubits per block
PAPER = {2: 0.08, 3: 2.80, 4: 12.50}
EXTRA_COLUMNS = ["circuits_per_token", "token_circuit_cz", "token_circuit_depth", "q_cz_mean", "device_circuits"]
NOISY, SHOTS, EXACT = "fakefez", "shots", "exact"


def cell_extras(study, arm: str, row: dict) -> dict | None:
    """A FakeFez scoring cell's circuits: blocks per token, CZ count and depth of one compiled token circuit
    (amplitude encoding + Q, FakeFez, the device's optimisation level), the mean CZ of Q alone, circuits run; None
    where the trained run's weights are not on disk (the engine keeps the recorded columns)."""
    if study.arms[arm].root != NOISY or not row.get("from_run"):
        return {}
    if not (Path(str(row["from_run"])) / "adapter.safetensors").exists():
        return None
    from ...config import compose
    from ...resources import circuit_plan

    cfg = json.loads(row["config"])
    plan = circuit_plan(
        compose([f"model={cfg['model']['name']}", f"from_run={row['from_run']}", f"seed={cfg['seed']}"]),
        cfg["device"]["backend"],
        int(cfg["device"]["optimization_level"]),
        int(cfg["device"]["shots"]),
        1,
        0.0,
    )
    return {
        "circuits_per_token": sum(p["blocks"] for p in plan),
        "token_circuit_cz": plan[0]["token_circuit_2q"],
        "token_circuit_depth": plan[0]["token_circuit_depth"],
        "q_cz_mean": sum(p["q_2q_mean"] for p in plan) / len(plan),
        "device_circuits": row.get("device_circuits"),
    }


def extra_lines(study, result) -> list[str]:
    """Per q: the figures beside the paper's, the circuits behind them, the plot."""
    from ...results import save_figure_atomic

    test = result.cells[(result.cells["phase"] == "test") & result.cells["done"].fillna(False).astype(bool)]
    rows = []
    for q, (_, estimates) in result.groups.items():
        if estimates is None:
            continue
        noisy = test[test["arm"] == f"{NOISY}_q{q}"]
        rows.append(
            {
                "q": q,
                "fakefez": estimates.arms[f"{NOISY}_q{q}"],
                "shots": estimates.arms[f"{SHOTS}_q{q}"],
                "cz": _one(noisy, "token_circuit_cz"),
                "per_token": _one(noisy, "circuits_per_token"),
                "seconds": noisy["wall_seconds"].astype(float).mean(),
                "circuits": noisy["device_circuits"].astype(float).mean(),
            }
        )
    if not rows:
        return []
    lines = [
        "",
        "## Beside the paper",
        "",
        "| q | block 2^q | circuits / token | CZ per token circuit (prep + Q) | Δ shots | Δ FakeFez | paper Δ "
        "(QPU) [3rd] |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        paper = f"{PAPER[r['q']]:.2f} %" if r["q"] in PAPER else "—"
        lines.append(
            f"| {r['q']} | {2 ** r['q']} | {r['per_token']} | {r['cz']} | {r['shots'].estimate:+.3f} % | "
            f"{r['fakefez'].estimate:+.2f} % | {paper} |"
        )
    fez = [r["fakefez"].estimate for r in rows]
    rising = all(b > a for a, b in zip(fez, fez[1:]))
    lines += [
        "",
        "![degradation vs qubits per block](noise_expressivity.png)",
        "",
        f"- FakeFez degradation {'rises with every added qubit' if rising else 'is not monotone in q'} "
        f"({', '.join(f'{f:+.2f} %' for f in fez)} at q = {', '.join(str(r['q']) for r in rows)}). The paper's "
        "figures come from a third-party summary of a run on ibm_basquecountry; ours are a noise model of a sister "
        "Heron r2 device (FakeFez: qiskit-aer `NoiseModel.from_backend`, depolarising + thermal relaxation on every "
        "SX/X/CZ of the chosen qubits, readout assignment errors, applied exactly by the fused engine), so only the "
        "shape is comparable.",
        "- Why noise grows with q: the compiled token circuit (amplitude encoding + Q, transpiled for FakeFez) needs "
        + ", ".join(f"{r['cz']} CZ at q = {r['q']}" for r in rows)
        + "; a generic b x b orthogonal block needs O(4^q) two-qubit gates, while its expressivity (b(b-1)/2 "
        "parameters per block) grows more slowly. That is the noise–expressivity transition.",
        "- Wall time of a FakeFez cell (mean over seeds, this machine's cells, model load and exact pass included): "
        + ", ".join(f"q = {r['q']}: {r['seconds']:.0f} s for {r['circuits']:,.0f} circuits" for r in rows)
        + ".",
    ]
    _plot(rows, int(test["tokens_scored"].iloc[0]), Path(result.table).with_suffix(".png"), save_figure_atomic)
    return lines


def _one(frame: pd.DataFrame, column: str) -> str:
    """The column's value when every seed agrees, else its range."""
    values = sorted({int(v) for v in frame[column].dropna()}) if column in frame else []
    if not values:
        return "–"
    return f"{values[0]:,}" if len(values) == 1 else f"{values[0]:,}-{values[-1]:,}"


def _plot(rows: list[dict], tokens: int, path: Path, save) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    qs = [r["q"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, style, label in (
        ("fakefez", "o-", "ours: FakeFez noise model, 8,192 shots"),
        ("shots", "s--", "ours: exact probabilities, 8,192 shots"),
    ):
        mid = [r[key].estimate for r in rows]
        err = [[m - r[key].low for m, r in zip(mid, rows)], [r[key].high - m for m, r in zip(mid, rows)]]
        ax.errorbar(qs, mid, yerr=err, fmt=style, capsize=3, label=f"{label} (95 % CI)")
    paper = sorted(PAPER.items())
    ax.plot([q for q, _ in paper], [d for _, d in paper], "^:", color="grey", label="paper (third-party summary), QPU")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xlabel("qubits per block q (block size 2^q)")
    ax.set_ylabel("perplexity degradation vs exact (%)")
    ax.set_xticks(qs)
    ax.set_title(f"CUA on SmolLM2-135M: noise vs expressivity ({tokens:,} WikiText-2 test tokens)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
