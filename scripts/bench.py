#!/usr/bin/env python
"""results/bench.md (+ bench.csv): qadapt's speed and memory on this machine, every figure from this one run.

1. Evaluation tokens/s on the same WikiText-2 test windows (the real ``qadapt eval ppl`` path,
   ``qadapt/eval/perplexity.py``): base SmolLM2-135M; + CUA (q = 2, v_proj of the last 6 layers, exact
   device); the same CUA evaluated again from the activation cache (layers below 24 kept from the base pass);
   the same CUA merged into the weights for the evaluation (``qadapt.adapters.merged``, what ``qadapt eval`` does on
   the exact device);
   + CUA on lightning.qubit (a short slice: PennyLane runs one tape per (token, block) circuit); base and CUA again
   on the same tokens in windows of ``--short-window`` (512). Rounds are interleaved (base, CUA, cached CUA, base,
   ...) so drift hits every row alike; each row is the median of ``--repeats`` rounds with the spread (max - min),
   and its ratio to base is taken within each round, then the median. QFFN's model speed is measured once, by
   ``scripts/bench_qffn_speed.py`` (results/qffn_speed.csv, read by Tables 1 and 2), not here.
2. Training step time of CUA with and without the activation cache (``train.cache_activations``): ``fit`` on
   8 chunks of 256 tokens, batch 8, so every step sees every chunk; steady-state seconds per step = the median
   of steps 2 .. 1 + k of each round (the first step, which fills the cache, is reported apart).
3. PennyLane broadcast against our simulators on the same circuits and inputs: CUA's 144 two-qubit block
   circuits of one site (default.qubit and lightning.qubit against the exact device's batched matmul), and
   QFFN's 10-qubit StronglyEntanglingLayers circuit (default.qubit against the fused simulator).
4. Peak resident memory of a whole SmolLM2 evaluation (load + the same windows), each model in a fresh process.

Targets (issue 7): CUA (exact) >= 0.97x base tokens/s (QFFN-half's, >= 1.0x base: results/table2.md);
peak memory of a SmolLM2 evaluation < 2 GB. Not a test: figures depend on the machine, described in the output.

    python scripts/bench.py [--repeats 5] [--eval-tokens 4096] [--lightning-tokens 48] [--short-window 512]
                            [--train-steps 4] [--train-repeats 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from qadapt import adapters, devices
from qadapt.adapters.cua import run_blocks
from qadapt.benchmarks import block_circuit, ffn_inputs, machine, median_seconds, pennylane_probs, site_inputs
from qadapt.cache import ActivationCache
from qadapt.config import compose
from qadapt.data.wikitext import load_eval_text
from qadapt.eval import perplexity
from qadapt.eval.windows import EvalSet, build_eval_set
from qadapt.models import load
from qadapt.process import peak_rss_mb
from qadapt.quantum.ansatz import StronglyEntanglingCircuit, amplitude_encode
from qadapt.results import write_text_atomic
from qadapt.runs import git_commit
from qadapt.training.lm import chunk_tokens, fit

ROOT = Path(__file__).resolve().parents[1]

MODELS = {  # row label -> adapter overrides
    "base SmolLM2-135M": ["adapter=none"],
    "+ CUA (exact)": ["adapter=cua"],
}
TARGETS = {"+ CUA (exact)": 0.97}
RSS_LIMIT_MB = 2000


def window_overrides(tokens: int, length: int = 2048) -> list[str]:
    return [
        f"task.max_tokens={tokens}",
        f"task.max_length={min(length, tokens)}",
        f"task.stride={min(length, tokens)}",
        "task.batch_size=2",
    ]


def build(
    overrides: list[str], eval_tokens: int, device: list[str] = (), window: int = 2048
) -> tuple[torch.nn.Module, object, EvalSet]:
    """A SmolLM2 with the adapter of ``overrides`` (random, seeded, non-identity weights) and the evaluation windows."""
    cfg = compose([*overrides, *window_overrides(eval_tokens, window), *device])
    loaded = load(cfg.model)
    model, tokenizer = loaded.model, loaded.tokenizer
    torch.manual_seed(0)  # QFFN draws its circuit angles from the global generator
    adapters.apply(model, cfg.adapter, devices.get(cfg.device))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():  # an untrained CUA is the identity; time a rotation that does something
            if p.requires_grad and cfg.adapter.name == "cua":
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.3)
    return model.eval(), tokenizer, eval_windows(tokenizer, eval_tokens, window)


def eval_windows(tokenizer, eval_tokens: int, window: int) -> EvalSet:
    """The first ``eval_tokens`` WikiText-2 test tokens in non-overlapping windows of ``window`` tokens."""
    cfg = compose(window_overrides(eval_tokens, window))
    text = load_eval_text(cfg.data_dir)
    return build_eval_set(tokenizer, text.text, text.source, cfg.task)


def evaluate(model, tokenizer, eval_set, **kw) -> tuple[float, float]:
    """(tokens/s, perplexity) of one evaluation of ``eval_set``."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    m = perplexity.evaluate(model, eval_set, 2, pad, **kw).metrics()
    return m["tokens_per_s"], m["perplexity"]


