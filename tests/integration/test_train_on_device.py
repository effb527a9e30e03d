"""`qadapt train ... device=<any>`: the adapter trains on the exact simulator (train.device), then the base
and the trained adapter are evaluated on the device the user named, in one row. A tiny Llama-architecture checkpoint
(conftest.py) goes through the same model.path route as downloaded Llama 3.1 8B weights."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from qadapt.cli import app
from qadapt.results import load_rows


def llama(tmp_path, model_dir, *extra: str) -> list[str]:
    return [
        "model=llama31_8b",
        f"model.path={model_dir}",
        "model.dtype=float32",
        "adapter=cua",
        "adapter.layers=[-1]",
        "task.max_tokens=96",
        "task.max_length=48",
        "task.stride=48",
        "task.batch_size=2",
        "train.max_steps=3",
        "train.batch_size=2",
        "train.seq_len=32",
        "train.lr=0.05",
        f"results_dir={tmp_path / 'results'}",
        f"runs_dir={tmp_path / 'runs'}",
        *extra,
    ]


def named_after_its_config(row) -> bool:
    """The run directory's name, the row's config_hash and the hash of the config.yaml saved in it agree: a run is
    named after the config that ran (what an evaluation takes from from_run, the device's token cap included)."""
    from omegaconf import OmegaConf

    from qadapt.config import config_hash

    saved = config_hash(OmegaConf.load(f"{row['run_dir']}/config.yaml"))
    return saved == row["config_hash"] and str(row["run_dir"]).endswith(saved)


def test_train_on_exact_then_run_on_ibm_fake(tiny_llama_dir, tmp_path, data_dir):
    runner = CliRunner()
    done = runner.invoke(app, ["train", *llama(tmp_path, tiny_llama_dir, "device=ibm_fake", "device.max_tokens=40")])
    assert done.exit_code == 0, done.output
    row = load_rows(tmp_path / "results").iloc[-1]
    # device.max_tokens bounds every evaluation of the run: base, exact and device on the same 40 tokens
    assert row["tokens_scored"] == 40 and row["base_tokens_scored"] == 40
    assert row["device_max_tokens"] == 40 and row["max_tokens"] == 40 and named_after_its_config(row)
    # 12 blocks of 4 dimensions on v_proj's 48-wide input, one circuit per block at each scored position
    assert row["device_circuits"] == 40 * 12
    assert "FakeFez" in row["device_desc"]
    assert math.isfinite(row["exact_perplexity"]) and row["exact_perplexity"] != row["base_perplexity"]
    assert row["perplexity"] != row["exact_perplexity"]  # FakeFez's noise
    assert row["device_degradation_pct"] == pytest.approx(100 * (row["perplexity"] / row["exact_perplexity"] - 1))
    assert row["delta_ppl_pct"] == pytest.approx(100 * (row["perplexity"] / row["base_perplexity"] - 1))
    assert row["model_source"] == f"path:{tiny_llama_dir}"
    # every scored token's NLL on the device and exactly: what results/mitigation.md bootstraps over
    import numpy as np

    tokens = np.load(f"{row['run_dir']}/token_nll.npz")
    assert len(tokens["nll"]) == len(tokens["exact_nll"]) == 40
    assert tokens["nll"].mean() == pytest.approx(row["mean_nll"], rel=1e-9)
    assert tokens["exact_nll"].mean() == pytest.approx(row["exact_mean_nll"], rel=1e-9)

    # the saved adapter is the one trained exactly: `eval ppl` on the exact device scores the row's exact figure
    again = runner.invoke(
        app,
        [
            "eval",
            "ppl",
            *llama(tmp_path, tiny_llama_dir, f"from_run={row['run_dir']}", "task.max_tokens=40"),
        ],
    )
    assert again.exit_code == 0, again.output
    exact = load_rows(tmp_path / "results").iloc[-1]
    assert exact["perplexity"] == pytest.approx(row["exact_perplexity"], rel=1e-6)
    assert named_after_its_config(exact) and "cua" in exact["config"]  # the trained run's adapter, not adapter=none
    assert row["device_mitigation"] == "none" and row["device_calibration_shots"] == 0

    # readout mitigation: the same adapter and tokens; the calibration's cost is in the row
    mitigated = runner.invoke(
        app,
        [
            "eval",
            "ppl",
            *llama(tmp_path, tiny_llama_dir, f"from_run={row['run_dir']}", "device=ibm_fake", "device.max_tokens=40"),
            "device.mitigation=readout",
        ],
    )
    assert mitigated.exit_code == 0, mitigated.output
    m = load_rows(tmp_path / "results").iloc[-1]
    assert m["device_mitigation"] == "readout" and m["device_circuits"] == 40 * 12
    assert m["device_calibration_circuits"] >= 1 and m["device_calibration_shots"] >= 2 * 8192
    assert m["exact_perplexity"] == pytest.approx(row["exact_perplexity"], rel=1e-6)
    assert m["perplexity"] != row["perplexity"]
    assert named_after_its_config(m)

    # a run named as before 2026-12-07 (after the config as composed, before what it took from from_run and the
    # token cap) is still found by the config that made it: its directory, else its recorded row
    import shutil

    import pandas as pd

    from qadapt import runs
    from qadapt.config import compose

    over = [*llama(tmp_path, tiny_llama_dir, f"from_run={row['run_dir']}", "device=ibm_fake", "device.max_tokens=40")]
    cfg = compose([*over, "device.mitigation=readout"])
    named, composed = runs.directories(cfg, "eval ppl")
    assert str(named) == m["run_dir"] and composed != named
    shutil.move(named, composed)
    store = tmp_path / "results" / "runs.csv"
    frame = pd.read_csv(store)
    frame.loc[frame["run_id"] == m["run_id"], "run_dir"] = str(composed)
    frame.to_csv(store, index=False)
    assert runs.finished(cfg, "eval ppl")["run_id"] == m["run_id"]
    shutil.rmtree(composed)
    assert runs.recorded(cfg, "eval ppl")["run_id"] == m["run_id"]


def test_ibm_without_account_and_bad_train_device_fail_at_once(tiny_llama_dir, tmp_path, monkeypatch):
    import qiskit_ibm_runtime.accounts.management as management

    monkeypatch.setattr(management, "_DEFAULT_ACCOUNT_CONFIG_JSON_FILE", str(tmp_path / "qiskit-ibm.json"))
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    monkeypatch.delenv("QISKIT_IBM_INSTANCE", raising=False)
    runner = CliRunner()
    done = runner.invoke(app, ["train", *llama(tmp_path, tiny_llama_dir, "device=ibm")])
    assert done.exit_code == 2
    assert "needs an IBM Quantum account: set QISKIT_IBM_TOKEN" in done.output
    assert "Traceback" not in done.output
    for bad, message in (("default_qubit", "cannot train: gradients do not flow"), ("qpu", "unknown device")):
        done = runner.invoke(app, ["train", *llama(tmp_path, tiny_llama_dir, "device=ibm_fake", f"train.device={bad}")])
        assert done.exit_code == 2, done.output
        assert message in done.output and "valid choices: " in done.output
        assert "Traceback" not in done.output
    done = runner.invoke(app, ["train", "adapter=qffn", "device=ibm_fake", f"results_dir={tmp_path / 'results'}"])
    assert done.exit_code == 2 and "cannot run QFFN circuits" in done.output  # before any training
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs").exists()


def test_noise_aware_training_trains_through_the_backend_noise_model(tiny_llama_dir, tmp_path, data_dir):
    runner = CliRunner()
    over = ("device=ibm_fake", "device.max_tokens=40")
    done = runner.invoke(app, ["train", *llama(tmp_path, tiny_llama_dir, *over, "train.noise=FakeFez")])
    assert done.exit_code == 0, done.output
    row = load_rows(tmp_path / "results").iloc[-1]
    assert "noise_surrogate(FakeFez" in row["train_device_desc"] and row["train_noise_depolarising"] > 0
    assert row["train_noise_tv"] < row["train_noise_tv_exact"]
    assert row["device_circuits"] == 40 * 12 and math.isfinite(row["device_degradation_pct"])
    # trained through the noise model, not exactly: another adapter than the same run without train.noise
    plain = runner.invoke(app, ["train", *llama(tmp_path, tiny_llama_dir, *over)])
    assert plain.exit_code == 0, plain.output
    exact_trained = load_rows(tmp_path / "results").iloc[-1]
    assert exact_trained["exact_perplexity"] != row["exact_perplexity"]
    for bad, message in (
        ("adapter=lora", "adapter=lora runs none (valid choices: adapter=cua)"),
        ("train.noise=FakeNowhere", "unknown fake"),
    ):
        extra = ("train.noise=FakeFez", bad) if bad.startswith("adapter") else (bad,)
        done = runner.invoke(app, ["train", *llama(tmp_path, tiny_llama_dir, *over), *extra])
        assert done.exit_code == 2 and message in done.output, done.output
