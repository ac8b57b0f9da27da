"""Train the Fashion-MNIST teachers that kdcompress ships (seeded; about an hour each on 2 CPU cores).

    python teachers/train_fmnist.py --out teachers/fmnist_resnet.pt2                 # the demo's ResNet
    python teachers/train_fmnist.py --space vgg --out teachers/fmnist_vgg.pt2        # a second family (issue 13)
    python teachers/train_fmnist.py --train-only --epochs 40 --patience 5 \
        --out teachers/fmnist_resnet_trainonly.pt2                                    # the front's teacher (issue 29)

``--train-only`` is the protocol the front's benchmark needs: the teacher sees the training split alone (the
validation split that ``kdcompress`` carves with its default seed and fraction stays unseen), the epoch kept is the
one with the best validation accuracy, training stops after ``--patience`` epochs without a better one, and the test
split is read once, at the end. Without it, the shipped teachers' recipe: train + validation, test printed per epoch.

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
    ap.add_argument("--train-only", action="store_true", help="train on the train split alone; keep the best "
                    "validation epoch; read the test split once, at the end")
    ap.add_argument("--patience", type=int, default=0, help="with --train-only: stop after this many epochs "
                    "without a better validation accuracy (0: run every epoch)")
    ap.add_argument("--ckpt-dir", type=Path, help="where the per-epoch checkpoint lives [default: beside --out]")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    data = load_data("fashion-mnist", val_fraction=0.1, seed=0)
    if args.train_only:  # the validation split stays unseen: it picks the epoch here and the students' choices later
        x, y = data.x_train, data.y_train
    else:  # the shipped teachers see train + val: the pipeline's validation split is for early stopping the student
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
    ckpt = (args.ckpt_dir / args.out.name if args.ckpt_dir else args.out).with_suffix(".ckpt.pt")
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    start, best, history = 0, {"val": -1.0, "epoch": 0, "model": None}, []
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"]), opt.load_state_dict(state["opt"]), sched.load_state_dict(state["sched"])
        g.set_state(state["generator"])
        start, best, history = state["epoch"], state.get("best", best), state.get("history", [])
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
        if args.train_only:
            acc = evaluate(model, data.x_val, data.y_val, prep)
            history.append({"epoch": epoch + 1, "val_accuracy": round(acc, 2), "seconds": round(time.time() - t0)})
            if acc > best["val"]:
                best = {"val": acc, "epoch": epoch + 1, "model": {k: v.clone() for k, v in model.state_dict().items()}}
            print(f"epoch {epoch + 1}/{args.epochs} loss {loss.item():.3f} val acc {acc:.2f}% (best {best['val']:.2f}"
                  f" at {best['epoch']}) ({time.time() - t0:.0f}s)", flush=True)
        else:
            acc = evaluate(model, data.x_test, data.y_test, prep)
            print(f"epoch {epoch + 1}/{args.epochs} loss {loss.item():.3f} test acc {acc:.2f}% "
                  f"({time.time() - t0:.0f}s)", flush=True)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "generator": g.get_state(), "epoch": epoch + 1, "best": best, "history": history},
                   ckpt.with_suffix(".tmp"))
        os.replace(ckpt.with_suffix(".tmp"), ckpt)
        if args.train_only and args.patience and epoch + 1 - best["epoch"] >= args.patience:
            print(f"no better validation accuracy in {args.patience} epochs: stopping", flush=True)
            break

    if args.train_only:
        model.load_state_dict(best["model"])
    model.eval()
    acc = evaluate(model, data.x_test, data.y_test, prep)  # the test split, read once (with --train-only)
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
    if args.train_only:
        meta.update({"trained_on": "train split only (val_fraction 0.1, seed 0 held out)", "best_epoch": best["epoch"],
                     "val_accuracy": round(best["val"], 2), "patience": args.patience, "history": history,
                     "recipe": meta["recipe"] + f" (one-cycle over {args.epochs}; best validation epoch kept)"})
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
