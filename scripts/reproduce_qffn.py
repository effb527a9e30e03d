#!/usr/bin/env python
"""results/table1.md and results/table2.md: the QFFN paper's Tables 1 and 2 at SmolLM2-135M scale.

Table 2 (fraction sweep): QFFN at quarter / half / full, each trained with the scaled budget of
``configs/train/new_blocks.yaml`` (local distillation, then cross-entropy + KL to the unmodified model).
Table 1: base SmolLM2-135M, Gemma 3 270M (uncompressed reference, as the paper's Qwen-7B row), the classical
control ``ffn_lowrank`` at QFFN-half's parameter count (same layers, same budget: the paper's Distilled-4B row,
scaled) and QFFN-half. Every row is evaluated on the same text: the first ``--eval-bytes`` UTF-8 bytes of
WikiText-2 test (``task.max_bytes``; word perplexity and bits per byte compare across tokenizers; ``--full``:
the whole split). Speed: forward tokens/s of each model relative to the base model in the same run, with the
quantum layers simulated by our exact fused simulator and by PennyLane lightning.qubit (and lightning.gpu when
a CUDA GPU exists). Finished training runs (same config, same run directory) are reused. Usage:

    python scripts/reproduce_qffn.py table2 [--full] [--out-dir results] [--quick]
    python scripts/reproduce_qffn.py table1 [--full] [--out-dir results] [--quick]

``--quick`` is the CI sweep: a few steps on a short slice, written to --out-dir (not the committed tables).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from omegaconf import OmegaConf

from qadapt import adapters, devices, models
from qadapt.config import compose
from qadapt.experiments import run, run_or_reuse
from qadapt.results import save_figure_atomic, write_text_atomic
from qadapt.runs import git_commit

ROOT = Path(__file__).resolve().parents[1]

# paper figures: (params in billions, WikiText-103 perplexity, speed vs LLaMA-7B with CPU QSim, with GPU QSim)
PAPER_T1 = {
    "base": ("LLaMA-7B", 7.0, 20.1, 1.0, 1.0),
    "reference": ("Qwen-7B", 7.0, 18.9, 0.9, 0.9),
    "classical": ("Distilled-4B", 4.0, 23.1, 1.4, 1.4),
    "qffn_half": ("QFFN", 3.5, 20.3, 0.6, 2.0),
}
PAPER_T2 = {"full": (3.0, 20.7, 0.4, 1.8), "half": (3.5, 20.3, 0.6, 2.0), "quarter": (4.1, 20.1, 0.8, 1.4)}
FRACTIONS = ("quarter", "half", "full")


def budget(args) -> list[str]:
    """Overrides shared by every trained row (the same for QFFN and its classical control)."""
    common = [
        "model=smollm2_135m",
        "task=wikitext_ppl",
        "train=new_blocks",
        "device=exact",
        "seed=0",
        f"runs_dir={args.runs_dir}",
        f"results_dir={args.results_dir}",
    ]
    common.append("task.max_bytes=null" if args.full else f"task.max_bytes={args.eval_bytes}")
    if args.quick:
        common += [
            "train.max_steps=2",
            "train.batch_size=2",
            "train.seq_len=64",
            "train.warmup_steps=0",
            "train.distill_steps=5",
            "train.distill_tokens=512",
            "train.distill_batch=128",
            "task.max_length=256",
            "task.stride=256",
        ]
    return common


def train_or_reuse(overrides: list[str]) -> dict:
    return run_or_reuse(overrides)


def evaluate(overrides: list[str]) -> dict:
    return run("eval ppl", compose(overrides), ["qadapt", "eval", "ppl", *overrides])


def speed_devices() -> list[tuple[str, dict | None]]:
    """(label, device config) for the speed columns; lightning.gpu only where CUDA exists (else reported n/a)."""
    rows = [
        ("fused", {"name": "exact", "shots": None, "seed": 0}),
        ("lightning_qubit", {"name": "lightning_qubit", "backend": "lightning.qubit", "shots": None, "seed": 0}),
    ]
    gpu = (
        {"name": "lightning_gpu", "backend": "lightning.gpu", "shots": None, "seed": 0}
        if torch.cuda.is_available()
        else None
    )
    return rows + [("lightning_gpu", gpu)]


@torch.inference_mode()
def tokens_per_second(model, ids: torch.Tensor, repeats: int, warmup: bool = True) -> float:
    """Median forward tokens/s of ``model`` on ``ids`` ``(B, T)`` (after one warm-up call, unless ``warmup=False``:
    the PennyLane devices, where one call takes minutes and nothing is compiled or cached)."""
    if warmup:
        model(input_ids=ids, use_cache=False)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(input_ids=ids, use_cache=False)
        times.append(time.perf_counter() - start)
    return ids.numel() / statistics.median(times)


def measure_speeds(model_overrides: dict[str, list[str]], args) -> dict[str, dict[str, float]]:
    """tokens/s of every model on every speed device, plus its ratio to the base model on the same tokens.

    The fused column uses ``--speed-tokens`` tokens; the PennyLane columns (one circuit per token and per
    (query, key) pair of a quantum head) use the first ``--speed-tokens-pennylane`` of them.
    """
    cfg = compose(["model=smollm2_135m"])
    loaded = models.load(cfg.model)
    text = (Path(compose([]).data_dir) / "wikitext-2" / "wiki.test.raw").read_text(encoding="utf-8")
    all_ids = torch.tensor(loaded.tokenizer(text[:100_000], add_special_tokens=False).input_ids[: args.speed_tokens])[
        None
    ]
    slices = {
        "fused": all_ids,
        "lightning_qubit": all_ids[:, : args.speed_tokens_pennylane],
        "lightning_gpu": all_ids[:, : args.speed_tokens_pennylane],
    }
    out: dict[str, dict[str, float]] = {}
    base_model = loaded.model
    base_tps = {label: tokens_per_second(base_model, ids, args.repeats) for label, ids in slices.items()}
    out["base"] = {f"{label}_tps": v for label, v in base_tps.items()} | {f"{label}_speed": 1.0 for label in slices}
    for name, overrides in model_overrides.items():
        run_cfg = OmegaConf.load(Path(overrides["run_dir"]) / "config.yaml")
        model = models.load(cfg.model).model
        adapters.apply(model, run_cfg.adapter, devices.get(OmegaConf.create(speed_devices()[0][1])))
        from safetensors.torch import load_file

        adapters.load_adapter_state(model, load_file(str(Path(overrides["run_dir"]) / "adapter.safetensors")))
        row = {}
        for label, dev_cfg in speed_devices():
            if dev_cfg is None:
                row[f"{label}_tps"], row[f"{label}_speed"] = float("nan"), float("nan")
                continue
            adapters.set_device(model, devices.get(OmegaConf.create(dev_cfg)))
            fused = label == "fused"
            tps = tokens_per_second(model, slices[label], args.repeats if fused else 1, warmup=fused)
            row[f"{label}_tps"], row[f"{label}_speed"] = tps, tps / base_tps[label]
            print(f"{name} on {label}: {tps:,.1f} tokens/s ({tps / base_tps[label]:.2f}x base)", flush=True)
        out[name] = row
        del model
    return out


def _fmt(v, spec: str, na: str = "n/a", unit: str = "") -> str:
    return na if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec) + unit


def _no_gpu(frame: pd.DataFrame) -> pd.DataFrame:
    """Without a GPU no row has a lightning.gpu speed; the base row's 1.0 (its own reference) is then n/a too."""
    if "lightning_gpu_speed" in frame and frame["lightning_gpu_speed"].iloc[1:].isna().all():
        frame = frame.assign(lightning_gpu_speed=float("nan"))
    return frame


