"""Dataset splits and the loaders behind ``--data``.

A split's images are a ``uint8`` (N, C, H, W) array: a tensor in memory (Fashion-MNIST, ``.npz``) or, for an image
folder, a :class:`~kdcompress.data.folder.FolderImages` decoded on access and streamed through a ``DataLoader`` by
:func:`batches`. :class:`Preprocess` turns a batch into the float tensor the teacher expects (scaled to [0, 1], then
optionally normalised), so teacher, student and exported artifact all see the same input.
"""

from __future__ import annotations

import gzip
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kdcompress.data.augment import random_resized_crop_flip
from kdcompress.data.folder import GREY_MODES, FolderImages, folder_classes, scan_split
from kdcompress.errors import KDCompressError

FASHION_MNIST_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


@dataclass(frozen=True)
class Preprocess:
    """Pixel scaling and normalisation applied to every batch: ``(x / 255 - mean) / std`` per channel."""

    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().div_(255.0)
        c = x.shape[1]
        mean = torch.tensor(self.mean if len(self.mean) == c else self.mean * c, dtype=x.dtype).view(1, c, 1, 1)
        std = torch.tensor(self.std if len(self.std) == c else self.std * c, dtype=x.dtype).view(1, c, 1, 1)
        return (x - mean) / std

    def to_json(self) -> dict:
        return {"scale": "x/255", "mean": list(self.mean), "std": list(self.std)}


@dataclass
class DataSplits:
    """Train/val/test splits as uint8 image tensors (N, C, H, W) and int64 labels."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # said once when loaded (e.g. files skipped)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, train: int | None = None, test: int | None = None, val: int | None = None) -> DataSplits:
        """The first ``n`` samples of each split (used by the ``ci`` profile and tests to stay fast)."""
        cut = lambda x, n: x if n is None else take(x, slice(0, n))
        return DataSplits(
            self.name, cut(self.x_train, train), cut(self.y_train, train), cut(self.x_val, val),
            cut(self.y_val, val), cut(self.x_test, test), cut(self.y_test, test), self.classes, self.notes,
        )

    def summary(self) -> dict:
        return {
            "name": self.name, "input_shape": list(self.input_shape), "num_classes": self.num_classes,
            "train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test), "classes": self.classes,
        }


Images = torch.Tensor | FolderImages


def take(x: Images, idx: object) -> Images:
    """The images at ``idx`` without decoding a folder's (a tensor is indexed, a folder sub-selected)."""
    return x.subset(idx) if isinstance(x, FolderImages) else x[idx]


class _Batches(torch.utils.data.Dataset):
    """A folder's batches for a DataLoader: item = ``(indices, augment seed or None, scale)``, decoded (and
    augmented) in a worker. The seed travels with the item, so persistent workers serve every epoch's crops."""

    def __init__(self, x: FolderImages) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, item: tuple[list[int], int | None, tuple[float, float]]) -> torch.Tensor:
        idx, seed, scale = item
        return self.x[idx] if seed is None else self.x.augmented(idx, seed, scale)


class _Plan:
    """The sampler of a folder's persistent DataLoader: the batches of the pass about to start (set before each)."""

    def __init__(self) -> None:
        self.items: list = []

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def _loader(x: FolderImages) -> tuple[torch.utils.data.DataLoader, _Plan]:
    """One DataLoader per folder split, its worker processes kept between passes (persistent workers)."""
    if getattr(x, "_loader", None) is None or x._loader[0].num_workers != x.workers:  # built anew when asked
        plan = _Plan()
        loader = torch.utils.data.DataLoader(
            _Batches(x), sampler=plan, batch_size=None, num_workers=x.workers,
            pin_memory=torch.cuda.is_available(), persistent_workers=x.workers > 0,
            prefetch_factor=4 if x.workers else None)
        x._loader = (loader, plan)
    return x._loader


