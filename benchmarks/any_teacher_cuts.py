"""Which torchvision / timm architectures the pruned-teacher space cuts (issue 28), as a user would bring them.

Each architecture is built by its factory through ``--arch``'s resolver (``torchvision.models:resnet18``,
``timm:convnext_atto``: no weights, sized from a state_dict saved here), loaded as a state_dict teacher, then cut by a
grid of the space's genes (channel ratio x first stride doubled x deepest blocks dropped). Per architecture: how many
cuts built and ran, the one-line reasons of the others, and for one cut (50 % channels + one block): ONNX export
parity and a rebuild from what a run saves (spec.json + state_dict). Needs torchvision/timm importable: beside the
project's pinned CPU torch they are not (see the README), so this runs in a side environment and says which.

    python benchmarks/any_teacher_cuts.py [--side 64] [--out benchmarks/results/any_teacher_cuts.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from kdcompress.errors import KDCompressError
from kdcompress.models.arch import resolve_arch
from kdcompress.models.load import load_teacher
from kdcompress.models.pruning import PRUNED_FAMILY, PruningSource
from kdcompress.records import StudentSpec
from kdcompress.report.environment import environment
from kdcompress.run import write_json

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ["torchvision.models:resnet18", "torchvision.models:resnet50", "torchvision.models:mobilenet_v2",
         "torchvision.models:mobilenet_v3_small", "torchvision.models:efficientnet_b0",
         "torchvision.models:regnet_y_400mf", "torchvision.models:shufflenet_v2_x1_0",
         "torchvision.models:convnext_tiny", "torchvision.models:vit_b_16", "timm:resnet18", "timm:convnext_atto",
         "timm:mobilenetv3_small_100", "timm:efficientnet_b0", "timm:deit_tiny_patch16_224"]
CLASSES = 10
GRID = [{"ratio": r, "importance": "l2", "global": 0, "downsample": d, "drop_blocks": k, "round_to": 8 if r else 1}
        for r, d, k in itertools.product([0.0, 0.25, 0.5, 0.75], [0, 1], [0, 1, 2]) if r or d or k]
CHECKED = {"ratio": 0.5, "importance": "l2", "global": 0, "downsample": 0, "drop_blocks": 1, "round_to": 8}


def params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def one(spec: str, side: int, work: Path) -> dict:
    torch.manual_seed(0)
    # ViTs fix their input size at construction (torchvision: image_size, timm: img_size)
    kw = {"image_size": side} if "vit_" in spec else {"img_size": side} if "deit" in spec else {}
    if spec.startswith("timm:") and kw:
        import timm

        model = timm.create_model(spec.split(":")[1], pretrained=False, num_classes=CLASSES, **kw)
    else:
        model = resolve_arch(spec)[0](num_classes=CLASSES, **kw)  # stands for the user's trained network
    sd_path = work / "teacher.pt"
    torch.save(model.state_dict(), sd_path)
    # loaded as users would: a state_dict + --arch (a factory needing more than the state_dict shows, as the
    # ViT's image size, is used as the module itself)
    teacher_module = (model if kw else load_teacher(sd_path, arch=spec).module).eval()
    x = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    source = PruningSource(teacher_module, x)
    entry: dict = {"arch": spec, "params": params(teacher_module), "cuts": [], "refused": {}}
    t0 = time.time()
    for genes in GRID:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cut = source.build(genes)
            entry["cuts"].append({"genes": {k: genes[k] for k in ("ratio", "downsample", "drop_blocks")},
                                  "params": params(cut)})
        except KDCompressError as e:
            entry["refused"].setdefault(str(e).split(" — ")[0], []).append(
                [genes["ratio"], genes["downsample"], genes["drop_blocks"]])
    entry["grid_seconds"] = round(time.time() - t0, 1)
    entry["built"] = f"{len(entry['cuts'])}/{len(GRID)}"
    try:
        entry["checked_cut"] = check(source, work)
    except KDCompressError as e:
        entry["checked_cut"] = {"refused": str(e).split(" — ")[0]}
    except Exception as e:  # noqa: BLE001 — a failure past the cut (export, runtime) is a finding to record
        entry["checked_cut"] = {"failed": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    return entry


def check(source, work: Path) -> dict:
    """The 50 % + one block cut: ONNX parity, and a rebuild from spec.json + state_dict equal to it."""
    import onnxruntime as ort

    from kdcompress.distill.trainer import load_student
    from kdcompress.export.onnx import check_parity, to_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cut = source.build(CHECKED).eval()
    x = source.example
    to_onnx(cut, x[:1], work / "cut.onnx")
    sess = ort.InferenceSession(str(work / "cut.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = cut(x).numpy()
    parity = check_parity(ref, sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])
    (work / "spec.json").write_text(json.dumps(StudentSpec(PRUNED_FAMILY, CHECKED, 3, CLASSES).to_json()))
    torch.save(cut.state_dict(), work / "model.pt")
    with torch.no_grad():
        same = bool(np.allclose(load_student(work, source)(x).numpy(), ref, atol=1e-5))
    return {"params": params(cut), "onnx_parity": parity.passed, "max_abs_diff": parity.max_abs_diff,
            "reloads_equal": same}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=64)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "any_teacher_cuts.json")
    ap.add_argument("--env-note", default="", help="how torchvision/timm were made importable for this run")
    a = ap.parse_args()
    out = {"benchmark": "any_teacher_cuts", "side": a.side, "grid": len(GRID), "env_note": a.env_note,
           **environment(), "versions_extra": {m: __import__(m).__version__ for m in ("torchvision", "timm")
                                               if importlib.util.find_spec(m)}, "archs": []}
    for spec in ARCHS:
        with tempfile.TemporaryDirectory() as d:
            try:
                entry = one(spec, a.side, Path(d))
            except KDCompressError as e:
                entry = {"arch": spec, "error": str(e)}
        out["archs"].append(entry)
        print(json.dumps({k: entry.get(k) for k in ("arch", "built", "checked_cut", "error", "refused")})[:600],
              flush=True)
        write_json(a.out, out)


if __name__ == "__main__":
    main()