def table2(args) -> pd.DataFrame:
    rows, trained = [], {}
    for fraction in FRACTIONS:
        overrides = [*budget(args), "adapter=qffn", f"adapter.fraction={fraction}"]
        trained[fraction] = train_or_reuse(overrides)
    speeds = measure_speeds({f: {"run_dir": trained[f]["run_dir"]} for f in FRACTIONS}, args)
    for fraction in FRACTIONS:
        m = trained[fraction]
        rows.append(
            _row(f"QFFN-{fraction}", m, speeds[fraction], args)
            | {
                "fraction": fraction,
                "paper_params_b": PAPER_T2[fraction][0],
                "paper_ppl": PAPER_T2[fraction][1],
                "paper_speed_cpu": PAPER_T2[fraction][2],
                "paper_speed_gpu": PAPER_T2[fraction][3],
            }
        )
    frame = pd.DataFrame(rows)
    frame["base_ppl"] = float(trained["half"]["base_perplexity"])
    frame["base_total_params"] = int(trained["half"]["base_total_params"])
    _save(frame, "table2", args)
    return frame


def _row(label: str, m: dict, speed: dict, args) -> dict:
    return {
        "model": label,
        "run_dir": m.get("run_dir"),
        "adapter": m.get("adapter_desc"),
        "total_params": int(m["total_params"]),
        "added_params": int(m.get("added_params") or 0),
        "removed_params": int(m.get("removed_params") or 0),
        "perplexity": float(m["perplexity"]),
        "word_perplexity": float(m["word_perplexity"]),
        "bits_per_byte": float(m["bits_per_byte"]),
        "tokens_scored": int(m["tokens_scored"]),
        "delta_ppl_pct": m.get("delta_ppl_pct"),
        "distill_rel_err_after": m.get("distill_rel_err_after"),
        "train_seconds": m.get("train_seconds"),
        "train_loss_final": m.get("train_loss_final"),
        "git_commit": m["git_commit"],
        **speed,
        "speed_tokens": args.speed_tokens,
        "speed_tokens_pennylane": args.speed_tokens_pennylane,
        "machine": m.get("machine"),
        "threads": m.get("threads"),
        "command": " ".join(sys.argv),
    }


