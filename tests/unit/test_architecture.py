"""The house as built: docs/architecture.md draws import-linter's layers (the contracts themselves are checked once,
by `make lint`, which `make test` runs first), every results column is documented, and damaged run files fail with
one line naming the file."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file
from typer.testing import CliRunner

from qadapt import runs
from qadapt.cli import app
from qadapt.config import compose
from qadapt.errors import QadaptError

ROOT = Path(__file__).resolve().parents[2]


def _contract_layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in config if c["type"] == "layers")["layers"]
    return [{m.strip().removeprefix("qadapt.") for m in re.split(r"[|:]", layer)} for layer in layers]


def test_architecture_page_draws_the_contract_layers():
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("## Layers", 1)[1].split("```", 2)[1]
    drawn = [
        {m.strip() for m in re.split(r"[|:,]", line.strip().lstrip("→ ").strip("{}"))}
        for line in block.strip().splitlines()
        if line.strip()
    ]
    assert drawn == _contract_layers()


def test_every_row_column_is_documented():
    assert (ROOT / "docs" / "results-row.md").read_text() == runs.columns_markdown()
    assert runs.documented("base_perplexity") and runs.documented("compressed_mmlu_0shot_acc")
    assert runs.documented("metric_f1") and runs.documented("arc_easy_acc_norm")
    assert not runs.documented("perplexity_typo")


def test_finish_refuses_an_undocumented_column(tmp_path):
    cfg = compose([f"runs_dir={tmp_path}/runs", f"results_dir={tmp_path}/results"])
    run = runs.start(cfg, "eval ppl", [])
    with pytest.raises(ValueError, match="made_up_column"):
        runs.finish(run, {**runs.row(run), "made_up_column": 1.0})
    assert not (tmp_path / "results" / "runs.csv").exists()


def _finished_run(tmp_path) -> Path:
    cfg = compose([f"runs_dir={tmp_path}/runs", f"results_dir={tmp_path}/results"])
    run_dir = tmp_path / "runs" / "smollm2_135m-cua-test"
    run_dir.mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / runs.CONFIG_FILE)
    save_file(
        {"model.layers.29.self_attn.v_proj.generator": torch.randn(144, 6)},
        str(run_dir / runs.ADAPTER_FILE),
        metadata={"format": runs.ADAPTER_FORMAT},
    )
    return run_dir


def test_a_truncated_adapter_file_names_the_file(tmp_path):
    run_dir = _finished_run(tmp_path)
    assert runs.load_trained(run_dir).weights  # intact: loads
    path = run_dir / runs.ADAPTER_FILE
    path.write_bytes(path.read_bytes()[:-100])  # truncated, as by a full disk or a killed copy
    with pytest.raises(QadaptError, match="damaged or truncated"):
        runs.load_trained(run_dir)
    result = CliRunner().invoke(
        app, ["eval", "ppl", f"from_run={run_dir}", f"runs_dir={tmp_path}/runs", f"results_dir={tmp_path}/results"]
    )
    assert result.exit_code == 1
    assert str(path) in result.output.replace("\n", "") and "train it again" in result.output
    assert "Traceback" not in result.output


def test_a_garbage_adapter_file_names_the_file(tmp_path):
    run_dir = _finished_run(tmp_path)
    (run_dir / runs.ADAPTER_FILE).write_bytes(b"not a safetensors file at all")
    with pytest.raises(QadaptError, match=re.escape(str(run_dir / runs.ADAPTER_FILE))):
        runs.load_trained(run_dir)


def test_a_damaged_checkpoint_names_the_file(tmp_path):
    from qadapt.training.lm import load_checkpoint

    path = tmp_path / "checkpoint.pt"
    torch.save({"adapter": {}, "optimizer": {}, "scheduler": {}, "step": 3, "losses": [1.0]}, path)
    assert load_checkpoint(path)["step"] == 3
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(QadaptError, match=f"{re.escape(str(path))} is damaged or truncated"):
        load_checkpoint(path)


def test_saved_adapters_carry_their_structure(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from qadapt import adapters, devices

    cfg = compose(["adapter.layers=[1]", "adapter.qubits_per_block=2"])
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=97,
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    )
    adapters.apply(model, cfg.adapter, devices.get(cfg.device))
    path = tmp_path / runs.ADAPTER_FILE
    runs.save_adapter(path, model, cfg)
    (tmp_path / runs.CONFIG_FILE).write_text(OmegaConf.to_yaml(cfg))
    trained = runs.load_trained(tmp_path)
    assert trained.metadata["format"] == runs.ADAPTER_FORMAT
    assert OmegaConf.create(trained.metadata["adapter"]).qubits_per_block == 2
    ((site, structure),) = trained.structure.items()
    assert site.endswith("layers.1.self_attn.v_proj")
    assert structure["block_size"] == 4 and structure["side"] == "input" and structure["n_blocks"] == 12


def test_a_finished_run_is_reused_and_an_unfinished_one_is_not(tmp_path, monkeypatch):
    from qadapt import experiments

    overrides = [f"runs_dir={tmp_path}/runs", f"results_dir={tmp_path}/results", "train.max_steps=3"]
    cfg = compose(overrides)
    run_dir = runs.run_dir_for(cfg)
    calls = []
    monkeypatch.setattr(
        experiments, "run", lambda command, cfg, point, memo=None: calls.append(command) or {"ran": True}
    )
    assert runs.finished(cfg) is None
    assert experiments.run_or_reuse(overrides) == {"ran": True}  # nothing there: it runs
    run_dir.mkdir(parents=True)
    runs.write_json_atomic(run_dir / runs.METRICS_FILE, {"perplexity": 12.5})
    assert experiments.run_or_reuse(overrides) == {"ran": True}  # metrics without the adapter: not finished
    save_file({"w": torch.zeros(2)}, str(run_dir / runs.ADAPTER_FILE))
    assert experiments.run_or_reuse(overrides) == {"perplexity": 12.5}  # finished: read back, not run
    assert calls == ["train", "train"]
    assert runs.finished(compose([*overrides[:2], "train.max_steps=4"])) is None  # another config, another run


def test_a_recorded_row_is_reused_only_when_asked_and_only_for_its_own_config(tmp_path, monkeypatch):
    from qadapt import experiments
    from qadapt.results import append_row

    overrides = [f"runs_dir={tmp_path}/runs", f"results_dir={tmp_path}/results", "train.max_steps=3"]
    cfg = compose(overrides)
    monkeypatch.setattr(experiments, "run", lambda command, cfg, point, memo=None: {"ran": True})
    row = {"run_dir": str(runs.run_dir_for(cfg)), "command": "train", "score": 0.75, "threads": float("nan")}
    append_row(tmp_path / "results", {**row, "score": 0.5})
    append_row(tmp_path / "results", row)  # the last row of the run is the one read back
    append_row(tmp_path / "results", {**row, "command": "eval ppl", "score": 0.1})
    assert experiments.run_or_reuse(overrides) == {"ran": True}  # the run directory is not here: it runs
    assert experiments.run_or_reuse(overrides, recorded=True) == {**row, "threads": None}
    other = [*overrides[:2], "train.max_steps=4"]
    assert experiments.run_or_reuse(other, recorded=True) == {"ran": True}  # another config, another run
    assert runs.recorded(cfg, "eval ppl") is None  # another command's directory name, never this run's row


def test_tasks_without_training_say_what_to_run():
    from qadapt import experiments
    from qadapt.errors import ConfigError

    with pytest.raises(ConfigError, match="qadapt eval mc"):
        experiments.run("train", compose(["task=mc"]), [])
    with pytest.raises(ConfigError, match="valid choices: ppl, mc"):
        experiments.run("eval glue", compose([]), [])


def test_no_module_keeps_a_mutable_cache_of_its_own():
    """What a process keeps between runs (a base evaluation, an activation cache) lives in a qadapt.memo.Memo that
    the caller passes in; no module of qadapt/ holds a module-level container that starts empty and fills as it
    runs (issue 45)."""
    import ast

    found = []
    for path in sorted((ROOT / "qadapt").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            empty = isinstance(value, (ast.Dict, ast.List, ast.Set)) and not (
                getattr(value, "keys", None) or getattr(value, "elts", None)
            )
            called = isinstance(value, ast.Call) and getattr(value.func, "id", "") in ("dict", "list", "set")
            if empty or (called and not value.args and not value.keywords):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, found


def test_experiments_ask_the_adapter_spec_not_its_name():
    """Device rules and adapter kinds come from the adapter's registry spec (adapts, replaces, circuits), never from
    comparing ``cfg.adapter.name`` inside an experiment (issue 45); names appear in messages only."""
    import re

    for path in sorted((ROOT / "qadapt" / "experiments").glob("*.py")):
        found = re.findall(
            r"adapter(?:\.name|\[\"name\"\]|\.get\(\"name\"[^)]*\))\s*(?:==|!=|in\b|not in\b)", path.read_text()
        )
        assert not found, f"{path.name}: {found}"


def test_every_recorded_row_carries_the_hash_that_named_its_directory():
    """results/runs.csv: a row's config_hash is the hash in its run directory's name (``<model>-<adapter>-<hash>``,
    ``eval-<ppl|mc>-<hash>``), so a row identifies the config that made its directory. Rows recorded before the
    column existed have none."""
    import re

    import pandas as pd

    rows = pd.read_csv(ROOT / "results" / "runs.csv", usecols=["run_dir", "config_hash"], dtype=str)
    named = rows.run_dir.str.extract(r"-([0-9a-f]{8})/?$", expand=False)
    checked = rows[rows.config_hash.notna() & named.notna()]
    wrong = checked[checked.config_hash != named[checked.index]]
    assert len(checked) > 800 and wrong.empty, wrong.head().to_string()
    assert re.fullmatch(r"[0-9a-f]{8}", checked.config_hash.iloc[-1])
