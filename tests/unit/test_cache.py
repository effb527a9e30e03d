"""qadapt/cache.py: the activation cache keeps its in-memory slots in the block it reserved (issue 41: one
allocation per slot, scattered between an evaluation's large transient tensors, made the heap grow with the text)."""

from __future__ import annotations

import pytest
import torch

from qadapt.cache import ActivationCache


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def test_slots_are_views_of_the_one_reserved_block():
    shapes = [(2, 5, 3), (2, 5, 3), (1, 4, 3)]  # the last batch shorter, as an evaluation's is
    cache = ActivationCache(3, capacity=sum(a * b * c for a, b, c in shapes))
    streams = [torch.randn(s, generator=torch.Generator().manual_seed(i)) for i, s in enumerate(shapes)]
    with torch.inference_mode():  # evaluation fills it inside inference mode
        for s in streams:
            cache.append(s)
    assert len(cache) == 3
    for i, s in enumerate(streams):
        assert torch.equal(cache[i], s) and cache[i].shape == s.shape
    assert len({_storage(cache[i]) for i in range(3)}) == 1
    assert cache[0].untyped_storage().nbytes() == 4 * (30 + 30 + 12)  # the block is exactly what was reserved
    streams[0].zero_()
    assert not torch.equal(cache[0], streams[0])  # a copy, not the caller's tensor


def test_a_slot_beyond_the_reservation_gets_its_own_block_and_reserve_adds_room():
    cache = ActivationCache(1, capacity=6)
    cache.put(0, torch.ones(2, 3))
    cache.put(1, torch.full((2, 3), 2.0))  # no room left
    assert _storage(cache[0]) != _storage(cache[1]) and torch.equal(cache[1], torch.full((2, 3), 2.0))
    cache.reserve(12)
    cache.put(2, torch.zeros(2, 3))
    cache.put(3, torch.ones(2, 3))
    assert _storage(cache[2]) == _storage(cache[3]) != _storage(cache[0])
    cache.close()
    assert len(cache) == 0
    with pytest.raises(KeyError):
        cache.get(0)


def test_a_disk_cache_reserves_nothing(tmp_path):
    cache = ActivationCache(2, on_disk=True, root=tmp_path, capacity=10**9)  # would be 4 GB in memory
    cache.append(torch.arange(6.0).view(2, 3))
    assert cache.storage == "disk" and torch.equal(cache[0], torch.arange(6.0).view(2, 3))
    cache.close()
