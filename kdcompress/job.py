"""What every training-side function of a run reads, grouped once: the teacher, the data and how its pixels are
normalised, the seed, and the file the teacher's outputs on the training images are cached in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kdcompress.data import DataSplits, Preprocess
from kdcompress.models.load import Teacher


@dataclass(frozen=True)
class Job:
    """``search`` and ``distill`` take one of these instead of five loose arguments."""

    teacher: Teacher
    data: DataSplits
    prep: Preprocess
    logit_cache: Path  # teacher logits on the un-augmented training set; feature maps and views are kept beside it
    seed: int = 0
