"""Image folders streamed from disk (issue 27): peak memory of a whole ``shrink`` at 1x and 8x the folder, and
distillation throughput from JPEGs against the plain PyTorch way and against pre-decoded tensors.

    python benchmarks/folder_streaming.py [--work /tmp/kdc-folders] [--base 10000] [--size 32] [--workers 1]

1. Makes (once, resumable) photo folders with ``benchmarks/make_photos.py``: ``base`` and ``8 x base`` training
   images (a fifth as many test images), and a small teacher (kdcompress ResNet, 3 channels, about 20,000 images'
   worth of SGD on the 1x folder at ``--size``), saved with ``torch.save(model)``.
2. Memory: ``kdcompress shrink teacher.pt --trust-pickle --data FOLDER --image-size SIZE --profile ci`` with one
   distillation epoch and a short search, on each folder, in a fresh process each; peak RSS from ``getrusage`` of
   the child (``ru_maxrss``). The two must be within 10 % of each other: nothing scales with the folder but the file
   list.
3. Throughput of one student's KD steps (same student, batch, optimiser, train transform RandomResizedCrop + flip,
   ``--workers`` decoding processes): (a) ours, ``kdcompress.data.batches`` over the folder; (b) the plain way, a
   map-style ``Dataset`` that opens each file with PIL and applies the same transform, through ``DataLoader(...,
   shuffle=True)`` (torchvision's ImageFolder cannot be imported beside this CPU torch: PyPI's torchvision is a CUDA
   build; the Dataset is what ImageFolder's ``__getitem__`` does); (c) the same images pre-decoded in memory (eval
   transform, no augmentation): what decoding costs here. Each measured twice, alternating, the better kept.

Saves ``benchmarks/results/folder_streaming.json`` with the commands, machine, versions and date.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from kdcompress.data.folder import FolderImages
from kdcompress.data.splits import FolderOptions, Preprocess, batches, load_data
from kdcompress.data.transforms import as_chw, to_channels, train_transform
from kdcompress.models.students import build_resnet
from kdcompress.report.environment import environment
from kdcompress.run import write_json

ROOT = Path(__file__).resolve().parent.parent
STUDENT = {"stem": 16, "widths": [16, 32, 64], "depths": [1, 1, 1], "stem_stride": 1}
TEACHER = {"stem": 32, "widths": [32, 64, 128], "depths": [2, 2, 2], "stem_stride": 1}


def ensure_photos(out: Path, train: int, workers: int) -> Path:
    done = out / ".complete"
    if not done.exists():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_photos.py"), "--out", str(out), "--train",
                        str(train), "--test", str(train // 5), "--workers", str(workers)], check=True)
        done.write_text("")
    return out


def ensure_teacher(path: Path, folder: Path, size: int) -> Path:
    if path.exists():
        return path
    data = load_data(str(folder), folder=FolderOptions(image_size=size, workers=1))
    torch.manual_seed(0)
    net = build_resnet(TEACHER, 3, data.num_classes)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    net.train()
    gen = torch.Generator().manual_seed(0)
    for _ in range(max(1, round(20000 / len(data.y_train)))):  # about 20,000 images seen, whatever the folder's size
        for _, xb, yb in batches(data.x_train, data.y_train, 128, shuffle=True, generator=gen):
            opt.zero_grad()
            F.cross_entropy(net(Preprocess()(xb)), yb).backward()
            opt.step()
    torch.save(net.eval(), path)
    return path


def peak_rss_of_shrink(teacher: Path, folder: Path, size: int, run: Path) -> dict:
    cmd = [sys.executable, "-m", "kdcompress.cli", "shrink", str(teacher), "--trust-pickle", "--data", str(folder),
           "--image-size", str(size), "--profile", "ci", "--set", "distill.epochs=1", "--set", "search.iterations=8",
           "--set", "search.population=8", "--out", str(run), "--resume", "--json"]
    # a fresh wrapper process per measurement, so that ru_maxrss (the largest of its waited-for descendants: the
    # shrink process or one of its DataLoader workers, not their sum) belongs to this run alone
    wrapper = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)")
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=False)
    peak_kib, rc = proc.stdout.strip().splitlines()[-1].split()
    if rc != "0":
        raise SystemExit(proc.stderr[-3000:])
    return {"command": " ".join(cmd[1:]), "peak_rss_mb": round(int(peak_kib) / 1024, 1),
            "seconds": round(time.time() - t0, 1)}


class PlainFolder(torch.utils.data.Dataset):
    """What torchvision's ImageFolder + a transform does per item: open with PIL, convert, transform, to tensor."""

    def __init__(self, images: FolderImages, labels: torch.Tensor, size: int, seed: int) -> None:
        self.files, self.labels, self.size, self.seed = images.files, labels, size, seed

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        with Image.open(self.files[i]) as img:
            img = to_channels(img.convert("RGB"), 3)
        x = as_chw(train_transform(img, self.size, np.random.default_rng([self.seed, i])))
        return torch.from_numpy(x), self.labels[i]


