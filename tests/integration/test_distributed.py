"""Data parallelism (qadapt/distributed.py): two processes launched by torchrun (gloo, CPU) train to the same
adapter as one process on the whole batch, and a two-process torchrun launch of `qadapt train` on the real SmolLM2
writes one row with the single-process run's perplexities."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / "tests" / "helpers" / "ddp_fit.py"
# two processes on this machine (torchrun; accelerate launch --multi_gpu runs the same launcher on GPUs)
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _env():
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    return {**env, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


@pytest.mark.parametrize("cache", ["false", "true"])
def test_two_processes_train_the_adapter_one_process_trains(tmp_path, cache):
    alone = subprocess.run(
        [sys.executable, str(HELPER), str(tmp_path / "one"), cache], env=_env(), capture_output=True, text=True
    )
    assert alone.returncode == 0, alone.stderr[-2000:]
    launch = [
        *TORCHRUN,
        str(HELPER),
        str(tmp_path / "two"),
        cache,
    ]
    pair = subprocess.run(launch, env=_env(), capture_output=True, text=True, timeout=600)
    assert pair.returncode == 0, pair.stderr[-3000:]
    one, two = torch.load(tmp_path / "one" / "adapter.pt"), torch.load(tmp_path / "two" / "adapter.pt")
    assert (one["world"], two["world"]) == (1, 2)
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-5)  # each step: the mean over the whole batch
    assert one["losses"][-1] < one["losses"][0]
    for name, tensor in one["adapter"].items():
        torch.testing.assert_close(two["adapter"][name], tensor, rtol=1e-4, atol=1e-6)


def test_a_two_process_launch_of_qadapt_train_matches_one_process(tmp_path, smollm2_path, data_dir):
    common = [
        "train",
        "task.max_tokens=1024",
        "task.max_length=256",
        "task.stride=256",
        "task.batch_size=1",
        "train.max_steps=2",
        "train.batch_size=2",
        "train.seq_len=64",
        "adapter.layers=[-2,-1]",
        "threads=1",
    ]
    single = subprocess.run(
        [
            sys.executable,
            "-m",
            "qadapt.cli",
            *common,
            f"results_dir={tmp_path / 'one'}",
            f"runs_dir={tmp_path / 'one' / 'runs'}",
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert single.returncode == 0, single.stderr[-2000:]
    # torchrun (accelerate launch --multi_gpu runs the same launcher on GPUs; on CPUs it would need MPI)
    launch = [
        *TORCHRUN,
        "-m",
        "qadapt.cli",
        *common,
        f"results_dir={tmp_path / 'two'}",
        f"runs_dir={tmp_path / 'two' / 'runs'}",
    ]
    pair = subprocess.run(launch, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert pair.returncode == 0, pair.stderr[-3000:]
    one, two = pd.read_csv(tmp_path / "one" / "runs.csv"), pd.read_csv(tmp_path / "two" / "runs.csv")
    assert len(two) == 1 and int(two["processes"].iloc[0]) == 2  # one row, from process 0
    for col in ("base_perplexity", "perplexity"):  # the windows split over the processes, their NLL sums added
        assert two[col].iloc[0] == pytest.approx(one[col].iloc[0], rel=1e-5), col
    assert two["train_loss_final"].iloc[0] == pytest.approx(one["train_loss_final"].iloc[0], rel=1e-5)


def test_accelerate_device_map_with_disk_offload_scores_what_the_plain_model_scores(
    tmp_path, smollm2_cfg, smollm2_path, wikitext_test
):
    from omegaconf import OmegaConf

    from qadapt.eval import perplexity
    from qadapt.eval.windows import build_eval_set
    from qadapt.models import input_device, load

    task = OmegaConf.create({"mode": "sliding", "max_length": 256, "stride": 256, "max_tokens": 512})
    scores = []
    for placement in ({}, {"device_map": "auto", "max_memory": {"cpu": "200MB"}, "offload_folder": str(tmp_path)}):
        loaded = load(OmegaConf.merge(smollm2_cfg, placement))
        if placement:  # accelerate kept part of the weights on disk: they are meta tensors until its hooks load them
            assert (
                set(loaded.model.hf_device_map.values()) == {"cpu", "disk"} and input_device(loaded.model).type == "cpu"
            )
        eval_set = build_eval_set(loaded.tokenizer, wikitext_test, "test", task)
        scores.append(
            perplexity.evaluate(loaded.model, eval_set, 2, loaded.tokenizer.eos_token_id).metrics()["perplexity"]
        )
    assert scores[1] == pytest.approx(scores[0], rel=1e-6)


def test_a_cuda_device_map_without_a_gpu_fails_clearly(smollm2_cfg, monkeypatch):
    from omegaconf import OmegaConf

    from qadapt.errors import ConfigError
    from qadapt.models import load

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without a GPU, wherever this runs
    with pytest.raises(ConfigError, match="needs a CUDA GPU and none is visible"):
        load(OmegaConf.merge(smollm2_cfg, {"device_map": "cuda"}))


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA GPU on this machine: the GPU placement path needs one"
)
def test_smollm2_on_the_gpu_scores_what_the_cpu_scores(smollm2_cfg, smollm2_path, wikitext_test):
    from omegaconf import OmegaConf

    from qadapt.eval import perplexity
    from qadapt.eval.windows import build_eval_set
    from qadapt.models import load

    task = OmegaConf.create({"mode": "sliding", "max_length": 512, "stride": 512, "max_tokens": 2048})
    scores = []
    for placement in ({}, {"device_map": "cuda"}):
        loaded = load(OmegaConf.merge(smollm2_cfg, placement))
        eval_set = build_eval_set(loaded.tokenizer, wikitext_test, "test", task)
        scores.append(
            perplexity.evaluate(loaded.model, eval_set, 2, loaded.tokenizer.eos_token_id).metrics()["perplexity"]
        )
    assert scores[1] == pytest.approx(scores[0], rel=1e-4)
