"""Sweeps through Hydra launchers (qadapt/launch.py, configs/hydra/launcher/): the configs instantiate the plugins'
launchers, a real joblib sweep trains every point in parallel worker processes with the run directories and rows
of local runs, and bad use is refused before anything runs.
(Split by kind: its unit tests are in tests/unit/test_launch.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from qadapt.config import compose
from qadapt.runs import run_dir_for

ROOT = Path(__file__).resolve().parents[2]

TINY = [
    "task.max_tokens=64",
    "task.max_length=64",
    "task.stride=64",
    "train.max_steps=1",
    "train.batch_size=1",
    "train.seq_len=32",
    "adapter.layers=[-1]",
    "threads=1",
]


def test_joblib_sweep_trains_every_point_in_parallel_with_local_run_dirs(tmp_path, smollm2_path, data_dir):
    store, runs = tmp_path / "results", tmp_path / "runs"
    cmd = [
        sys.executable,
        "-m",
        "qadapt.cli",
        "train",
        "-m",
        "seed=0,1,2",
        *TINY,
        "train.eval_every=0",  # declared, absent from train=default's YAML: settable in a launcher sweep too
        f"results_dir={store}",
        f"runs_dir={runs}",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = pd.read_csv(store / "runs.csv")
    assert len(rows) == 3 and sorted(rows["seed"]) == [0, 1, 2]  # no lost or torn row from the concurrent writers
    assert rows["run_id"].is_unique and rows["perplexity"].notna().all()
    for _, row in rows.iterrows():  # each job's config is the one compose() gives for its point
        point = [*TINY, "train.eval_every=0", f"seed={row['seed']}", f"results_dir={store}", f"runs_dir={runs}"]
        assert row["run_dir"] == str(run_dir_for(compose(point)))
        assert (Path(row["run_dir"]) / "adapter.safetensors").exists()
    assert len(list(runs.glob("multirun/*/*/.hydra/overrides.yaml"))) == 3
    assert "3 jobs done" in done.stderr
