"""The profile's ``data`` section: normalisation, the validation carve, and how image folders are read (torch-free,
validated with the profile)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataCfg(_Strict):
    mean: list[float] = Field([0.0], description="per-channel mean after scaling pixels to [0, 1]")
    std: list[float] = Field([1.0], description="per-channel std after scaling pixels to [0, 1]")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of train carved out for validation (when the "
                                "data has no val split)")
    image_size: int | None = Field(None, ge=8, description="input side N for image folders: eval = resize the "
                                   "shorter side to N / crop_pct, centre-crop N (None: the teacher's declared size, "
                                   "else the folder's one size)")
    crop_pct: float = Field(0.875, gt=0, le=1, description="share of the resized image the eval crop keeps (timm)")
    workers: int | None = Field(None, ge=0, description="processes decoding an image folder's batches (None: the "
                                "cores less one, at most 8; 0: in the main process)")
    strict: bool = Field(False, description="an unreadable image file stops the run (else it is skipped, counted)")
    split_seed: int = Field(0, ge=0, description="seed of that carve: fixed apart from --seed, so that runs of "
                            "several training seeds choose on the same validation images (and a teacher trained on "
                            "the rest never saw them)")
