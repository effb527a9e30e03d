"""``qadapt``: Typer commands; every command takes Hydra overrides (``key=value``, ``group=option``).

qadapt train model=smollm2_135m adapter=cua device=exact task=wikitext_ppl seed=0
qadapt train -m adapter.qubits_per_block=1,2,3 seed=0,1,2     # one run (and results row) per point
qadapt eval ppl adapter=none                                    # base model
qadapt eval ppl from_run=runs/<dir>                             # a trained adapter
qadapt eval mc task.mc.subjects=[astronomy]                     # MMLU / ARC by answer log-likelihood
qadapt train task=compression_recovery train=recovery adapter=cua task.compression.ratio=0.8
qadapt config adapter.qubits_per_block=3                        # the resolved config
qadapt results                                                  # tidy tables
qadapt params model=llama31_8b adapter.layers=[0]               # counts without weights
qadapt plan model=llama31_8b adapter.layers=[0] device=ibm      # memory, circuits, QPU time, no weights
qadapt export from_run=runs/<dir> format=peft out=exported/     # a peft adapter (or format=merged: weights)
qadapt study run cua_gemma3 phase=select                        # a study spec: select, final, render
lm_eval --model qadapt --model_args run=runs/<dir>,device=exact --tasks arc_easy   # lm-evaluation-harness
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer
from omegaconf import OmegaConf
from rich.console import Console

from .config import compose, expand_sweep
from .errors import ConfigError, QadaptError
from .log import Progress, log

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Quantum and quantum-inspired adapters on real models and data."
)
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate a model (base, fresh or trained adapter).")
app.add_typer(eval_app, name="eval")
study_app = typer.Typer(no_args_is_help=True, help="Studies: a comparison written as a spec (configs/study/*.yaml).")
app.add_typer(study_app, name="study")
err = Console(stderr=True)
out = Console()

OVERRIDES = typer.Argument(None, help="Hydra overrides, e.g. adapter=cua adapter.qubits_per_block=3 seed=1")
MULTIRUN = typer.Option(False, "--multirun", "-m", help="Expand sweep syntax (a=1,2 b=x,y) into one run per point.")


def _run(overrides: list[str] | None, multirun: bool, job: Callable, command: str | None = None) -> None:
    """Compose each point's config and run ``job(cfg, overrides)``; map qadapt errors to exit codes.

    With ``-m`` and a ``hydra/launcher=`` override, the points go to that Hydra launcher instead (qadapt/launch.py),
    after every one of them has composed here.
    """
    from .launch import multirun as launch_sweep
    from .launch import split_overrides, uses_launcher

    overrides = list(overrides or [])
    try:
        run_overrides, hydra_overrides = split_overrides(overrides)
        if hydra_overrides and not (multirun and uses_launcher(hydra_overrides) and command):
            raise ConfigError(
                f"{' '.join(hydra_overrides)}: Hydra settings apply to launcher sweeps only "
                "(qadapt train|eval ppl|eval mc -m ... hydra/launcher=joblib|submitit_slurm|submitit_local)"
            )
        points = expand_sweep(run_overrides) if multirun else [run_overrides]
        configs = [compose(p) for p in points]  # every point is checked before the first one runs
        if hydra_overrides:
            log(f"sweep of {len(points)} points through {' '.join(hydra_overrides)}")
            jobs = launch_sweep(command, overrides)
            log(
                f"{jobs} jobs done; one row each in {configs[0].results_dir}/runs.csv, Hydra's job configs in "
                f"{configs[0].runs_dir}/multirun/"
            )
            return
        # the sweep's own bar (points done, rate, ETA) around each point's bars; one point alone has none
        with Progress("sweep", total=len(points), unit="points", enabled=multirun) as bar:
            for i, (point, cfg) in enumerate(zip(points, configs)):
                if multirun:
                    log(f"sweep point {i + 1}/{len(points)}: {' '.join(point)}")
                job(cfg, point)
                bar.advance(1)
    except QadaptError as e:
        err.print(f"[red]error:[/red] {e}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(e.exit_code) from None


def _print_row(row: dict, keys: tuple[str, ...]) -> None:
    for k in keys:
        if k in row and row[k] is not None:
            v = row[k]
            out.print(f"{k:>24}: {v:.4f}" if isinstance(v, float) else f"{k:>24}: {v}")


def _experiment(command: str, overrides: list[str], multirun: bool, shown: Callable[[dict], tuple[str, ...]]) -> None:
    """Run ``command`` (``train``, ``eval ppl``, ``eval mc``) on each point and print the row's ``shown(row)`` keys."""
    from .experiments import run

    def job(cfg, point):
        row = run(command, cfg, point)
        _print_row(row, shown(row))

    _run(overrides, multirun, job, command)


