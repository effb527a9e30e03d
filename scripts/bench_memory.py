#!/usr/bin/env python
"""results/bench_memory.md (+ .csv): peak resident memory of the main job, train then evaluate with the activation
cache, at two lengths of evaluated text.

Each row runs `make run`'s command (``qadapt train model=smollm2_135m adapter=cua device=exact task=wikitext_ppl
seed=0``) in a fresh process on the first ``--tokens`` tokens of WikiText-2 test (``task.max_tokens``), with
``--steps`` training steps (the training step's memory is the same at every step; the budget does not change the
peak), into a temporary results and runs directory (nothing is added to results/runs.csv). Peak RSS is read twice:
the row's ``peak_rss_mb`` (the process's VmHWM) and the kernel's ``ru_maxrss`` of that child (what ``/usr/bin/time``
reports). Beside each: ``perplexity.cache_size_gib``'s prediction of the evaluation cache on the same windows.

Targets (issue 41): the longest row's peak <= 4 GB (4e9 bytes: the main job on a 16 GB laptop with room to spare);
from the shortest to the longest row the peak grows by at most 1.5x the predicted growth of the cache: memory
that grows with the text beyond the cache is what made `make run` peak at 16 GB at 776ff37. Not a test: figures
depend on the machine, recorded in the output.

    python scripts/bench_memory.py [--tokens 16384 65536] [--steps 4]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from qadapt.benchmarks import machine
from qadapt.config import compose
from qadapt.data.wikitext import load_eval_text
from qadapt.eval import perplexity
from qadapt.experiments.wikitext_ppl import eval_set
from qadapt.models import load
from qadapt.results import write_text_atomic
from qadapt.runs import git_commit

ROOT = Path(__file__).resolve().parents[1]
MAIN_JOB = ["model=smollm2_135m", "adapter=cua", "device=exact", "task=wikitext_ppl", "seed=0"]
PEAK_LIMIT_BYTES = 4e9
GROWTH_LIMIT = 1.5


def predicted_cache_gib(tokens: int) -> float:
    """``perplexity.cache_size_gib`` of the main job's evaluation windows on the first ``tokens`` tokens."""
    cfg = compose([*MAIN_JOB, f"task.max_tokens={tokens}"])
    loaded = load(cfg.model)
    windows = eval_set(cfg, loaded.tokenizer, load_eval_text(cfg.data_dir, cfg.task.split))
    return perplexity.cache_size_gib(windows, loaded.model.config.hidden_size, int(cfg.task.batch_size))


def measure(tokens: int, steps: int, scratch: Path) -> dict:
    """One fresh ``qadapt train`` of the main job on ``tokens`` tokens: its row's peak and the kernel's."""
    results, runs = scratch / f"results-{tokens}", scratch / f"runs-{tokens}"
    command = [
        str(Path(sys.executable).with_name("qadapt")),
        "train",
        *MAIN_JOB,
        f"task.max_tokens={tokens}",
        f"train.max_steps={steps}",
        f"results_dir={results}",
        f"runs_dir={runs}",
    ]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    stderr = child.stderr.read()
    if child.returncode:
        raise SystemExit(f"{' '.join(command)} failed (exit {child.returncode}):\n{stderr[-3000:]}")
    row = pd.read_csv(results / "runs.csv").iloc[-1]
    return {
        "tokens": int(row["tokens_scored"]),
        "steps": steps,
        "peak_rss_mb": float(row["peak_rss_mb"]),
        "maxrss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
        "base_peak_rss_mb": float(row["base_peak_rss_mb"]) if "base_peak_rss_mb" in row else float("nan"),
        "cache_gib": predicted_cache_gib(tokens),
        "cache_storage": row.get("activation_cache_storage", ""),
        "seconds": time.perf_counter() - start,
    }


def render(frame: pd.DataFrame, header: dict) -> str:
    first, last = frame.iloc[0], frame.iloc[-1]
    peak = max(last["peak_rss_mb"], last["maxrss_mb"])
    growth = max(last["peak_rss_mb"] - first["peak_rss_mb"], last["maxrss_mb"] - first["maxrss_mb"])
    cache_growth = (last["cache_gib"] - first["cache_gib"]) * 1024
    allowed = GROWTH_LIMIT * cache_growth
    lines = [
        "# Peak memory of the main job (train, then evaluate with the activation cache)",
        "",
        f"Command: `{header['command']}` (`make bench`), {header['minutes']:.1f} min  ",
        f"Commit: `{header['commit']}` · {header['date']} · machine: {header['machine']}  ",
        f"Each row: `qadapt train {' '.join(MAIN_JOB)} task.max_tokens=<tokens> train.max_steps=<steps>` (`make run`'s "
        "command on the first tokens of WikiText-2 test) in a fresh process.",
        "",
        "| tokens evaluated | training steps | peak RSS, row (MiB) | peak RSS, kernel (MiB) | base evaluation's peak "
        "(MiB) | cache predicted (MiB) | cache lived in | wall (s) |",
        "|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for _, r in frame.iterrows():
        lines.append(
            f"| {r['tokens']:,} | {r['steps']} | {r['peak_rss_mb']:,.0f} | {r['maxrss_mb']:,.0f} | "
            f"{r['base_peak_rss_mb']:,.0f} | {r['cache_gib'] * 1024:,.0f} | {r['cache_storage']} | {r['seconds']:.0f} |"
        )
    lines += [
        "",
        "Peak RSS, row: the row's `peak_rss_mb` (VmHWM); kernel: the child's `ru_maxrss` (what `/usr/bin/time` "
        "reports). Cache predicted: `perplexity.cache_size_gib` on the same windows (the evaluation cache reserves "
        "exactly that: qadapt/cache.py).",
        "",
        "Targets:",
        "",
        f"- peak at {last['tokens']:,} tokens: {peak:,.0f} MiB ({peak * 2**20 / 1e9:.2f} GB), target <= 4 GB: "
        f"**{'met' if peak * 2**20 <= PEAK_LIMIT_BYTES else 'not met'}**",
        f"- growth of the peak from {first['tokens']:,} to {last['tokens']:,} tokens: {growth:+,.0f} MiB against "
        f"{cache_growth:,.0f} MiB more cache predicted, target <= {GROWTH_LIMIT}x that ({allowed:,.0f} MiB): "
        f"**{'met' if growth <= allowed else 'not met'}**",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="+", default=[16384, 65536], help="evaluated tokens per row")
    parser.add_argument("--steps", type=int, default=4, help="training steps per row")
    parser.add_argument("--out-dir", default=str(ROOT / "results"))
    args = parser.parse_args()
    if len(args.tokens) < 2:
        parser.error("--tokens takes at least two lengths (the growth between them is a target)")
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="qadapt-bench-memory-") as scratch:
        for tokens in sorted(args.tokens):
            rows.append(measure(tokens, args.steps, Path(scratch)))
            print(json.dumps(rows[-1]), flush=True)
    frame = pd.DataFrame(rows)
    header = {
        "command": f"python scripts/bench_memory.py --tokens {' '.join(map(str, sorted(args.tokens)))} "
        f"--steps {args.steps}",
        "commit": git_commit(),
        "date": str(dt.date.today()),
        "machine": machine(),
        "minutes": (time.perf_counter() - start) / 60,
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "bench_memory.csv", frame.assign(**header).to_csv(index=False))
    write_text_atomic(out / "bench_memory.md", render(frame, header))
    print(f"wrote {out / 'bench_memory.md'}")


if __name__ == "__main__":
    main()
