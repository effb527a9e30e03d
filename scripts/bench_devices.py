#!/usr/bin/env python
"""results/bench_devices.md: tokens/s of one CUA site evaluated on every device, all in one run.

The site is v_proj of SmolLM2-135M's last layer (input side, width 576, q = 2: 144 blocks, so 144 circuits
per token). Its inputs are the real hidden states of the first WikiText-2 test tokens; the block unitaries
come from a trained run (--from-run) or from seeded random generators. Each device's tokens/s is the median
of --repeats timed calls (1 for the slow Qiskit devices); the error column is the largest deviation from
the exact output. Each device first runs one token (compiling and, for the fused engine, fusing every block
circuit once: the setup column), then the timed calls. Not a test: numbers depend on the machine, which is
described in the output.

    python scripts/bench_devices.py [--from-run runs/<dir>] [--tokens 256] [--qiskit-tokens 16]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from pathlib import Path

import pandas as pd

from qadapt.adapters.cua import run_blocks
from qadapt.benchmarks import block_circuit, machine, site_inputs
from qadapt.config import compose
from qadapt.devices import get
from qadapt.results import write_text_atomic
from qadapt.runs import git_commit

ROOT = Path(__file__).resolve().parents[1]

DEVICES = [  # (label, overrides, uses qiskit)
    ("exact", ["device=exact"], False),
    ("exact, 8192 shots", ["device=exact", "device.shots=8192"], False),
    ("default.qubit", ["device=default_qubit"], False),
    ("default.qubit, 8192 shots", ["device=default_qubit", "device.shots=8192"], False),
    ("lightning.qubit", ["device=lightning_qubit"], False),
    ("ibm_fake FakeFez ideal, 8192 shots, fused engine", ["device=ibm_fake", "device.noise=false"], False),
    ("ibm_fake FakeFez noisy, 8192 shots, fused engine", ["device=ibm_fake"], False),
    ("ibm_fake FakeFez ideal, 8192 shots, Aer", ["device=ibm_fake", "device.noise=false", "device.engine=aer"], True),
    ("ibm_fake FakeFez noisy, 8192 shots, Aer", ["device=ibm_fake", "device.engine=aer"], True),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--from-run")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--qiskit-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--render-only", action="store_true", help="rewrite the table from results/bench_devices.csv")
    args = parser.parse_args()
    if args.render_only:
        raw = pd.read_csv(CSV)
        header = {k.removeprefix("run_"): raw[k].iloc[0] for k in raw.columns if k.startswith("run_")}
        render(raw, header)
        return
    x_all = site_inputs(args.tokens)
    circuit, source = block_circuit(args.from_run)
    rows = []
    for label, overrides, slow in DEVICES:
        x = x_all[: args.qiskit_tokens] if slow else x_all
        device = get(compose(overrides).device)
        reference = run_blocks(get(compose([]).device), circuit, x)
        start = time.perf_counter()
        run_blocks(device, circuit, x[:1])
        setup = time.perf_counter() - start
        times = []
        for _ in range(1 if slow else args.repeats):
            start = time.perf_counter()
            out = run_blocks(device, circuit, x)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        rows.append(
            (
                label,
                x.shape[0],
                x.shape[0] * circuit.n_blocks,
                setup,
                seconds,
                x.shape[0] / seconds,
                float((out - reference).abs().max() / reference.abs().max()),
            )
        )
        print(f"{label}: {x.shape[0] / seconds:.1f} tokens/s", flush=True)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    header = {
        "command": f"python scripts/bench_devices.py{' --from-run ' + args.from_run if args.from_run else ''} --tokens "
        f"{args.tokens} --qiskit-tokens {args.qiskit_tokens} --repeats {args.repeats}",
        "commit": git_commit(),
        "date": str(dt.date.today()),
        "machine": machine(),
        "source": source,
        "repeats": args.repeats,
    }
    frame.assign(**{f"run_{k}": v for k, v in header.items()}).to_csv(CSV, index=False)
    render(frame, header)


COLUMNS = ("device", "tokens", "circuits", "setup_seconds", "seconds", "tokens_per_s", "max_rel_error")
CSV = ROOT / "results" / "bench_devices.csv"


def render(frame: pd.DataFrame, header: dict) -> None:
    """results/bench_devices.md from the measured rows (``frame``, :data:`COLUMNS`) and the run's ``header``."""
    rows = list(frame[list(COLUMNS)].itertuples(index=False, name=None))
    repeats = int(header["repeats"])
    base = rows[0][5]
    lines = [
        "# Device benchmark: one CUA site, tokens/s",
        "",
        f"Command: `{header['command']}`  ",
        f"Commit: `{header['commit']}` · {header['date']} · machine: {header['machine']}  ",
        f"Site: SmolLM2-135M-Instruct layer 29 v_proj input (width 576), q = 2: 144 blocks = 144 circuits per token; "
        f"inputs: real hidden states of the first WikiText-2 test tokens; unitaries: {header['source']}.",
        "",
        "| device | tokens | circuits | setup (s) | seconds | tokens/s | vs exact | max rel. error vs exact |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, tokens, circuits, setup, seconds, tps, err in rows:
        lines.append(
            f"| {label} | {tokens} | {circuits:,} | {setup:.2f} | {seconds:.4f} | {tps:,.1f} | {tps / base:.2e}x | "
            f"{err:.2e} |"
        )
    fused = next(r for r in rows if r[0].startswith("ibm_fake FakeFez noisy") and "fused" in r[0])
    aer = next(r for r in rows if r[0].startswith("ibm_fake FakeFez noisy") and "Aer" in r[0])
    lines += [
        "",
        f"Median of {repeats} timed calls ({'one call' if repeats > 1 else 'one'} for Aer). Setup: the "
        "one-token first call, which compiles (and fuses) every block circuit once for all later tokens. Errors of the "
        "shot-based rows are sampling noise (and, for the noisy rows, FakeFez's noise model).",
        f"The fused engine samples the same FakeFez noise model {fused[5] / aer[5]:,.0f}x faster than Aer's noisy "
        "sampler here.",
    ]
    out = ROOT / "results" / "bench_devices.md"
    write_text_atomic(out, "\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
