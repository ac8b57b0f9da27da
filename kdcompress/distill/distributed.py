"""Data-parallel distillation across the processes ``torchrun`` starts (PyTorch DDP: gloo on CPU, NCCL on GPU).

Every process reads the same data, draws the same shuffles, crops and mixes from the same seeded generator, and
trains on its share of each global batch (samples ``rank::world``); DDP averages the gradients, so the step is the
single-process step up to the batch-norm statistics, which each process gathers on its share. Rank 0 alone writes
(checkpoints, history, the saved student, the caches — the others wait for it and read them) and decides what is
kept (its validation accuracy is everyone's). torchrun sets ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``; nothing here
launches processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def init_from_env() -> bool:
    """Join the process group torchrun describes in the environment (once); False when not started by torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        # with a GPU: NCCL for CUDA tensors, gloo for CPU ones (a student trained on the CPU there, small objects)
        dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    return True


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier() -> None:
    if rank_and_world()[1] > 1:
        dist.barrier()


def rank0_first(fn: Callable[[], T]) -> T:
    """``fn()`` on rank 0, then on the others (e.g. rank 0 computes and saves a cache, the others load it)."""
    rank, world = rank_and_world()
    if world == 1:
        return fn()
    out = fn() if rank == 0 else None
    dist.barrier()
    return out if rank == 0 else fn()  # type: ignore[return-value]


def from_rank0(value: T) -> T:
    """Rank 0's ``value`` on every rank."""
    if rank_and_world()[1] == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
