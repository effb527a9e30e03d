"""Studies (qadapt/studies/): a tiny study on the tiny Llama through select, final and render; reuse of finished cells;
the rendered figures equal the estimator's on the same scores; bad specs refused with exit 2 before anything runs."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from qadapt.cli import app
from qadapt.results import estimate as est
from qadapt.results import load_rows


def spec(model_dir, **changes) -> dict:
    out = {
        "name": "tiny",
        "title": "CUA against LoRA on a tiny Llama",
        "question": "Does a 2-qubit CUA lower held-out perplexity as much as LoRA r = 1?",
        "shared": [
            "model=llama31_8b",
            f"model.path={model_dir}",
            "model.dtype=float32",
            "device=exact",
            "task=wikitext_ppl",
            "task.max_length=48",
            "task.stride=48",
            "task.batch_size=2",
            "task.max_tokens=480",  # selection scores 10 windows of the held-out slice; the final phase 192 tokens
            "train.valid_holdout=0.1",
            "train.max_steps=3",
            "train.batch_size=2",
            "train.seq_len=32",
        ],
        "arms": {
            "base": {"label": "base model", "kind": "untrained", "overrides": ["adapter=none"], "seeded": False},
            "cua": {"label": "CUA q = 2", "overrides": ["adapter=cua", "adapter.layers=[-1]"]},
            "lora": {
                "label": "LoRA r = 1",
                "overrides": ["adapter=lora", "adapter.r=1", "adapter.modules=[v_proj]", "adapter.layers=[-1]"],
            },
        },
        "reference": "cua",
        "select": {
            "split": "valid_holdout",
            "grid": {"default": {"train.lr": [0.01, 0.05]}},
            "widen": {"factor": 3.0, "max_steps": 1},
            "seed": 0,
        },
        "final": {
            "seeds": [0, 1, 2],
            "split": "test",
            "overrides": ["task.max_tokens=192"],
            "baseline": "base",
        },
    }
    for key, value in changes.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return out


def write(tmp_path, data: dict):
    path = tmp_path / "tiny_study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def dirs(tmp_path) -> list[str]:
    return [f"results_dir={tmp_path / 'results'}", f"runs_dir={tmp_path / 'runs'}"]


def test_a_tiny_study_selects_scores_renders_and_reuses(tiny_llama_dir, tmp_path, data_dir):
    path = write(tmp_path, spec(tiny_llama_dir))
    runner = CliRunner()
    selected = runner.invoke(app, ["study", "run", str(path), "phase=select", *dirs(tmp_path)])
    assert selected.exit_code == 0, selected.output
    rows = load_rows(tmp_path / "results")
    # 2 arms x 2 rates, plus one widening step for an arm whose best rate sits at an end of the grid
    cells = pd.read_csv(tmp_path / "results" / "tiny_cells.csv")
    sel = cells[cells["phase"] == "select"]
    assert set(sel["arm"]) == {"cua", "lora"} and len(rows) == len(sel[sel["done"] == True])  # noqa: E712
    for _, g in sel.groupby("arm"):
        lrs = [json.loads(v)["train.lr"] for v in g["values"]]
        on_grid = g[[lr in (0.01, 0.05) for lr in lrs]]
        best = json.loads(on_grid.loc[on_grid["perplexity"].idxmin(), "values"])["train.lr"]
        # a two-value grid's best always sits at an end: exactly one step (x3) past that end, max_steps = 1
        assert sorted(lrs) == sorted([0.01, 0.05, 0.15 if best == 0.05 else float(f"{0.01 / 3:.4g}")])
    # selection scored the held-out slice, never the test split
    assert all(json.loads(c)["task"]["split"] == "valid_holdout" for c in rows["config"])
    table = (tmp_path / "results" / "tiny.md").read_text()
    assert "Not scored yet" in table

    final = runner.invoke(app, ["study", "run", str(path), "phase=final", *dirs(tmp_path)])
    assert final.exit_code == 0, final.output
    after = load_rows(tmp_path / "results")
    n_runs = len(after)
    cells = pd.read_csv(tmp_path / "results" / "tiny_cells.csv")
    units = pd.read_csv(tmp_path / "results" / "tiny_units.csv")
    test = cells[cells["phase"] == "test"]
    assert sorted(test[test["arm"] == "cua"]["seed"]) == [0, 1, 2]
    assert len(test[test["arm"] == "base"]) == 1  # unseeded: scored once
    # seed 0's final training run is the selection run at the chosen rate (reused, not retrained)
    trained = cells[(cells["phase"] == "train") & (cells["arm"] == "cua") & (cells["seed"] == 0)]
    chosen = json.loads(trained["values"].iloc[0])
    picked = sel[(sel["arm"] == "cua") & (sel["values"] == json.dumps(chosen, sort_keys=True))]
    assert trained["run_id"].iloc[0] == picked["run_id"].iloc[0]

    # the rendered intervals and p-values are the estimator's on the same per-window scores
    base = units[units["arm"] == "base"].sort_values("window")
    tokens = base["tokens"].to_numpy()

    def nll(arm):
        w = units[units["arm"] == arm].sort_values(["seed", "window"])
        return w.pivot(index="seed", columns="window", values="nll").to_numpy() - base["nll"].to_numpy()

    expected = est.estimate({"cua": nll("cua"), "lora": nll("lora")}, tokens, "delta_ppl_pct", "cua")
    table = (tmp_path / "results" / "tiny.md").read_text()
    reported = table.split("## Reported")[1]
    lora = next(line for line in reported.splitlines() if line.startswith("| LoRA r = 1 |"))
    ci, d = expected.arms["lora"], expected.versus["lora"]
    assert f"{ci.estimate:+.2f} [{ci.low:+.2f}, {ci.high:+.2f}]" in lora
    assert f"{d.difference.estimate:+.2f} [{d.difference.low:+.2f}, {d.difference.high:+.2f}]" in lora
    assert est.p_text(d.p).removeprefix("p = ").removeprefix("p ") in lora
    verdict = est.verdict(d, lower_is_better=True)
    assert f"- LoRA r = 1 {verdict} CUA q = 2" in table
    assert units["window"].nunique() == expected.units and expected.seeds == 3

    # peft's method-comparison result format: one file per arm and seed, the sections and keys peft's log_results
    # writes (method_comparison/MetaMathQA/utils.py), figures from the cells
    exported = runner.invoke(app, ["study", "export", str(path), f"out={tmp_path / 'peft'}", *dirs(tmp_path)])
    assert exported.exit_code == 0, exported.output
    files = sorted(p.name for p in (tmp_path / "peft").glob("*.json"))
    assert files == sorted(
        ["tiny--base--seed0.json"] + [f"tiny--{a}--seed{s}.json" for a in ("cua", "lora") for s in (0, 1, 2)]
    )
    result = json.loads((tmp_path / "peft" / "tiny--lora--seed1.json").read_text())
    assert set(result) == {"run_info", "train_info", "meta_info"}
    assert {"created_at", "total_time", "experiment_name", "train_config", "peft_config", "error_msg"} <= set(
        result["run_info"]
    )
    assert {"train_time", "num_trainable_params", "num_total_params", "status", "metrics", "file_size"} <= set(
        result["train_info"]
    )
    assert {"package_info", "system_info", "pytorch_info", "model_info", "dataset_info"} <= set(result["meta_info"])
    lora_cells = cells[(cells["arm"] == "lora") & (cells["seed"] == 1)]
    test_cell = lora_cells[lora_cells["phase"] == "test"].iloc[0]
    train_cell = lora_cells[lora_cells["phase"] == "train"].iloc[0]
    assert result["train_info"]["num_trainable_params"] == int(test_cell["trainable_params"]) == 72
    assert result["train_info"]["train_time"] == pytest.approx(float(train_cell["train_seconds"]))
    assert result["train_info"]["metrics"][0]["test perplexity"] == pytest.approx(float(test_cell["perplexity"]))
    assert result["train_info"]["cpu_memory_max"] > 0 and result["train_info"]["status"] == "success"
    assert result["run_info"]["train_config"]["optimizer_kwargs"]["lr"] == json.loads(train_cell["values"])["train.lr"]
    assert result["run_info"]["peft_config"]["r"] == 1
    assert result["meta_info"]["package_info"]["peft-version"]

    # a second run reuses every cell: nothing trained or scored again, the same table
    again = runner.invoke(app, ["study", "run", str(path), *dirs(tmp_path)])
    assert again.exit_code == 0, again.output
    assert len(load_rows(tmp_path / "results")) == n_runs
    assert _figures((tmp_path / "results" / "tiny.md").read_text()) == _figures(table)

    # status lists every cell as done; render needs only the cells and units files (no run directory)
    status = runner.invoke(app, ["study", "status", str(path), *dirs(tmp_path)])
    assert status.exit_code == 0, status.output
    assert "0 left" in status.output
    import shutil

    shutil.rmtree(tmp_path / "runs")
    (tmp_path / "results" / "tiny.md").unlink()
    rendered = runner.invoke(app, ["study", "render", str(path), *dirs(tmp_path)])
    assert rendered.exit_code == 0, rendered.output
    assert _figures((tmp_path / "results" / "tiny.md").read_text()) == _figures(table)
    # a fresh clone (rows and units files, no run directories) reuses every cell as well
    fresh = runner.invoke(app, ["study", "run", str(path), *dirs(tmp_path)])
    assert fresh.exit_code == 0, fresh.output
    assert len(load_rows(tmp_path / "results")) == n_runs and not (tmp_path / "runs").exists()
    assert _figures((tmp_path / "results" / "tiny.md").read_text()) == _figures(table)

    # a scoring cell left to a machine without the trained run's weights (its training row recorded, its own row
    # not): that run is trained again here, the same config and seed giving the same run, then scored
    store = tmp_path / "results" / "runs.csv"
    scored = test_cell["run_id"]
    trained_row = after[after["run_id"] == train_cell["run_id"]].iloc[0]
    kept = pd.read_csv(store)
    kept[kept["run_id"] != scored].to_csv(store, index=False)
    again = runner.invoke(app, ["study", "run", str(path), *dirs(tmp_path)])
    assert again.exit_code == 0, again.output
    rows = load_rows(tmp_path / "results")
    new = rows[~rows["run_id"].isin(after["run_id"])]
    assert len(rows) == n_runs + 1 and sorted(new["command"]) == ["eval ppl", "train"]
    retrained = new[new["command"] == "train"].iloc[0]
    assert retrained["run_dir"] == trained_row["run_dir"] and (tmp_path / "runs").exists()
    assert retrained["train_loss_final"] == pytest.approx(trained_row["train_loss_final"], rel=1e-6)
    assert _figures((tmp_path / "results" / "tiny.md").read_text()) == _figures(table)


def test_an_axis_study_without_selection_scores_devices_on_token_blocks(tiny_llama_dir, tmp_path, data_dir):
    """The noise sweep's shape: no selection (fixed hyperparameters), every arm along an axis (q = 1, 2), device
    evaluations of each trained run scored against their own exact pass on blocks of tokens; ``seeds=`` runs one
    seed's cells only; the rendered figures are the estimator's per axis value."""
    shared = [s for s in spec(tiny_llama_dir)["shared"] if not s.startswith("train.valid_holdout")]
    data = {
        "name": "tiny_noise",
        "title": "CUA on a tiny Llama: exact, shots, FakeFez",
        "shared": [*shared, "adapter=cua", "adapter.layers=[-1]", "task.max_tokens=192"],
        "arms": {
            "exact": {"label": "CUA exact"},
            "shots": {
                "label": "256 shots",
                "kind": "evaluation",
                "of": "exact",
                "overrides": ["device=exact", "device.shots=256"],
            },
            "noisy": {
                "label": "FakeFez",
                "kind": "evaluation",
                "of": "exact",
                "overrides": ["device=ibm_fake", "device.shots=256"],
            },
        },  # fmt: skip
        "reference": "shots",
        "axis": {"key": "adapter.qubits_per_block", "name": "q", "values": [1, 2]},
        "final": {
            "seeds": [0, 1],
            "split": "test",
            "unit": "token_blocks",
            "block_tokens": 16,
            "statistic": "device_degradation_pct",
        },
    }
    path = tmp_path / "tiny_noise.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    runner = CliRunner()
    first = runner.invoke(app, ["study", "run", str(path), "seeds=0", *dirs(tmp_path)])
    assert first.exit_code == 0, first.output
    cells = pd.read_csv(tmp_path / "results" / "tiny_noise_cells.csv")
    ran = cells[cells["done"] == True]  # noqa: E712
    assert set(ran["seed"]) == {0} and set(cells["seed"]) == {0, 1}
    assert set(ran["arm"]) == {f"{a}_q{q}" for a in ("exact", "shots", "noisy") for q in (1, 2)}
    assert set(cells["phase"]) == {"train", "test"}  # no selection phase
    configs = {r["arm"]: json.loads(r["config"]) for _, r in ran[ran["phase"] == "test"].iterrows()}
    assert (
        configs["noisy_q2"]["adapter"]["qubits_per_block"] == 2 and configs["noisy_q2"]["device"]["name"] == "ibm_fake"
    )

    both = runner.invoke(app, ["study", "run", str(path), *dirs(tmp_path)])
    assert both.exit_code == 0, both.output
    cells = pd.read_csv(tmp_path / "results" / "tiny_noise_cells.csv")
    units = pd.read_csv(tmp_path / "results" / "tiny_noise_units.csv")
    assert bool(cells["done"].all())
    table = (tmp_path / "results" / "tiny_noise.md").read_text()
    assert "fixed, not selected" in table and "## Selection" not in table
    for q in (1, 2):

        def degradation(arm, q=q):
            w = units[units["arm"] == f"{arm}_q{q}"].sort_values(["seed", "window"])
            return (w.pivot(index="seed", columns="window", values="nll")
                    - w.pivot(index="seed", columns="window", values="exact_nll")).to_numpy()  # fmt: skip

        tokens = units[units["arm"] == f"shots_q{q}"].groupby("window")["tokens"].first().to_numpy()
        assert tokens[:-1].tolist() == [16] * (len(tokens) - 1)
        expected = est.estimate(
            {f"shots_q{q}": degradation("shots"), f"noisy_q{q}": degradation("noisy")},
            tokens,
            "delta_ppl_pct",
            f"shots_q{q}",
        )
        row = next(line for line in table.splitlines() if line.startswith(f"| FakeFez, q = {q} |"))
        ci, d = expected.arms[f"noisy_q{q}"], expected.versus[f"noisy_q{q}"]
        assert f"{ci.estimate:+.2f} [{ci.low:+.2f}, {ci.high:+.2f}]" in row
        assert f"{d.difference.estimate:+.2f} [{d.difference.low:+.2f}, {d.difference.high:+.2f}]" in row
        # the exact arm has no degradation of its own; the exact pass the device rows carry is its own run's
        exact_row = next(line for line in table.splitlines() if line.startswith(f"| CUA exact, q = {q} |"))
        assert [c.strip() for c in exact_row.split("|")][5:8] == ["–", "–", "–"]
    exact = cells[(cells["arm"] == "exact_q1") & (cells["phase"] == "test")].set_index("seed")["perplexity"]
    shots = units[units["arm"] == "shots_q1"].groupby("seed")[["exact_nll", "tokens"]].sum()
    assert np.exp(shots["exact_nll"] / shots["tokens"]).to_numpy() == pytest.approx(exact.to_numpy(), rel=1e-5)

    # mitigation.yaml's shape: the trained arm unscored, Δ against an evaluation arm's own exact pass, the axis left
    # off the evaluations (their configs are then those without it: new cells here), one seed of two so far
    data.update(name="tiny_mitig", reference="noisy")
    data["arms"]["exact"]["scored"] = False
    data["axis"]["to_evaluations"] = False
    data["final"].update(statistic="delta_ppl_pct", baseline="shots")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    # an evaluation runs under the config it takes from from_run (runs.effective: the trained run's adapter, with or
    # without the axis override), so these are the first study's evaluations, reused; q = 1's at seed 1 are dropped
    # here, to leave that seed to a later invocation
    import shutil

    store, first = tmp_path / "results" / "runs.csv", pd.read_csv(tmp_path / "results" / "tiny_noise_cells.csv")
    dropped = first[(first["phase"] == "test") & (first["seed"] == 1) & first["arm"].isin(["shots_q1", "noisy_q1"])]
    kept = pd.read_csv(store)
    kept[~kept["run_id"].isin(dropped["run_id"])].to_csv(store, index=False)
    for run_dir in dropped["run_dir"]:
        shutil.rmtree(run_dir)
    n_runs = len(load_rows(tmp_path / "results"))
    one = runner.invoke(app, ["study", "run", str(path), "seeds=0", *dirs(tmp_path)])
    assert one.exit_code == 0, one.output
    cells = pd.read_csv(tmp_path / "results" / "tiny_mitig_cells.csv")
    assert "exact_q1" not in set(cells[cells["phase"] == "test"]["arm"])  # trained, not scored itself
    noisy = cells[(cells["arm"] == "noisy_q2") & (cells["phase"] == "test") & (cells["done"] == True)]  # noqa: E712
    assert "qubits_per_block=2" not in " ".join(json.loads(noisy["config"].iloc[0]).get("overrides", []))
    units = pd.read_csv(tmp_path / "results" / "tiny_mitig_units.csv")
    table = (tmp_path / "results" / "tiny_mitig.md").read_text()
    # nothing ran: q = 1 has seed 0 only; q = 2's evaluations are the study above's, with both seeds
    assert len(load_rows(tmp_path / "results")) == n_runs
    assert "q = 1: 1 of 2 seeds so far (seed 0; one run" in table and "q = 2: 2 seeds" in table
    assert "one run: the interval covers the text" in table
    for q in (1, 2):

        def scores(arm, column="nll", q=q):
            w = units[units["arm"] == f"{arm}_q{q}"].sort_values(["seed", "window"])
            return w.pivot(index="seed", columns="window", values=column).to_numpy()

        base = scores("shots", "exact_nll")
        tokens = units[units["arm"] == f"shots_q{q}"].groupby("window")["tokens"].first().to_numpy()
        expected = est.estimate(
            {f"noisy_q{q}": scores("noisy") - base, f"shots_q{q}": scores("shots") - base},
            tokens,
            "delta_ppl_pct",
            f"noisy_q{q}",
        )
        assert expected.seeds == q  # 1 seed at q = 1, 2 at q = 2
        row = next(line for line in table.splitlines() if line.startswith(f"| 256 shots, q = {q} |"))
        ci = expected.arms[f"shots_q{q}"]
        assert f"{ci.estimate:+.2f} [{ci.low:+.2f}, {ci.high:+.2f}]" in row


def _figures(table: str) -> list[str]:
    """The table without its date line."""
    return [line for line in table.splitlines() if not line.startswith("Commits:")]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"final.split": "valid_holdout"}, "final.split: 'valid_holdout' is also select.split"),
        ({"reference": "dora"}, "reference: unknown arm 'dora'; valid choices: base, cua, lora"),
        ({"select.grid": {"default": {"train.lr": []}}}, "select.grid.default.train.lr"),
        ({"arms.cua.overrides": ["adapter=cuaa"]}, "arms.cua.overrides: unknown adapter 'cuaa'; valid choices:"),
        ({"arms.cua.overrides": ["adapter=cua", "adapter.qubit=2"]}, "arms.cua.overrides:"),
        ({"final.seeds": [0]}, "final.seeds"),
        ({"select.direction": "lowest"}, "select.direction"),
        ({"selection": {}}, "selection: unknown key"),
        ({"final.statistic": "device_degradation_pct"}, "final.unit: device_degradation_pct needs token_blocks"),
        ({"axis": {"key": "adapter.qubits_per_block", "name": "q", "values": []}}, "axis.values"),
    ],
)
def test_a_bad_spec_exits_2_naming_the_key_before_anything_runs(tmp_path, change, message):
    path = write(tmp_path, spec("unused-model-dir", **change))
    result = CliRunner().invoke(app, ["study", "run", str(path), *dirs(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in re.sub(r"\s+", " ", result.output)
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs").exists()


def test_an_unknown_study_name_lists_the_named_ones(tmp_path):
    result = CliRunner().invoke(app, ["study", "status", "no_such_study"])
    assert result.exit_code == 2
    assert "unknown study 'no_such_study'; valid choices:" in result.output


def test_verdict_words_follow_the_interval():
    from qadapt.results.stats import Interval, PairedTest

    def test(low, high):
        return PairedTest(Interval((low + high) / 2, low, high, 0.95, "x", 3), 0.01, "x")

    assert est.verdict(test(-2, -1), lower_is_better=True) == "beats"
    assert est.verdict(test(1, 2), lower_is_better=True) == "is beaten by"
    assert est.verdict(test(1, 2), lower_is_better=False) == "beats"
    assert est.verdict(test(-1, 1), lower_is_better=True) == "is not resolved against"
    assert est.verdict(test(-2, -1), lower_is_better=True, resolved=False) == "is not resolved against"
    assert est.p_text(0.00001) == "p < 0.0001" and est.p_text(0.0312) == "p = 0.031"
    assert "at 3 seeds" in est.sentence(test(-1, 1), "B", True, "points", 3)


def test_the_budget_is_where_every_curve_flattens_else_the_largest_run():
    """select.curve (configs/study/compression_recovery.yaml): per arm the first budget whose next one gains less
    than `flat`, the largest of those; a curve still gaining at its end sends the largest budget; a missing or
    collapsed point sends none."""
    from qadapt.studies.engine import budget, flattens_at

    flat_at_40 = [(20, 50.0), (40, 57.0), (80, 58.0), (160, 58.5)]
    flat_at_80 = [(20, 50.0), (40, 55.0), (80, 60.0), (160, 61.0)]
    assert budget({"a": flat_at_40, "b": flat_at_80}, 2.0, "max") == 80
    # the one per-arm rule the budget and the recovery table's curve lines both use
    assert flattens_at(flat_at_40, 2.0, "max") == 40 and flattens_at(flat_at_80, 2.0, "max") == 80
    gaining = [(20, 51.1), (40, 57.5), (80, 62.9), (160, 65.9)]  # the committed CUA curve: +3.0 at the last doubling
    assert budget({"a": flat_at_40, "b": gaining}, 2.0, "max") == 160 and flattens_at(gaining, 2.0, "max") is None
    assert (
        budget({"a": [(1, 10.0), (2, 9.5)]}, 1.0, "min") == 1 and budget({"a": [(1, 10.0), (2, 9.5)]}, 0.1, "min") == 2
    )
    assert budget({"a": [(20, 50.0), (40, None)]}, 2.0, "max") is None
    assert budget({"a": [(20, 50.0), (40, float("nan"))]}, 2.0, "max") is None