def batches(
    x: Images, y: torch.Tensor, batch: int, shuffle: bool = False, generator: torch.Generator | None = None,
    augment_seed: int | None = None, scale: tuple[float, float] = (0.08, 1.0),
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield ``(indices, x, y)`` mini-batches; indices let callers look up cached per-sample values.
    ``augment_seed``: the train transform (random resized crop over ``scale`` of the area + flip), one draw per
    (seed, image). A folder's
    batches are decoded by ``x.workers`` DataLoader worker processes, ahead of use."""
    n = len(y)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    chunks = [order[i : i + batch] for i in range(0, n, batch)]
    if isinstance(x, FolderImages):
        loader, plan = _loader(x)
        plan.items = [(c.tolist(), augment_seed, scale) for c in chunks]
        for idx, xb in zip(chunks, loader, strict=True):
            yield idx, xb, y[idx]
        return
    for idx in chunks:
        xb = x[idx] if augment_seed is None else random_resized_crop_flip(x[idx], idx, augment_seed, scale)
        yield idx, xb, y[idx]


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise KDCompressError(f"{path}: not an IDX file of unsigned bytes", "re-install dataset-fashion-mnist")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).copy()
    if arr.size != int(np.prod(dims)):
        raise KDCompressError(f"{path}: truncated IDX file", "re-install dataset-fashion-mnist")
    return arr.reshape(dims)


def _find_fashion_mnist() -> Path:
    env = os.environ.get("KDCOMPRESS_FASHION_MNIST")
    for d in ([Path(env)] if env else []) + list(FASHION_MNIST_DIRS):
        if (d / "train-images-idx3-ubyte.gz").exists() or (d / "train-images-idx3-ubyte").exists():
            return d
    raise KDCompressError(
        "Fashion-MNIST not found in /usr/share/datasets/fashion-mnist",
        "run `make install` (or `apt-get install dataset-fashion-mnist`), or set KDCOMPRESS_FASHION_MNIST",
    )


def _idx(d: Path, stem: str) -> np.ndarray:
    p = d / f"{stem}.gz"
    return _read_idx(p if p.exists() else d / stem)


def load_fashion_mnist() -> tuple[np.ndarray, ...]:
    d = _find_fashion_mnist()
    return (
        _idx(d, "train-images-idx3-ubyte")[:, None], _idx(d, "train-labels-idx1-ubyte"),
        _idx(d, "t10k-images-idx3-ubyte")[:, None], _idx(d, "t10k-labels-idx1-ubyte"),
    )


def _as_nchw(x: np.ndarray, path: object) -> np.ndarray:
    """Accept (N,H,W), (N,C,H,W) or (N,H,W,C) with C in {1,3,4}; return uint8 NCHW."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3, 4) and x.shape[3] in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4:
        raise KDCompressError(f"{path}: images must be (N,H,W) or (N,C,H,W), got shape {x.shape}")
    if x.dtype != np.uint8:
        x = _pixels_from(x, path)
    return np.ascontiguousarray(x)


def _pixels_from(x: np.ndarray, path: object) -> np.ndarray:
    """Non-uint8 images as uint8 pixels: floats in [0, 1] scaled by 255, values in [0, 255] rounded; anything else
    (NaN, negative — i.e. already normalised —, above 255) is refused rather than silently rounded into garbage."""
    if x.size == 0:
        return x.astype(np.uint8)
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(axis=1).sum())
        raise KDCompressError(f"{path}: {bad} image(s) hold NaN or infinite pixels", "remove or repair them")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 255:
        raise KDCompressError(
            f"{path}: pixel values span [{lo:.3g}, {hi:.3g}], which looks normalised, not raw pixels",
            "save raw pixels (uint8 0-255 or floats in [0, 1]) and give the normalisation with --mean/--std",
        )
    if np.issubdtype(x.dtype, np.floating) and hi <= 1.0:
        x = x * 255.0  # float images in [0, 1]: bring them to the uint8 range the preprocessing expects
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def load_npz(path: Path) -> tuple[np.ndarray, ...]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise KDCompressError(f"{path}: cannot read as .npz ({e})", "save it with numpy.savez") from None
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise KDCompressError(f"{path}: missing arrays {missing}", "an .npz needs x_train, y_train, x_test, y_test")
    out = [_as_nchw(arrays["x_train"], path), arrays["y_train"], _as_nchw(arrays["x_test"], path), arrays["y_test"]]
    if "x_val" in arrays and "y_val" in arrays:
        out += [_as_nchw(arrays["x_val"], path), arrays["y_val"]]
    return tuple(out)


@dataclass(frozen=True)
class FolderOptions:
    """How an image folder is read: the input size (None: the folder's one size), the channel count (None: 1 when
    every image is grey, else 3), the eval crop share, decoding workers, and whether an unreadable file stops the
    run."""

    image_size: int | None = None
    channels: int | None = None
    crop_pct: float = 0.875
    workers: int = 0
    strict: bool = False

    @classmethod
    def for_input(cls, shape: tuple[int, ...] | None, size: int | None = None, **kw: object) -> FolderOptions:
        """Read at a model's input ``shape`` (C, H, W): its channels, and its side where square (``size`` first)."""
        square = shape is not None and len(shape) == 3 and shape[1] == shape[2]
        return cls(size or (shape[1] if square else None), shape[0] if shape else None, **kw)  # type: ignore[arg-type]


