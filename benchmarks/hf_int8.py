"""int8 of a Hugging Face student (issue 30): kdcompress's own static QDQ quantization against optimum's
``ORTQuantizer`` (the ``AutoQuantizationConfig`` preset of this CPU, static with MinMax calibration, and dynamic), on
the same float ONNX that optimum's exporter makes from a ``save_pretrained`` folder.

    python benchmarks/hf_int8.py [--steps 400] [--out benchmarks/results/hf_int8.json]

1. A small ViT (``--hidden``, ``--layers``, patch 4) trained here for ``--steps`` SGD steps on Fashion-MNIST's
   training split (the split's validation part held out), saved with ``save_pretrained``; ONNX by optimum.
2. int8 three ways from that ONNX, each calibrated (where static) on the same 256 training images: ours
   (:func:`kdcompress.export.int8.to_int8`, the scheme :func:`resolve_scheme` picks for this CPU), optimum static
   (the preset for this CPU, its defaults otherwise), optimum dynamic (weights int8, activations quantized at run
   time: optimum's recipe for text models).
3. Each artifact's accuracy on the validation split (the choice of int8 path is a choice: made on validation, the
   test split untouched) and its top-1 agreement with the float ONNX; latency at batch 1, one thread, the artifacts
   timed in turns (``interleaved_latency``).

Saves the JSON with the machine, versions and date.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from kdcompress.bench.backends import BACKENDS
from kdcompress.bench.measure import interleaved_latency, predictions
from kdcompress.data.splits import Preprocess, load_data
from kdcompress.export.int8 import cpu_flags, resolve_scheme, to_int8
from kdcompress.export.pretrained import optimum_onnx
from kdcompress.report.environment import environment
from kdcompress.run import write_json

ROOT = Path(__file__).resolve().parent.parent
PREP = Preprocess((0.5,), (0.5,))


def train_vit(data, hidden: int, layers: int, steps: int, seed: int = 0):
    import transformers as T

    torch.manual_seed(seed)
    side = data.input_shape[1]
    config = T.ViTConfig(image_size=side, patch_size=4, num_channels=data.input_shape[0], hidden_size=hidden,
                         num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
                         intermediate_size=4 * hidden, num_labels=10)
    model = T.ViTForImageClassification(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        idx = torch.randint(len(data.y_train), (128,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(pixel_values=PREP(data.x_train[idx])).logits, data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            print(f"step {step}/{steps} loss {loss.item():.3f}", flush=True)
    return model.eval()


def optimum_int8(src: Path, dst: Path, static: bool, calibration: np.ndarray) -> dict:
    """optimum's ORTQuantizer with the preset of this CPU (avx512_vnni where VNNI is, else avx2), as its docs
    show; the calibration set passed as the iterable of input dicts its reader takes (no ``datasets`` needed)."""
    from onnxruntime.quantization import CalibrationMethod
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig, CalibrationConfig

    vnni = bool({"avx512_vnni", "avx_vnni"} & cpu_flags())
    preset = "avx512_vnni" if vnni else "avx2"
    qconfig = getattr(AutoQuantizationConfig, preset)(is_static=static, per_channel=True)
    quantizer = ORTQuantizer.from_pretrained(src.parent, file_name=src.name)
    ranges = None
    if static:
        calib = CalibrationConfig(dataset_name="fashion-mnist", dataset_config_name="train", dataset_split="train",
                                  dataset_num_samples=len(calibration), method=CalibrationMethod.MinMax)
        ranges = quantizer.fit(dataset=[{"pixel_values": x} for x in calibration], calibration_config=calib,
                               batch_size=32, onnx_augmented_model_name=dst.with_suffix(".augmented.onnx"))
    with tempfile.TemporaryDirectory() as out:
        made = quantizer.quantize(qconfig, out, calibration_tensors_range=ranges)
        (Path(made) / f"{src.stem}_quantized.onnx").replace(dst)
    return {"preset": preset, "static": static, "format": str(qconfig.format), "per_channel": qconfig.per_channel,
            "reduce_range": qconfig.reduce_range}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--work", type=Path, default=Path("/tmp/kdc-hf-int8"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "hf_int8.json")
    ap.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = load_data("fashion-mnist")
    a.work.mkdir(parents=True, exist_ok=True)
    folder = a.work / "vit"
    if not (folder / "config.json").exists():
        train_vit(data, a.hidden, a.layers, a.steps).save_pretrained(folder)
    fp32 = a.work / "fp32.onnx"
    optimum_onnx(folder, fp32, 18)
    calib = PREP(data.x_train[:256]).numpy()
    scheme = resolve_scheme("cpu", "auto", None)
    made = {"fp32": {"how": "optimum main_export"}}
    made["ours_static_qdq"] = to_int8(fp32, a.work / "ours.onnx", calib, scheme)
    made["optimum_static"] = optimum_int8(fp32, a.work / "optimum_static.onnx", True, calib)
    made["optimum_dynamic"] = optimum_int8(fp32, a.work / "optimum_dynamic.onnx", False, calib)
    paths = {"fp32": fp32, "ours_static_qdq": a.work / "ours.onnx", "optimum_static": a.work / "optimum_static.onnx",
             "optimum_dynamic": a.work / "optimum_dynamic.onnx"}
    runners = {k: BACKENDS["onnxruntime-cpu"](p, threads=1) for k, p in paths.items()}
    preds = {k: predictions(r, data.x_val, PREP) for k, r in runners.items()}
    y = data.y_val.numpy()
    lat = interleaved_latency(runners, PREP(data.x_val[:1]).numpy(), warmup=50, iters=200, repeats=5)
    rows = {k: {"how": made[k], "val_accuracy": round(100 * float((preds[k] == y).mean()), 2),
                "top1_agreement_with_fp32": round(float((preds[k] == preds["fp32"]).mean()), 4),
                "p50_ms": round(lat[k].p50, 4), "speedup_over_fp32": round(lat["fp32"].p50 / lat[k].p50, 3),
                "bytes": paths[k].stat().st_size} for k in paths}
    result = {"benchmark": "hf_int8", "command": "python benchmarks/hf_int8.py " + " ".join(
        f"--{k} {v}" for k, v in (("steps", a.steps), ("hidden", a.hidden), ("layers", a.layers))),
              "note": a.note, "model": {"arch": "ViTForImageClassification", "hidden": a.hidden, "layers": a.layers,
                                        "patch": 4, "train_steps": a.steps},
              "split": f"validation ({len(y)} images carved from train; the test split is not read)",
              "our_scheme": scheme.to_json(), "rows": rows, **environment()}
    write_json(a.out, result)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