def table1(args) -> pd.DataFrame:
    base_eval = evaluate([*budget(args), "adapter=none"])
    gemma = evaluate([*budget(args), "model=gemma3_270m", "adapter=none"])
    classical = train_or_reuse([*budget(args), "adapter=ffn_lowrank", "adapter.fraction=half"])
    qffn = train_or_reuse([*budget(args), "adapter=qffn", "adapter.fraction=half"])
    speeds = measure_speeds(
        {"classical": {"run_dir": classical["run_dir"]}, "qffn_half": {"run_dir": qffn["run_dir"]}}, args
    )
    rows = []
    for key, label, m in (
        ("base", "SmolLM2-135M (base)", base_eval),
        ("reference", "Gemma 3 270M (base)", gemma),
        ("classical", "classical control (ffn_lowrank, half)", classical),
        ("qffn_half", "QFFN-half", qffn),
    ):
        if key in ("base", "reference"):
            m = m | {"total_params": m.get("total_params")}
        speed = speeds.get(key, {}) if key != "reference" else {}
        paper = PAPER_T1[key]
        rows.append(
            _row(label, m, speed, args)
            | {
                "paper_model": paper[0],
                "paper_params_b": paper[1],
                "paper_ppl": paper[2],
                "paper_speed_cpu": paper[3],
                "paper_speed_gpu": paper[4],
            }
        )
    frame = pd.DataFrame(rows)
    _save(frame, "table1", args)
    return frame


