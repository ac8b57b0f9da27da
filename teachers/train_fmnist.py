"""Train the Fashion-MNIST teachers that kdcompress ships (seeded; about an hour each on 2 CPU cores).

    python teachers/train_fmnist.py --out teachers/fmnist_resnet.pt2                 # the demo's ResNet
    python teachers/train_fmnist.py --space vgg --out teachers/fmnist_vgg.pt2        # a second family (issue 13)

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
from kdcompress.models.students import STUDENTS

# each shipped teacher's family and genes (kdcompress.models.students); the recipe file names them
GENES = {
    "resnet": {"stem": 32, "widths": [32, 64, 128], "depths": [1, 2, 2], "stem_stride": 1},
    # plain 3x3 conv stacks, no shortcuts: 58 MFLOPs, under half the ResNet's 132 (so it trains in about an hour on
    # one core)
    "vgg": {"widths": [32, 64, 128], "depths": [2, 2, 2], "kernel": [3, 3, 3]},
}
ARCH = {"resnet": "kdcompress.models.students.ResNet", "vgg": "vgg"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("teachers/fmnist_resnet.pt2"))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--space", choices=list(GENES), default="resnet")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    data = load_data("fashion-mnist", val_fraction=0.1, seed=0)
    # The teacher sees train + val: the shrink pipeline's validation split is for early stopping the student.
    x = torch.cat([data.x_train, data.x_val])
    y = torch.cat([data.y_train, data.y_val])
    prep = Preprocess()
    model = STUDENTS[args.space](GENES[args.space], 1, 10)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = args.epochs * math.ceil(len(y) / args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps, pct_start=0.15)
    g = torch.Generator().manual_seed(args.seed)
    # a checkpoint after every epoch: a killed training resumes where it stopped (train_seconds then counts this
    # process only)
    ckpt = args.out.with_suffix(".ckpt.pt")
    start = 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"]), opt.load_state_dict(state["opt"]), sched.load_state_dict(state["sched"])
        g.set_state(state["generator"])
        start = state["epoch"]
        print(f"resuming after epoch {start}")
    t0 = time.time()
    for epoch in range(start, args.epochs):
        model.train()
        for _, xb, yb in batches(x, y, args.batch, shuffle=True, generator=g):
            loss = F.cross_entropy(model(prep(random_crop_flip(xb, generator=g))), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = evaluate(model, data.x_test, data.y_test, prep)
        print(f"epoch {epoch + 1}/{args.epochs} loss {loss.item():.3f} test acc {acc:.2f}% ({time.time() - t0:.0f}s)",
              flush=True)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "generator": g.get_state(), "epoch": epoch + 1}, ckpt.with_suffix(".tmp"))
        os.replace(ckpt.with_suffix(".tmp"), ckpt)

    model.eval()
    acc = evaluate(model, data.x_test, data.y_test, prep)
    batch = torch.export.Dim("batch", min=1, max=65536)
    ep = torch.export.export(model, (torch.zeros(2, 1, 28, 28),), dynamic_shapes={"x": {0: batch}})
    tmp = args.out.with_name(args.out.stem + ".tmp.pt2")  # torch.export.save wants a .pt2 name
    torch.export.save(ep, tmp)
    os.replace(tmp, args.out)
    ckpt.unlink()
    meta = {
        "arch": ARCH[args.space], "genes": GENES[args.space], "input_shape": [1, 28, 28], "num_classes": 10,
        "preprocess": prep.to_json(), "test_accuracy": round(acc, 2), "epochs": args.epochs, "seed": args.seed,
        "params": sum(p.numel() for p in model.parameters()), "train_seconds": round(time.time() - t0),
        "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "recipe": f"SGD nesterov lr {args.lr} one-cycle, wd 5e-4, batch {args.batch}, crop+flip, {args.epochs} epochs",
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
