"""Compiled circuits on IBM's Heron basis (FakeFez): gate budgets and the circuits-per-token plan."""

import pytest
import torch
from typer.testing import CliRunner

from qadapt.cli import app
from qadapt.config import compose
from qadapt.devices.qiskit_compile import PAPER_SECONDS_PER_CIRCUIT, compile_blocks, fake_backend
from qadapt.errors import ConfigError
from qadapt.quantum import cayley, skew_symmetric
from qadapt.resources import circuit_plan


def test_two_qubit_cayley_blocks_compile_to_at_most_3_cz_on_heron():
    gens = torch.randn(32, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    costs = compile_blocks(cayley(skew_symmetric(gens, 4)).numpy(), fake_backend("FakeFez"))
    assert len(costs) == 32
    assert max(c.two_qubit for c in costs) <= 3
    assert all(set(c.ops) <= {"cz", "sx", "rz", "x"} for c in costs)  # Heron r2's basis


def test_a_token_circuit_adds_state_preparation_and_measurement():
    U = cayley(skew_symmetric(torch.randn(1, 6, dtype=torch.float64), 4)).numpy()
    q_only = compile_blocks(U, fake_backend("FakeFez"))[0]
    token = compile_blocks(U, fake_backend("FakeFez"), with_state_prep=True)[0]
    assert token.ops.get("measure") == 2
    assert token.depth >= q_only.depth


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


def test_unknown_fake_backend_lists_choices():
    with pytest.raises(ConfigError, match="valid choices: .*FakeFez"):
        fake_backend("FakeNope")


def test_cli_circuits_for_the_default_smollm2_adapter():
    result = CliRunner().invoke(app, ["circuits", "--tokens", "2", "--optimization-level", "1"])
    assert result.exit_code == 0, result.output
    assert "total: 1,728 circuits" in result.output  # 6 sites x 144 blocks x 2 tokens