def eval_rounds(args) -> pd.DataFrame:
    built = {label: build(over, args.eval_tokens) for label, over in MODELS.items()}
    cua, tok, eval_set = built["+ CUA (exact)"]
    layer = min(adapters.adapter_layers(cua))
    cache = ActivationCache(layer)
    with adapters.adapters_disabled(cua):
        evaluate(cua, tok, eval_set, fill_cache=cache)  # the base pass of `qadapt train`, which fills the cache
    # the same tokens in shorter windows (the QFFN paper's speed setting): attention's share of the work shrinks
    short = {
        label: eval_windows(tokenizer, args.eval_tokens, args.short_window)
        for label, (_, tokenizer, _) in built.items()
    }
    rows = []
    for r in range(args.repeats + 1):  # round 0 warms up every row
        for label, (model, tokenizer, es) in built.items():
            tps, ppl = evaluate(model, tokenizer, es)
            rows.append({"round": r, "row": label, "tokens": es.n_scored, "tokens_per_s": tps, "perplexity": ppl})
            if label in short:
                tps, ppl = evaluate(model, tokenizer, short[label])
                rows.append(
                    {
                        "round": r,
                        "row": label + short_suffix(args),
                        "tokens": short[label].n_scored,
                        "tokens_per_s": tps,
                        "perplexity": ppl,
                    }
                )
            if label == "+ CUA (exact)":
                tps, ppl = evaluate(cua, tok, eval_set, use_cache=cache)
                rows.append(
                    {
                        "round": r,
                        "row": f"+ CUA (exact), repeated evaluation from the layer-{layer} cache",
                        "tokens": es.n_scored,
                        "tokens_per_s": tps,
                        "perplexity": ppl,
                    }
                )
                with adapters.merged(cua):  # what qadapt eval does on the exact device: Q folded into W
                    tps, ppl = evaluate(cua, tok, eval_set)
                rows.append(
                    {
                        "round": r,
                        "row": "+ CUA (exact), merged into the weights for evaluation",
                        "tokens": es.n_scored,
                        "tokens_per_s": tps,
                        "perplexity": ppl,
                    }
                )
        print(
            f"evaluation round {r}: "
            + ", ".join(f"{x['row'][:14]} {x['tokens_per_s']:,.0f}" for x in rows if x["round"] == r),
            flush=True,
        )
    model, tokenizer, es = build(["adapter=cua"], args.lightning_tokens, ["device=lightning_qubit"])
    tps, ppl = evaluate(model, tokenizer, es)
    rows.append(
        {
            "round": 1,
            "row": "+ CUA on lightning.qubit (PennyLane)",
            "tokens": es.n_scored,
            "tokens_per_s": tps,
            "perplexity": ppl,
        }
    )
    model, tokenizer, es = build(["adapter=none"], args.lightning_tokens)
    tps, ppl = evaluate(model, tokenizer, es)
    rows.append(
        {
            "round": 1,
            "row": "base SmolLM2-135M (lightning's slice)",
            "tokens": es.n_scored,
            "tokens_per_s": tps,
            "perplexity": ppl,
        }
    )
    frame = pd.DataFrame(rows)
    return frame[frame["round"] > 0]


