"""The activation cache of the frozen prefix, for training and evaluation alike.

When every adapter sits in decoder layer L or above, the layers below L compute the same residual stream for a
given input whatever the adapter does, so that stream is kept once and the layers >= L run from it:

- evaluation (``task.cache_activations``, ``task.cache_max_gib``; qadapt/eval/perplexity.py): the base model's
  pass stores the stream of every batch, the adapted model's pass starts from it;
- training (``train.cache_activations``, ``train.cache_max_gib``; qadapt/training/lm.py): a chunk's stream is
  computed on its first visit and read on the later ones.

Results are identical to recomputing the prefix (tests/unit/test_train_cache.py,
tests/integration/test_integration_smollm2.py).
Storage: in memory, or one file per slot in a temporary directory (memory-mapped when read back), removed by
:meth:`ActivationCache.close` or when the cache is garbage-collected. In memory the slots are views into blocks
allocated when their size is known (``capacity``, :meth:`ActivationCache.reserve`), not one allocation per slot:
a cache then takes exactly the memory its size predicts, and its long-lived slots are never scattered between the
large transient tensors of the passes that fill it, where each would split a freed hole and make the heap grow
by the next large tensor (issue 41: `make run` at 16 GB).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from .paths import cache_dir


class ActivationCache:
    """Residual streams entering decoder layer ``layer``, one tensor per slot (a batch or a training chunk).

    Args:
        layer: the decoder layer whose input is kept (the first layer holding an adapter).
        on_disk: keep each slot in its own file under ``root`` instead of in memory.
        root: where the temporary directory goes on disk; default ``$QADAPT_CACHE/activations``.
        capacity: values the slots will hold in all (e.g. padded tokens x hidden width), reserved now as one block
            (in memory only; its pages become resident as slots fill them). A slot beyond it gets its own block.
        dtype: of the reserved block (the streams' dtype).
    """

    def __init__(
        self,
        layer: int,
        on_disk: bool = False,
        root: Path | None = None,
        capacity: int = 0,
        dtype: torch.dtype = torch.float32,
    ):
        self.layer = layer
        self._slots: dict[int, torch.Tensor | Path] = {}
        self._dir: tempfile.TemporaryDirectory | None = None
        self._free = torch.empty(0, dtype=dtype)  # the unused tail of the last reserved block
        if on_disk:
            root = Path(root) if root is not None else cache_dir() / "activations"
            root.mkdir(parents=True, exist_ok=True)
            self._dir = tempfile.TemporaryDirectory(dir=root, prefix=f"layer{layer}-")  # deleted with this object
        else:
            self.reserve(capacity, dtype)

    def reserve(self, numel: int, dtype: torch.dtype = torch.float32) -> None:
        """Room for ``numel`` more values of ``dtype`` in one block allocated now (in memory; nothing on disk). The
        unused tail of an earlier block is dropped from the free room (a cache that grows: the training cache of a
        second run, qadapt/training/lm.py)."""
        if self._dir is None and numel > 0:
            self._free = torch.empty(int(numel), dtype=dtype)

    def _room(self, stream: torch.Tensor) -> torch.Tensor:
        """A view of free room shaped like ``stream``, taken from the reserved block (else a block of its own)."""
        n = stream.numel()
        if self._free.numel() < n or self._free.dtype != stream.dtype:
            self._free = torch.empty(n, dtype=stream.dtype)
        room, self._free = self._free[:n].view(stream.shape), self._free[n:]
        return room

    @property
    def storage(self) -> str:
        """Where the streams live: ``memory`` or ``disk`` (recorded in the results row)."""
        return "memory" if self._dir is None else "disk"

    @property
    def files(self) -> list[Path]:
        """The files of the slots kept on disk (empty in memory)."""
        return [item for item in self._slots.values() if isinstance(item, Path)]

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, slot: int) -> bool:
        return slot in self._slots

    def put(self, slot: int, stream: torch.Tensor) -> None:
        """Keep ``stream`` (any shape, e.g. ``(B, T, d)``) as ``slot``; moved to the CPU, written to a file on disk."""
        if self._dir is None:
            self._slots[slot] = self._room(stream).copy_(stream.detach())
            return
        path = Path(self._dir.name) / f"{slot}.pt"
        torch.save(stream.detach().cpu().contiguous(), path)
        self._slots[slot] = path

    def append(self, stream: torch.Tensor) -> None:
        """Keep ``stream`` as the next slot (evaluation: batch after batch)."""
        self.put(len(self._slots), stream)

    def get(self, slot: int) -> torch.Tensor:
        """The stream kept as ``slot``, on the CPU (memory-mapped from its file on disk).

        Raises:
            KeyError: nothing was kept as ``slot``.
        """
        item = self._slots[slot]
        return torch.load(item, mmap=True) if isinstance(item, Path) else item

    __getitem__ = get

    def close(self) -> None:
        """Drop every stream and delete the files (the cache is empty afterwards)."""
        self._slots.clear()
        self._free = self._free.new_empty(0)
        if self._dir is not None:
            self._dir.cleanup()

    @staticmethod
    def gib(numel: int, dtype: torch.dtype = torch.float32) -> float:
        """GiB that ``numel`` values of ``dtype`` take."""
        return numel * torch.empty((), dtype=dtype).element_size() / 2**30
