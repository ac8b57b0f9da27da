"""Teacher outputs kept on disk, so that the teacher — usually the largest network in a run — runs once per input.

- :func:`teacher_logits_cached`: logits on the un-augmented training set (indexed by sample), memory-mapped.
- :class:`ViewCache`: logits on augmented or mixed batches, in the spirit of FKD (Shen & Xing, "A Fast Knowledge
  Distillation Framework for Visual Recognition", ECCV 2022), which stores the teacher's soft labels with each
  random crop's parameters and replays the crops. Here a batch is identified by the bytes of the tensor the teacher
  sees (SHA-1): every student of a run draws the same crops and mixes (same seed, data and batch size), so the
  first one pays for the teacher and the rest replay its outputs, bit for bit; a batch that differs in any way —
  other data, augmentation or seed — is simply a miss. Entries are kept per teacher (its file's SHA-256).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from kdcompress.data import Preprocess
from kdcompress.data.splits import Images, batches
from kdcompress.models.load import Teacher
from kdcompress.run import atomic_write

T = TypeVar("T")


def save_torch(path: Path, obj: object) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, buf.getvalue())


def cached_on_disk(cache: Path, rows: int, compute: Callable[[], T]) -> T:
    """What ``cache`` holds (a tensor, or a dict of tensors, one row per training sample) when it has ``rows`` rows;
    else ``compute()``, saved there first."""
    if cache.exists():
        kept = torch.load(cache, weights_only=True)
        first = next(iter(kept.values())) if isinstance(kept, dict) else kept
        if first.shape[0] == rows:
            return kept
    out = compute()
    save_torch(cache, out)
    return out


def teacher_logits_cached(teacher: Teacher, x: Images, prep: Preprocess, cache: Path) -> torch.Tensor:
    """Teacher logits on un-augmented ``x``, one row per image, computed once (teacher inference dominates) into a
    ``.npy`` file beside ``cache`` and returned memory-mapped: rows are read from disk as the batches ask for them,
    so the cache costs no memory of its own however large the set (an image folder of 100k images and 1,000
    classes is 400 MB on disk). Written to a temporary name and renamed when whole."""
    path = cache.with_suffix(".npy")
    if path.exists():
        kept = np.load(path, mmap_mode="c")  # copy-on-write: a writable view for torch, the file never changed
        if kept.shape[0] == len(x):
            return torch.from_numpy(kept)
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    out: np.ndarray | None = None
    for idx, xb, _ in batches(x, torch.zeros(len(x), dtype=torch.long), 1000):
        logits = teacher.logits(prep(xb)).numpy()
        if out is None:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(x), logits.shape[1]))
        out[idx.numpy()] = logits
    assert out is not None, "no training images"
    out.flush()
    del out
    tmp.replace(path)
    return torch.from_numpy(np.load(path, mmap_mode="c"))


class ViewCache:
    """The teacher's logits on the batches it has seen, by content, one file per epoch under ``folder``."""

    def __init__(self, folder: Path, teacher: Teacher) -> None:
        self.folder = folder / teacher.sha256[:16]
        self.teacher = teacher
        self.epoch, self.entries, self.new = -1, {}, 0

    def start_epoch(self, epoch: int) -> None:
        self.save()
        path = self.folder / f"epoch{epoch}.pt"
        self.epoch, self.new = epoch, 0
        self.entries = torch.load(path, weights_only=True) if path.exists() else {}

    def save(self) -> None:
        """Write this epoch's entries when some are new (called at each epoch's end)."""
        if self.new:
            save_torch(self.folder / f"epoch{self.epoch}.pt", self.entries)
            self.new = 0

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = hashlib.sha1(x.detach().contiguous().numpy().tobytes(), usedforsecurity=False).hexdigest()
        if key in self.entries:
            return self.entries[key]
        out = self.teacher.module(x)
        self.entries[key] = out.clone()
        self.new += 1
        return out