def train_steps(args) -> pd.DataFrame:
    """Seconds per steady-state training step of CUA, with and without the activation cache."""
    cfg = compose(["adapter=cua"])
    loaded = load(cfg.model)
    model, tokenizer = loaded.model, loaded.tokenizer
    adapters.apply(model, cfg.adapter, devices.get(cfg.device))
    text = (Path(cfg.data_dir) / "wikitext-2" / "wiki.valid.tokens").read_text(encoding="utf-8")[:60000]
    chunks = chunk_tokens(tokenizer(text, add_special_tokens=False).input_ids, 256)[:8]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.train_repeats):
            for cache in ("false", "true"):
                train = compose(
                    [
                        "adapter=cua",
                        f"train.max_steps={1 + args.train_steps}",
                        "train.batch_size=8",
                        "train.seq_len=256",
                        "train.warmup_steps=0",
                        f"train.cache_activations={cache}",
                        "train.save_every=1000",
                    ]
                ).train
                result = fit(model, chunks, train, Path(tmp), seed=r, resume=False)
                first, rest = result.step_seconds[0], result.step_seconds[1:]
                rows.append(
                    {
                        "round": r,
                        "row": "with activation cache" if cache == "true" else "without cache",
                        "seconds_per_step": statistics.median(rest),
                        "first_step_seconds": first,
                        "cache_layer": result.cache_layer,
                    }
                )
                print(
                    f"train round {r}, cache={cache}: {statistics.median(rest):.3f} s per step "
                    f"(first step {first:.3f} s)",
                    flush=True,
                )
    return pd.DataFrame(rows)