def _save(frame: pd.DataFrame, name: str, args) -> None:
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / f"{name}.csv"
    tmp = csv.with_suffix(".csv.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(csv)
    render(frame, name, args)


def budget_text(frame: pd.DataFrame) -> str:
    """The training budget as the trained rows' saved configs say (the same for every trained row)."""
    from qadapt.errors import QadaptError
    from qadapt.runs import saved_config

    configs = []
    for d in frame["run_dir"]:
        if isinstance(d, str):
            try:
                configs.append(saved_config(d, ROOT / "results"))
            except QadaptError:
                continue
    if not configs:
        return ""
    t = configs[0].train
    return (
        "Training budget (`train=new_blocks`, the same for QFFN and the classical control): local distillation of each "
        f"replacement block on {int(t.distill_tokens):,} real hidden states ({int(t.distill_steps)} mini-batches of "
        f"{int(t.distill_batch):,} tokens, lr {float(t.distill_lr):g}), then {int(t.max_steps)} steps x "
        f"{int(t.batch_size)} x {int(t.seq_len)} tokens of {float(t.ce_weight):g} x cross-entropy + "
        f"{float(t.kl_weight):g} x KL to the unmodified model (lr {float(t.lr):g}); only the new blocks train."
    )


def render(frame: pd.DataFrame, name: str, args) -> None:
    out_dir = Path(args.out_dir)
    frame = _no_gpu(frame)
    first = frame.iloc[0]
    words = (
        "the whole WikiText-2 test split"
        if args.full
        else f"the first {args.eval_bytes:,} bytes of WikiText-2 test (`task.max_bytes`)"
    )
    lines = [
        f"# QFFN paper, Table {name[-1]}, at SmolLM2-135M scale",
        "",
        f"Command: `{first['command']}`  ",
        f"Commit: `{first['git_commit']}` · written {dt.date.today()} · machine: {first['machine']}, "
        f"{first['threads']} torch threads  ",
        f"Evaluation: {words}, sliding windows of 2,048 (every row on the same text). {budget_text(frame)} "
        "Speed: forward tokens/s relative to the base model in the same run "
        f"({int(first['speed_tokens'])} tokens for the fused simulator, {int(first['speed_tokens_pennylane'])} for "
        "PennyLane).",
        "",
    ]
    if name == "table2":
        lines += [
            "| fraction | params (total) | added | removed | ppl | word ppl | Δ ppl vs base | speed, fused (CPU) | "
            "speed, lightning.qubit (CPU) | speed, lightning.gpu | paper params | paper ppl | paper CPU | paper GPU |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for _, r in frame.iterrows():
            lines.append(
                f"| {r['fraction']} | {r['total_params']:,} | {r['added_params']:,} | {r['removed_params']:,} | "
                f"{r['perplexity']:.2f} | {r['word_perplexity']:.2f} | {_fmt(r['delta_ppl_pct'], '+.1f')} % | "
                f"{_fmt(r.get('fused_speed'), '.2f', unit='x')} | "
                f"{_fmt(r.get('lightning_qubit_speed'), '.4f', unit='x')} | "
                f"{_fmt(r.get('lightning_gpu_speed'), '.2f', 'n/a (no GPU)', 'x')} | {r['paper_params_b']}B | "
                f"{r['paper_ppl']} | {r['paper_speed_cpu']}x | {r['paper_speed_gpu']}x |"
            )
        lines += [
            "",
            f"Base SmolLM2-135M on the same text: {first['base_total_params']:,} parameters, perplexity "
            f"{first['base_ppl']:.2f}.",
            "",
            f"![perplexity and speed vs fraction]({name}.png)",
        ]
    else:
        lines += [
            "| model | params (total) | ppl (token) | word ppl | bits/byte | speed, fused (CPU) "
            "| speed, lightning.qubit (CPU) | speed, lightning.gpu "
            "| paper row | paper params | paper ppl | paper CPU | paper GPU |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
        ]
        for _, r in frame.iterrows():
            lines.append(
                f"| {r['model']} | {_fmt(r['total_params'], ',')} | {r['perplexity']:.2f} | {r['word_perplexity']:.2f} "
                f"| {r['bits_per_byte']:.4f} | {_fmt(r.get('fused_speed'), '.2f', unit='x')} | "
                f"{_fmt(r.get('lightning_qubit_speed'), '.4f', unit='x')} | "
                f"{_fmt(r.get('lightning_gpu_speed'), '.2f', 'n/a (no GPU)', 'x')} | {r['paper_model']} | "
                f"{r['paper_params_b']}B | {r['paper_ppl']} | {r['paper_speed_cpu']}x | {r['paper_speed_gpu']}x |"
            )
        lines += [
            "",
            "Token perplexity is per model's own tokens (Gemma's vocabulary is 262k, SmolLM2's 49k): compare across "
            "models by word perplexity or bits per byte. Gemma's speed is not measured (it is a reference for quality, "
            "as the paper's Qwen row).",
        ]
    lines += [
        "",
        "Why it may differ from the paper: (1) scale: SmolLM2-135M (30 layers, d = 576) instead of LLaMA-7B, so each "
        "replaced FFN is a larger share of a much smaller model; (2) budget: tens of CPU training steps on WikiText-2 "
        "instead of 10k steps on OpenWebText, and only the new blocks train; (3) readout: the paper does not specify "
        "how d outputs are read from the circuit; ours (y = ||x|| w (2^n p - 1) + b, 1,272 parameters for an FFN of "
        '2,654,208) starts as "FFN removed" and local distillation shows how little of the FFN it can represent '
        "(`distill_rel_err_after` in the csv; 1.0 = no better than removing the FFN); (4) quantum heads keep their q/k "
        "projections, so they add parameters instead of removing them; (5) speed: our CPU simulator is exact and "
        "fused, the paper's QSim timing is not described. Every number here is as measured.",
    ]
    out = out_dir / f"{name}.md"
    write_text_atomic(out, "\n".join(lines) + "\n")
    if name == "table2":
        plot(frame, out_dir / f"{name}.png")


def plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [FRACTIONS.index(f) for f in frame["fraction"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    ax1.plot(x, frame["perplexity"], "o-", label="ours (SmolLM2-135M)")
    ax1.axhline(frame["base_ppl"].iloc[0], color="black", linewidth=0.6, linestyle="--", label="base SmolLM2-135M")
    ax1b = ax1.twinx()
    ax1b.plot(x, frame["paper_ppl"], "^:", color="grey", label="paper (LLaMA-7B scale)")
    ax1.set_ylabel("WikiText-2 test perplexity (ours)")
    ax1b.set_ylabel("paper perplexity", color="grey")
    ax2.plot(x, frame["fused_speed"], "o-", label="ours: fused simulator (CPU)")
    ax2.plot(x, frame["lightning_qubit_speed"], "s-", label="ours: lightning.qubit (CPU)")
    ax2.plot(x, frame["paper_speed_cpu"], "^:", color="grey", label="paper: CPU QSim")
    ax2.plot(x, frame["paper_speed_gpu"], "v:", color="darkgrey", label="paper: GPU QSim")
    ax2.set_yscale("log")
    ax2.set_ylabel("speed relative to base model")
    for ax in (ax1, ax2):
        ax.set_xticks(range(3), FRACTIONS)
        ax.set_xlabel("fraction of quantum sub-layers")
    ax1.legend(fontsize=7, loc="upper left")
    ax1b.legend(fontsize=7, loc="lower right")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    save_figure_atomic(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=["table1", "table2"])
    parser.add_argument("--full", action="store_true", help="evaluate on the whole WikiText-2 test split")
    parser.add_argument("--eval-bytes", type=int, default=131_072)
    parser.add_argument("--quick", action="store_true", help="CI sweep: a few steps, a short slice")
    parser.add_argument("--out-dir", default=str(ROOT / "results"))
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--speed-tokens", type=int, default=512)
    parser.add_argument("--speed-tokens-pennylane", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--render-only", action="store_true", help="re-render the markdown (and plot) from <out-dir>/<table>.csv"
    )
    args = parser.parse_args()
    if args.render_only:
        render(pd.read_csv(Path(args.out_dir) / f"{args.table}.csv"), args.table, args)
        return
    if args.quick:
        args.eval_bytes, args.speed_tokens, args.speed_tokens_pennylane, args.repeats = (
            min(args.eval_bytes, 4096),
            64,
            4,
            1,
        )
    git_commit()
    t0 = time.perf_counter()
    frame = table1(args) if args.table == "table1" else table2(args)
    print(frame[["model", "total_params", "perplexity", "word_perplexity"]].to_string(index=False))
    print(f"{args.table}: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
