"""A Hugging Face ViT trained here on colour photos, shrunk by ``kdcompress shrink FOLDER --profile ci`` (issue 30).

    python benchmarks/hf_vit.py [--photos DIR] [--size 32] [--hidden 96] [--layers 6] [--epochs 8] [--seeds 0]

1. The photo folder of ``benchmarks/make_photos.py`` (made once at ``--photos`` if absent: 20,000 train, 5,000
   test images of 48-160 px).
2. A ``ViTForImageClassification`` (patch 4, ``--hidden`` wide, ``--layers`` deep, heads of 32 channels) trained
   ``--epochs`` epochs here with AdamW on the training split less the validation share kdcompress carves (the same
   seed), images resized as kdcompress's eval transform does (shorter side to ``--size``, centre crop), the best
   epoch by validation accuracy kept; saved with ``save_pretrained`` beside its image processor.
3. Per seed: ``kdcompress shrink VIT --data PHOTOS --profile ci --seed S --json`` in ``runs/hf_vit/seed<S>``
   (``--resume``: run again to continue), as a user would; the result's teacher, best row and front saved.

What it does not do yet (issue 30 asks it): the recipes an optimum user would run instead (optimum's quantization
of the teacher; a layer-dropped copy fine-tuned, then quantized) beside ours, and the paired comparison over seeds.
Saves ``benchmarks/results/hf_vit.json`` with the command, machine, versions and date.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from kdcompress.data.splits import FolderOptions, Preprocess, batches, load_data
from kdcompress.report.environment import environment
from kdcompress.run import write_json

ROOT = Path(__file__).resolve().parent.parent
PREP = Preprocess((0.5,), (0.5,))  # ViTImageProcessor's default normalisation


def ensure_photos(folder: Path) -> Path:
    if not (folder / ".complete").exists():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_photos.py"), "--out", str(folder)], check=True)
        (folder / ".complete").write_text("")
    return folder


@torch.no_grad()
def _val_accuracy(model, data) -> float:
    model.eval()
    right = sum(int((model(pixel_values=PREP(xb)).logits.argmax(1) == yb).sum())
                for _, xb, yb in batches(data.x_val, data.y_val, 500))
    return 100.0 * right / len(data.y_val)


def train_vit(photos: Path, out: Path, size: int, hidden: int, layers: int, epochs: int) -> dict:
    """Train the teacher (once: kept at ``out``); returns how it was trained and its validation accuracy."""
    import transformers as T

    done = out / "training.json"
    if done.exists():
        return json.loads(done.read_text())
    data = load_data(str(photos), folder=FolderOptions(image_size=size, workers=1))
    torch.manual_seed(0)
    config = T.ViTConfig(image_size=size, patch_size=4, num_channels=3, hidden_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=max(1, hidden // 32), intermediate_size=4 * hidden,
                         num_labels=data.num_classes, id2label=dict(enumerate(data.classes)),
                         label2id={c: i for i, c in enumerate(data.classes)})
    model = T.ViTForImageClassification(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    steps = epochs * -(-len(data.y_train) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=steps, pct_start=0.1)
    gen, best, history, t0 = torch.Generator().manual_seed(0), -1.0, [], time.time()
    for epoch in range(epochs):
        model.train()
        for _, xb, yb in batches(data.x_train, data.y_train, 128, shuffle=True, generator=gen):
            loss = torch.nn.functional.cross_entropy(model(pixel_values=PREP(xb)).logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = _val_accuracy(model, data)
        history.append({"epoch": epoch + 1, "val_accuracy": acc, "seconds": round(time.time() - t0)})
        print(history[-1], flush=True)
        if acc > best:
            best = acc
            model.save_pretrained(out)
            T.ViTImageProcessor(size={"height": size, "width": size}).save_pretrained(out)
    record = {"size": size, "hidden": hidden, "layers": layers, "epochs": epochs, "history": history,
              "best_val_accuracy": best, "params": sum(p.numel() for p in model.parameters())}
    done.write_text(json.dumps(record, indent=1))
    return record


def shrink(vit: Path, photos: Path, seed: int, profile: str, run: Path) -> dict:
    cmd = [sys.executable, "-m", "kdcompress.cli", "shrink", str(vit), "--data", str(photos), "--profile", profile,
           "--seed", str(seed), "--out", str(run), "--resume", "--json"]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    result = json.loads(proc.stdout)
    best = next((r for r in result["students"] if r["id"] == result["best"]), None)
    keep = ("id", "precision", "speedup", "accuracy", "accuracy_drop", "params", "genes", "pretrained")
    return {"command": " ".join(cmd[1:]), "seconds": round(time.time() - t0), "teacher_accuracy":
            result["teacher"]["accuracy"], "best": {k: best.get(k) for k in keep} if best else None,
            "rows": [{k: r.get(k) for k in keep} for r in result["students"]], "front": result["frontier"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, default=Path("/root/.cache/kdcompress-bench/photos_20k"))
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=96)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "hf_vit")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "hf_vit.json")
    ap.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    a = ap.parse_args()
    photos = ensure_photos(a.photos)
    vit = a.work / "vit"
    teacher = train_vit(photos, vit, a.size, a.hidden, a.layers, a.epochs)
    out = {"benchmark": "hf_vit", "command": "python benchmarks/hf_vit.py " + " ".join(sys.argv[1:]), "note": a.note,
           "teacher": teacher, "seeds": {}, **environment()}
    for seed in a.seeds:
        out["seeds"][str(seed)] = shrink(vit, photos, seed, a.profile, a.work / f"seed{seed}")
        write_json(a.out, out)  # after every seed
    print(json.dumps({s: v["best"] for s, v in out["seeds"].items()}, indent=1))


if __name__ == "__main__":
    main()
