#!/usr/bin/env python
"""results/bench_heap.md (+ bench_heap.csv): a whole-model training step of SmolLM2-135M with glibc's default heap
against the heap that keeps freed large tensors (``qadapt.process.keep_freed_memory``, on in whole-model training:
``train.trainable=all``, qadapt/training/lm.py).

The step is the QFFN paper's protocol (``train=paper``: every weight trained, AdamW, batch 8 x 128 tokens of
WikiText-2 training text), run by qadapt's own ``fit``. Rounds alternate the two settings in one process (default,
kept, default, kept, ...; the setting is switched with mallopt and the held memory returned with malloc_trim), so
drift hits both alike. Each round: ``--steps`` timed steps after one untimed first step (it allocates AdamW's
state); its figure is the median step. The ratio default / kept is taken within each round, then the median over
rounds, with its range. Peak resident memory is reset before each round (/proc/self/clear_refs) and read after it.

    python scripts/bench_heap.py [--rounds 3] [--steps 4] [--threads N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qadapt.benchmarks import machine  # noqa: E402
from qadapt.config import compose  # noqa: E402
from qadapt.data.wikitext import load_train_text  # noqa: E402
from qadapt.models import load  # noqa: E402
from qadapt.process import keep_freed_memory, peak_rss_mb  # noqa: E402
from qadapt.results.store import write_text_atomic  # noqa: E402
from qadapt.runs import git_commit  # noqa: E402
from qadapt.training.lm import chunk_tokens, fit, set_trainable  # noqa: E402

SETTINGS = {"glibc default": False, "freed memory kept": True}


def reset_peak_rss() -> None:
    """Start a new high-water mark for :func:`peak_rss_mb` (Linux: writing 5 to clear_refs resets VmHWM)."""
    Path("/proc/self/clear_refs").write_text("5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round, after one untimed first step")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out-dir", default=str(ROOT / "results"))
    args = parser.parse_args()
    if not keep_freed_memory(False):
        raise SystemExit("bench_heap: needs glibc (Linux); this C library has no mallopt to switch")
    if args.threads:
        torch.set_num_threads(args.threads)
    commit = git_commit()  # read now: the tree may change while the benchmark runs
    started = dt.datetime.now(dt.UTC)
    cfg = compose(
        ["adapter=none", "train=paper", f"train.max_steps={1 + args.steps}", "train.warmup_steps=0"]
        + ["train.save_every=100000"]
    )
    loaded = load(cfg.model)
    model, tokenizer = loaded.model, loaded.tokenizer
    set_trainable(model, cfg.train)
    model.train()
    text = load_train_text(cfg.data_dir, str(cfg.train.text), str(cfg.train.unk), float(cfg.train.valid_holdout))
    ids = tokenizer(text.text[:200_000], add_special_tokens=False).input_ids
    chunks = chunk_tokens(ids, int(cfg.train.seq_len))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for label, kept in SETTINGS.items():
                keep_freed_memory(kept)
                reset_peak_rss()
                result = fit(model, chunks, cfg.train, Path(tmp), seed=r, resume=False)
                seconds = statistics.median(result.step_seconds[1:])
                rows.append(
                    {
                        "round": r,
                        "setting": label,
                        "seconds_per_step": seconds,
                        "first_step_seconds": result.step_seconds[0],
                        "peak_rss_mb": peak_rss_mb(),
                    }
                )
                print(
                    f"round {r}, {label}: {seconds:.3f} s per step, peak {rows[-1]['peak_rss_mb']:,.0f} MiB", flush=True
                )
    keep_freed_memory(True)
    frame = pd.DataFrame(rows)
    wide = frame.pivot(index="round", columns="setting", values="seconds_per_step")
    ratios = wide["glibc default"] / wide["freed memory kept"]
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame.assign(git_commit=commit).to_csv(out / "bench_heap.csv", index=False)
    summary = frame.groupby("setting", sort=False).agg(
        seconds=("seconds_per_step", "median"),
        low=("seconds_per_step", "min"),
        high=("seconds_per_step", "max"),
        first=("first_step_seconds", "median"),
        peak=("peak_rss_mb", "max"),
    )
    lines = [
        "# Training step: glibc's default heap vs freed large tensors kept",
        "",
        f"Command: `python scripts/bench_heap.py {' '.join(sys.argv[1:])}`".rstrip() + "  ",
        f"Commit: `{commit}` · written {started:%Y-%m-%d %H:%M} UTC  ",
        f"Machine: {machine()}  ",
        f"Step: SmolLM2-135M, every weight trained (train=paper: AdamW, batch {int(cfg.train.batch_size)} x "
        f"{int(cfg.train.seq_len)} tokens of {text.source}), qadapt's `fit`; {args.rounds} rounds alternating the two "
        f"settings in one process, each the median of {args.steps} steps after an untimed first step.",
        "",
        "| heap | s per step (median over rounds) | range | first step (s) | peak resident (MiB) |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {label} | {s.seconds:.2f} | {s.low:.2f}-{s.high:.2f} | {s.first:.2f} | {s.peak:,.0f} |"
            for label, s in summary.iterrows()
        ),
        "",
        f"Ratio default / kept, within each round: median **{ratios.median():.2f}x** "
        f"(rounds: {' / '.join(f'{v:.2f}' for v in ratios)}).",
        "",
    ]
    write_text_atomic(out / "bench_heap.md", "\n".join(lines))
    print(f"wrote {out / 'bench_heap.md'}")


if __name__ == "__main__":
    main()
