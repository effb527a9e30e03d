"""Compiled circuits on IBM's Heron basis (FakeFez): gate budgets and the circuits-per-token plan.
(Split by kind: its tests on real models, data, simulators or launches are in
tests/integration/test_circuits.py.)"""

import pytest
import torch
from typer.testing import CliRunner

from qadapt.cli import app
from qadapt.devices.qiskit_compile import compile_blocks, fake_backend
from qadapt.errors import ConfigError
from qadapt.quantum import cayley, skew_symmetric


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


def test_unknown_fake_backend_lists_choices():
    with pytest.raises(ConfigError, match="valid choices: .*FakeFez"):
        fake_backend("FakeNope")


def test_cli_circuits_for_the_default_smollm2_adapter():
    result = CliRunner().invoke(app, ["circuits", "--tokens", "2", "--optimization-level", "1"])
    assert result.exit_code == 0, result.output
    assert "total: 1,728 circuits" in result.output  # 6 sites x 144 blocks x 2 tokens