def kd_steps(student: torch.nn.Module, teacher: torch.nn.Module, source, steps: int) -> float:
    """Images per second over ``steps`` KD steps drawn from ``source`` (an iterator of (x_uint8, y))."""
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)
    prep, n, t0 = Preprocess(), 0, None
    for i, (xb, yb) in enumerate(source):
        if i == 2:  # the first batches pay the workers' start: not counted
            t0, n = time.perf_counter(), 0
        x = prep(xb)
        with torch.no_grad():
            t = teacher(x)
        s = student(x)
        loss = F.kl_div(F.log_softmax(s / 4, 1), F.log_softmax(t / 4, 1), reduction="batchmean", log_target=True)
        opt.zero_grad()
        (loss * 16 + 0.5 * F.cross_entropy(s, yb)).backward()
        opt.step()
        n += len(yb)
        if i + 1 == steps + 2:
            break
    return n / (time.perf_counter() - t0)


def throughput(folder: Path, teacher_path: Path, size: int, workers: int, steps: int, batch: int = 128) -> dict:
    data = load_data(str(folder), folder=FolderOptions(image_size=size, workers=workers))
    teacher = torch.load(teacher_path, weights_only=False).eval()
    x, y = data.x_train, data.y_train
    g = lambda: torch.Generator().manual_seed(0)
    ours = lambda: ((xb, yb) for _, xb, yb in batches(x, y, batch, shuffle=True, generator=g(),
                                                        augment_seed=1, scale=(0.08, 1.0)))
    plain = lambda: iter(torch.utils.data.DataLoader(PlainFolder(x, y, size, 1), batch_size=batch,
                                                     shuffle=True, num_workers=workers, generator=g()))
    n_mem = batch * (steps + 2)
    decoded = x[: n_mem]  # pre-decoded (eval transform), in memory
    memory = lambda: ((xb, yb) for _, xb, yb in batches(decoded, y[:n_mem], batch, shuffle=True,
                                                          generator=g()))
    best: dict[str, float] = {}
    for _ in range(2):
        for name, source in (("ours_streamed", ours), ("plain_dataloader", plain), ("in_memory", memory)):
            torch.manual_seed(0)
            student = build_resnet(STUDENT, 3, data.num_classes).train()
            best[name] = max(best.get(name, 0.0), kd_steps(student, teacher, source(), steps))
    return {"images_per_s": {k: round(v, 1) for k, v in best.items()},
            "ours_over_plain": round(best["ours_streamed"] / best["plain_dataloader"], 3),
            "in_memory_over_ours": round(best["in_memory"] / best["ours_streamed"], 3),
            "batch": batch, "steps": steps, "workers": workers, "image_size": size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/kdc-folders"))
    ap.add_argument("--base", type=int, default=10000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "folder_streaming.json")
    ap.add_argument("--memory-only", action="store_true",
                    help="measure the two peak-RSS runs (fresh run folders) and keep the saved throughput figures")
    ap.add_argument("--note", default="", help="what else ran on the machine meanwhile (saved beside the figures)")
    a = ap.parse_args()
    one = ensure_photos(a.work / "photos_1x", a.base, max(1, a.workers))
    eight = ensure_photos(a.work / "photos_8x", 8 * a.base, max(1, a.workers))
    teacher = ensure_teacher(a.work / "teacher.pt", one, a.size)
    command = "python benchmarks/folder_streaming.py " + " ".join(sys.argv[1:])
    if a.memory_only:  # peak RSS does not depend on what else runs; the throughput figures do, so they stay
        figures = json.loads(a.out.read_text())
        for run in ("run_1x", "run_8x"):
            shutil.rmtree(a.work / run, ignore_errors=True)
    else:
        figures = {"benchmark": "folder_streaming", "command": command,
                   "throughput": throughput(one, teacher, a.size, a.workers, a.steps), **environment()}
        write_json(a.out, figures)
    figures["memory"] = {"command": command, "note": a.note, **environment(),
                         "1x": {"train_images": a.base, **peak_rss_of_shrink(teacher, one, a.size, a.work / "run_1x")}}
    write_json(a.out, figures)
    figures["memory"]["8x"] = {"train_images": 8 * a.base,
                               **peak_rss_of_shrink(teacher, eight, a.size, a.work / "run_8x")}
    m = figures["memory"]
    figures["memory"]["ratio_8x_over_1x"] = round(m["8x"]["peak_rss_mb"] / m["1x"]["peak_rss_mb"], 3)
    write_json(a.out, figures)
    print(json.dumps({k: figures[k] for k in ("throughput", "memory")}, indent=2))


if __name__ == "__main__":
    main()
