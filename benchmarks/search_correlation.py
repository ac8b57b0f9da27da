"""Does a zero-cost proxy rank students the way distillation does? The proof behind `kdcompress search`.

A fixed, seeded set of students from every family, all within one FLOPs band, is distilled from the shipped
Fashion-MNIST teacher (and trained from scratch) with the same schedule under several seeds; then every proxy scores
the same students, and we report Kendall τ and Spearman ρ (bootstrap intervals over students) between each proxy and
the mean distilled test accuracy, each proxy's top-1 pick against the true best, τ between two single training seeds
(how well one training run ranks like another), each proxy's own repeatability, and τ between distilled and scratch
accuracy. The fitted ``combo`` is judged on students it was not fitted on.

    python benchmarks/search_correlation.py            # train what is missing (resumable), score, report
    python benchmarks/search_correlation.py --report   # score and report from the runs trained so far
    python benchmarks/search_correlation.py --teacher teachers/fmnist_vgg.pt2 --scratch-seeds 0
        # the same students distilled from a teacher of another family (work and results named after it)

Training results go to ``<work>/runs.jsonl`` one line per (student, mode, seed) as they finish, so an interrupted
run resumes where it stopped; results to ``benchmarks/results/search_correlation.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from band import band_students  # noqa: E402

from kdcompress.job import Job  # noqa: E402
from kdcompress.records import StudentSpec  # noqa: E402
from kdcompress.data import Preprocess, load_data  # noqa: E402
from kdcompress.distill.trainer import distill, evaluate, load_student, teacher_logits_cached  # noqa: E402
from kdcompress.models.load import load_teacher  # noqa: E402
from kdcompress.profiles import Distill  # noqa: E402

TEACHER = ROOT / "teachers" / "fmnist_resnet.pt2"
SPACES = ["resnet", "mobilenetv2", "vgg"]
# One band: 2.5 MFLOPs ± 20 % (the teacher is 132 MFLOPs, so about a 50x smaller student).
BAND = (2.0e6, 3.0e6)
PER_SPACE = 8
# The ground-truth schedule: the product's trainer and KD loss (T 4, alpha 0.9) on a fixed 20k-image subset.
SCHEDULE = {"epochs": 12, "train_samples": 20000, "batch": 128, "lr": 0.05, "aug": "none"}
KD_SEEDS, SCRATCH_SEEDS = 3, 2


def schedule(mode: str) -> Distill:
    alpha = 0.9 if mode == "kd" else 0.0  # alpha 0: plain cross-entropy on labels, the same loop otherwise
    return Distill.model_validate({**SCHEDULE, "loss": {"kd": {"T": 4.0, "alpha": alpha}}})


def tasks(students: list[dict], kd_seeds: int, scratch_seeds: int) -> list[tuple[int, str, int]]:
    """Seed-major order so that a partial run already has whole rankings to compare."""
    out = [(i, "kd", s) for s in range(kd_seeds) for i in range(len(students))]
    return out + [(i, "scratch", s) for s in range(scratch_seeds) for i in range(len(students))]


def task_key(i: int, mode: str, seed: int) -> str:
    return f"{i}/{mode}/{seed}"


_WORKER: dict = {}


def _init_worker(teacher: Path) -> None:
    torch.set_num_threads(1)
    _WORKER.update(teacher=load_teacher(teacher), data=load_data("fashion-mnist"), prep=Preprocess())


def _train_one(args: tuple[dict, int, str, int, Path]) -> dict:
    student, i, mode, seed, work = args
    teacher, data, prep = _WORKER["teacher"], _WORKER["data"], _WORKER["prep"]
    spec = {"space": student["space"], "genes": student["genes"], "in_channels": 1, "num_classes": 10}
    out_dir = work / f"s{i:02d}_{mode}_{seed}"
    out_dir.mkdir(parents=True, exist_ok=True)
    res = distill(Job(teacher, data, prep, work / "teacher_logits.pt", seed), StudentSpec.from_json(spec), schedule(mode), out_dir)
    test = evaluate(load_student(out_dir), data.x_test, data.y_test, prep)
    return {"key": task_key(i, mode, seed), "student": i, "mode": mode, "seed": seed, "test_accuracy": test,
            "val_accuracy": res.best_val_accuracy, "seconds": round(res.seconds, 1)}


def train(students: list[dict], work: Path, workers: int, kd_seeds: int, scratch_seeds: int,
          teacher: Path = TEACHER) -> None:
    """Train every (student, mode, seed) not yet in ``runs.jsonl``, ``workers`` processes of one thread each."""
    runs_path = work / "runs.jsonl"
    done = {json.loads(line)["key"] for line in runs_path.read_text().splitlines()} if runs_path.exists() else set()
    todo = [t for t in tasks(students, kd_seeds, scratch_seeds) if task_key(*t) not in done]
    print(f"{len(done)} runs done, {len(todo)} to train with {workers} workers", flush=True)
    if not todo:
        return
    data = load_data("fashion-mnist")  # teacher logits once, before the workers race to write them
    teacher_logits_cached(load_teacher(teacher), data.x_train[: SCHEDULE["train_samples"]], Preprocess(),
                          work / "teacher_logits.pt")
    t0 = time.time()
    with mp.get_context("spawn").Pool(workers, _init_worker, (teacher,)) as pool, runs_path.open("a") as log:
        for n, row in enumerate(pool.imap_unordered(_train_one, [(students[i], i, m, s, work) for i, m, s in todo])):
            log.write(json.dumps(row) + "\n")
            log.flush()
            eta = (time.time() - t0) / (n + 1) * (len(todo) - n - 1)
            print(f"[{n + 1}/{len(todo)}] {row['key']} test {row['test_accuracy']:.2f} ({row['seconds']} s, "
                  f"eta {eta / 60:.0f} min)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", type=Path, default=TEACHER, help="the teacher the students are distilled from")
    ap.add_argument("--work", type=Path, help="default: benchmarks/work/search_correlation[_TEACHER]")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kd-seeds", type=int, default=KD_SEEDS)
    ap.add_argument("--scratch-seeds", type=int, default=SCRATCH_SEEDS)
    ap.add_argument("--report", action="store_true", help="do not train; score and report what is trained")
    ap.add_argument("--write-weights", action="store_true",
                    help="refit the shipped combo weights (kdcompress/search/combo_weights.json); needs every seed")
    ap.add_argument("--out", type=Path, help="default: benchmarks/results/search_correlation[_TEACHER].json")
    args = ap.parse_args()
    # the shipped teacher's files keep their names; another teacher's carry its stem (fmnist_vgg -> _vgg)
    suffix = "" if args.teacher.resolve() == TEACHER else "_" + args.teacher.stem.removeprefix("fmnist_")
    args.work = args.work or ROOT / "benchmarks" / "work" / f"search_correlation{suffix}"
    args.out = args.out or ROOT / "benchmarks" / "results" / f"search_correlation{suffix}.json"
    args.work.mkdir(parents=True, exist_ok=True)
    # The student set is fixed by the first run: trained results stay valid if the spaces change later.
    students_path = args.work / "students.json"
    if students_path.exists():
        students = json.loads(students_path.read_text())
    elif suffix:  # another teacher: the shipped teacher's students, so the two settings differ in the teacher alone
        shipped = json.loads((ROOT / "benchmarks" / "results" / "search_correlation.json").read_text())["students"]
        students = [{k: st[k] for k in ("space", "genes", "flops", "params")} for st in shipped]
        students_path.write_text(json.dumps(students, indent=1))
    else:
        students = band_students(SPACES, PER_SPACE, *BAND)
        students_path.write_text(json.dumps(students, indent=1))
    if not args.report:
        train(students, args.work, args.workers, args.kd_seeds, args.scratch_seeds, args.teacher.resolve())
    from search_correlation_report import report  # scoring and statistics, kept apart from the training loop

    if suffix and args.write_weights:  # the shipped weights are fitted on the shipped teacher's setting alone
        raise SystemExit("--write-weights fits the shipped combo on the shipped teacher's setting; not with --teacher")
    meta = {"band_flops": BAND, "schedule": SCHEDULE, "kd_seeds": args.kd_seeds,
            "scratch_seeds": args.scratch_seeds, "teacher": args.teacher.name}
    if suffix:
        meta["command"] = " ".join(["python", *sys.argv])
    report(students, args.work, args.out, meta, args.write_weights)


if __name__ == "__main__":
    main()
