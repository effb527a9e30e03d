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
for mode in sys.argv[1:]:
    assert keep_freed_memory(mode == 'on')
before = rss_mb()
block = torch.ones(64 * 2**20 // 4)  # 64 MiB, over glibc's largest mmap threshold
held = rss_mb()
del block
print(held - before, rss_mb() - before)
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
