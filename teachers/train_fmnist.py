"""Train the Fashion-MNIST teacher that kdcompress ships (seeded; about 40 minutes on 2 CPU cores).

    python teachers/train_fmnist.py --out teachers/fmnist_resnet.pt2

Saves a ``torch.export`` ExportedProgram (dynamic batch) — loadable without executing a pickle — and a JSON
file beside it with the genes, training recipe and measured test accuracy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from kdcompress.data import Preprocess, load_data
from kdcompress.data.augment import random_crop_flip
from kdcompress.data.splits import batches
from kdcompress.distill.trainer import evaluate
from kdcompress.models.students import build_resnet

GENES = {"stem": 32, "widths": [32, 64, 128], "depths": [1, 2, 2], "stem_stride": 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("teachers/fmnist_resnet.pt2"))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    data = load_data("fashion-mnist", val_fraction=0.1, seed=0)
    # The teacher sees train + val: the shrink pipeline's validation split is for early stopping the student.
    x = torch.cat([data.x_train, data.x_val])
    y = torch.cat([data.y_train, data.y_val])
    prep = Preprocess()
    model = build_resnet(GENES, 1, 10)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = args.epochs * math.ceil(len(y) / args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps, pct_start=0.15)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        for _, xb, yb in batches(x, y, args.batch, shuffle=True, generator=g):
            loss = F.cross_entropy(model(prep(random_crop_flip(xb, generator=g))), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = evaluate(model, data.x_test, data.y_test, prep)
        print(f"epoch {epoch + 1}/{args.epochs} loss {loss.item():.3f} test acc {acc:.2f}% ({time.time() - t0:.0f}s)")

    model.eval()
    batch = torch.export.Dim("batch", min=1, max=65536)
    ep = torch.export.export(model, (torch.zeros(2, 1, 28, 28),), dynamic_shapes={"x": {0: batch}})
    tmp = args.out.with_name(args.out.stem + ".tmp.pt2")  # torch.export.save wants a .pt2 name
    torch.export.save(ep, tmp)
    os.replace(tmp, args.out)
    meta = {
        "arch": "kdcompress.models.students.ResNet", "genes": GENES, "input_shape": [1, 28, 28], "num_classes": 10,
        "preprocess": prep.to_json(), "test_accuracy": round(acc, 2), "epochs": args.epochs, "seed": args.seed,
        "params": sum(p.numel() for p in model.parameters()), "train_seconds": round(time.time() - t0),
        "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "recipe": f"SGD nesterov lr {args.lr} one-cycle, wd 5e-4, batch {args.batch}, crop+flip, {args.epochs} epochs",
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
