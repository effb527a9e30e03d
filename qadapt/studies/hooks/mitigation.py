"""configs/study/mitigation.yaml's hook: each FakeFez cell's QPU cost (recorded when it finishes: a fresh clone has
no trained weights to compile), each arm's degradation against its own exact pass, the noise models' fits, where the
transition sits, and the plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...results import estimate as est

EXTRA_COLUMNS = ["circuits", "calibration_circuits", "shots", "qpu_seconds", "qpu_seconds_per_circuit"]
TRANSITION_PCT = 1.0  # degradation (%) above which noise is said to have overtaken the adapter's q (reading only)
EVALUATIONS = ("plain", "readout", "aware_plain", "aware_readout")


def cell_extras(study, arm: str, row: dict) -> dict | None:
    """A FakeFez scoring cell's QPU cost: token circuits and readout-calibration circuits run, shots, and QPU seconds
    = circuits x shots x (token circuit duration + the backend's repetition delay) + calibration shots x (measurement
    + repetition delay), the token circuit (block 0 of the first site, with its state preparation) compiled for the
    backend; None where the trained weights are not on disk (the engine keeps the recorded columns)."""
    if study.arms[arm].root not in EVALUATIONS or not row.get("from_run"):
        return {}
    if not (Path(str(row["from_run"])) / "adapter.safetensors").exists():
        return None
    from ... import runs
    from ...devices.qiskit_compile import compile_blocks, fake_backend, qpu_seconds_per_circuit, rep_delay_s
    from ...quantum import cayley, skew_symmetric

    device = json.loads(row["config"])["device"]
    backend = fake_backend(device["backend"])
    trained = runs.load_trained(row["from_run"])
    generator = next(v for k, v in sorted(trained.weights.items()) if k.endswith(".generator")).double()
    b = int(trained.structure[next(iter(trained.structure))]["block_size"])
    full = compile_blocks(cayley(skew_symmetric(generator[:1], b)).numpy(), backend, 2, 0, with_state_prep=True)[0]
    delay = rep_delay_s(backend)
    per_circuit = qpu_seconds_per_circuit(full.duration_s, int(device["shots"]), delay)
    per_calibration_shot = float(backend.target["measure"][(0,)].duration or 0.0) + delay
    circuits = int(row["device_circuits"])
    calibration = int(row.get("device_calibration_shots") or 0)
    return {
        "circuits": circuits,
        "calibration_circuits": int(row.get("device_calibration_circuits") or 0),
        "shots": circuits * int(device["shots"]) + calibration,
        "qpu_seconds": circuits * per_circuit + calibration * per_calibration_shot,
        "qpu_seconds_per_circuit": per_circuit,
    }


def extra_lines(study, result) -> list[str]:
    """Per q and arm: the degradation against the arm's own exact pass and the QPU cost; the noise models' fits;
    the transition per arm; the plot."""
    from ...results import save_figure_atomic

    cells, units = result.cells, result.units
    test = cells[(cells["phase"] == "test") & cells["done"].fillna(False).astype(bool)]
    rows = []
    for q, (complete, estimates) in result.groups.items():
        if estimates is None:
            continue
        own = _own(units, test, [a for a in complete if study.arms[a].root in EVALUATIONS], estimates.seed_ids)
        for arm in complete:
            mine = test[test["arm"] == arm]
            rows.append(
                {
                    "q": q,
                    "arm": arm,
                    "root": study.arms[arm].root,
                    "degradation": estimates.arms[arm],
                    "own": own.arms.get(arm) if own else None,
                    # token circuits and, with readout mitigation, the calibration circuits
                    "circuits": (mine["circuits"] + mine["calibration_circuits"]).astype(float).mean()
                    if "circuits" in mine
                    else np.nan,
                    "shots": mine["shots"].astype(float).mean() if "shots" in mine else np.nan,
                    "qpu_hours": mine["qpu_seconds"].astype(float).mean() / 3600 if "qpu_seconds" in mine else np.nan,
                }
            )
    if not rows:
        return []
    labels = {k: a.label for k, a in study.arms.items()}
    lines = [
        "",
        "## Against each adapter's own exact pass, and what each row costs on a QPU",
        "",
        "| q | arm | vs own exact, % [95 % CI] | circuits (token + calibration) | shots | QPU h |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        own = f"{r['own'].estimate:+.2f} [{r['own'].low:+.2f}, {r['own'].high:+.2f}]" if r["own"] else "–"
        lines.append(
            f"| {r['q']} | {labels[r['arm']].rsplit(',', 1)[0]} | {own} | {r['circuits']:,.0f} | {r['shots']:,.0f} | "
            f"{r['qpu_hours']:,.1f} |"
        )
    lines += [
        "",
        "'vs own exact': the same adapter scored exactly on the same tokens (how much of that adapter the noise "
        "takes); the Δ above is against the exactly trained adapter scored exactly (what a user gets against the "
        "noiseless ideal). QPU seconds = token circuits x shots x (token circuit duration + the backend's repetition "
        "delay) + calibration shots x (measurement + repetition delay), from FakeFez's own durations, without the "
        "runtime's per-job overhead (mean over seeds). Dynamical decoupling and twirling are not in this table: Aer "
        "and the fused engine do not apply them (device=ibm only).",
        "",
        "- " + _fits(cells, study),
        "- The transition (the first q whose degradation interval lies wholly above "
        f"{TRANSITION_PCT:g} %): " + "; ".join(_transition(rows, labels)) + ".",
        "",
        "![degradation vs q](mitigation.png)",
    ]
    _plot(rows, labels, Path(result.table).with_suffix(".png"), save_figure_atomic)
    return lines


def _own(units, test, arms: list[str], seeds) -> est.Estimates | None:
    """Each evaluation arm's degradation against its own run's exact pass, on the table's seeds and token blocks."""
    from ..render import unit_matrix

    if units is None or not arms:
        return None
    units = units[units["run_id"].isin(set(test["run_id"])) & units["seed"].isin(seeds)]
    numerators = {arm: unit_matrix(units, arm)[0] - unit_matrix(units, arm, "exact_nll")[0] for arm in arms}
    tokens = unit_matrix(units, arms[0])[1].to_numpy()
    return est.estimate(numerators, tokens, "delta_ppl_pct", arms[0])


