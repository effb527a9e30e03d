"""qadapt/process.py: the heap setting that keeps freed large tensors (checked in a fresh interpreter each time,
since it is process-wide)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qadapt.process import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="mallopt is glibc's")

PROBE = """
import sys, torch
from qadapt.process import keep_freed_memory
def rss_mb():
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS')) / 1024
def held_after_free():
    before = rss_mb()
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, over glibc's largest mmap threshold
    held = rss_mb()
    del block
    return held - before, rss_mb() - before
for mode in sys.argv[1:]:
    assert keep_freed_memory(mode == 'on')
print(*held_after_free())
"""

# freed_memory_kept: inside the block freed memory is kept; on leaving it, the process's setting before comes back
SCOPED = """
from qadapt.process import freed_memory_kept, keep_freed_memory
with freed_memory_kept():
    inside = held_after_free()
    with freed_memory_kept(False):  # an evaluation inside a training loop (a learning-curve point)
        nested = held_after_free()
    back = held_after_free()
after = held_after_free()
print(*inside, *nested, *back, *after)
"""


def held_after_free(*modes: str) -> tuple[float, float]:
    """(MiB resident while a 64 MiB tensor lives, MiB still resident once it is freed) after ``modes`` in order."""
    out = subprocess.run([sys.executable, "-c", PROBE, *modes], capture_output=True, text=True, check=True)
    held, after = map(float, out.stdout.split())
    return held, after


def test_glibc_returns_a_freed_large_tensor_by_default():
    held, after = held_after_free()
    assert held > 60 and after < 8


def test_keep_freed_memory_keeps_it_for_the_next_tensor():
    held, after = held_after_free("on")
    assert held > 60 and after > 60


def test_turning_it_off_restores_the_default():
    held, after = held_after_free("on", "off")
    assert held > 60 and after < 8


def test_freed_memory_kept_holds_only_inside_its_block():
    code = PROBE.replace("print(*held_after_free())", "") + SCOPED
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    inside, nested, back, after = (tuple(map(float, out.stdout.split()[i : i + 2])) for i in range(0, 8, 2))
    for held, _ in (inside, nested, back, after):
        assert held > 60
    assert inside[1] > 60 and back[1] > 60  # kept within the block
    assert nested[1] < 8 and after[1] < 8  # returned in the nested default block and after leaving


@pytest.mark.parametrize("trainable", ["adapter", "all"])
def test_fit_keeps_freed_memory_only_when_the_whole_model_trains(monkeypatch, tmp_path, trainable):
    """Whole-model steps gain 1.2x from the kept heap (results/bench_heap.md); adapter training would pay 1.4 GB of
    fragmented peak for nothing (issue 41)."""
    from contextlib import contextmanager

    import torch
    from helpers.tiny import tiny_llama

    from qadapt import adapters, devices
    from qadapt.config import compose
    from qadapt.training import lm

    seen = []

    @contextmanager
    def recording(enabled=True):
        seen.append(enabled)
        yield

    monkeypatch.setattr(lm, "freed_memory_kept", recording)
    cfg = compose(["adapter.layers=[2,3]", "train.max_steps=1", "train.batch_size=2", f"+train.trainable={trainable}"])
    model = tiny_llama()
    adapters.apply(model, cfg.adapter, devices.get(cfg.device))
    lm.set_trainable(model, cfg.train)
    lm.fit(model, torch.randint(0, 97, (4, 16)), cfg.train, tmp_path, seed=0, resume=False)
    assert seen == [trainable == "all"]


TRIM = """
import torch
from qadapt.process import release_free_memory
def rss_mb():
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS')) / 1024
import ctypes
libc = ctypes.CDLL('libc.so.6')
libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD as glibc's dynamic one reaches: 8 MiB blocks go on the heap
libc.mallopt(-1, 2**30)  # M_TRIM_THRESHOLD: free() itself returns nothing, whatever the process did before
blocks = [torch.ones(8 * 2**20 // 4) for _ in range(10)]
pin = torch.ones(1024)  # above them on the heap: their freed memory is not at its top, so free() keeps it
before = rss_mb()
del blocks
kept = rss_mb()
release_free_memory()
print(before - kept, kept - rss_mb())
"""


def test_release_free_memory_returns_what_the_heap_kept():
    out = subprocess.run([sys.executable, "-c", TRIM], capture_output=True, text=True, check=True)
    returned_by_free, returned_by_trim = map(float, out.stdout.split())
    assert returned_by_free < 16 and returned_by_trim > 60  # 80 MiB freed: kept by the heap, then returned
