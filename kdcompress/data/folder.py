"""Image folders read as torchvision's ``ImageFolder`` reads them (``<split>/<class>/**/<image>``, classes sorted,
subfolders followed), streamed: a split is a :class:`FolderImages`, a lazily decoded uint8 ``(N, C, H, W)`` array
whose indexing decodes just those files with the eval transform; nothing is decoded whole into memory.

Every file is opened and decoded once when the folder is scanned (in worker processes): an unreadable or truncated
file is skipped with a count, or refused with ``strict``; the sizes and modes seen decide the input size and channel
count where neither the user nor the teacher does.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from kdcompress.data.transforms import as_chw, eval_transform, to_channels, train_transform
from kdcompress.errors import KDCompressError, cause

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def _files(class_dir: Path) -> list[Path]:
    """The image files under ``class_dir``, subfolders and symlinks followed (as ImageFolder does), sorted; a
    symlink loop is one line, not an endless walk."""
    seen: set[str] = set()
    out: list[Path] = []
    for root, dirs, names in os.walk(class_dir, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            raise KDCompressError(f"{root}: a symlink loop (it leads back to {real})", "remove the link that loops")
        seen.add(real)
        dirs.sort()
        out += [Path(root) / n for n in sorted(names) if Path(n).suffix.lower() in IMAGE_SUFFIXES]
    return out


def _probe(path: str) -> tuple[int, int, str] | str:
    """``(width, height, mode)`` of a file decoded whole, or why it cannot be read."""
    try:
        with Image.open(path) as img:
            img.load()  # decodes: a truncated JPEG fails here, not at open
            return img.size[0], img.size[1], img.mode
    except Exception as e:  # noqa: BLE001 — PIL raises many kinds for bad files; each is the file's fault
        return cause(e, 80)


@dataclass
class Scanned:
    """One split of a folder: its readable files, their labels, sizes and modes, and the files skipped."""

    files: list[str]
    labels: np.ndarray
    sizes: Counter
    modes: Counter
    skipped: list[tuple[str, str]]


def scan_split(root: Path, classes: list[str], strict: bool, workers: int, require_all: bool) -> Scanned:
    """Probe every image of ``root/<class>/``; ``require_all``: every class must have images (train)."""
    listed = [(str(f), label) for label, cls in enumerate(classes) if (root / cls).is_dir()
              for f in _files(root / cls)]
    if not listed:
        raise KDCompressError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})",
                              "expected <split>/<class>/<image> files")
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            probed = list(pool.map(_probe, [f for f, _ in listed], chunksize=64))
    else:
        probed = [_probe(f) for f, _ in listed]
    ok = [(f, label, p) for (f, label), p in zip(listed, probed, strict=True) if not isinstance(p, str)]
    skipped = [(f, p) for (f, _), p in zip(listed, probed, strict=True) if isinstance(p, str)]
    if skipped and strict:
        f, why = skipped[0]
        raise KDCompressError(f"{f}: unreadable image ({why}); {len(skipped)} such file(s) in {root}",
                              "remove or replace them, or drop --strict-data to skip them")
    if require_all:
        empty = [cls for label, cls in enumerate(classes) if not any(lb == label for _, lb, _ in ok)]
        if empty:
            raise KDCompressError(f"{root}: class folder {empty[0]!r} holds no readable image",
                                  "add images to it or remove the folder")
    return Scanned([f for f, _, _ in ok], np.asarray([lb for _, lb, _ in ok], dtype=np.int64),
                   Counter((w, h) for _, _, (w, h, _) in ok), Counter(m for _, _, (_, _, m) in ok), skipped)


def folder_classes(root: Path) -> list[str]:
    """The class names (train's folders, sorted); other splits' classes must be among them."""
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise KDCompressError(f"{root}: not an ImageFolder tree", "expected train/<class>/<image> and test/<class>/<image>")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not classes:
        raise KDCompressError(f"{root}/train: no class folders", "expected train/<class>/<image>")
    for split in ("val", "test"):
        d = root / split
        extra = sorted(p.name for p in d.iterdir() if p.is_dir() and p.name not in classes) if d.is_dir() else []
        if extra:
            raise KDCompressError(f"{d}: class {extra[0]!r} is not in train/", "every class must have training images")
    return classes


class FolderImages:
    """A split as a uint8 ``(N, C, H, W)`` array decoded on access: ``x[i]``, ``x[a:b]``, ``x[index_tensor]``
    decode those files with the eval transform (to ``channels`` and ``size``); ``subset`` selects files without
    decoding. ``augmented(indices, seed, scale)`` decodes with the train transform instead (a crop per seed and file)."""

    def __init__(self, files: list[str], channels: int, size: tuple[int, int], crop_pct: float = 0.875,
                 workers: int = 0) -> None:
        self.files, self.channels, self.size, self.crop_pct = files, channels, size, crop_pct
        self.workers = workers  # DataLoader worker processes that decode its batches (0: in this process)
        self._loader: object | None = None  # kdcompress.data.splits keeps its persistent DataLoader here

    def __getstate__(self) -> dict:  # a worker process gets the file list, never the loader (and its workers)
        return {**self.__dict__, "_loader": None}

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.files), self.channels, *self.size)

    def __len__(self) -> int:
        return len(self.files)

    def _open(self, i: int) -> Image.Image:
        with Image.open(self.files[i]) as img:
            img.load()  # decoded before the file closes (to_channels may return the image itself)
            return to_channels(img, self.channels)

    def decode(self, i: int) -> np.ndarray:
        img = self._open(i)
        if img.size != (self.size[1], self.size[0]):
            img = eval_transform(img, self.size[0], self.crop_pct)
        return as_chw(img)

    def decode_train(self, i: int, seed: int, scale: tuple[float, float]) -> np.ndarray:
        """The train transform of file ``i`` from the file itself (its full resolution), one draw per (seed, i)."""
        rng = np.random.default_rng([seed, i])
        return as_chw(train_transform(self._open(i), self.size[0], rng, scale))

    def _indices(self, idx: object) -> list[int]:
        if isinstance(idx, slice):
            return list(range(len(self)))[idx]
        return [int(i) for i in (idx.tolist() if isinstance(idx, torch.Tensor | np.ndarray) else idx)]

    def __getitem__(self, idx: object) -> torch.Tensor:
        if isinstance(idx, int | np.integer):
            return torch.from_numpy(self.decode(int(idx)))
        rows = [self.decode(i) for i in self._indices(idx)]
        return torch.from_numpy(np.stack(rows)) if rows else torch.zeros((0, *self.shape[1:]), dtype=torch.uint8)

    def augmented(self, idx: object, seed: int, scale: tuple[float, float]) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.decode_train(i, seed, scale) for i in self._indices(idx)]))

    def subset(self, idx: object) -> FolderImages:
        return FolderImages([self.files[i] for i in self._indices(idx)], self.channels, self.size, self.crop_pct,
                            self.workers)