@app.command()
def train(overrides: list[str] = OVERRIDES, multirun: bool = MULTIRUN) -> None:
    """Train an adapter on a frozen model; evaluate base and adapted; append a results row."""
    keys = ("adapter_desc", "trainable_params", "train_source", "base_perplexity", "perplexity", "delta_ppl_pct",
            "base_bits_per_byte", "bits_per_byte", "tokens_per_s", "subtask", "metric", "score", "adapter_params",
            "head_params", "wall_seconds", "run_dir")  # fmt: skip
    _experiment("train", overrides, multirun, lambda row: keys)


@eval_app.command("ppl")
def eval_ppl(overrides: list[str] = OVERRIDES, multirun: bool = MULTIRUN) -> None:
    """Perplexity, word perplexity and bits per byte on WikiText (task.mode=sliding|documents)."""
    keys = ("model", "adapter_desc", "device_desc", "perplexity", "exact_perplexity", "device_degradation_pct",
            "mean_nll", "word_perplexity", "bits_per_byte", "tokens_scored", "device_circuits", "tokens_per_s",
            "peak_rss_mb")  # fmt: skip
    _experiment("eval ppl", overrides, multirun, lambda row: keys)


@eval_app.command("mc")
def eval_mc(overrides: list[str] = OVERRIDES, multirun: bool = MULTIRUN) -> None:
    """MMLU (0- and 5-shot) and ARC accuracy by answer log-likelihood (task=mc unless another task with mc keys)."""
    overrides = list(overrides or [])
    if not any(o.split("=")[0].lstrip("+~") == "task" for o in overrides):
        overrides.insert(0, "task=mc")

    def shown(row: dict) -> tuple[str, ...]:
        accuracies = [k for k in row if k.endswith(("_acc", "_acc_norm"))]
        return ("model", "adapter", "from_run", *accuracies, "wall_seconds", "run_dir")

    _experiment("eval mc", overrides, multirun, shown)


@app.command()
def export(overrides: list[str] = OVERRIDES) -> None:
    """Write a trained run as a peft adapter or as merged transformers weights:
    qadapt export from_run=runs/<dir> format=peft|merged out=<dir>."""
    from .integrations.export import FORMATS

    args = {"format": None, "out": None}
    rest = []
    for o in overrides or []:
        key, _, value = o.partition("=")
        if key in args:
            args[key] = value
        else:
            rest.append(o)
    missing = [k for k, v in args.items() if not v]

    def job(cfg, _):
        from .integrations.export import export as write

        if missing:
            raise ConfigError(
                f"qadapt export needs {' and '.join(f'{k}=' for k in missing)} (format: {', '.join(FORMATS)}; "
                "out: a new folder)"
            )
        out.print(f"wrote {write(cfg, args['format'], args['out'])}")

    _run(rest, False, job)


@app.command("lm-eval-hook")
def lm_eval_hook_command(action: str = typer.Argument(..., help="install | uninstall")) -> None:
    """Install (or remove) the start-up hook that lets the stock `lm_eval` command find `--model qadapt`."""
    from . import lm_eval_hook

    code = lm_eval_hook.main([action])
    if code:
        raise typer.Exit(code)


@app.command("config")
def show_config(overrides: list[str] = OVERRIDES) -> None:
    """Print the resolved config for these overrides."""
    _run(overrides, False, lambda cfg, _: typer.echo(OmegaConf.to_yaml(cfg)))


@app.command()
def results(
    results_dir: str = typer.Option("results", help="Directory holding runs.csv."),
    last: int = typer.Option(0, help="Only the last N rows."),
) -> None:
    """Print the tidy results store as markdown tables (mean ± std over seeds)."""
    from .results import load_rows
    from .results.tables import summary

    rows = load_rows(results_dir)
    if last:
        rows = rows.tail(last)
    typer.echo(summary(rows))  # plain: markdown must not be re-wrapped to the terminal width