def data_workers(asked: int | None) -> int:
    """``data.workers``: as asked, else the cores less one (the main process trains), at most 8."""
    return asked if asked is not None else min(8, max(0, (os.cpu_count() or 1) - 1))


def load_image_folder(root: Path, opt: FolderOptions) -> tuple[tuple, list[str], list[str]]:
    """``(arrays, classes, notes)`` of an ImageFolder tree: each split a :class:`FolderImages`, labels as arrays."""
    classes = folder_classes(root)
    splits = {name: scan_split(root / name, classes, opt.strict, opt.workers, require_all=name == "train")
              for name in ("train", "test", "val") if (root / name).is_dir()}
    sizes = sum((sc.sizes for sc in splits.values()), Counter())
    modes = sum((sc.modes for sc in splits.values()), Counter())
    if opt.image_size is not None:
        size = (opt.image_size, opt.image_size)
    elif len(sizes) == 1:
        w, h = next(iter(sizes))
        size = (h, w)
    else:
        shown = ", ".join(f"{w}x{h}" for (w, h), _ in sizes.most_common(3))
        raise KDCompressError(f"{root}: images of {len(sizes)} sizes ({shown}, ...) and no input size given",
                              "pass --image-size N (or data.image_size in the profile): images are resized and "
                              "centre-cropped to N x N")
    channels = opt.channels or (1 if set(modes) <= GREY_MODES else 3)
    notes = [f"{root / n}: {len(sc.skipped)} unreadable file(s) skipped, e.g. {sc.skipped[0][0]} ({sc.skipped[0][1]})"
             for n, sc in splits.items() if sc.skipped]
    arrays = []
    for name in ("train", "test", "val"):
        if name in splits:
            images = FolderImages(splits[name].files, channels, size, opt.crop_pct, opt.workers)
            arrays += [images, splits[name].labels]
    return tuple(arrays), classes, notes


def load_data(spec: str, val_fraction: float = 0.1, seed: int = 0, folder: FolderOptions | None = None) -> DataSplits:
    """Load ``spec`` (``fashion-mnist``, a ``.npz`` file or an ImageFolder directory) into splits.

    A validation split is carved from train with ``seed`` when the data has none; the test split is left whole.
    """
    path = Path(spec)
    classes: list[str] | None = None
    notes: list[str] = []
    if spec in ("fashion-mnist", "fmnist"):
        arrays, name, classes = load_fashion_mnist(), "fashion-mnist", FASHION_MNIST_CLASSES
    elif path.is_file() and path.suffix == ".npz":
        arrays, name = load_npz(path), path.name
    elif path.is_dir():
        arrays, classes, notes = load_image_folder(path, folder or FolderOptions())
        name = path.name
    elif path.exists():
        raise KDCompressError(f"{spec}: unsupported data file", "use fashion-mnist, a .npz file or an ImageFolder dir")
    else:
        raise KDCompressError(f"dataset not found: {spec}", "use fashion-mnist, a .npz path or an ImageFolder directory")

    x_train, x_test = (a if isinstance(a, FolderImages) else torch.from_numpy(np.asarray(a)) for a in arrays[:4:2])
    y_train, y_test = (torch.from_numpy(np.asarray(a)).long().flatten() for a in arrays[1:4:2])
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise KDCompressError(f"{spec}: images and labels differ in length", "check x_*/y_* pairs")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise KDCompressError(f"{spec}: train images {tuple(x_train.shape[1:])} vs test {tuple(x_test.shape[1:])}",
                              "give train and test images the same shape")
    if len(arrays) == 6:
        x_val = arrays[4] if isinstance(arrays[4], FolderImages) else torch.from_numpy(arrays[4])
        y_val = torch.from_numpy(np.asarray(arrays[5])).long().flatten()
    else:
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(y_train), generator=g)
        n_val = max(1, round(len(y_train) * val_fraction))
        val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
        x_val, y_val = take(x_train, val_idx), y_train[val_idx]
        x_train, y_train = take(x_train, train_idx), y_train[train_idx]
    empty = [n for n, y in (("train", y_train), ("validation", y_val), ("test", y_test)) if len(y) == 0]
    if empty:
        raise KDCompressError(f"{spec}: the {empty[0]} split holds no images",
                              "a run needs test images and at least 2 training images (one is kept for validation)")
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    if int(min(y_train.min(), y_test.min())) < 0:
        raise KDCompressError(f"{spec}: labels must be 0..K-1, found a negative label")
    classes = classes or [str(i) for i in range(n_classes)]
    return DataSplits(name, x_train, y_train, x_val, y_val, x_test, y_test, classes, notes)