def _fits(cells, study) -> str:
    """The noise model noise-aware training used per q (from its training cells): lambda and how close it is to the
    fused engine (mean total-variation distance on held-out blocks and inputs, beside the noiseless model's)."""
    trained = cells[(cells["phase"] == "train") & cells["arm"].str.startswith("aware_q")]
    parts = []
    for q in study.axis.values:
        mine = trained[trained["arm"] == f"aware_q{q}"]
        if mine.empty:
            continue
        row = mine.iloc[0]
        fit = {k: row.get(k) for k in ("train_noise_depolarising", "train_noise_tv", "train_noise_tv_exact")}
        if any(v is None or v != v for v in fit.values()):
            continue
        parts.append(
            f"q = {q}: lambda {float(fit['train_noise_depolarising']):.3f}, TV {float(fit['train_noise_tv']):.4f} vs "
            f"{float(fit['train_noise_tv_exact']):.4f}"
        )
    return (
        "Noise-aware training (`train.noise=FakeFez`, qadapt/devices/noise_surrogate.py): CUA trained through p = "
        "A[(1 - lambda)|U x|^2 + lambda / b], a depolarising channel and the readout assignment matrix, fitted to the "
        "fused engine's distributions on FakeFez-compiled random blocks; "
        + ("; ".join(parts) if parts else "its fits are not recorded in these cells")
        + "."
    )


def _transition(rows: list[dict], labels: dict) -> list[str]:
    out = []
    for root in EVALUATIONS:
        mine = sorted((r for r in rows if r["root"] == root), key=lambda r: r["q"])
        if not mine:
            continue
        above = [r["q"] for r in mine if r["degradation"].low > TRANSITION_PCT]
        name = labels[mine[0]["arm"]].rsplit(",", 1)[0]
        out.append(
            f"{name}: " + (f"q = {above[0]}" if above else f"none of q = {', '.join(str(r['q']) for r in mine)}")
        )
    return out


def _plot(rows: list[dict], labels: dict, path: Path, save) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for root in EVALUATIONS:
        mine = sorted((r for r in rows if r["root"] == root), key=lambda r: r["q"])
        if not mine:
            continue
        mid = [r["degradation"].estimate for r in mine]
        err = [
            [m - r["degradation"].low for m, r in zip(mid, mine)],
            [r["degradation"].high - m for m, r in zip(mid, mine)],
        ]
        ax.errorbar(
            [r["q"] for r in mine], mid, yerr=err, fmt="o-", capsize=3, label=labels[mine[0]["arm"]].rsplit(",", 1)[0]
        )
    ax.axhline(TRANSITION_PCT, color="grey", linewidth=0.5, linestyle=":")
    ax.set_xticks(sorted({r["q"] for r in rows}))
    ax.set_xlabel("qubits per block q")
    ax.set_ylabel("FakeFez perplexity vs exactly trained, exact (%)")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
