"""A photo-like ImageFolder made from Fashion-MNIST (seeded): each garment scaled, coloured and placed on a random
background, images of random sizes, saved as JPEG of random quality — the data of the folder benchmarks and of the
next issues' proofs (any teacher, Hugging Face models), from data every machine here has.

    python benchmarks/make_photos.py --out /tmp/photos [--train 20000] [--test 5000] [--min-side 48]
                                     [--max-side 160] [--seed 0] [--workers 2]

Layout: ``OUT/{train,test}/<class>/<n>.jpg`` (torchvision's ImageFolder), classes Fashion-MNIST's, names made
file-safe. Image ``n`` of a split is garment ``n`` of Fashion-MNIST's split when ``--train``/``--test`` are within
its size, and garments repeat (with new draws) beyond it, so a folder 8x the size is ``--train 160000`` with the
same command. Each image draws, from ``(seed, split, n)``: width in [min-side, max-side], a background
(a linear blend of two random colours plus noise), an aspect ratio within 3:4-4:3, the garment's side (45-90 % of
the shorter side), its place (near the middle, as photos frame objects), its colour (the garment's grey levels
times a tint that stands out from the background behind it) and JPEG quality 75-95. Not committed (a few hundred MB
at 80k images); this script makes it again, byte for byte.
"""

from __future__ import annotations

import argparse
import re
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from kdcompress.data.splits import FASHION_MNIST_CLASSES, load_fashion_mnist

_GARMENTS: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()


def make_one(garment: np.ndarray, rng: np.random.Generator, min_side: int, max_side: int) -> tuple[Image.Image, int]:
    w = int(rng.integers(min_side, max_side + 1))
    h = int(np.clip(round(w * np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))), min_side, max_side))  # photo-like
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, w)[None, :, None] if rng.random() < 0.5 else np.linspace(0, 1, h)[:, None, None]
    bg = (c0 * (1 - t) + c1 * t) * np.ones((h, w, 1)) + rng.normal(0, 12, (h, w, 3))
    side = max(8, int(min(w, h) * rng.uniform(0.45, 0.9)))
    g = np.asarray(Image.fromarray(garment).resize((side, side), Image.Resampling.BILINEAR), np.float64) / 255
    # the object near the middle, as photos frame it (a centre crop keeps it)
    top = int(np.clip((h - side) / 2 + rng.normal(0, (h - side) / 6 + 1e-9), 0, h - side))
    left = int(np.clip((w - side) / 2 + rng.normal(0, (w - side) / 6 + 1e-9), 0, w - side))
    patch = bg[top:top + side, left:left + side]
    # a colour that stands out from what lies behind it (the inverse of its mean, jittered)
    tint = np.clip(255 - patch.mean((0, 1)) + rng.normal(0, 30, 3), 0, 255)
    bg[top:top + side, left:left + side] = patch * (1 - g[..., None]) + (g[..., None] * tint)
    return Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), "RGB"), int(rng.integers(75, 96))


def _init() -> None:
    x_train, y_train, x_test, y_test = load_fashion_mnist()
    _GARMENTS.update(train=(x_train[:, 0], y_train), test=(x_test[:, 0], y_test))


def write_range(args: tuple[str, int, int, int, int, int, str]) -> int:
    split, start, stop, seed, min_side, max_side, out = args
    x, y = _GARMENTS[split]
    for n in range(start, stop):
        rng = np.random.default_rng([seed, 0 if split == "train" else 1, n])
        img, quality = make_one(x[n % len(x)], rng, min_side, max_side)
        path = Path(out) / split / safe(FASHION_MNIST_CLASSES[int(y[n % len(y)])]) / f"{n}.jpg"
        if not path.exists():  # resumable: a file written is never written again
            tmp = path.with_suffix(".tmp")
            img.save(tmp, "JPEG", quality=quality)
            tmp.rename(path)
    return stop - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--train", type=int, default=20000)
    ap.add_argument("--test", type=int, default=5000)
    ap.add_argument("--min-side", type=int, default=48)
    ap.add_argument("--max-side", type=int, default=160)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    t0 = time.time()
    for split in ("train", "test"):
        for name in FASHION_MNIST_CLASSES:
            (a.out / split / safe(name)).mkdir(parents=True, exist_ok=True)
    jobs = [(split, i, min(i + 500, n), a.seed, a.min_side, a.max_side, str(a.out))
            for split, n in (("train", a.train), ("test", a.test)) for i in range(0, n, 500)]
    with ProcessPoolExecutor(a.workers, initializer=_init) as pool:
        done = sum(pool.map(write_range, jobs))
    print(f"{done} images in {a.out} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
