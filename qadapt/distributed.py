"""Data parallelism over processes started by ``accelerate launch`` or ``torchrun`` (one process per GPU, or
several on a CPU with gloo), for training and evaluating large models with the same config as a local run.

    accelerate launch --multi_gpu --num_processes 4 -m qadapt.cli train model=llama31_8b adapter=cua ...
    torchrun --nproc_per_node 4 -m qadapt.cli train model=llama31_8b adapter=cua ...      # GPUs, or CPUs (gloo)

Every process holds the whole frozen model (on its own GPU: ``model.device_map`` defaults to the rank's device)
and the same adapter. Training: each step's batch of ``train.batch_size`` chunks is split across the processes
(rank r takes chunks r, r + W, ...), each computes its shard's mean loss, and the adapter's gradients are
averaged across processes before the optimiser step, so every process takes the same step a single process would
on the whole batch (DDP's arithmetic, done on the few adapter tensors directly, so the model stays unwrapped and
activation caching keeps working). Evaluation: process r scores windows-batches r, r + W, ... and the sums are
added. Only process 0 writes run directories, checkpoints, adapters and results rows. A model too large for one
GPU runs in one process with ``model.device_map=auto`` instead (accelerate places its layers across GPUs, then CPU).
``accelerate.PartialState`` reads the launcher's environment and starts the process group (nccl on GPUs, gloo on CPU).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Ranks:
    """This process's ``rank`` of ``world`` processes and its accelerator ``device`` (None: the model's own
    placement)."""

    rank: int
    world: int
    device: torch.device | None  # the process's accelerator (None: the model's own placement)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@functools.cache
def ranks() -> Ranks:
    """This process's place in the launch: (0, 1, None) unless started by a launcher with WORLD_SIZE > 1."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Ranks(0, 1, None)
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # without cpu=True it ignores a CPU-only launch
    return Ranks(state.process_index, state.num_processes, state.device if state.device.type != "cpu" else None)


def _reduce_device() -> torch.device:
    # nccl reduces CUDA tensors only; gloo takes CPU tensors
    backend = torch.distributed.get_backend()
    return torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Elementwise sum over processes (a copy; the input when there is one process)."""
    if ranks().world == 1:
        return values
    out = values.detach().to(_reduce_device()).clone()
    torch.distributed.all_reduce(out)
    return out.to(values.device)


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Replace each parameter's gradient by its mean over processes (one flat all-reduce)."""
    world = ranks().world
    if world == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = all_reduce_sum(torch.cat([g.reshape(-1).float() for g in grads])) / world
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).to(p.dtype).to(p.device)
        offset += n


def barrier() -> None:
    """Wait until every process of the launch gets here (nothing to wait for with one process)."""
    if ranks().world > 1:
        torch.distributed.barrier()
