"""Teacher outputs kept on disk, so that the teacher — usually the largest network in a run — runs once per input.

- :func:`teacher_logits_cached`: logits on the un-augmented training set (indexed by sample).
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

import torch

from kdcompress.data import Preprocess
from kdcompress.data.splits import batches
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


def teacher_logits_cached(teacher: Teacher, x: torch.Tensor, prep: Preprocess, cache: Path) -> torch.Tensor:
    """Teacher logits on un-augmented ``x``, computed once and kept on disk (teacher inference dominates)."""
    return cached_on_disk(cache, len(x), lambda: torch.cat(
        [teacher.logits(prep(xb)) for _, xb, _ in batches(x, torch.zeros(len(x)), 1000)]))


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

