"""Interruptions, with real processes: SIGINT and SIGTERM during each stage stop cleanly (exit 130 / 143, a line
saying how to resume) and ``--resume`` finishes the run; SIGKILL during search, distillation and export loses at
most the candidates in flight, the current epoch, the current student's artifacts."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

CLI = [sys.executable, "-m", "kdcompress.cli"]


def shrink_args(files: dict, out: Path, *extra: str) -> list[str]:
    return [*CLI, "shrink", str(files["pt2"]), "--profile", str(files["profile"]), "--data", str(files["npz"]),
            "--out", str(out), *extra]


def stop_when(args: list[str], ready: Callable[[], bool], sig: int, timeout: float = 240) -> subprocess.CompletedProcess:
    """Start ``args``, send ``sig`` once ``ready()`` holds, wait for the process to end."""
    # a shell's background job (`make test &`) starts with SIGINT ignored, and an ignored signal stays ignored in
    # a child: handle it here while the child starts, so that it starts with the default, as from a terminal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be stopped: {proc.communicate()[1][-1500:]}"
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=240)
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def stage_done(out: Path, stage: str) -> bool:
    try:
        return json.loads((out / "manifest.json").read_text())["stages"].get(stage, {}).get("status") == "done"
    except (FileNotFoundError, json.JSONDecodeError):
        return False


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def files(teacher_files, tiny_npz, tiny_profile) -> dict:
    return {"pt2": teacher_files["pt2"], "npz": tiny_npz, "profile": tiny_profile}


@pytest.mark.slow  # ~40 s; the fast suite stops and resumes a run with SIGINT during search
def test_sigkill_loses_at_most_the_work_in_flight(files, tmp_path):
    out = tmp_path / "run"
    args = shrink_args(files, out, "--set", "search.iterations=40", "--set", "search.workers=1",
                       "--set", "search.top_k=2", "--set", "distill.epochs=6")
    journal = out / "search" / "journal.jsonl"

    # search: killed once 8 candidates are in the journal; resumed, it measures none of them again
    stop_when(args, lambda: len(lines(journal)) > 8, signal.SIGKILL)
    before = lines(journal)
    students = out / "students"
    ckpts = lambda: sorted(students.glob("*/ckpt.pt")) if students.exists() else []
    proc = stop_when([*args, "--resume"], lambda: bool(ckpts()) and stage_done(out, "search"), signal.SIGKILL)
    measured = int(re.search(r"search resumed from its journal: (\d+) candidates", proc.stderr).group(1))
    assert measured >= len([ln for ln in before[1:] if '"latency": [' in ln])
    after = lines(journal)
    assert after[: len(before) - 1] == before[:-1]  # appended to, never rewritten (the last line may be torn)
    keys = [json.loads(ln)["key"] for ln in after[1:] if ln.endswith("}")]
    assert len(keys) == len(set(keys))  # no candidate measured twice

    # distillation: killed after an epoch was checkpointed; resumed, the finished epochs are not trained again
    epoch = torch.load(ckpts()[0], weights_only=True)["epoch"]
    history = lines(ckpts()[0].with_name("history.jsonl"))[:epoch]
    assert epoch >= 1 and len(history) == epoch
    partial = out / "artifacts" / "export.partial.json"
    proc = stop_when([*args, "--resume"], partial.exists, signal.SIGKILL)
    # each line holds the epoch's measured seconds: a retrained epoch would not reproduce them
    assert lines(ckpts()[0].with_name("history.jsonl"))[:epoch] == history

    # export: killed after the first student's artifacts; resumed, it keeps them and builds the rest
    exported = list(json.loads(partial.read_text()))
    done = subprocess.run([*args, "--resume", "--json"], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"export of {exported[0]} kept from the interrupted run" in done.stderr
    assert not partial.exists() and (out / "result.json").exists() and not list(out.rglob(".*.tmp"))
    assert {s["student"] for s in json.loads(done.stdout)["students"]} >= set(exported)


SIGNALS = {"SIGINT": (signal.SIGINT, 130), "SIGTERM": (signal.SIGTERM, 143)}
# stop during a stage: once the stage before it is done
BEFORE = {"search": "load", "distill": "search", "export": "distill", "bench": "export"}
CASES = [pytest.param(sig, stage, marks=[] if (sig, stage) == ("SIGINT", "search") else [pytest.mark.slow])
         for stage in BEFORE for sig in SIGNALS]


@pytest.mark.parametrize(("sig", "stage"), CASES)
def test_a_signal_during_a_stage_stops_cleanly_and_resume_finishes(files, tmp_path, sig, stage):
    out = tmp_path / "run"
    args = shrink_args(files, out, "--set", "distill.epochs=8", "--set", "search.iterations=20")
    number, code = SIGNALS[sig]
    proc = stop_when(args, lambda: stage_done(out, BEFORE[stage]), number)
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "--resume" in proc.stderr and not (out / "result.json").exists()
    done = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "result.json").exists() and not list(out.rglob(".*.tmp"))