@app.command()
def params(overrides: list[str] = OVERRIDES) -> None:
    """Parameter counts from the architecture alone (meta device; no weights are loaded)."""
    from .resources import count_params

    def job(cfg, _):
        for k, v in count_params(cfg).items():
            out.print(f"{k:>16}: {v:,}" if isinstance(v, int) else f"{k:>16}: {v}")

    _run(overrides, False, job)


@app.command()
def plan(
    overrides: list[str] = OVERRIDES,
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
    tflops: float = typer.Option(
        50.0,  # resources.DEFAULT_TFLOPS (not imported here: the CLI starts without torch)
        min=1e-6,
        help="Sustained training rate (TFLOP/s) the time estimate assumes; state your hardware's.",
    ),
) -> None:
    """Resources of a run without its weights: parameters, memory, training compute and time, circuits, shots, gate
    counts, QPU time."""
    from .classifier_plan import plan_classifier
    from .resources import plan as plan_lm
    from .resources import plan_json, plan_tables

    def job(cfg, _):
        p = plan_classifier(cfg) if cfg.model.get("kind") in ("text_encoder", "vision") else plan_lm(cfg)
        if as_json:
            typer.echo(plan_json(p))
            return
        for table in plan_tables(p, cfg, tflops):
            Console(width=max(out.width, 140)).print(table)

    _run(overrides, False, job)


@app.command()
def circuits(
    overrides: list[str] = OVERRIDES,
    backend: str = typer.Option("FakeFez", help="qiskit-ibm-runtime fake backend (its basis and coupling map)."),
    optimization_level: int = typer.Option(3, help="Qiskit transpiler optimization level."),
    shots: int = typer.Option(8192, help="Shots per circuit (the paper used 8,192)."),
    tokens: int = typer.Option(1, help="Tokens to evaluate on the device."),
    seconds_per_circuit: float = typer.Option(
        None,
        help="QPU seconds per circuit; default: from the backend, shots x (circuit duration + repetition delay).",
    ),
) -> None:
    """Compiled cost of the adapter's circuits per site: depth, gate counts, circuits, shots, QPU time."""
    from rich.table import Table

    from .devices.qiskit_compile import PAPER_SECONDS_PER_CIRCUIT
    from .resources import circuit_plan

    def job(cfg, _):
        rows = circuit_plan(cfg, backend, optimization_level, shots, tokens, seconds_per_circuit)
        table = Table(
            title=f"{cfg.model.name} {rows[0]['source'] if rows else ''} on {backend} (opt {optimization_level}), "
            f"{tokens} token(s), {shots} shots"
        )
        for col in (
            "site",
            "blocks",
            "qubits",
            "Q depth mean/max",
            "Q 2q mean/max",
            "Q 1q mean",
            "token circuit depth / 2q / us",
            "circuits",
            "QPU s per circuit",
            "QPU h",
        ):
            table.add_column(col)
        for r in rows:
            table.add_row(
                r["site"],
                str(r["blocks"]),
                str(r["qubits"]),
                f"{r['q_depth_mean']:.1f}/{r['q_depth_max']}",
                f"{r['q_2q_mean']:.2f}/{r['q_2q_max']}",
                f"{r['q_1q_mean']:.1f}",
                f"{r['token_circuit_depth']} / {r['token_circuit_2q']} / "
                + ("-" if r["token_circuit_duration_s"] is None else f"{r['token_circuit_duration_s'] * 1e6:.2f}"),
                f"{r['circuits']:,}",
                f"{r['qpu_seconds_per_circuit']:.2f}",
                f"{r['qpu_hours']:.2f}",
            )
        Console(width=max(out.width, 160)).print(table)  # never squeeze the columns into 80 characters
        total = sum(r["circuits"] for r in rows)
        hours = sum(r["qpu_hours"] for r in rows)
        how = (
            f"{seconds_per_circuit:.2f} s per circuit (given)"
            if seconds_per_circuit is not None
            else f"{shots:,} shots x ({backend}'s circuit durations + its repetition delay), without the runtime's "
            "per-job overhead"
        )
        out.print(
            f"total: {total:,} circuits, {total * shots:,} shots, {hours:.2f} QPU hours at {how}; at the paper's "
            f"reported rate (4 h 24 min / 1,328 circuits) {total * PAPER_SECONDS_PER_CIRCUIT / 3600:.2f} h"
        )

    _run(overrides, False, job)


