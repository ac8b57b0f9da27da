"""Hugging Face model folders (``save_pretrained``: ``config.json`` + ``model.safetensors``) as teachers, read
offline (``local_files_only``; the hub is never asked), with their image processor's size and normalisation as
the data's defaults.

Reading the folder's JSON is torch-free (the CLI does it at the edge, before any stage); loading the model needs
the ``hf`` extra (transformers), imported only then.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from kdcompress.errors import KDCompressError, cause
from kdcompress.run import file_sha256

HF_HINT = "pip install 'kdcompress[hf]'"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TEXT_TASKS = ("ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering", "ForMaskedLM",
              "ForCausalLM")


def is_model_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def _json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KDCompressError(f"{path}: not readable JSON ({type(e).__name__})", "re-save the model with "
                              "save_pretrained") from None
    if not isinstance(obj, dict):
        raise KDCompressError(f"{path}: not a JSON object", "re-save the model with save_pretrained")
    return obj


def check_folder(folder: Path) -> dict:
    """The folder's config, after the checks that need no transformers: a folder that is no model, missing
    weights, a model that brings its own code, a task other than image classification — each one line."""
    if not is_model_folder(folder):
        raise KDCompressError(f"{folder} is a folder without config.json, not a model",
                              "give a model file, or a Hugging Face model folder saved with save_pretrained")
    config = _json(folder / "config.json")
    if not any((folder / w).is_file() for w in WEIGHT_FILES):
        raise KDCompressError(f"{folder}: config.json but no weights ({' or '.join(WEIGHT_FILES[::2])})",
                              "save the model with model.save_pretrained(folder), which writes both")
    if "auto_map" in config:
        raise KDCompressError(f"{folder}: the model brings its own code (auto_map in config.json), which kdcompress "
                              "does not run", "save it as TorchScript or torch.export .pt2, or as a state_dict with "
                              "--arch FILE.py:ClassName")
    archs = config.get("architectures") or []
    if any(a.endswith(TEXT_TASKS) for a in archs):
        raise KDCompressError(f"{folder}: a {archs[0]} (text) model; kdcompress shrinks image classifiers so far",
                              "give an image classifier (…ForImageClassification)")
    return config


@dataclass(frozen=True)
class Preprocessing:
    """What the folder's image processor does before the model: the eval size N and crop share, normalisation."""

    size: int | None
    crop_pct: float | None
    mean: list[float] | None
    std: list[float] | None

    def profile_overrides(self) -> dict:
        """As ``--set`` overrides of the profile's ``data`` section (absent values: none)."""
        pairs = {"data.image_size": self.size, "data.crop_pct": self.crop_pct, "data.mean": self.mean,
                 "data.std": self.std}
        return {k: v for k, v in pairs.items() if v is not None}


def _side(size: object) -> int | None:
    if isinstance(size, int):
        return size
    if isinstance(size, dict):
        h, w = size.get("height"), size.get("width")
        if h and w:
            return int(min(h, w))
        if size.get("shortest_edge"):
            return int(size["shortest_edge"])
    return None


def read_preprocessing(folder: Path) -> Preprocessing | None:
    """The eval transform ``preprocessor_config.json`` describes, in the terms of kdcompress's (resize the shorter
    side to N / crop_pct, centre crop N): a centre crop of ``crop_size`` after a resize to ``size`` keeps
    crop/resize; a plain resize to N x N (ViT's) keeps all (crop_pct 1; on non-square photos kdcompress crops the
    centre where ViT's processor squashes). None when the folder has no such file."""
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return None
    cfg = _json(path)
    resize = _side(cfg.get("size"))
    crop = _side(cfg.get("crop_size")) if cfg.get("do_center_crop") else None
    if crop and resize:
        size, crop_pct = crop, round(crop / resize, 4) if resize > crop else 1.0
    elif cfg.get("crop_pct") and resize:  # ConvNeXt's: resize to shortest_edge / crop_pct, crop shortest_edge
        size, crop_pct = resize, float(cfg["crop_pct"])
    else:
        size, crop_pct = resize, 1.0 if resize else None
    normalise = cfg.get("do_normalize", True)
    mean = [float(v) for v in cfg["image_mean"]] if normalise and cfg.get("image_mean") else None
    std = [float(v) for v in cfg["image_std"]] if normalise and cfg.get("image_std") else None
    if not normalise:
        mean, std = [0.0], [1.0]
    return Preprocessing(size, crop_pct, mean, std)


def folder_sha256(folder: Path) -> str:
    """One digest of what makes the model: its config and weight files (each by name and content)."""
    h = hashlib.sha256()
    for name in ("config.json", *WEIGHT_FILES):
        if (folder / name).is_file():
            h.update(f"{name}:{file_sha256(folder / name)}".encode())
    return h.hexdigest()


def load_image_classifier(folder: Path) -> object:
    """The folder's ``AutoModelForImageClassification``, offline, in eval mode (an nn.Module returning a
    ``ModelOutput``: wrap it in :class:`kdcompress.models.arch.LogitsOf`)."""
    check_folder(folder)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder never needs the hub; never ask it
    try:
        import transformers
    except ImportError:
        raise KDCompressError(f"{folder} is a Hugging Face model folder, which needs transformers", HF_HINT) from None
    try:
        model = transformers.AutoModelForImageClassification.from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=False)
    except Exception as e:  # noqa: BLE001 — an unknown config, a corrupt weights file…: the user's folder, one line
        first = cause(e, 200)
        raise KDCompressError(f"{folder}: transformers cannot load it as an image classifier ({first})",
                              "check that it was saved with save_pretrained by a …ForImageClassification model") from None
    return model.eval()
