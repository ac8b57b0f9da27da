"""Distillation methods side by side: one fixed student distilled from the shipped teacher with each method, the
same schedule, several seeds; mean ± spread of test accuracy (issue 12's benchmark, first part).

    python benchmarks/distill_methods.py [--methods ce kd dkd ...] [--seeds 0 1 2] [--profile ci]
        [--device cuda --amp fp16 --out OTHER.json]     # on a GPU: its own figures file, the device named in it

The student is the `ci` demo's first pick, a cut of the teacher (first stride doubled, the two deepest blocks
dropped: 308 k parameters), trained from the teacher's weights. Every run is resumable (one folder per method and
seed under ``runs/distill_methods``). Saves ``benchmarks/results/distill_methods.json`` with machine, versions and
date: ``accuracy`` maps method → mean test accuracy, ``runs`` holds every seed's figures and epoch seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from kdcompress.job import Job
from kdcompress.records import StudentSpec
from kdcompress.data import DataSplits, Preprocess, load_data
from kdcompress.distill import distill, load_student
from kdcompress.distill.trainer import evaluate
from kdcompress.models.load import Teacher, load_teacher
from kdcompress.profiles import load_profile
from kdcompress.report.environment import environment
from kdcompress.run import read_json, write_json

ROOT = Path(__file__).resolve().parent.parent


def teacher_cut(**genes: object) -> dict:
    """The spec of a cut of the shipped teacher (the pruned-teacher space): channels ranked by L2 magnitude per
    layer, ``genes`` for the rest."""
    return {"space": "pruned-teacher", "genes": {"global": 0, "importance": "l2", **genes}, "in_channels": 1,
            "num_classes": 10}


STUDENT = teacher_cut(downsample=1, drop_blocks=2, ratio=0.0)
# The network of vs_baselines' strongest recipes (tp50-ft, tp50-ft-int8): DepGraph 50 %, L2 magnitude, from the
# teacher's weights (kdcompress/baselines.py)
TP50 = teacher_cut(ratio=0.5)
# Milder cuts than STUDENT (issue 9): the teacher whole at half resolution (its first stride doubled) and the
# teacher at full resolution without its three deepest blocks, whose int8 twins run about as fast as tp50-ft-int8 or
# faster; and the cut `cut_rank: fidelity` ranks second of all (20 % of channels in 16s, full resolution, every
# block: vs_baselines' 0.5x pick)
HALF_RES = teacher_cut(downsample=1, drop_blocks=0, ratio=0.0)
DROP3 = teacher_cut(downsample=0, drop_blocks=3, ratio=0.0)
PRUNE20 = teacher_cut(downsample=0, drop_blocks=0, ratio=0.2, round_to=16)
# vs_baselines' 0.1x pick: half resolution, the three deepest blocks dropped (290 k weights)
HALF_DROP3 = teacher_cut(downsample=1, drop_blocks=3, ratio=0.0)
# STUDENT's network as a family student (the same 308 k-parameter ResNet), freshly initialised
FRESH = {"space": "resnet", "genes": {"stem": 32, "stem_stride": 2, "widths": [32, 64, 128], "depths": [1, 1, 1]},
         "in_channels": 1, "num_classes": 10}
# each method's overrides of the profile (its other distill settings stay as they are); "student" replaces STUDENT
METHODS = {
    "scratch": {"student": FRESH, "distill.loss": {"kd": {"alpha": 0.0}}},  # no teacher at all: labels, fresh init
    # the labels alone (cross-entropy; from the teacher's weights, so not "scratch")
    "ce": {"distill.loss": {"kd": {"alpha": 0.0}}},
    "kd": {"distill.loss": {"kd": {}}},  # Hinton KD, the profile's default settings
    "dkd": {"distill.loss": {"dkd": {}}},  # Decoupled KD with its authors' CIFAR recipe
    "kd-ema": {"distill.loss": {"kd": {}}, "distill.ema": 0.999},  # KD, weights averaged (about 2 epochs' horizon)
    # feature losses on the last map before pooling, each on top of KD with its paper's weight
    "kd+fitnet": {"distill.loss": {"kd": {}, "fitnet": {}}},
    "kd+sp": {"distill.loss": {"kd": {}, "sp": {}}},
    "kd+ickd": {"distill.loss": {"kd": {}, "ickd": {}}},
    "kd+rkd": {"distill.loss": {"kd": {}, "rkd": {}}},
    "kd+nd": {"distill.loss": {"kd": {}, "nd": {}}},
    "kd+cat": {"distill.loss": {"kd": {}, "cat": {}}},
    "kd+sp+ickd": {"distill.loss": {"kd": {}, "sp": {}, "ickd": {}}},  # DisWOT's distiller (relation + semantic)
    # the best combination found: the two additions that came closest to KD alone over three seeds (ND, SP)
    "kd+nd+sp": {"distill.loss": {"kd": {}, "nd": {}, "sp": {}}},
    # mixed pairs of images, the teacher's outputs on each mixed batch cached and replayed by a resumed run
    "kd+cutmix": {"distill.loss": {"kd": {}}, "distill.mix": "cutmix"},
    "kd+cutmixpick": {"distill.loss": {"kd": {}}, "distill.mix": "cutmix_pick"},
    # the recipe itself, over seeds: how much of its lead over our cuts in frontier.json is one seed's luck
    "tp50-ft": {"student": TP50, "distill.loss": {"kd": {"alpha": 0.0}}},
    "tp50-kd": {"student": TP50, "distill.loss": {"kd": {}}},
    # on a mild cut the labels may matter more than the profile's alpha 0.9 lets them (issue 9): half and half
    # and on each of vs_baselines' picks (PRUNE20, STUDENT, HALF_DROP3) and the recipe's network, with neighbours
    "kd-a0.1": {"distill.loss": {"kd": {"alpha": 0.1}}},
    "kd-a0.3": {"distill.loss": {"kd": {"alpha": 0.3}}},
    "kd-a0.5": {"distill.loss": {"kd": {"alpha": 0.5}}},
    "kd-a0.7": {"distill.loss": {"kd": {"alpha": 0.7}}},
    "tp50-kd-a0.5": {"student": TP50, "distill.loss": {"kd": {"alpha": 0.5}}},
    "tp50-kd-a0.3": {"student": TP50, "distill.loss": {"kd": {"alpha": 0.3}}},
    "prune20-kd-a0.5": {"student": PRUNE20, "distill.loss": {"kd": {"alpha": 0.5}}},
    "prune20-kd-a0.3": {"student": PRUNE20, "distill.loss": {"kd": {"alpha": 0.3}}},
    "halfdrop3-kd-a0.3": {"student": HALF_DROP3, "distill.loss": {"kd": {"alpha": 0.3}}},
    "halfdrop3-kd": {"student": HALF_DROP3, "distill.loss": {"kd": {}}},
    "halfdrop3-kd-a0.5": {"student": HALF_DROP3, "distill.loss": {"kd": {"alpha": 0.5}}},
    "halfres-kd": {"student": HALF_RES, "distill.loss": {"kd": {}}},
    "drop3-kd": {"student": DROP3, "distill.loss": {"kd": {}}},
    "prune20-kd": {"student": PRUNE20, "distill.loss": {"kd": {}}},
}


# One epoch of each way of feeding the teacher, timed (issue 12's epoch_seconds): no teacher; the teacher live on
# every batch; its logits cached; crop+flip with the per-batch cache, filled by one student and replayed by the next.
EPOCH_SECONDS = {
    "scratch": ({"distill.loss": {"kd": {"alpha": 0.0}}}, None),  # cross-entropy: the teacher's logits go unused
    "kd_live": ({"distill.cache_teacher_logits": False}, None),
    "kd_cached": ({}, None),
    "kd_aug_fill": ({"distill.aug": "crop_flip"}, "aug"),
    "kd_aug_cached": ({"distill.aug": "crop_flip"}, "aug"),
}


def epoch_seconds(args: argparse.Namespace, teacher: Teacher, data: DataSplits, prep: Preprocess) -> dict[str, float]:
    """Seconds of one training epoch of each of ``EPOCH_SECONDS``, measured one after another on this machine."""
    out = {}
    for name, (sets, shared) in EPOCH_SECONDS.items():
        cfg = load_profile(args.profile, {**sets, **placement(args), "distill.epochs": 1}).distill
        folder = args.work / "epoch_seconds" / name
        cache = args.work / "epoch_seconds" / (shared or name) / "teacher_logits_train.pt"
        r = distill(Job(teacher, data, prep, cache, 0), StudentSpec.from_json(STUDENT), cfg, folder)
        out[name] = json.loads((folder / "history.jsonl").read_text().splitlines()[-1])["seconds"]
        print(f"{name:14s} {out[name]:.1f} s/epoch ({r.epochs_run} epoch)", flush=True)
    return out


def placement(args: argparse.Namespace) -> dict[str, str]:
    """The profile settings for where the student trains and in which precision (the profile's own by default)."""
    return {f"distill.{k}": v for k, v in (("device", args.device), ("amp", args.amp)) if v is not None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "distill_methods")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "distill_methods.json")
    ap.add_argument("--epoch-seconds", action="store_true", help="time one epoch of each way of feeding the teacher")
    ap.add_argument("--device", choices=["cpu", "cuda", "auto"], help="distill.device (default: the profile's)")
    ap.add_argument("--amp", choices=["off", "fp16", "bf16", "auto"], help="distill.amp (default: the profile's)")
    args = ap.parse_args()
    teacher = load_teacher(ROOT / "teachers" / "fmnist_resnet.pt2")
    data, prep = load_data("fashion-mnist", 0.1, 0), Preprocess()
    if args.epoch_seconds:
        previous = read_json(args.out) if args.out.exists() else {}
        env = environment()  # kept apart too: a later methods run re-dates the file, not these seconds
        write_json(args.out, {**previous, "epoch_seconds": epoch_seconds(args, teacher, data, prep),
                              "epoch_seconds_command": " ".join(["python", *sys.argv]),
                              "epoch_seconds_placement": placement(args),
                              "epoch_seconds_measured": {"date": env["date"], "machine": env["machine"]}, **env})
        return
    saved = read_json(args.out) if args.out.exists() else {}
    if saved.get("runs") and saved.get("placement", {}) != placement(args):  # seeds of two devices: not one mean
        sys.exit(f"{args.out} holds runs with placement {saved.get('placement', {})}, this one is {placement(args)}: "
                 "give it its own --out")
    pruning = teacher.pruning_source(prep(data.x_train[:2]))
    runs: dict[str, list[dict]] = {}
    for method in args.methods:
        sets = dict(METHODS[method])
        student = sets.pop("student", STUDENT)
        cfg = load_profile(args.profile, {**sets, **placement(args)}).distill
        for seed in args.seeds:
            folder = args.work / f"{method}-seed{seed}"
            r = distill(Job(teacher, data, prep, args.work / "teacher_logits_train.pt", seed), StudentSpec.from_json(student), cfg, folder)
            acc = evaluate(load_student(folder, pruning), data.x_test, data.y_test, prep)
            history = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
            runs.setdefault(method, []).append({
                "seed": seed, "test_accuracy": acc, "best_val_accuracy": r.best_val_accuracy, "epochs": r.epochs_run,
                "epoch_seconds": statistics.median(h["seconds"] for h in history)})
            print(f"{method:8s} seed {seed}: test {acc:.2f} %  (val {r.best_val_accuracy:.2f})", flush=True)
    previous = read_json(args.out) if args.out.exists() else {}
    # merge by seed: a later command that re-runs or adds seeds of a method keeps the seeds it did not name
    for method, rs in runs.items():
        named = {r["seed"] for r in rs}
        runs[method] = sorted([*(r for r in previous.get("runs", {}).get(method, []) if r["seed"] not in named), *rs],
                              key=lambda r: r["seed"])
    summary = {m: {"mean": statistics.mean(r["test_accuracy"] for r in rs),
                   "stdev": statistics.stdev(r["test_accuracy"] for r in rs) if len(rs) > 1 else None,
                   "min": min(r["test_accuracy"] for r in rs), "max": max(r["test_accuracy"] for r in rs),
                   "seeds": len(rs)} for m, rs in runs.items()}
    figures = {
        **previous,  # what this command does not measure (epoch_seconds) stays as it was
        "benchmark": "distill_methods", "profile": args.profile,
        "placement": placement(args) or previous.get("placement", {}),
        # the runs are merged into the saved figures: every command that contributed
        "commands": [*previous.get("commands", []), " ".join(["python", *sys.argv])],
        "student": STUDENT, "test_samples": len(data.y_test),
        "other_students": {m: v["student"] for m, v in METHODS.items() if "student" in v},
        "accuracy": {**previous.get("accuracy", {}), **{m: s["mean"] for m, s in summary.items()}},
        "summary": {**previous.get("summary", {}), **summary}, "runs": {**previous.get("runs", {}), **runs},
        **environment(),
    }
    write_json(args.out, figures)
    for m, s in summary.items():
        spread = f" ± {s['stdev']:.2f}" if s["stdev"] is not None else ""
        print(f"{m:8s} {s['mean']:.2f}{spread} (min {s['min']:.2f}, max {s['max']:.2f}, {s['seeds']} seeds)")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
