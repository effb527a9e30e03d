"""Compiled circuits on IBM's Heron basis (FakeFez): gate budgets and the circuits-per-token plan.
(Split by kind: its unit tests are in tests/unit/test_circuits.py.)"""

import pytest

from qadapt.config import compose
from qadapt.devices.qiskit_compile import PAPER_SECONDS_PER_CIRCUIT
from qadapt.resources import circuit_plan


def test_llama31_8b_one_projection_needs_1024_circuits_per_token():
    cfg = compose(["model=llama31_8b", "adapter.layers=[0]"])
    [row] = circuit_plan(cfg, "FakeFez", 1, 8192, 1)
    assert row["blocks"] == 1024 and row["circuits"] == 1024 and row["shots_total"] == 1024 * 8192
    assert row["q_2q_max"] <= 3
    # QPU time from FakeFez itself: 8,192 shots x (token circuit + 250 us repetition delay), about 2.1 s per circuit
    assert row["qpu_time_source"] == "FakeFez" and 1.56e-6 < row["token_circuit_duration_s"] < 10e-6
    assert row["qpu_seconds_per_circuit"] == pytest.approx(8192 * (row["token_circuit_duration_s"] + 250e-6))
    assert row["qpu_hours"] == pytest.approx(1024 * row["qpu_seconds_per_circuit"] / 3600)
    [given] = circuit_plan(cfg, "FakeFez", 1, 8192, 1, PAPER_SECONDS_PER_CIRCUIT)  # a figure the user trusts more
    assert given["qpu_time_source"] == "given"
    assert given["qpu_hours"] == pytest.approx(1024 * PAPER_SECONDS_PER_CIRCUIT / 3600)
