#!/usr/bin/env python
"""results/mitigation.md (+ .csv, .png, mitigation_blocks.csv, mitigation_table.csv): can readout mitigation or
noise-aware training move CUA's noise-expressivity transition on FakeFez? (issue 20)

Per q = 2, 3, 4 (qubits per block), on the noise sweep's WikiText-2 test tokens (scripts/reproduce_noise.py: the first
8,192 tokens, sliding windows of 2,048, every scored position's circuits on the device) and its training recipe at
half its steps (30; ``--steps 60`` for its own):

    exact      the adapter trained exactly, scored exactly (the reference every degradation is measured against)
    trained exactly, FakeFez, mitigation none | readout
    trained through FakeFez's noise model (train.noise=FakeFez), FakeFez, mitigation none | readout

Degradation = 100 (exp(mean NLL on FakeFez - mean NLL of the exactly trained adapter scored exactly) - 1) over the
same tokens; its 95 % interval is a percentile bootstrap over blocks of 64 consecutive tokens (neighbouring tokens
share context, so single tokens are not independent; scipy.stats.bootstrap of the ratio of block sums), and each
row's change against "trained exactly, no mitigation" is a paired bootstrap over the same blocks. QPU cost per row:
circuits (token circuits + readout calibration), shots, and QPU seconds from FakeFez's own durations and repetition
delay (qadapt.devices.qiskit_compile.qpu_seconds_per_circuit).

Every cell is kept in results/ as soon as it is done (mitigation_blocks.csv: its per-block sums; mitigation.csv:
its row), so an interrupted sweep continues where it stopped, on this machine or another.

    python scripts/reproduce_mitigation.py [--qubits 2,3,4] [--tokens 8192]
    python scripts/reproduce_mitigation.py --render-only
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from qadapt.experiments import run_or_reuse
from qadapt.results import save_figure_atomic, write_text_atomic
from qadapt.results.stats import CONFIDENCE, ratio_interval

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "mitigation.md"
CSV = ROOT / "results" / "mitigation.csv"
BLOCKS = ROOT / "results" / "mitigation_blocks.csv"
PNG = ROOT / "results" / "mitigation.png"
BASE = ["model=smollm2_135m", "adapter=cua", "task=wikitext_ppl", "seed=0"]  # the noise sweep's (reproduce_noise.py)
QUICK = ["train.max_steps=2", "train.batch_size=2", "train.seq_len=64"]  # --quick: a check of the pipeline only
# training budget: half the noise sweep's 60 steps, so the six trainings and twelve FakeFez evaluations fit 90 minutes
# on 2 cores (--steps 60: the noise sweep's own adapters' recipe)
STEPS = 30
TRAIN: list[str] = []
BACKEND = "FakeFez"
BLOCK_TOKENS = 64
TRAININGS = {"exact": [], "noise-aware": [f"train.noise={BACKEND}"]}
MITIGATIONS = ("none", "readout")
KEY = ["q", "training", "mitigation"]
TRANSITION_PCT = 1.0  # degradation (%) above which noise is said to have overtaken the adapter's q (reading only)


def train(q: int, training: str, tokens: int) -> dict:
    """The adapter (its run directory is needed: the evaluations load it)."""
    over = [*BASE, "device=exact", f"adapter.qubits_per_block={q}", f"task.max_tokens={tokens}", *TRAININGS[training]]
    return run_or_reuse([*over, *TRAIN])


def evaluate(run_dir: str, mitigation: str, tokens: int) -> dict:
    over = [
        *BASE,
        "device=ibm_fake",
        f"device.backend={BACKEND}",
        f"device.mitigation={mitigation}",
        f"device.max_tokens={tokens}",
        f"from_run={run_dir}",
    ]
    return run_or_reuse(over, "eval ppl")


def qpu_seconds(run_dir: str, shots: int) -> tuple[float, float]:
    """(QPU seconds per token circuit, per calibration shot) on the backend: a trained block's full token circuit
    compiled for it, ``shots x (duration + repetition delay)``; a calibration shot is a measurement + repetition
    delay."""
    from qadapt import runs
    from qadapt.devices.qiskit_compile import compile_blocks, fake_backend, qpu_seconds_per_circuit, rep_delay_s
    from qadapt.quantum import cayley, skew_symmetric

    backend = fake_backend(BACKEND)
    trained = runs.load_trained(run_dir)
    generator = next(v for k, v in sorted(trained.weights.items()) if k.endswith(".generator")).double()
    b = int(trained.structure[next(iter(trained.structure))]["block_size"])
    unitaries = cayley(skew_symmetric(generator[:1], b)).numpy()
    full = compile_blocks(unitaries, backend, 2, 0, with_state_prep=True)[0]
    delay = rep_delay_s(backend)
    measure = float(backend.target["measure"][(0,)].duration or 0.0)
    return qpu_seconds_per_circuit(full.duration_s, shots, delay), measure + delay


def blocks_of(nll: np.ndarray, reference: np.ndarray, own_exact: np.ndarray) -> pd.DataFrame:
    """Per block of BLOCK_TOKENS consecutive tokens (the last one may be shorter): token count and NLL sums."""
    index = np.arange(len(nll)) // BLOCK_TOKENS
    frame = pd.DataFrame({"block": index, "nll": nll, "reference": reference, "own_exact": own_exact})
    out = frame.groupby("block").agg(tokens=("nll", "size"), nll=("nll", "sum"), reference=("reference", "sum"))
    out["own_exact"] = frame.groupby("block")["own_exact"].sum()
    return out.reset_index()


def load(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.exists() else pd.DataFrame()


def done_cells(steps: int | None) -> set[tuple]:
    """Cells finished at this training budget (``steps``; None: the --quick budget, any)."""
    rows = load(CSV)
    if rows.empty:
        return set()
    if steps is not None:
        rows = rows[rows["train_steps"] == steps]
    return {(int(r.q), r.training, r.mitigation) for r in rows.itertuples()}


def save_cell(row: dict, blocks: pd.DataFrame) -> None:
    """Append one finished cell to mitigation.csv and mitigation_blocks.csv (replacing an earlier version)."""
    key = (row["q"], row["training"], row["mitigation"])
    for path, frame in ((CSV, pd.DataFrame([row])), (BLOCKS, blocks.assign(**dict(zip(KEY, key))))):
        old = load(path)
        if not old.empty:
            old = old[[tuple(k) != key for k in old[KEY].astype({"q": int}).itertuples(index=False)]]
        write_text_atomic(path, pd.concat([old, frame], ignore_index=True).to_csv(index=False))


def sweep(args, command: str) -> None:
    from qadapt.experiments.wikitext_ppl import TOKENS_FILE

    finished = done_cells(None if args.quick else args.steps)
    for q in args.qubits:
        reference = None
        for training in TRAININGS:
            cells = [(q, training, m) for m in MITIGATIONS]
            if all(c in finished for c in cells):
                continue
            t0 = time.perf_counter()
            trained = train(q, training, args.tokens)
            train_s = time.perf_counter() - t0
            per_circuit, per_cal_shot = qpu_seconds(trained["run_dir"], 8192)
            for cell in cells:
                if cell in finished:
                    continue
                t1 = time.perf_counter()
                row = evaluate(trained["run_dir"], cell[2], args.tokens)
                eval_s = time.perf_counter() - t1
                tokens = np.load(Path(row["run_dir"]) / TOKENS_FILE)
                if training == "exact":
                    reference = tokens["exact_nll"]
                elif reference is None:  # the exactly trained adapter's exact scores, from an earlier invocation
                    reference = exact_reference(q, args.tokens)
                circuits, cal_circuits = int(row["device_circuits"]), int(row["device_calibration_circuits"])
                cal_shots = int(row["device_calibration_shots"])
                save_cell(
                    {
                        "q": q,
                        "training": training,
                        "mitigation": cell[2],
                        "train_run_dir": trained["run_dir"],
                        "eval_run_dir": row["run_dir"],
                        "train_commit": trained["git_commit"],
                        "eval_commit": row["git_commit"],
                        "tokens_scored": int(row["tokens_scored"]),
                        "own_exact_ppl": float(row["exact_perplexity"]),
                        "fakefez_ppl": float(row["perplexity"]),
                        "own_degradation_pct": float(row["device_degradation_pct"]),
                        "train_noise_depolarising": trained.get("train_noise_depolarising"),
                        "train_noise_tv": trained.get("train_noise_tv"),
                        "train_noise_tv_exact": trained.get("train_noise_tv_exact"),
                        "circuits": circuits,
                        "calibration_circuits": cal_circuits,
                        "shots": circuits * 8192 + cal_shots,
                        "qpu_seconds": circuits * per_circuit + cal_shots * per_cal_shot,
                        "qpu_seconds_per_circuit": per_circuit,
                        "device_desc": row["device_desc"],
                        "train_steps": int(trained["train_steps"]),
                        "train_seconds": round(train_s, 1),
                        "eval_seconds": round(eval_s, 1),
                        "machine": row["machine"],
                        "command": command,
                    },
                    blocks_of(tokens["nll"], reference, tokens["exact_nll"]),
                )
                print(f"q={q} {training} {cell[2]}: FakeFez {row['perplexity']:.4f}", flush=True)
                train_s = 0.0  # counted once per training


def exact_reference(q: int, tokens: int) -> np.ndarray:
    """Per-token exact NLL of the exactly trained adapter at q (its evaluation run directory, else rerun)."""
    from qadapt.experiments.wikitext_ppl import TOKENS_FILE

    row = evaluate(train(q, "exact", tokens)["run_dir"], "none", tokens)
    return np.load(Path(row["run_dir"]) / TOKENS_FILE)["exact_nll"]


def summarise(rows: pd.DataFrame, blocks: pd.DataFrame) -> pd.DataFrame:
    """Per cell: degradation against the exactly trained adapter's exact perplexity, its interval, and the paired
    change against the exactly trained, unmitigated cell of the same q."""
    out = []
    for r in rows.sort_values(KEY).itertuples():
        b = blocks[(blocks.q == r.q) & (blocks.training == r.training) & (blocks.mitigation == r.mitigation)]
        b = b.sort_values("block")
        diff = ratio_interval(b["nll"].to_numpy() - b["reference"].to_numpy(), b["tokens"].to_numpy())
        own = ratio_interval(b["nll"].to_numpy() - b["own_exact"].to_numpy(), b["tokens"].to_numpy())
        base = blocks[(blocks.q == r.q) & (blocks.training == "exact") & (blocks.mitigation == "none")]
        base = base.sort_values("block")
        change = None
        if len(base) == len(b) and not (r.training == "exact" and r.mitigation == "none"):
            change = ratio_interval(b["nll"].to_numpy() - base["nll"].to_numpy(), b["tokens"].to_numpy())
        pct = lambda v: 100 * (np.exp(v) - 1)  # noqa: E731 (mean NLL difference -> perplexity ratio, %)
        out.append(
            {
                **r._asdict(),
                "reference_ppl": float(np.exp(b["reference"].sum() / b["tokens"].sum())),
                "degradation_pct": pct(diff.estimate),
                "degradation_low": pct(diff.low),
                "degradation_high": pct(diff.high),
                "own_degradation_low": pct(own.low),
                "own_degradation_high": pct(own.high),
                "change_pct": None if change is None else pct(change.estimate),
                "change_low": None if change is None else pct(change.low),
                "change_high": None if change is None else pct(change.high),
                "change_excludes_zero": None if change is None else change.excludes(0.0),
            }
        )
    return pd.DataFrame(out).drop(columns=["Index"])


def train_lr(row: pd.Series) -> float:
    """The learning rate a cell's training run used, from its row in results/runs.csv (the cell rows do not keep it).

    Raises:
        QadaptError: the training run has no row there.
    """
    import json

    from qadapt.errors import QadaptError
    from qadapt.results import load_rows

    rows = load_rows(CSV.parent)
    mine = rows[(rows["run_dir"].astype(str) == str(row["train_run_dir"])) & (rows["command"] == "train")]
    if mine.empty:
        raise QadaptError(f"{row['train_run_dir']} has no training row in {CSV.parent}/runs.csv")
    return float(json.loads(mine["config"].iloc[-1])["train"]["lr"])


def plot(table: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for (training, mitigation), g in table.groupby(["training", "mitigation"], sort=False):
        g = g.sort_values("q")
        err = [g["degradation_pct"] - g["degradation_low"], g["degradation_high"] - g["degradation_pct"]]
        ax.errorbar(g["q"], g["degradation_pct"], yerr=err, marker="o", capsize=3, label=f"{training}, {mitigation}")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xlabel("qubits per block q")
    ax.set_ylabel("perplexity degradation vs exact (%)")
    ax.set_xticks(sorted(table["q"].unique()))
    ax.set_title(f"CUA on SmolLM2-135M on {BACKEND}: training x mitigation (95 % intervals)", fontsize=9)
    ax.legend(fontsize=8, title="training, mitigation", title_fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, PNG)


def render() -> None:
    rows, blocks = load(CSV), load(BLOCKS)
    if rows.empty:
        raise SystemExit("no finished cells: run `python scripts/reproduce_mitigation.py` first")
    table = summarise(rows, blocks)
    plot(table)
    first = table.iloc[0]
    level = int(CONFIDENCE * 100)
    lines = [
        f"# Error mitigation and noise-aware training on {BACKEND}: CUA on SmolLM2-135M",
        "",
        f"Command: `{first['command']}` (`make reproduce-mitigation`)  ",
        f"Commits: training `{', '.join(sorted(set(table['train_commit'])))}`, evaluation "
        f"`{', '.join(sorted(set(table['eval_commit'])))}` · written {dt.date.today()} · machine: {first['machine']}  ",
        f"Tokens: the first {int(first['tokens_scored']):,} scored tokens of WikiText-2 test, as the noise sweep "
        "([noise_expressivity.md](noise_expressivity.md)), sliding windows of 2,048, every scored position's circuits "
        "on the device; 8,192 shots per circuit. Training: `qadapt train` defaults (v_proj input side, last 6 "
        f"layers, {int(first['train_steps'])} steps x 8 x 256 tokens, learning rate {train_lr(first):g}: "
        "`train.lr`'s default in configs/train/default.yaml, fixed, not selected), exactly or through "
        f"{BACKEND}'s noise model "
        "(`train.noise`). Training and evaluation time: "
        f"{(table['train_seconds'].sum() + table['eval_seconds'].sum()) / 60:.0f} min on this machine (the noise "
        "models' fits and the QPU-time compilations come on top; `make reproduce-mitigation` took 77 min in all on "
        "2 cores). "
        "Degradation: FakeFez perplexity against the exactly trained adapter scored exactly on the same tokens (what a "
        "user gets against the noiseless ideal); 'vs own exact': against the same adapter scored exactly (how much "
        "of that adapter the noise takes). One training seed per row: the intervals cover the tokens, not training; "
        "the two trained adapters' own exact perplexities differ by training alone. "
        f"{level} % interval: percentile bootstrap over blocks of {BLOCK_TOKENS} consecutive tokens "
        "(scipy.stats.bootstrap, ratio of block sums). Change: paired against 'trained exactly, no mitigation' on "
        "the same blocks.",
        "",
        "| q | training | mitigation | exact ppl (own) | FakeFez ppl | vs own exact, % [95 % CI] | degradation % "
        "[95 % CI] | FakeFez ppl vs plain, % [95 % CI] | circuits | shots | QPU h |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        change = "–" if pd.isna(r.change_pct) else f"{r.change_pct:+.2f} [{r.change_low:+.2f}, {r.change_high:+.2f}]"
        lines.append(
            f"| {r.q} | {r.training} | {r.mitigation} | {r.own_exact_ppl:.4f} | {r.fakefez_ppl:.4f} | "
            f"{r.own_degradation_pct:+.2f} [{r.own_degradation_low:+.2f}, {r.own_degradation_high:+.2f}] | "
            f"{r.degradation_pct:+.2f} [{r.degradation_low:+.2f}, {r.degradation_high:+.2f}] | {change} | "
            f"{r.circuits + r.calibration_circuits:,} | {r.shots:,} | {r.qpu_seconds / 3600:,.1f} |"
        )
    lines += ["", "![degradation vs q](mitigation.png)", "", "## Reading it", ""]
    lines += reading(table)
    lines += [
        "",
        "## How",
        "",
        "- Readout mitigation (`device.mitigation=readout`, qadapt/devices/mitigation.py): the measured qubits' "
        "assignment matrices calibrated once per evaluation by mthree (balanced method, 2 x 8,192 shots) on an Aer "
        f"simulator with {BACKEND}'s target and the very noise model the device samples with; counts corrected by "
        "the inverse tensored assignment matrix of each block's qubits and projected to the nearest probability "
        "distribution (Smolin, Gambetta and Smith 2012), as mthree's `apply_correction` does per circuit.",
        "- Noise-aware training (`train.noise=FakeFez`, qadapt/devices/noise_surrogate.py): CUA trained through "
        "p = A[(1 - lambda)|U x|^2 + lambda / b], a depolarising channel and the readout assignment matrix, fitted "
        "to the fused engine's distributions on FakeFez-compiled random blocks; how close it is to the fused engine "
        "(mean total-variation distance on held-out blocks and inputs, beside the noiseless distribution's): "
        + "; ".join(
            f"q = {int(r.q)}: lambda {r.train_noise_depolarising:.3f}, TV {r.train_noise_tv:.4f} vs "
            f"{r.train_noise_tv_exact:.4f}"
            for r in table[(table.training == "noise-aware") & (table.mitigation == "none")].itertuples()
        )
        + ".",
        f"- QPU cost: token circuits ({int(first['tokens_scored']):,} tokens x blocks per token) and, with readout "
        "mitigation, the calibration "
        f"circuits; QPU seconds = circuits x 8,192 x (token circuit duration + {BACKEND}'s 250 us repetition delay) + "
        "calibration shots x (measurement + repetition delay), without the runtime's per-job overhead. Dynamical "
        "decoupling and twirling are not in this table: Aer and the fused engine do not apply them (device=ibm only).",
        "",
        "Numbers: `results/mitigation.csv` (one row per cell), `results/mitigation_blocks.csv` (per-block sums the "
        "intervals resample), `results/mitigation_table.csv` (this table with its intervals); every evaluation is also "
        "a row of `results/runs.csv`.",
    ]
    write_text_atomic(OUT, "\n".join(lines) + "\n")
    write_text_atomic(CSV.with_name("mitigation_table.csv"), table.to_csv(index=False))
    print(f"wrote {OUT}")


def reading(table: pd.DataFrame) -> list[str]:
    """Sentences the intervals support: per q, which combination lowers the degradation and by how much."""
    out = []
    for q, g in table.groupby("q"):
        plain = g[(g.training == "exact") & (g.mitigation == "none")].iloc[0]
        parts = []
        for r in g.itertuples():
            if r.training == "exact" and r.mitigation == "none":
                continue
            mitigated = "readout mitigation" if r.mitigation == "readout" else "no mitigation"
            what = f"{r.training} training, {mitigated}"
            if r.change_excludes_zero:
                verb = "lowers" if r.change_pct < 0 else "raises"
                parts.append(
                    f"{what} {verb} it to {r.degradation_pct:+.2f} % (FakeFez perplexity {r.change_pct:+.2f} % "
                    f"[{r.change_low:+.2f}, {r.change_high:+.2f}] against plain)"
                )
            else:
                parts.append(f"{what}: {r.degradation_pct:+.2f} %, indistinguishable from it at this budget")
        out.append(f"- q = {q}: plain FakeFez degradation {plain.degradation_pct:+.2f} %; " + "; ".join(parts) + ".")
    # the transition: the first q whose whole interval lies above TRANSITION_PCT, per combination
    moves = []
    for (training, mitigation), g in table.groupby(["training", "mitigation"], sort=False):
        above = g[g["degradation_low"] > TRANSITION_PCT].sort_values("q")
        moves.append(
            f"{training} training, {'readout' if mitigation == 'readout' else 'no'} mitigation: "
            + (f"q = {int(above['q'].iloc[0])}" if len(above) else f"none of q = {', '.join(map(str, g['q']))}")
        )
    out.append(
        f"- The transition (the first q whose degradation interval lies wholly above {TRANSITION_PCT:g} %): "
        + "; ".join(moves)
        + "."
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qubits", default="2,3,4", help="qubits per block to sweep, comma-separated")
    parser.add_argument("--tokens", type=int, default=8192, help="WikiText-2 test tokens every figure covers")
    parser.add_argument("--render-only", action="store_true", help="render results/ without running anything")
    parser.add_argument("--out-dir", default=None, help="write the tables, runs and rows here instead (checks)")
    parser.add_argument("--quick", action="store_true", help="pipeline check: 2 training steps, few tokens")
    parser.add_argument("--steps", type=int, default=STEPS, help="training steps (the noise sweep's: 60)")
    args = parser.parse_args()
    TRAIN.append(f"train.max_steps={args.steps}")
    args.qubits = [int(q) for q in args.qubits.split(",")]
    if args.out_dir:  # everything this invocation writes goes under out_dir (a check must not touch results/)
        global OUT, CSV, BLOCKS, PNG
        out = Path(args.out_dir)
        OUT, CSV, BLOCKS, PNG = (out / p.name for p in (OUT, CSV, BLOCKS, PNG))
        BASE.extend([f"results_dir={out}", f"runs_dir={out / 'runs'}"])
    if args.quick:
        TRAIN[:] = QUICK
    if not args.render_only:
        sweep(args, "python scripts/reproduce_mitigation.py " + " ".join(sys.argv[1:]))
    render()


if __name__ == "__main__":
    main()
