"""The teacher under train augmentation (issue 27): computed online on every augmented batch, or replayed from the
view cache (:class:`kdcompress.distill.teacher_cache.ViewCache`, FKD-style: the first student of a run pays for the
teacher, the others replay its outputs on the very same crops) — which is faster for a run's students.

    python benchmarks/teacher_replay.py [--work /root/.cache/kdcompress-bench/folders] [--samples 5000]

On the 1x photo folder and teacher that ``benchmarks/folder_streaming.py`` makes (``--work``): two students of a
run (the same student twice, as every student of a run draws the same batches), distilled ``--epochs`` epochs with
``random_resized_crop`` on the first ``--samples`` training images, one decoding worker; each mode in a fresh run
folder, the two modes alternated twice (online, replay, replay, online) and the faster of each kept. Saves
``benchmarks/results/teacher_replay.json`` with the view cache's size on disk, the machine, versions and date.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from kdcompress.data.splits import FolderOptions, Preprocess, load_data
from kdcompress.distill.trainer import distill
from kdcompress.job import Job
from kdcompress.models.load import load_teacher
from kdcompress.profiles import Distill
from kdcompress.records import StudentSpec
from kdcompress.report.environment import environment
from kdcompress.run import write_json

ROOT = Path(__file__).resolve().parent.parent
STUDENT = {"stem": 16, "widths": [16, 32, 64], "depths": [1, 1, 1], "stem_stride": 1}


def one_run(job: Job, spec: StudentSpec, cfg: Distill, folder: Path) -> dict:
    """Seconds of each of a run's two students, and the view cache's bytes on disk afterwards."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    seconds = []
    for sid in ("s0", "s1"):
        t0 = time.perf_counter()
        distill(job, spec, cfg, folder / sid)
        seconds.append(round(time.perf_counter() - t0, 1))
    cache = folder / "cache"
    size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) if cache.exists() else 0
    return {"seconds_per_student": seconds, "seconds_run": round(sum(seconds), 1), "cache_bytes": size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/root/.cache/kdcompress-bench/folders"))
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "teacher_replay.json")
    ap.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = load_data(str(a.work / "photos_1x"), folder=FolderOptions(image_size=a.size, workers=1))
    teacher = load_teacher(a.work / "teacher.pt", trust_pickle=True)
    spec = StudentSpec("resnet", STUDENT, 3, data.num_classes)
    runs: dict[str, list[dict]] = {"online": [], "replay": []}
    for mode in ("online", "replay", "replay", "online"):
        folder = a.work / f"replay_bench_{mode}"
        job = Job(teacher, data, Preprocess(), folder / "cache" / "teacher_logits_train.pt", 0)
        cfg = Distill(epochs=a.epochs, aug="random_resized_crop", batch=128, lr=0.05, train_samples=a.samples,
                      cache_teacher_logits=mode == "replay", device="cpu")
        runs[mode].append(one_run(job, spec, cfg, folder))
        print(mode, runs[mode][-1], flush=True)
    best = {m: min(r, key=lambda x: x["seconds_run"]) for m, r in runs.items()}
    faster = min(best, key=lambda m: best[m]["seconds_run"])
    result = {"benchmark": "teacher_replay", "command": "python benchmarks/teacher_replay.py " + " ".join(
        f"--{k} {v}" for k, v in (("size", a.size), ("samples", a.samples), ("epochs", a.epochs))),
              "note": a.note, "runs": runs, "best": best, "faster": faster,
              "replay_over_online": round(best["online"]["seconds_run"] / best["replay"]["seconds_run"], 3),
              "setting": {"student": STUDENT, "aug": "random_resized_crop", "batch": 128, "workers": 1,
                          "students_per_run": 2}, **environment()}
    write_json(a.out, result)
    print(json.dumps({k: result[k] for k in ("best", "faster", "replay_over_online")}, indent=1))


if __name__ == "__main__":
    main()
