"""The CLI as a user runs it: end to end on tiny data, and one clear line + exit 2 for every user mistake."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from kdcompress.data import Preprocess, load_data
from kdcompress.pipeline import open_run
from kdcompress.run import RunDir, file_sha256


def run(cmd: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*cmd, *map(str, args)], check=False, capture_output=True, text=True, timeout=600)


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


# The CLI with the network cut off: every attempt to resolve a name or open an internet socket fails, and is written
# down in the file named by $ATTEMPTS (a caught failure would otherwise go unseen).
OFFLINE = """
import socket, sys, os
def attempted(what):
    with open(os.environ["ATTEMPTS"], "a") as f:
        f.write(what + "\\n")
    raise OSError("network access attempted: " + what)
def getaddrinfo(host, *a, **k):
    attempted(f"getaddrinfo {host}")
connect = socket.socket.connect
def guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        attempted(f"connect {address}")
    return connect(self, address)
socket.getaddrinfo, socket.socket.connect = getaddrinfo, guarded_connect
sys.argv = ["kdcompress", *sys.argv[1:]]
from kdcompress.cli import main
main()
"""


def test_shrink_end_to_end(cli_cmd, teacher_files, tiny_npz, tiny_profile, tmp_path, monkeypatch):
    """The whole job, with the network cut off (no run-time downloads, DESIGN's ground rule)."""
    out, attempts = tmp_path / "run", tmp_path / "network_attempts.txt"
    monkeypatch.setenv("ATTEMPTS", str(attempts))
    offline = [sys.executable, "-c", OFFLINE]
    proc = run(offline, "shrink", teacher_files["pt2"], "--profile", tiny_profile, "--data", tiny_npz,
               "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr
    assert not attempts.exists(), attempts.read_text()
    result = json.loads(proc.stdout)  # --json: stdout is only JSON
    assert result == json.loads((out / "result.json").read_text())
    assert {"profile", "backend", "teacher", "students"} <= set(result)
    assert (out / "report.md").exists() and (out / "manifest.json").exists()
    # how the students were trained is in the result and the report, not only in the manifest
    assert result["distill"]["epochs"] == 2 and result["distill"]["loss"]["kd"]["T"] == 4.0
    assert "Distilled with: kd (T 4, alpha 0.9); 2 epochs" in (out / "report.md").read_text()
    student = result["students"][0]
    for key in ("params", "flops", "accuracy", "speedup", "accuracy_drop", "artifact"):
        assert key in student
    assert set(student["latency_ms"]) == {"p50", "p90", "p99"}
    assert student["speedup"] == pytest.approx(result["teacher"]["latency_ms"]["p50"] / student["latency_ms"]["p50"])

    # The exported student really runs in onnxruntime, and its accuracy is what result.json says.
    data = load_data(str(tiny_npz))
    sess = ort.InferenceSession(student["artifact"], providers=["CPUExecutionProvider"])
    logits = sess.run(None, {"x": Preprocess()(data.x_test).numpy()})[0]
    acc = 100.0 * float(np.mean(logits.argmax(1) == data.y_test.numpy()))
    assert acc == pytest.approx(student["accuracy"])
    assert student["accuracy_drop"] == pytest.approx(result["teacher"]["accuracy"] - acc)
    assert student["params"] < result["teacher"]["params"]

    # The profile asks for int8 too: its own row, a QDQ model whose accuracy is its own, measured the same way.
    int8 = next(s for s in result["students"] if s["precision"] == "int8")
    assert int8["student"] == student["id"] and int8["artifact"].endswith(".int8.onnx")
    ops = {n.op_type for n in onnx.load(int8["artifact"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    logits8 = ort.InferenceSession(int8["artifact"], providers=["CPUExecutionProvider"]).run(
        None, {"x": Preprocess()(data.x_test).numpy()})[0]
    assert 100.0 * float(np.mean(logits8.argmax(1) == data.y_test.numpy())) == pytest.approx(int8["accuracy"])
    assert result["int8"]["scheme"] in ("u8s8", "s8s8") and result["int8"]["reason"]
    # the front: the rows no other row (teacher included) beats on both latency and accuracy
    points = {"teacher": (result["teacher"]["latency_ms"]["p50"], result["teacher"]["accuracy"])}
    points.update({s["id"]: (s["latency_ms"]["p50"], s["accuracy"]) for s in result["students"]})
    for name, (lat, acc) in points.items():
        dominated = any(l2 <= lat and a2 >= acc and (l2, a2) != (lat, acc) for l2, a2 in points.values())
        assert (name in result["frontier"]) == (not dominated)
    assert all(s["on_front"] == (s["id"] in result["frontier"]) for s in result["students"])
    # throughput at the profile's batch (8) for every artifact, as a ratio to the teacher's measured beside it
    assert result["teacher"]["throughput"]["batch"] == 8
    for s in result["students"]:
        tp = s["throughput"]
        assert tp["batch"] == 8 and tp["images_per_s"] == pytest.approx(8 * 1000 / tp["p50_ms"])
        assert tp["speedup"] == pytest.approx(tp["images_per_s"] / result["teacher"]["throughput"]["images_per_s"])
        assert s["target"] == 5.0 and s["target_met"] == (s["latency_ratio"] <= 5.0)  # the tiny profile's one target
        assert s["latency_ok"] == (s["latency_ratio"] <= 5.0) and s["meets_budget"] == (s["latency_ok"] and
                                                                                         s["accuracy_ok"])
    # report.html: one self-contained file with the plot and the table
    page = (out / "report.html").read_text()
    png = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page).group(1))
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert all(f"<td>{s['id']}" in page for s in result["students"]) and "teacher" in page

    # --resume on a finished run does no work and returns the same result; without it, the run is protected.
    again = run(cli_cmd, "shrink", teacher_files["pt2"], "--profile", tiny_profile, "--data", tiny_npz,
                "--out", out, "--json", "--resume")
    assert again.returncode == 0 and json.loads(again.stdout) == result and "changed" not in again.stderr
    # a file changed behind the tool's back is rebuilt, not trusted: the manifest holds every output's hash
    int8_path = Path(int8["artifact"])
    int8_path.write_bytes(int8_path.read_bytes() + b"tampered")
    rebuilt = run(cli_cmd, "shrink", teacher_files["pt2"], "--profile", tiny_profile, "--data", tiny_npz,
                  "--out", out, "--json", "--resume")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"artifacts/{int8_path.name} changed or went missing since stage export wrote it" in rebuilt.stderr
    assert not int8_path.read_bytes().endswith(b"tampered") and "distill" not in rebuilt.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"]["export"]["files"][f"artifacts/{int8_path.name}"] == file_sha256(int8_path)
    result = json.loads(rebuilt.stdout)
    assert_user_error(run(cli_cmd, "shrink", teacher_files["pt2"], "--profile", tiny_profile, "--data", tiny_npz,
                          "--out", out), "--resume")
    # --resume with other arguments is refused, naming what differs
    assert_user_error(run(cli_cmd, "shrink", teacher_files["pt2"], "--profile", tiny_profile, "--data", tiny_npz,
                          "--out", out, "--resume", "--set", "distill.epochs=3"), "profile.distill.epochs: 2 -> 3")

    # A single stage re-runs from the run directory alone; later stages are invalidated and their files removed.
    rep = run(cli_cmd, "report", out, "--json")
    assert rep.returncode == 0 and json.loads(rep.stdout)["students"][0]["id"] == student["id"]
    # `export RUN` re-exports and carries on through bench and report; `bench RUN` re-measures and shows the table.
    exp = run(cli_cmd, "export", out, "--json")
    assert exp.returncode == 0, exp.stderr
    assert json.loads(exp.stdout) == json.loads((out / "result.json").read_text())
    assert Path(student["artifact"]).exists()
    (out / "report.md").unlink()
    bench = run(cli_cmd, "bench", out)
    assert bench.returncode == 0, bench.stderr
    assert "teacher" in bench.stdout and f"{student['id']}.int8" in bench.stdout and (out / "report.md").exists()
    open_run(out, must_exist=True).invalidate_from("bench")
    assert not (out / "bench.json").exists() and not (out / "result.json").exists()
    assert_user_error(run(cli_cmd, "report", out), "stage 'bench' has not finished")
    assert run(cli_cmd, "shrink", teacher_files["pt2"], "--profile", tiny_profile, "--data", tiny_npz,
               "--out", out, "--resume").returncode == 0
    assert (out / "result.json").exists()


@pytest.mark.parametrize("fmt", ["ts", "sd"])
def test_shrink_accepts_other_formats_through_load(cli_cmd, teacher_files, tiny_npz, tiny_profile, tmp_path, fmt):
    """Every input format gets through the load stage (teacher exported and parity-checked)."""
    from kdcompress.pipeline import Inputs, Session
    from kdcompress.profiles import load_profile
    from kdcompress.stages import load

    arch = f"{teacher_files['arch']}:TinyNet" if fmt == "sd" else None
    run_dir = open_run(tmp_path / fmt)
    run_dir.manifest["inputs"] = Inputs(str(teacher_files[fmt]), str(tiny_npz), load_profile(tiny_profile), arch).to_json()
    session = Session(run_dir)
    load.run(session)
    assert run_dir.manifest["teacher"]["parity"]["passed"]
    assert Path(run_dir.manifest["teacher"]["artifact"]).exists()


def test_profiles_and_doctor(cli_cmd):
    listing = run(cli_cmd, "profiles", "list")
    assert listing.returncode == 0 and all(n in listing.stdout for n in ("ci", "cpu", "demo", "edge", "front", "server"))
    assert "population" in run(cli_cmd, "profiles", "show", "edge").stdout
    doctor = run(cli_cmd, "doctor", "--json")
    status = json.loads(doctor.stdout)["backends"]
    assert status["onnxruntime-cpu"]["status"].startswith("available")
    assert status["tensorrt"]["status"].startswith(("available", "unavailable"))
    assert status["tensorrt"]["runs"] == "engine" and "tensorrt" in status["tensorrt"]["needs"]
    assert set(status) >= {"onnxruntime-cuda", "onnxruntime-tensorrt", "aoti-cpu", "aoti-cuda"}
    assert_user_error(run(cli_cmd, "profiles", "show", "edg"), "did you mean 'edge'")


@pytest.mark.slow  # ~18 s: every proxy on every candidate; each proxy has its own tests in test_proxies.py
def test_search_command_scores_every_proxy_side_by_side(cli_cmd, teacher_files, tiny_npz, tiny_profile, tmp_path):
    from kdcompress.search import PROXIES

    proc = run(cli_cmd, "search", teacher_files["pt2"], "--profile", tiny_profile, "--data", tiny_npz,
               "--out", tmp_path / "s", "--proxy", "all", "--iterations", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert rows and all(set(r["scores"]) == set(PROXIES) for r in rows)
    assert all({"space", "genes", "params", "flops", "latency_ms"} <= set(r) for r in rows)
    ranked = [r["scores"]["diswot"] for r in rows]
    assert ranked == sorted(ranked, reverse=True)  # best first by the ranking proxy
    table = run(cli_cmd, "search", teacher_files["pt2"], "--profile", tiny_profile, "--data", tiny_npz,
                "--out", tmp_path / "s", "--proxy", "all", "--iterations", "2", "--resume")  # the table for people
    assert table.returncode == 0, table.stderr
    pick = json.loads((tmp_path / "s" / "search" / "top.json").read_text())["top"][0]
    assert f"pick s0 for latency ratio {pick['target']}: {pick['space']}" in table.stdout
    assert_user_error(run(cli_cmd, "search", teacher_files["pt2"], "--profile", tiny_profile, "--data", tiny_npz,
                          "--out", tmp_path / "t", "--proxy", "diswat"), "did you mean 'diswot'")


def test_search_help_names_every_proxy():
    from kdcompress.cli.options import PROXY_HELP
    from kdcompress.search.proxies import PROXIES

    words = set(re.findall(r"\w+", PROXY_HELP))
    assert set(PROXIES) <= words
    # no stale name: every proxy-like word of the help (a registered name's prefix) is registered
    assert {w for w in words if w.startswith(("diswot", "grad_", "syn"))} <= set(PROXIES)


@pytest.mark.slow  # ~35 s: two whole runs; the nearest miss is picked in test_baselines.py (fast)
def test_a_missed_budget_is_said_and_can_fail_the_run(cli_cmd, teacher_files, tiny_npz, tiny_profile, tmp_path):
    # a student that cannot learn (learning rate 1e-9) stays at chance; the budget allows no accuracy drop
    args = ["shrink", teacher_files["pt2"], "--profile", tiny_profile, "--data", tiny_npz, "--set",
            "search.iterations=0", "--set", "distill.epochs=1", "--set", "distill.lr=1e-9", "--set",
            "budget.max_accuracy_drop=0"]
    proc = run(cli_cmd, *args, "--out", tmp_path / "a")
    assert proc.returncode == 0, proc.stderr
    assert "no artifact meets the budget" in proc.stdout and "nearest miss: s0-resnet" in proc.stdout
    strict = run(cli_cmd, *args, "--out", tmp_path / "b", "--require-budget", "--json")
    assert strict.returncode == 1, strict.stderr
    result = json.loads(strict.stdout)
    assert not result["budget_met"] and result["nearest_miss"].startswith("s0-resnet")


@pytest.mark.slow  # ~30 s of two whole searches; default_run_dir's numbering is tested in test_run.py
def test_a_second_call_without_out_gets_its_own_folder(cli_cmd, teacher_files, tiny_npz, tiny_profile, tmp_path):
    args = [*cli_cmd, "search", str(teacher_files["pt2"]), "--data", str(tiny_npz), "--profile", str(tiny_profile),
            "--iterations", "1"]
    for _ in range(2):
        proc = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, check=False)
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "runs" / "search" / "search" / "top.json").exists()
    assert (tmp_path / "runs" / "search2" / "search" / "top.json").exists()
    again = subprocess.run([*args, "--resume"], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert again.returncode == 0 and "runs/search2/" in again.stdout and not (tmp_path / "runs" / "search3").exists()


def test_an_out_folder_that_cannot_be_written_is_one_line(cli_cmd, teacher_files, tiny_npz, tiny_profile, tmp_path,
                                                          monkeypatch, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert_user_error(run(cli_cmd, "shrink", teacher_files["pt2"], "--profile", tiny_profile, "--data", tiny_npz,
                          "--out", blocker / "run"), "a file stands where a folder is needed")
    # a full disk, a folder it may not write, a read-only file system (simulated: the first write of the run fails
    # so; the tests run as root, whom permissions do not stop) are the user's to fix too
    import errno
    import os

    from kdcompress import cli

    for code, said in ((errno.ENOSPC, "no space left on the disk"), (errno.EACCES, "permission denied"),
                       (errno.EROFS, "read-only file system")):
        def refuse(self, code=code):
            raise OSError(code, os.strerror(code), str(self.path / "manifest.json"))

        monkeypatch.setattr(RunDir, "save", refuse)
        monkeypatch.setattr(sys, "argv", ["kdcompress", "shrink", str(teacher_files["pt2"]), "--profile",
                                          str(tiny_profile), "--data", str(tiny_npz), "--out", str(tmp_path / "r")])
        with pytest.raises(SystemExit) as exit_info:
            cli.main()
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and said in err and len(err.splitlines()) == 1, err


@pytest.mark.slow  # ~30 s; the fast suite stops and resumes a run with SIGINT in test_interrupts.py
def test_sigterm_stops_cleanly_and_resume_finishes_without_leftovers(cli_cmd, teacher_files, tiny_npz, tiny_profile,
                                                                      tmp_path):
    import signal
    import time

    out = tmp_path / "run"
    args = [*cli_cmd, "shrink", str(teacher_files["pt2"]), "--profile", str(tiny_profile), "--data", str(tiny_npz),
            "--out", str(out), "--set", "distill.epochs=6"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # stop it once the search is done, during distillation
        manifest = out / "manifest.json"
        if manifest.exists() and json.loads(manifest.read_text())["stages"].get("search", {}).get("status") == "done":
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "--resume" in err
    assert not (out / "result.json").exists()
    # a temp file that a SIGKILL would leave behind is swept by --resume, which then finishes the run
    stale = out / "artifacts" / ".s0.onnx.abc123.tmp"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half an artifact")
    done = run(cli_cmd, *args[len(cli_cmd):], "--resume")
    assert done.returncode == 0, done.stderr
    assert (out / "result.json").exists() and not list(out.rglob(".*.tmp"))


@pytest.mark.slow
def test_distill_stage_runs_data_parallel_under_torchrun(cli_cmd, teacher_files, tiny_npz, tiny_profile, tmp_path):
    """`torchrun --nproc-per-node 2 -m kdcompress.cli distill RUN`: both processes train, rank 0 alone writes the
    manifest and goes on through export, bench and report; one result is printed."""
    out = tmp_path / "run"
    first = run(cli_cmd, "shrink", teacher_files["pt2"], "--profile", tiny_profile, "--data", tiny_npz, "--out", out)
    assert first.returncode == 0, first.stderr
    ddp = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
               "kdcompress.cli"], "distill", out, "--json")
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    result = json.loads(ddp.stdout)  # one JSON document: rank 1 printed nothing
    assert result["students"] and open_run(out, must_exist=True).done("report")
    wrong = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
                 "kdcompress.cli"], "export", out)
    assert wrong.returncode != 0 and "only the distill stage runs across processes" in wrong.stderr
