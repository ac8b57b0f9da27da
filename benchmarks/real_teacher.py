"""A torchvision ``resnet18`` as users bring it (issues 27 and 28): trained here on the mixed-size photo folder,
saved with ``torch.save(model)``, then ``kdcompress shrink model.pt --trust-pickle --data PHOTOS --image-size N
--normalize imagenet --profile ci`` exactly as the issue's acceptance writes it.

    python benchmarks/real_teacher.py --photos DIR [--size 64] [--epochs 1] [--out benchmarks/results/real_teacher.json]

Needs torchvision, which does not import beside the project's pinned CPU torch 2.13 (PyPI's torchvision 0.28 is a
CUDA build; README, "Teachers we did not design"): run it in an environment where torchvision imports (it ran with
torch 2.14.1 + torchvision 0.29.1 in a side virtualenv, ``pip install -e .`` of this checkout; the JSON records the
versions). The teacher: ``torchvision.models.resnet18(num_classes=10)`` (no weights downloaded), SGD on the training
split less kdcompress's validation carve, images through kdcompress's own eval transform at ``--size`` with ImageNet
normalisation, ``--epochs`` epochs. Saves the shrink's result (teacher, best row, front) with the command, machine,
versions and date.
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
IMAGENET = Preprocess((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def train(photos: Path, path: Path, size: int, epochs: int) -> dict:
    import torchvision

    if path.exists():
        return json.loads(path.with_suffix(".json").read_text())
    data = load_data(str(photos), folder=FolderOptions(image_size=size, workers=1))
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=data.num_classes)
    steps = epochs * -(-len(data.y_train) // 64)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.05, total_steps=steps, pct_start=0.2)
    gen, t0 = torch.Generator().manual_seed(0), time.time()
    for _ in range(epochs):
        net.train()
        for _, xb, yb in batches(data.x_train, data.y_train, 64, shuffle=True, generator=gen):
            loss = torch.nn.functional.cross_entropy(net(IMAGENET(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        right = sum(int((net(IMAGENET(xb)).argmax(1) == yb).sum()) for _, xb, yb in batches(data.x_val, data.y_val, 500))
    torch.save(net, path)
    record = {"arch": "torchvision.models.resnet18", "size": size, "epochs": epochs, "seconds": round(time.time() - t0),
              "val_accuracy": round(100 * right / len(data.y_val), 2), "torchvision": torchvision.__version__}
    path.with_suffix(".json").write_text(json.dumps(record, indent=1))
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, required=True)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "real_teacher")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "real_teacher.json")
    ap.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    model = a.work / "resnet18_full.pt"
    teacher = train(a.photos, model, a.size, a.epochs)
    cmd = [sys.executable, "-m", "kdcompress.cli", "shrink", str(model), "--trust-pickle", "--data", str(a.photos),
           "--image-size", str(a.size), "--normalize", "imagenet", "--profile", a.profile, "--out",
           str(a.work / "run"), "--resume", "--json"]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    result = json.loads(proc.stdout)
    keep = ("id", "precision", "space", "genes", "params", "speedup", "accuracy", "accuracy_drop", "meets_budget")
    write_json(a.out, {
        "benchmark": "real_teacher", "command": "python benchmarks/real_teacher.py " + " ".join(sys.argv[1:]),
        "shrink": " ".join(cmd[1:]), "seconds": round(time.time() - t0), "note": a.note, "teacher": teacher,
        "teacher_test_accuracy": result["teacher"]["accuracy"], "best": result["best"],
        "rows": [{k: r.get(k) for k in keep} for r in result["students"]], "front": result["frontier"],
        **environment()})
    print(json.dumps({"teacher": teacher, "best": result["best"]}, indent=1))


if __name__ == "__main__":
    main()