def simulators(args) -> pd.DataFrame:
    """PennyLane broadcast against ours on the same circuits and inputs."""
    rows = []
    x = site_inputs(args.site_tokens)
    circuit, _ = block_circuit(None)
    exact = devices.get(compose([]).device)
    reference = run_blocks(exact, circuit, x)
    for label, over, tokens in (
        ("CUA site: exact device, batched matmul (ours)", ["device=exact"], args.site_tokens),
        ("CUA site: PennyLane default.qubit, broadcast", ["device=default_qubit"], args.site_tokens),
        ("CUA site: PennyLane lightning.qubit", ["device=lightning_qubit"], args.lightning_site_tokens),
    ):
        device = devices.get(compose(over).device)
        seconds, spread, out = median_seconds(
            lambda device=device, tokens=tokens: run_blocks(device, circuit, x[:tokens]),
            args.repeats if tokens > 32 else 1,
        )
        err = float((out - reference[:tokens]).abs().max())
        rows.append(
            {
                "row": label,
                "tokens": tokens,
                "circuits": tokens * circuit.n_blocks,
                "seconds": seconds,
                "spread": spread,
                "tokens_per_s": tokens / seconds,
                "max_abs_diff": err,
            }
        )
        print(f"{label}: {tokens / seconds:,.1f} tokens/s", flush=True)
    n, depth, tokens = 10, 4, args.qffn_tokens
    inputs, _ = ffn_inputs(tokens)
    weights = torch.rand(depth, n, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * (2 * torch.pi)
    states, _ = amplitude_encode(inputs.double(), n)
    seconds, spread, ref = median_seconds(
        lambda: pennylane_probs("default.qubit", n, weights.numpy(), states.numpy()), max(1, args.repeats // 2)
    )
    ref = torch.from_numpy(ref)
    rows.append(
        {
            "row": "QFFN circuit (n = 10, D = 4): PennyLane default.qubit, broadcast",
            "tokens": tokens,
            "circuits": tokens,
            "seconds": seconds,
            "spread": spread,
            "tokens_per_s": tokens / seconds,
            "max_abs_diff": 0.0,
        }
    )
    width = inputs.shape[-1]
    w32 = weights.float()
    with torch.inference_mode():
        base_circuit = StronglyEntanglingCircuit(w32)
        for label, make in (
            ("QFFN circuit: ours, fused columns + one matmul (training path)", lambda: StronglyEntanglingCircuit(w32)),
            (
                "QFFN circuit: ours, cached columns (evaluation path)",
                lambda: StronglyEntanglingCircuit(w32, base_circuit.real_columns(width)),
            ),
        ):
            circuit_q = make()
            seconds, spread, out = median_seconds(
                lambda make=make, label=label, circuit_q=circuit_q: (
                    make() if "training" in label else circuit_q
                ).probabilities(states.float()[:, :width], width),
                args.repeats,
            )
            rows.append(
                {
                    "row": label,
                    "tokens": tokens,
                    "circuits": tokens,
                    "seconds": seconds,
                    "spread": spread,
                    "tokens_per_s": tokens / seconds,
                    "max_abs_diff": float((out.double() - ref[:, :width]).abs().max()),
                }
            )
            print(f"{label}: {tokens / seconds:,.0f} tokens/s", flush=True)
    return pd.DataFrame(rows)


def rss_probe(label: str, eval_tokens: int) -> None:
    """Child process: load SmolLM2 with ``label``'s adapter, evaluate the windows, print peak RSS (MiB) as JSON."""
    model, tokenizer, eval_set = build(MODELS[label], eval_tokens)
    evaluate(model, tokenizer, eval_set)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def peak_memory(args) -> pd.DataFrame:
    rows = []
    for label in MODELS:
        done = subprocess.run(
            [sys.executable, __file__, "--rss-probe", label, "--eval-tokens", str(args.eval_tokens)],
            capture_output=True,
            text=True,
            check=True,
        )
        rss = json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"]
        rows.append({"row": label, "peak_rss_mb": rss})
        print(f"{label}: peak RSS {rss:,.0f} MiB", flush=True)
    return pd.DataFrame(rows)


def short_suffix(args) -> str:
    return f" ({args.short_window}-token windows)"


def _ratio_table(frame: pd.DataFrame, suffix: str) -> pd.DataFrame:
    """One row per label: median tokens/s, spread, and the median over rounds of its ratio to its base row (base on
    the same windows: the lightning slice, the short windows, or the default 2,048-token windows)."""

    def tps(row: str) -> pd.Series:
        return frame[frame["row"] == row].set_index("round")["tokens_per_s"]

    out = []
    for label, g in frame.groupby("row", sort=False):
        g = g.set_index("round")
        ref = (
            tps("base SmolLM2-135M (lightning's slice)")
            if "lightning" in label
            else tps("base SmolLM2-135M" + suffix)
            if label.endswith(suffix)
            else tps("base SmolLM2-135M")
        )
        ratios = (g["tokens_per_s"] / ref.reindex(g.index)).dropna()
        out.append(
            {
                "row": label,
                "tokens": int(g["tokens"].iloc[0]),
                "tokens_per_s": g["tokens_per_s"].median(),
                "spread": g["tokens_per_s"].max() - g["tokens_per_s"].min(),
                "vs_base": ratios.median(),
                "vs_base_min": ratios.min(),
                "vs_base_max": ratios.max(),
                "perplexity": g["perplexity"].iloc[0],
                "rounds": len(g),
            }
        )
    return pd.DataFrame(out)


def render(
    evals: pd.DataFrame, train: pd.DataFrame, sims: pd.DataFrame, rss: pd.DataFrame, args, seconds: float
) -> str:
    table = _ratio_table(evals, short_suffix(args))
    lines = [
        "# qadapt benchmark",
        "",
        f"Command: `python scripts/bench.py --repeats {args.repeats} --eval-tokens {args.eval_tokens} "
        f"--lightning-tokens {args.lightning_tokens} --short-window {args.short_window} --train-steps "
        f"{args.train_steps} --train-repeats {args.train_repeats}` (`make bench`), "
        + (f"{seconds / 60:.1f} min  " if seconds == seconds else "re-rendered from bench.csv  "),
        f"Commit: `{git_commit()}` · {dt.date.today()} · machine: {machine()}  ",
        "Raw timings: `results/bench.csv`. Every ratio compares rows measured in this run, on this machine.",
        "",
        f"## Evaluation speed (WikiText-2 test, windows of {min(2048, args.eval_tokens):,} tokens, batch 2; median of "
        f"{args.repeats} interleaved rounds)",
        "",
        "| model | tokens scored | tokens/s (median) | spread | vs base (median, min-max over rounds) | perplexity |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for _, r in table.iterrows():
        lines.append(
            f"| {r['row']} | {r['tokens']:,} | {r['tokens_per_s']:,.1f} | {r['spread']:,.1f} | {r['vs_base']:.3f}x "
            f"({r['vs_base_min']:.3f}-{r['vs_base_max']:.3f}) | {r['perplexity']:.3f} |"
        )
    lines += [
        "",
        "Adapters carry seeded random weights (speed does not depend on training); perplexities show each row ran "
        "the model it names (the cached CUA row equals the CUA row). The lightning.qubit row runs on its own short "
        f"slice ({args.lightning_tokens} tokens) against base on that slice. Rows marked{short_suffix(args)} score the "
        f"same tokens in windows of {args.short_window} against base on those windows; the targets are judged on the "
        "default windows of 2,048 (`configs/task/wikitext_ppl.yaml`). QFFN's model speed (quarter, half, full, in "
        "the paper's 128-token windows) is measured once, in interleaved rounds with its base model, by "
        "`scripts/bench_qffn_speed.py`: results/qffn_speed.csv, shown in table1.md and table2.md.",
    ]
    cua = table[table["row"].str.startswith("+ CUA (exact)") & ~table["row"].str.contains("cache")]
    lines[-1] += (
        f" CUA only adds work to base, so its ratios over rounds ({cua['vs_base_min'].min():.3f}-"
        f"{cua['vs_base_max'].max():.3f}x) show the noise of one comparison on this machine: a median that close to "
        "1.0 is not a speed difference."
    )
    lines += ["", "Targets:", ""]
    for label, target in TARGETS.items():
        r = table[table["row"] == label].iloc[0]
        lines.append(
            f"- {label}: {r['vs_base']:.3f}x base (rounds {r['vs_base_min']:.3f}-{r['vs_base_max']:.3f}), target >= "
            f"{target}x: **{speed_verdict(r['vs_base_min'], r['vs_base_max'], target)}**"
        )
    worst = rss["peak_rss_mb"].max()
    lines.append(
        f"- peak memory of a SmolLM2 evaluation: {worst:,.0f} MiB at most, target < {RSS_LIMIT_MB:,} MB: "
        f"**{'met' if worst * 2**20 < RSS_LIMIT_MB * 1e6 else 'not met'}**"
    )
    lines += [
        "",
        f"## Training step, CUA (q = 2, v_proj of the last 6 layers), batch 8 x 256 tokens ({args.train_repeats} "
        f"rounds of 1 + {args.train_steps} steps each)",
        "",
        "| | seconds per step (median) | spread | first step (fills the cache) |",
        "|---|---:|---:|---:|",
    ]
    steps = {}
    for label, g in train.groupby("row", sort=False):
        steps[label] = g["seconds_per_step"].median()
        lines.append(
            f"| {label} | {steps[label]:.3f} | {g['seconds_per_step'].max() - g['seconds_per_step'].min():.3f} | "
            f"{g['first_step_seconds'].median():.3f} |"
        )
    layer = int(train["cache_layer"].dropna().iloc[0]) if train["cache_layer"].notna().any() else None
    lines += [
        "",
        f"Speed-up from the cache: **{steps['without cache'] / steps['with activation cache']:.2f}x** per step once "
        f"every chunk has been seen (layers < {layer} skipped; backward already stopped there). One epoch over new "
        "chunks gains nothing: the cache pays off from the second visit of a chunk (`train.cache_activations=auto`).",
        "",
        f"## PennyLane against our simulators, same circuits and inputs (median of {args.repeats} calls)",
        "",
        "| circuits | tokens | circuits run | seconds | spread | tokens/s | max abs. difference vs reference |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for _, r in sims.iterrows():
        lines.append(
            f"| {r['row']} | {r['tokens']:,} | {r['circuits']:,} | {r['seconds']:.4f} | {r['spread']:.4f} | "
            f"{r['tokens_per_s']:,.1f} | {r['max_abs_diff']:.1e} |"
        )
    speed = sims["tokens_per_s"].tolist()  # rows in the order simulators() measures them
    lines += [
        "",
        "Reference: the exact device for the CUA site (layer 29 v_proj inputs, 144 two-qubit blocks, random seeded "
        "unitaries), default.qubit for the QFFN circuit (SmolLM2 layer-1 FFN inputs, zero-padded to 1,024 amplitudes). "
        f"Ours against default.qubit: CUA site {speed[0] / speed[1]:,.0f}x; QFFN circuit {speed[4] / speed[3]:,.0f}x "
        f"(training path), {speed[5] / speed[3]:,.0f}x (evaluation path).",
        "",
        "## Peak memory (whole process: load + evaluation of the same windows, each model in a fresh process)",
        "",
        "| model | peak RSS (MiB) |",
        "|---|---:|",
    ]
    for _, r in rss.iterrows():
        lines.append(f"| {r['row']} | {r['peak_rss_mb']:,.0f} |")
    return "\n".join(lines) + "\n"


INT_COLUMNS = ("round", "tokens", "circuits", "cache_layer")


def render_only(args) -> None:
    """bench.md from bench.csv: each section's rows with the columns it measured (the header's run time and commit
    are this call's: the timings themselves are the CSV's)."""
    out = Path(args.out_dir)
    raw = pd.read_csv(out / "bench.csv")
    parts = {}
    for section in ("evaluation", "training", "simulators", "memory"):
        part = raw[raw["section"] == section].drop(columns="section").dropna(axis=1, how="all").reset_index(drop=True)
        for col in INT_COLUMNS:
            if col in part and part[col].notna().all():
                part[col] = part[col].astype(int)
        parts[section] = part
    text = render(parts["evaluation"], parts["training"], parts["simulators"], parts["memory"], args, float("nan"))
    write_text_atomic(out / "bench.md", text)
    print(f"wrote {out / 'bench.md'}")


def speed_verdict(low: float, high: float, target: float) -> str:
    """``met`` when every round reaches the target, ``not met`` when none does, else ``within noise`` (the rounds
    straddle it: one run cannot say)."""
    if low >= target:
        return "met"
    return "not met" if high < target else "within noise (the rounds straddle the target)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--eval-tokens", type=int, default=4096, help="WikiText-2 test tokens per evaluation (2 windows)"
    )
    parser.add_argument("--lightning-tokens", type=int, default=48)
    parser.add_argument("--short-window", type=int, default=512, help="window of the short-context rows (same tokens)")
    parser.add_argument("--train-steps", type=int, default=4, help="timed steps after the first, per round")
    parser.add_argument("--train-repeats", type=int, default=3, help="training rounds (each: without, then with cache)")
    parser.add_argument("--site-tokens", type=int, default=256)
    parser.add_argument("--lightning-site-tokens", type=int, default=16)
    parser.add_argument("--qffn-tokens", type=int, default=1024)
    parser.add_argument("--out-dir", default=str(ROOT / "results"))
    parser.add_argument("--rss-probe", help=argparse.SUPPRESS)
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite bench.md from <out-dir>/bench.csv (same flags as its run)"
    )
    args = parser.parse_args()
    if args.rss_probe:
        rss_probe(args.rss_probe, args.eval_tokens)
        return
    if args.render_only:
        render_only(args)
        return
    start = time.perf_counter()
    evals, train, sims, rss = eval_rounds(args), train_steps(args), simulators(args), peak_memory(args)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw = pd.concat(
        [
            evals.assign(section="evaluation"),
            train.assign(section="training"),
            sims.assign(section="simulators"),
            rss.assign(section="memory"),
        ],
        ignore_index=True,
    )
    write_text_atomic(out / "bench.csv", raw.to_csv(index=False))
    write_text_atomic(out / "bench.md", render(evals, train, sims, rss, args, time.perf_counter() - start))
    print(f"wrote {out / 'bench.md'}")


if __name__ == "__main__":
    main()
