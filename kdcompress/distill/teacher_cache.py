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
from pathlib import Path

import torch

from kdcompress.data import Preprocess
from kdcompress.data.splits import batches
from kdcompress.models.load import Teacher
from kdcompress.run import atomic_write


def save_torch(path: Path, obj: object) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, buf.getvalue())


def teacher_logits_cached(teacher: Teacher, x: torch.Tensor, prep: Preprocess, cache: Path) -> torch.Tensor:
    """Teacher logits on un-augmented ``x``, computed once and kept on disk (teacher inference dominates)."""
    if cache.exists():
        logits = torch.load(cache, weights_only=True)
        if logits.shape[0] == len(x):
            return logits
    logits = torch.cat([teacher.logits(prep(xb)) for _, xb, _ in batches(x, torch.zeros(len(x)), 1000)])
    save_torch(cache, logits)
    return logits


class ViewCache:
    """The teacher's logits on the batches it has seen, by content, one file per epoch under ``folder``."""

    def __init__(self, folder: Path, teacher: Teacher) -> None:
        self.folder = folder / teacher.sha256[:16]
        self.teacher = teacher
        self.epoch, self.entries, self.new = -1, {}, 0
        self.hits = self.misses = 0

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
            self.hits += 1
            return self.entries[key]
        self.misses += 1
        out = self.teacher.module(x)
        self.entries[key] = out.clone()
        self.new += 1
        return out

