#!/usr/bin/env python
"""results/qffn_speed.csv: forward tokens/s of the QFFN tables' models, in interleaved rounds in one process, the
speed columns of results/table1.md and table2.md (their hook reads this file).

Rows: the base SmolLM2-135M, the classical rows of Table 1 (low-rank FFNs, the Distilled baseline) and QFFN at each
fraction of Table 2, one trained run each: the lowest seed whose run directory is on this machine (speed depends on
the architecture, not on the trained values), trained again under its study's protocol where none is. Each round
scores every model on the same test tokens in turn (base, row, row, ...); a row's speed is its tokens/s over the
base's in the same round, so the machine's drift cancels. The fused simulator on ``--tokens`` tokens (round 0 warms
up and is dropped), PennyLane lightning.qubit on the first ``--tokens-pennylane`` (one circuit per token and per
(query, key) pair of a quantum head), lightning.gpu where CUDA is.

    python scripts/bench_qffn_speed.py [--tokens 2048] [--rounds 5] [--tokens-pennylane 16] [--rounds-pennylane 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import pandas as pd
import torch
from omegaconf import OmegaConf

from qadapt import adapters, devices, models, runs
from qadapt.benchmarks import machine
from qadapt.config import compose
from qadapt.data.wikitext import load_eval_text
from qadapt.eval import perplexity
from qadapt.eval.windows import build_eval_set
from qadapt.experiments import run_or_reuse
from qadapt.results import write_text_atomic
from qadapt.studies import spec

ROOT = Path(__file__).resolve().parents[1]
# (study, arm) -> the (method, fraction) the speed file names it by (the tables' hook reads those)
ROWS = {
    ("table1", "ffn_lowrank"): ("ffn_lowrank", "half"),
    ("table1", "ffn_pruned"): ("ffn_pruned", "half"),
    ("table2", "qffn_quarter"): ("qffn_both", "quarter"),
    ("table2", "qffn_half"): ("qffn_both", "half"),
    ("table2", "qffn_full"): ("qffn_both", "full"),
}


def trained_run(study_name: str, arm: str, results: Path) -> tuple[str, int] | None:
    """(run directory, seed) of the arm's lowest-seed final run on this machine, trained again under the study's
    protocol where none is here; None where the study has no finished cell of the arm."""
    study = spec.load(study_name)
    path = results / f"{study.name}_cells.csv"
    if not path.exists():
        return None
    cells = pd.read_csv(path)
    mine = cells[(cells["arm"] == arm) & (cells["phase"] == "test") & cells["done"].fillna(False).astype(bool)]
    if mine.empty:
        return None
    mine = mine.sort_values("seed")
    here = mine[[Path(str(d)).is_dir() for d in mine["run_dir"]]]
    if len(here):
        return str(here.iloc[0]["run_dir"]), int(here.iloc[0]["seed"])
    seed = int(mine.iloc[0]["seed"])
    print(f"{arm}: trained on another machine; training seed {seed} again here for its weights", flush=True)
    overrides = [*study.shared, *study.training, *study.arms[arm].overrides, f"seed={seed}"]
    return str(run_or_reuse(overrides)["run_dir"]), seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens-pennylane", type=int, default=16)
    parser.add_argument("--rounds-pennylane", type=int, default=2)
    parser.add_argument("--results-dir", default=str(ROOT / "results"))
    args = parser.parse_args()
    results = Path(args.results_dir)
    cfg = compose(spec.load("table2").shared)
    built, seeds = {}, {}
    for (study_name, arm), key in ROWS.items():
        found = trained_run(study_name, arm, results)
        if found is None:
            print(f"{arm}: no finished cell in {study_name}_cells.csv (run `qadapt study run {study_name}`): left out")
            continue
        run_dir, seeds[key] = found
        trained = runs.load_trained(run_dir, cfg.model.name)
        loaded = models.load(cfg.model)
        adapters.apply(loaded.model, trained.cfg.adapter, devices.get(cfg.device))
        trained.load_into(loaded.model)
        built[key] = loaded.model.eval().requires_grad_(False)
    base = models.load(cfg.model)
    built = {("base", "-"): base.model.eval(), **built}
    text = load_eval_text(cfg.data_dir, "test")

    def windows(tokens: int):
        task = OmegaConf.merge(cfg.task, {"max_bytes": None, "max_tokens": tokens})
        return build_eval_set(base.tokenizer, text.text, text.source, task)

    pad = runs.pad_id(base.tokenizer)
    simulators = [
        ("fused", {"name": "exact", "shots": None, "seed": 0}, windows(args.tokens), args.rounds),
        (
            "lightning_qubit",
            {"name": "lightning_qubit", "backend": "lightning.qubit", "shots": None, "seed": 0},
            windows(args.tokens_pennylane),
            args.rounds_pennylane,
        ),
    ]
    if torch.cuda.is_available():
        gpu = {"name": "lightning_gpu", "backend": "lightning.gpu", "shots": None, "seed": 0}
        simulators.append(("lightning_gpu", gpu, windows(args.tokens_pennylane), args.rounds_pennylane))
    rows = []
    for label, dev_cfg, es, rounds in simulators:
        device = devices.get(OmegaConf.create(dev_cfg))
        for model in built.values():
            adapters.set_device(model, device)
        for r in range(rounds + (1 if label == "fused" else 0)):  # fused: round 0 warms up, not kept
            for (method, fraction), model in built.items():
                if label != "fused" and method in ("ffn_lowrank", "ffn_pruned"):
                    continue  # no circuits: the same on every simulator
                m = perplexity.evaluate(model, es, 16, pad, description=f"{method} {fraction} on {label}").metrics()
                rows.append({"simulator": label, "round": r, "method": method, "fraction": fraction,
                             "tokens": es.n_scored, "tokens_per_s": m["tokens_per_s"],
                             "seed": seeds.get((method, fraction))})  # fmt: skip
    frame = pd.DataFrame(rows)
    frame = frame[(frame["simulator"] != "fused") | (frame["round"] > 0)]
    per_round = frame[frame["method"] == "base"].set_index(["simulator", "round"])["tokens_per_s"]
    frame["speed"] = [r.tokens_per_s / per_round[(r.simulator, r.round)] for r in frame.itertuples()]
    frame = frame.assign(
        steps=int(compose([*spec.load("table2").shared, *spec.load("table2").training]).train.max_steps),
        git_commit=runs.git_commit(),
        machine=machine(),
        command=" ".join(["python", *sys.argv]),
        written=str(dt.date.today()),
    )
    write_text_atomic(results / "qffn_speed.csv", frame.to_csv(index=False))
    print(f"wrote {results / 'qffn_speed.csv'}; render the tables: qadapt study render table1, table2")


if __name__ == "__main__":
    main()
