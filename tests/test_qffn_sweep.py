"""The QFFN fraction sweep in CI: scripts/reproduce_qffn.py table2 --quick on the real SmolLM2-135M and a short real
WikiText-2 slice (a few steps), then the produced table is checked (QFFN paper, Table 2)."""

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


def test_fraction_sweep_produces_a_consistent_table(tmp_path, data_dir):
    out = tmp_path / "tables"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "reproduce_qffn.py"),
        "table2",
        "--quick",
        "--out-dir",
        str(out),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--results-dir",
        str(tmp_path / "results"),
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(out / "table2.csv")
    assert list(table["fraction"]) == ["quarter", "half", "full"]
    params = list(table["total_params"])
    assert params[0] > params[1] > params[2]
    # removed = the replaced FFNs (3 * 576 * 1536 each: 8, 15, 30 of them), added = the quantum blocks
    assert list(table["removed_params"]) == [n * 3 * 576 * 1536 for n in (8, 15, 30)]
    assert all(math.isfinite(p) and p > 1 for p in table["perplexity"])
    assert all(math.isfinite(s) and s > 0 for s in table["fused_speed"])
    assert all(math.isfinite(s) and s > 0 for s in table["lightning_qubit_speed"])
    text = (out / "table2.md").read_text()
    assert "| quarter |" in text and "| full |" in text and (out / "table2.png").stat().st_size > 1000