STUDY = typer.Argument(..., help="A study in configs/study/ (its name) or a path to a study spec .yaml")
STUDY_OVERRIDES = typer.Argument(
    None,
    help="phase=select|final|all, arms=a,b (spec arms, or axis values: arms=rte) and seeds=0,1 (run only these "
    "cells), and overrides for every run (results_dir=...)",
)


def _study(name: str, overrides: list[str] | None, job: Callable) -> None:
    """Load the spec, split off ``phase=``, ``arms=`` and ``seeds=``, run ``job(study, phase, overrides, only)`` with
    ``only`` = {"arms": [...] or None, "seeds": [...] or None}; qadapt errors exit with their code."""
    from .studies import load

    phase, only, rest = "all", {"arms": None, "seeds": None}, []
    for item in overrides or []:
        key, _, value = item.partition("=")
        if key == "phase":
            phase = value
        elif key in only:
            only[key] = [a for a in value.strip("[]").split(",") if a]
        else:
            rest.append(item)
    try:
        if only["seeds"] is not None and not all(s.lstrip("-").isdigit() for s in only["seeds"]):
            raise ConfigError(f"seeds: '{','.join(only['seeds'])}' is not a list of integers (e.g. seeds=0,1)")
        only["seeds"] = None if only["seeds"] is None else [int(s) for s in only["seeds"]]
        compose(rest)  # a bad override fails before anything runs
        job(load(name), phase, rest, only)
    except QadaptError as e:
        err.print(f"[red]error:[/red] {e}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(e.exit_code) from None


@study_app.command("run")
def study_run(name: str = STUDY, overrides: list[str] = STUDY_OVERRIDES) -> None:
    """Run a study's phase (select, final or all; finished cells are reused), then render its table."""
    from .studies import render, run

    def job(study, phase, rest, only):
        run(study, phase, rest, **only)
        path = render(study, compose(rest).results_dir, " ".join(["qadapt study run", name, *rest]))
        log(f"wrote {path}")

    _study(name, overrides, job)


@study_app.command("status")
def study_status(name: str = STUDY, overrides: list[str] = STUDY_OVERRIDES) -> None:
    """Every cell of a study: done or left, with the seconds each took; nothing runs."""
    from .studies import status

    _study(name, overrides, lambda study, phase, rest, only: typer.echo(status(study, rest)))


@study_app.command("render")
def study_render(name: str = STUDY, overrides: list[str] = STUDY_OVERRIDES) -> None:
    """Write a study's table from its committed cells and units files alone (no run directory is read)."""
    from .studies import render

    def job(study, phase, rest, only):
        log(f"wrote {render(study, compose(rest).results_dir, ' '.join(['qadapt study run', name, *rest]))}")

    _study(name, overrides, job)


@study_app.command("export")
def study_export(name: str = STUDY, overrides: list[str] = STUDY_OVERRIDES) -> None:
    """Write a study's final cells in another project's result format, one file per arm and seed:
    ``format=peft`` (peft's method-comparison result JSON, the default) and ``out=<dir>`` (default ``exported``)."""
    from .studies.export import export

    given = dict(item.split("=", 1) for item in overrides or [] if item.startswith(("format=", "out=")))
    rest = [item for item in overrides or [] if not item.startswith(("format=", "out="))]

    def job(study, phase, runs, only):
        out = given.get("out", "exported")
        paths = export(study, compose(runs).results_dir, out, given.get("format", "peft"))
        log(f"wrote {len(paths)} files under {out}/")

    _study(name, rest, job)


@app.command()
def data(overrides: list[str] = OVERRIDES) -> None:
    """Fill data_dir: link ../shared/data when it exists, else download the datasets from the hub."""
    from .data.fetch import fill

    _run(overrides, False, lambda cfg, _: log(fill(cfg.data_dir)))


def main() -> None:  # pragma: no cover - `python -m qadapt.cli`
    app(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    main()
