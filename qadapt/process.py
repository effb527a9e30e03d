"""Facts about the running process that rows record."""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys
from contextlib import contextmanager
from pathlib import Path

# glibc's mallopt parameters (malloc.h) and the values its dynamic threshold settles at for large blocks
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
_MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
_MMAP_MAX_DEFAULT = 65536
_TRIM_KEEP = 2**31 - 1  # mallopt takes an int: free memory at the heap's top is kept up to 2 GiB


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB.

    Linux: ``VmHWM`` of /proc/self/status, the high-water mark of this program's own address space. Not
    ``ru_maxrss``: it survives fork and exec, so a worker started by a large parent (a sweep, a benchmark) would
    report the parent's peak. Elsewhere ``ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / scale


def _glibc():
    """The C library when it is glibc (it has mallopt and malloc_trim), else None (macOS, musl, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes, libc.malloc_trim.argtypes = [ctypes.c_int, ctypes.c_int], [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


# whether keep_freed_memory is in force in this process (what freed_memory_kept restores on leaving)
_KEPT = False


def keep_freed_memory(enabled: bool = True) -> bool:
    """Serve large tensors from glibc's heap and keep freed memory for the next ones (``enabled=False``: glibc's
    behaviour for large blocks back, and the free memory the heap holds returned to the system).

    Why: glibc maps every block over 32 MiB with mmap and unmaps it when freed, so each training step of a language
    model faults its large tensors in page by page afresh: SmolLM2's logits and their gradient for a batch of
    8 x 128 tokens are 201 MB each (49,152-word vocabulary), its tied embedding's gradient 113 MB. Kept on the heap
    they are reused from step to step (scripts/bench_heap.py, results/bench_heap.md).

    The cost: a heap that never unmaps or trims fragments wherever a long-lived block is allocated between large
    transient ones (an evaluation's activation cache slot, its per-window scores): the next large tensor no longer
    fits the hole and the heap grows by its size, batch after batch (issue 41: `make run` at 16 GB on an AMD EPYC). So
    it is turned on only around whole-model training steps, where it was measured to pay (:func:`freed_memory_kept`),
    never for a whole run.

    Returns:
        True where it took effect (glibc), False elsewhere (nothing is changed there).
    """
    global _KEPT
    libc = _glibc()
    if libc is None:
        return False
    if enabled:
        ok = libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_KEEP)
    else:
        ok = (
            libc.mallopt(_M_MMAP_MAX, _MMAP_MAX_DEFAULT)
            and libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
            and libc.mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_MAX)
        )
        libc.malloc_trim(0)
    _KEPT = bool(enabled and ok)
    return bool(ok)


@contextmanager
def freed_memory_kept(enabled: bool = True):
    """Within the block, :func:`keep_freed_memory` (``enabled``) is in force; on leaving, the setting the process
    had before comes back (returning to glibc's default also returns the heap's free memory to the system). Used
    around whole-model training steps (qadapt/training/lm.py); an evaluation inside one (a learning-curve point)
    opens ``freed_memory_kept(False)``. Does nothing off glibc."""
    before = _KEPT
    if before == enabled:
        yield
        return
    keep_freed_memory(enabled)
    try:
        yield
    finally:
        keep_freed_memory(before)


def release_free_memory() -> None:
    """Return the free memory inside glibc's heaps to the system now (``malloc_trim(0)``); nothing off glibc.

    Why: tensors under glibc's mmap threshold (which rises to 32 MiB as large blocks are freed) live on the heap, and
    a loop whose batches change shape (multiple-choice questions sorted by length: each batch its own context width,
    choice count and key/value copies) leaves holes that fit no later tensor, so resident memory grows batch after
    batch. Called between batches it returns those holes (full ARC's peak: 4,397 -> 3,725 MiB, docs/scaling.md), at
    the cost of re-faulting the pages the next batch takes (not timed yet)."""
    libc = _glibc()
    if libc is not None and not _KEPT:
        libc.malloc_trim(0)
