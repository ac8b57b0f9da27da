"""Students of a Hugging Face teacher as Hugging Face models: ``save_pretrained`` folders that ``transformers``
loads with ``from_pretrained``, exported to ONNX by optimum's exporter from that folder (``main_export``, the path
``optimum-cli export onnx --model DIR --task image-classification`` takes).

A cut of the teacher (:mod:`kdcompress.models.pruning`) is a model of the teacher's class only where its config can
say what was cut: fewer encoder layers (``num_hidden_layers``, the layers that remain renumbered in order) and one
MLP width for every layer (``intermediate_size``) — the cuts of ViT/DeiT/BERT-like encoders with per-layer channel
ratios. Whether a cut is one is not guessed: the config's model is built, given the cut's weights (strict: every
name and shape) and must compute the cut's logits on the example input. Other cuts (a doubled stride, widths that
differ by layer, blocks of a CNN's stages) stay kdcompress students (spec.json + state_dict) exported by
:func:`kdcompress.export.onnx.to_onnx`.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from kdcompress.errors import KDCompressError, cause
from kdcompress.run import atomic_path

OPTIMUM_HINT = "pip install 'kdcompress[hf]'"
PROCESSOR_FILES = ("preprocessor_config.json",)


def _resized_configs(inner: nn.Module) -> list[object]:
    """The teacher's config with the sizes the cut may have changed, one candidate per encoder layer list."""
    config = inner.config
    widths = {m.out_features for n, m in inner.named_modules() if n.endswith("intermediate.dense")
              and isinstance(m, nn.Linear)}
    if len(widths) > 1:  # layers of different MLP widths: no single intermediate_size says it
        return []
    sizes = {"intermediate_size": widths.pop()} if widths and hasattr(config, "intermediate_size") else {}
    lists = [len(m) for m in inner.modules() if isinstance(m, nn.ModuleList) and len(m)]
    layer_counts = sorted(set(lists)) if hasattr(config, "num_hidden_layers") else []
    candidates = []
    for n in layer_counts or [None]:
        c = copy.deepcopy(config)
        for k, v in ({**sizes, "num_hidden_layers": n} if n is not None else sizes).items():
            setattr(c, k, v)
        candidates.append(c)
    return candidates


def as_pretrained(model: nn.Module, example: torch.Tensor) -> nn.Module | None:
    """``model`` (a cut of a Hugging Face teacher, maybe wrapped in :class:`kdcompress.models.arch.LogitsOf`) as a
    freshly built model of the teacher's class with a config that says its sizes, holding its weights and computing
    its logits on ``example``; None when no config of that class describes the cut."""
    from kdcompress.models.arch import logits_of

    inner = getattr(model, "inner", model)
    if not hasattr(inner, "config") or not hasattr(inner, "save_pretrained"):
        return None
    state = inner.state_dict()
    with torch.no_grad():
        expected = logits_of(model.eval()(example))
    for config in _resized_configs(inner):
        try:
            fresh = type(inner)(config).eval()
            fresh.load_state_dict(state, strict=True)
            with torch.no_grad():
                got = logits_of(fresh(example))
        except Exception:  # noqa: BLE001, S112 — a config that does not fit the cut: try the next, else none fits
            continue
        if got.shape == expected.shape and torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
            return fresh
    return None


def save_pretrained(model: nn.Module, folder: Path, teacher_folder: Path | None) -> Path:
    """Write ``model`` (from :func:`as_pretrained`) with ``save_pretrained`` to ``folder`` (built beside it, then renamed into place), with the
    teacher folder's image processor config beside it, so that the folder is what a transformers user loads."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f".{folder.name}.*"):  # what a killed save left behind
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        for name in PROCESSOR_FILES:
            if teacher_folder is not None and (teacher_folder / name).is_file():
                shutil.copy2(teacher_folder / name, tmp / name)
        shutil.rmtree(folder, ignore_errors=True)  # a folder cannot replace a non-empty one in one rename
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def optimum_onnx(folder: Path, path: Path, opset: int) -> None:
    """Export the model folder ``folder`` with optimum's ONNX exporter (task ``image-classification``, offline) to
    the single file ``path`` (built beside it, then renamed into place); one line when optimum is missing or fails.
    A student over ONNX's 2 GB limit (external data beside the graph) is not handled: only the graph file is kept."""
    try:
        from optimum.exporters.onnx import main_export
    except ImportError:
        raise KDCompressError("exporting a Hugging Face student needs optimum's ONNX exporter",
                              OPTIMUM_HINT) from None
    from kdcompress.export.onnx import _quiet_exporter

    with tempfile.TemporaryDirectory(dir=path.parent) as out, atomic_path(path) as tmp:
        try:
            with _quiet_exporter():
                main_export(str(folder), output=out, task="image-classification", opset=opset,
                            local_files_only=True, do_validation=False)
        except Exception as e:  # noqa: BLE001 — optimum's failures are many; the fact for the user is one
            raise KDCompressError(f"optimum could not export {folder.name} to ONNX ({cause(e, 160)})",
                                  "run with --debug for details") from None
        shutil.move(str(Path(out) / "model.onnx"), tmp)
