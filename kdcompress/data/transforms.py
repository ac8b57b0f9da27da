"""The field's image transforms on PIL images (PIL's resampling, no hand-written one), to uint8 CHW arrays:

- eval (timm's and torchvision's reference convention): resize the shorter side to ``round(size / crop_pct)``, then
  centre-crop ``size`` x ``size``; an image already ``size`` x ``size`` is kept as it is (so a same-size folder reads
  as before);
- train: ``RandomResizedCrop(size, scale, ratio)`` (Szegedy et al., 2015; torchvision's sampling: ten tries at a
  random area share and log-uniform aspect ratio, else a centre crop of the clamped ratio) and a horizontal flip
  with probability 1/2, drawn from a ``numpy`` generator so a (seed, epoch, image) always gets the same crop.

Images of any mode are brought to the teacher's channel count first (1: ``L``; 3: ``RGB``, alpha dropped as
torchvision's ``pil_loader`` does).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

BILINEAR = Image.Resampling.BILINEAR  # torchvision's default for Resize and RandomResizedCrop


def to_channels(img: Image.Image, channels: int) -> Image.Image:
    """``img`` in mode ``L`` (1 channel) or ``RGB`` (3), whatever its own mode (L, RGB, RGBA, P, CMYK, 16-bit...)."""
    if img.mode.startswith("I"):  # 16/32-bit grey: to 8 bits by the 16-bit range (PIL's convert would clip at 255)
        img = Image.fromarray((np.asarray(img, dtype=np.int64).clip(0, 65535) // 257).astype(np.uint8), "L")
    if channels == 1:
        if img.mode in ("L", "1", "RGB"):  # PIL converts these to L directly (L: itself)
            return img if img.mode == "L" else img.convert("L")
        return img.convert("RGB").convert("L")  # RGBA, P, CMYK, LA: through RGB, as torchvision's loader
    if channels == 3:
        return img if img.mode == "RGB" else img.convert("RGB")
    raise ValueError(f"images with {channels} channels are not supported (1 or 3)")


def as_chw(img: Image.Image) -> np.ndarray:
    """uint8 (C, H, W)."""
    a = np.asarray(img, dtype=np.uint8)
    return a[None] if a.ndim == 2 else np.ascontiguousarray(a.transpose(2, 0, 1))


def resize_shorter(img: Image.Image, shorter: int) -> Image.Image:
    """Shorter side to ``shorter``, aspect kept (torchvision ``Resize(int)``: the longer side truncated)."""
    w, h = img.size
    if min(w, h) == shorter:
        return img
    if w <= h:
        return img.resize((shorter, int(shorter * h / w)), BILINEAR)
    return img.resize((int(shorter * w / h), shorter), BILINEAR)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """``size`` x ``size`` from the centre (torchvision's rounding of the offsets)."""
    w, h = img.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def eval_transform(img: Image.Image, size: int, crop_pct: float = 0.875) -> Image.Image:
    if img.size == (size, size):
        return img
    return center_crop(resize_shorter(img, int(round(size / crop_pct))), size)


def crop_box(width: int, height: int, scale: tuple[float, float], ratio: tuple[float, float],
             rng: np.random.Generator) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` of a random resized crop, as torchvision's ``RandomResizedCrop.get_params`` samples."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    in_ratio = width / height  # fallback: the whole image at the nearest allowed ratio, centred
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def train_transform(img: Image.Image, size: int, rng: np.random.Generator, scale: tuple[float, float] = (0.08, 1.0),
                    ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: bool = True) -> Image.Image:
    top, left, h, w = crop_box(img.size[0], img.size[1], scale, ratio, rng)
    out = img.crop((left, top, left + w, top + h)).resize((size, size), BILINEAR)
    if flip and rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return out
