"""The QFFN sweep in CI: scripts/reproduce_qffn.py under the paper protocol (whole-model fine-tuning) with --quick on
the real SmolLM2-135M and a short real WikiText-2 slice: Table 2's fractions, two component rows, the interleaved
speed rounds and the rendered tables are checked (QFFN paper, Tables 1 and 2)."""

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


def sweep(tmp_path, *args: str) -> str:
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "reproduce_qffn.py"),
        *args,
        "--quick",
        "--seeds",
        "0",
        "--out-dir",
        str(tmp_path / "tables"),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--results-dir",
        str(tmp_path / "results"),
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_paper_protocol_sweep_produces_consistent_tables(tmp_path, data_dir):
    sweep(tmp_path, "table2", "--steps", "1")  # one step of each fraction: the counts and tables are checked
    sweep(tmp_path, "components", "--methods", "base_ft")
    sweep(tmp_path, "curve", "--methods", "base_ft")  # the longer budget (--quick: 3 steps), its own cell
    sweep(tmp_path, "speed", "--steps", "1")  # times the trained models of table2's cells; renders at 1 step
    out = tmp_path / "tables"
    cells = pd.read_csv(out / "qffn_cells.csv")
    assert sorted(cells[cells["method"] == "base_ft"]["steps"]) == [2, 3]
    assert "done  base_ft half seed 0, 3 steps" in sweep(tmp_path, "status")
    qffn = cells[cells["method"] == "qffn_both"].set_index("fraction").loc[["quarter", "half", "full"]]
    params = list(qffn["total_params"])
    assert params[0] > params[1] > params[2]
    # removed = the replaced FFNs (3 * 576 * 1536 each: 8, 15, 30 of them); the whole model trained (train=paper)
    assert list(qffn["removed_params"]) == [n * 3 * 576 * 1536 for n in (8, 15, 30)]
    assert list(qffn["trainable_params"]) == params
    assert all(math.isfinite(p) and p > 1 for p in cells["perplexity"])
    base = cells[cells["method"] == "base"].iloc[0]  # not fine-tuned, scored on the same windows
    windows = pd.read_csv(out / "qffn_windows.csv")
    assert windows.groupby(["method", "fraction", "seed", "steps"])["tokens"].sum().nunique() == 1
    assert cells[cells["method"] == "base_ft"].iloc[0]["perplexity"] != base["perplexity"]  # the base weights moved
    curve = pd.read_csv(out / "qffn_curve.csv").query("method == 'base_ft'")
    assert [sorted(curve[curve["steps"] == n]["step"]) for n in (2, 3)] == [[0, 1, 2], [0, 1, 2, 3]]
    speed = pd.read_csv(out / "qffn_speed.csv")
    fused = speed[speed["simulator"] == "fused"]
    # interleaved: every round has the base and every QFFN fraction; ratios against the base of the same round
    assert fused.groupby("round")["method"].apply(lambda m: sorted(m)).map(len).eq(4).all()
    assert (fused[fused["method"] == "base"]["speed"] == 1.0).all()
    assert all(math.isfinite(s) and s > 0 for s in speed["speed"])
    assert set(speed["simulator"]) >= {"fused", "lightning_qubit"}
    assert speed[speed["method"] != "base"]["seed"].eq(0).all()  # the one trained seed whose weights are here
    table2 = (out / "table2.md").read_text()
    assert "| quarter | 1 |" in table2 and "| full | 1 |" in table2 and (out / "table2.png").stat().st_size > 1000
    assert "interleaved rounds" in table2
    components = (out / "qffn_components.md").read_text()
    assert "base SmolLM2-135M, fine-tuned" in components and (out / "qffn_curve.png").stat().st_size > 1000

    # another machine: the run directories gone, a finished cell is kept from the cell files and results/runs.csv
    shutil.rmtree(tmp_path / "runs")
    again = sweep(tmp_path, "components", "--methods", "base_ft")
    assert again.count("kept: ") == 2 and "(not fine-tuned)" in again  # the base and base_ft cells, nothing trained
    assert pd.read_csv(out / "qffn_cells.csv").equals(cells)
