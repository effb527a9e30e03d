"""Cayley blocks: orthogonal, identity at zero, the right number of parameters."""

import pytest
import torch

from qadapt.quantum import cayley, num_skew_params, random_block_unitaries, random_cayley_generators, skew_symmetric


@pytest.mark.parametrize("q", [1, 2, 3, 4])
def test_cayley_blocks_are_orthogonal_for_random_parameters(q):
    b = 2**q
    gen = torch.Generator().manual_seed(q)
    params = torch.randn(64, num_skew_params(b), generator=gen, dtype=torch.float64) * 3
    Q = cayley(skew_symmetric(params, b))
    eye = torch.eye(b, dtype=torch.float64).expand(64, b, b)
    assert torch.allclose(Q @ Q.transpose(-1, -2), eye, atol=1e-6)
    assert torch.allclose(Q.transpose(-1, -2) @ Q, eye, atol=1e-6)
    assert torch.allclose(torch.linalg.det(Q), torch.ones(64, dtype=torch.float64), atol=1e-6)
    # float32, the dtype used in training, is orthogonal to 1e-6 too
    Q32 = cayley(skew_symmetric(params.float(), b))
    assert (Q32 @ Q32.transpose(-1, -2) - eye.float()).abs().max() < 1e-6 * b


def test_cayley_matches_its_definition():
    A = skew_symmetric(torch.randn(num_skew_params(4), dtype=torch.float64), 4)
    eye = torch.eye(4, dtype=torch.float64)
    assert torch.allclose(cayley(A), (eye - A) @ torch.linalg.inv(eye + A), atol=1e-12)


def test_zero_generator_is_exact_identity():
    Q = cayley(skew_symmetric(torch.zeros(10, 6), 4))
    assert torch.equal(Q, torch.eye(4).expand(10, 4, 4))


def test_skew_symmetric_layout_and_errors():
    A = skew_symmetric(torch.tensor([1.0, 2.0, 3.0]), 3)
    assert torch.equal(A, torch.tensor([[0.0, 1.0, 2.0], [-1.0, 0.0, 3.0], [-2.0, -3.0, 0.0]]))
    assert [num_skew_params(2**q) for q in (1, 2, 3)] == [1, 6, 28]
    with pytest.raises(ValueError, match="expected 6 parameters"):
        skew_symmetric(torch.zeros(5), 4)


def test_random_generators_are_the_hand_written_draws():
    """The shared "random Cayley blocks x 0.3" draws exactly what its callers drew by hand (same RNG calls, dtype)."""
    by_hand = torch.randn(8, num_skew_params(4), generator=torch.Generator().manual_seed(11), dtype=torch.float64) * 0.3
    ours = random_cayley_generators(8, 4, torch.Generator().manual_seed(11))
    assert ours.dtype == torch.float64 and torch.equal(ours, by_hand)
    blocks = random_block_unitaries(8, 4, torch.Generator().manual_seed(11))
    assert torch.equal(blocks, cayley(skew_symmetric(by_hand, 4)))
    torch.manual_seed(0)
    global_draw = torch.randn(6, 6) * 0.3
    torch.manual_seed(0)
    assert torch.equal(random_cayley_generators(6, 4, dtype=torch.float32), global_draw)  # generator=None: global RNG
    half = random_block_unitaries(3, 8, torch.Generator().manual_seed(1), scale=0.5)
    assert half.shape == (3, 8, 8)
    assert torch.allclose(half @ half.transpose(-1, -2), torch.eye(8, dtype=torch.float64).expand(3, 8, 8), atol=1e-12)
