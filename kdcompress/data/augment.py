"""Batch augmentations (cheap, seeded through a ``torch.Generator``): crop and flip on uint8 NCHW images; mixup,
CutMix and CutMixPick on the normalised float batch, with both labels and the mixing weight for the loss."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from kdcompress.data.transforms import as_chw, train_transform
from kdcompress.errors import KDCompressError


def random_resized_crop_flip(x: torch.Tensor, idx: torch.Tensor, seed: int,
                             scale: tuple[float, float] = (0.08, 1.0)) -> torch.Tensor:
    """The train transform (:func:`kdcompress.data.transforms.train_transform`: RandomResizedCrop back to the
    images' side, and a flip) on in-memory uint8 NCHW square images, each through PIL, one draw per (seed, index)."""
    n, c, h, w = x.shape
    if h != w:
        raise KDCompressError(f"random_resized_crop needs square images, these are {h}x{w}",
                              "resize the images to a square, or use distill.aug: crop_flip")
    out = torch.empty_like(x)
    for row, (img, i) in enumerate(zip(x.numpy(), idx.tolist(), strict=True)):
        pil = Image.fromarray(img[0] if c == 1 else img.transpose(1, 2, 0))
        out[row] = torch.from_numpy(as_chw(train_transform(pil, h, np.random.default_rng([seed, i]), scale)))
    return out


def random_crop_flip(x: torch.Tensor, pad: int = 2, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random translation by up to ``pad`` pixels (zero padding) and a random horizontal flip, per sample."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, x.shape[1], h, w + 2 * pad)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, x.shape[1], h, w)
    out = out.gather(3, cols)
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(3)
    return out


@dataclass
class Mixed:
    """A mixed batch: sample ``i`` is ``lam`` of ``y_a[i]``'s image and ``1 - lam`` of ``y_b[i]``'s; the loss is
    ``lam · L(y_a) + (1 - lam) · L(y_b)``. ``teacher_logits``: the teacher's on ``x``, where picking needed them."""

    x: torch.Tensor
    y_a: torch.Tensor
    y_b: torch.Tensor
    lam: float
    teacher_logits: torch.Tensor | None = None

    def share(self, part: slice) -> Mixed:
        """The samples ``part`` of the batch (a data-parallel process's share)."""
        t = None if self.teacher_logits is None else self.teacher_logits[part]
        return Mixed(self.x[part], self.y_a[part], self.y_b[part], self.lam, t)


def _beta(alpha: float, generator: torch.Generator) -> float:
    """A Beta(alpha, alpha) draw from ``generator`` (so a resumed run draws the same): uniform for alpha = 1, the
    usual CutMix setting; else Joehnk's method, exact for any alpha > 0, by rejection on two uniforms."""
    if alpha == 1.0:
        return float(torch.rand((), generator=generator))
    while True:
        u, v = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
        a, b = u ** (1 / alpha), v ** (1 / alpha)
        if 0 < a + b <= 1:
            return a / (a + b)


def _box(h: int, w: int, lam: float, generator: torch.Generator) -> tuple[int, int, int, int]:
    """CutMix's box (Yun et al., ICCV 2019, Eq. 2): area ``(1 - lam)`` of the image, centre uniform, clipped."""
    rh, rw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = (int(v) for v in torch.randint(0, h, (1,), generator=generator).tolist()
              + torch.randint(0, w, (1,), generator=generator).tolist())
    return max(cy - rh // 2, 0), min(cy + rh // 2, h), max(cx - rw // 2, 0), min(cx + rw // 2, w)


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float, generator: torch.Generator) -> Mixed:
    """mixup (Zhang et al., ICLR 2018): each image blended with a random partner, ``lam ~ Beta(alpha, alpha)``."""
    lam, perm = _beta(alpha, generator), torch.randperm(len(x), generator=generator)
    return Mixed(lam * x + (1 - lam) * x[perm], y, y[perm], lam)


def cutmix(x: torch.Tensor, y: torch.Tensor, alpha: float, generator: torch.Generator,
           partners: int = 1) -> Mixed:
    """CutMix (Yun et al., ICCV 2019): a box of a random partner pasted into each image; ``lam`` is the share of the
    image left, recomputed from the clipped box. ``partners`` > 1 gives that many mixes of every image (one box,
    other partners), as CutMixPick draws its pool."""
    lam = _beta(alpha, generator)
    y0, y1, x0, x1 = _box(x.shape[2], x.shape[3], lam, generator)
    outs, ys_b = [], []
    for _ in range(partners):
        perm = torch.randperm(len(x), generator=generator)
        out = x.clone()
        out[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
        outs.append(out)
        ys_b.append(y[perm])
    lam = 1 - (y1 - y0) * (x1 - x0) / (x.shape[2] * x.shape[3])
    return Mixed(torch.cat(outs), y.repeat(partners), torch.cat(ys_b), lam)


def cutmix_pick(x: torch.Tensor, y: torch.Tensor, alpha: float, generator: torch.Generator,
                teacher: Callable[[torch.Tensor], torch.Tensor], pool: int = 2) -> Mixed:
    """CutMixPick (Wang et al., "What Makes a 'Good' Data Augmentation in Knowledge Distillation", NeurIPS 2022):
    from ``pool`` CutMix mixes of every image, keep the ``len(x)`` the teacher is least sure of (highest entropy of
    its softmax) — the samples that carry the most of its knowledge."""
    many = cutmix(x, y, alpha, generator, partners=pool)
    with torch.no_grad():
        logits = teacher(many.x)
    p = F.softmax(logits, dim=1)
    entropy = -(p * F.log_softmax(logits, dim=1)).sum(1)
    keep = entropy.topk(len(x)).indices.sort().values
    return Mixed(many.x[keep], many.y_a[keep], many.y_b[keep], many.lam, logits[keep])


MIXES = {"mixup": mixup, "cutmix": cutmix, "cutmix_pick": cutmix_pick}
