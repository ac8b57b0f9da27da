"""False alarms and detection power of ``kdcompress check`` on this machine, beside the stored-number way.

    python benchmarks/check_power.py [--trials 100] [--no-stress]        (= make bench-check; ~30 min on 2 cores)

A demo-sized student (ResNet family, random weights: latency does not care) is the model under test; its slower
versions are the same student with extra layers (1x1 identity convolutions inserted after a ReLU, so the outputs do
not change), sized to about 5, 10 and 20 % and their real slowdown measured separately in this process (100
interleaved repetitions against the original). Ten baselines of the original are saved, each in a fresh process,
and every tenth round one of them is saved again, so that trials meet baselines of every age (the machine drifts
both ways between a baseline and a check). Then every trial is a fresh ``kdcompress check`` process (no change, or
one of the slower versions, in shuffled order) against one of the baselines; with stress on (the default), every
other block of 10 rounds runs beside a process that streams memory on the other core — a neighbour job.

Each trial is judged from the same samples by the gate (artifact/control log-ratios) and the ways stored-number
tools judge — the artifact's own fresh medians against the baseline's stored ones: with the gate's rule, with asv's
(Mann–Whitney p < 0.002 and a 1.1x factor) and with Google benchmark's compare.py (Mann–Whitney p < 0.05, slower).
"At equal power" sets each way's threshold on its estimate where it catches 95 % of the 10 % slowdowns and reports
the false alarms that threshold gives. Trials (with their raw samples) append to ``runs/check_power/trials.jsonl``,
so an interrupted run resumes. Saves ``benchmarks/results/check_power.json``.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper, shape_inference
from scipy.stats import mannwhitneyu

from kdcompress.bench import BACKENDS
from kdcompress.check.verdict import judge_latency
from kdcompress.check.paired import PairedSamples, measure_paired
from kdcompress.export import to_onnx
from kdcompress.models.students import build_resnet
from kdcompress.profiles import Check
from kdcompress.report.environment import environment
from kdcompress.run import write_json

ROOT = Path(__file__).resolve().parent.parent
GENES = {"stem": 16, "stem_stride": 2, "widths": [40, 64, 32], "depths": [1, 2, 1]}  # the demo's first student
TARGETS = (0.05, 0.10, 0.20)
BASELINES = 10
HOG = "import numpy as np\na = np.ones(2**24); b = np.empty_like(a)\nwhile True: np.copyto(b, a)"


def with_identity_convs(base: onnx.ModelProto, tensor: str, k: int) -> onnx.ModelProto:
    """``base`` with ``k`` 1x1 identity convolutions chained after ``tensor`` (its consumers read the last one)."""
    m = onnx.ModelProto()
    m.CopyFrom(base)
    shapes = {v.name: v for v in shape_inference.infer_shapes(m).graph.value_info}
    channels = shapes[tensor].type.tensor_type.shape.dim[1].dim_value
    eye = numpy_helper.from_array(np.eye(channels, dtype=np.float32).reshape(channels, channels, 1, 1), "kd_eye")
    m.graph.initializer.append(eye)
    names = [tensor] + [f"kd_id{i}" for i in range(k)]
    for node in m.graph.node:
        node.input[:] = [names[-1] if x == tensor else x for x in node.input]
    pos = next(i for i, n in enumerate(m.graph.node) if tensor in n.output) + 1
    for i in range(k):
        m.graph.node.insert(pos + i, helper.make_node("Conv", [names[i], "kd_eye"], [names[i + 1]],
                                                      name=f"kd_identity_conv{i}"))
    onnx.checker.check_model(m)
    return m


def slowdown(model: Path, base: Path, repetitions: int) -> float:
    """Median of ``model``/``base`` latency over interleaved repetitions, minus 1."""
    x = np.zeros((1, 1, 28, 28), np.float32)
    ort = BACKENDS["onnxruntime-cpu"]
    s = measure_paired(lambda: ort(model), lambda: ort(base), x, x, repetitions)
    return float(np.exp(np.median(s.log_ratios)) - 1)


def make_models(work: Path) -> dict[str, dict]:
    """The original and its slower versions, with each one's slowdown measured here (cached in models.json)."""
    index = work / "models.json"
    if index.exists():
        return json.loads(index.read_text())
    torch.manual_seed(0)
    base_path = work / "student.onnx"
    to_onnx(build_resnet(GENES, 1, 10).eval(), torch.zeros(1, 1, 28, 28), base_path)
    base = onnx.load(base_path)
    relus = [n.output[0] for n in base.graph.node if n.op_type == "Relu"]
    cost = {}
    for t in relus:  # what one extra layer costs at each place
        path = work / "probe.onnx"
        onnx.save(with_identity_convs(base, t, 1), path)
        cost[t] = slowdown(path, base_path, 30)
    models = {"0": {"path": str(base_path), "extra_layers": 0, "measured_slowdown": 0.0}}
    for target in TARGETS:
        t, k = min(((t, max(1, round(target / c))) for t, c in cost.items() if c > 0),
                   key=lambda tk: abs(tk[1] * cost[tk[0]] - target))
        path = work / f"student_slow{round(target * 100)}.onnx"
        onnx.save(with_identity_convs(base, t, k), path)
        measured = slowdown(path, base_path, 100)
        if abs(measured - target) > 0.005 and measured > 0:  # one correction: layers cost a little more together
            k = max(1, round(k * target / measured))
            onnx.save(with_identity_convs(base, t, k), path)
            measured = slowdown(path, base_path, 100)
        models[str(round(target * 100))] = {"path": str(path), "extra_layers": k, "after": t,
                                            "measured_slowdown": measured}
    write_json(index, models)
    return models


def stored_judgements(fresh: dict, base: dict, policy: Check) -> dict[str, bool]:
    """Did a stored-number tool call it a regression? Same rule without the control; asv's rule."""
    f, b = np.asarray(fresh["candidate_ms"]), np.asarray(base["candidate_ms"])
    ones_f, ones_b = [1.0] * len(f), [1.0] * len(b)
    same = judge_latency(PairedSamples(f.tolist(), ones_f, 1, 0), PairedSamples(b.tolist(), ones_b, 1, 0), policy,
                         policy.alpha_per_look)
    p = mannwhitneyu(f, b, alternative="two-sided").pvalue
    slower = np.median(f) / np.median(b)
    return {"stored_same_rule": same.status == "regression", "stored_asv": bool(p < 0.002 and slower > 1.1),
            "stored_gbench": bool(p < 0.05 and slower > 1.0)}


RULES = {"alarm": "kdcompress check (artifact/control ratio)", "stored_same_rule": "stored numbers, the same rule",
         "stored_asv": "stored numbers, asv (U p < 0.002, factor 1.1)",
         "stored_gbench": "stored numbers, Google benchmark compare.py (U p < 0.05)"}


def equal_power(trials: list[dict], key: str) -> dict:
    """Threshold on ``key`` (an estimated change) that catches 95 % of the 10 % slowdowns; the false alarms it
    gives on no change."""
    slow = np.array([t[key] for t in trials if t["condition"] == "10"])
    same = np.array([t[key] for t in trials if t["condition"] == "0"])
    threshold = float(np.percentile(slow, 5))
    return {"threshold": threshold, "false_alarm_rate": float(np.mean(same >= threshold)),
            "no_change_p5_p50_p95": np.percentile(same, [5, 50, 95]).tolist(), "no_change_sd": float(same.std())}


def rates(trials: list[dict], key: str, models: dict) -> dict:
    out = {}
    for cond in models:
        ts = [t for t in trials if t["condition"] == cond]
        out[cond] = {"trials": len(ts), "alarm_rate": float(np.mean([t[key] for t in ts])) if ts else None}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100, help="trials per condition")
    ap.add_argument("--no-stress", action="store_true", help="no neighbour process on any trial")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "check_power")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "check_power.json")
    args = ap.parse_args()
    t0 = time.time()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below: never leave the stress behind
    args.work.mkdir(parents=True, exist_ok=True)
    policy = Check()
    cli = [sys.executable, "-m", "kdcompress.cli"]
    models = make_models(args.work)
    print("models:", {c: f"{m['measured_slowdown'] * 100:+.1f} % ({m['extra_layers']} extra layers)"
                      for c, m in models.items()})
    saves = args.work / "baselines"
    saves.mkdir(exist_ok=True)

    def save(slot: int) -> Path:  # every save is its own file, so that every trial's baseline stays on disk
        path = saves / f"slot{slot}.{len(list(saves.glob(f'slot{slot}.*.json')))}.json"
        subprocess.run([*cli, "baseline", "save", models["0"]["path"], "-o", path], check=True, capture_output=True)
        return path

    current = {}
    for slot in range(BASELINES):
        existing = sorted(saves.glob(f"slot{slot}.*.json"), key=lambda p: int(p.name.split(".")[1]))
        current[slot] = existing[-1] if existing else save(slot)
    log = args.work / "trials.jsonl"
    trials = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = len(trials) // len(models)
    trials = [t for t in trials if t["trial"] < done]  # an interrupted trial is run again, whole
    log.write_text("".join(json.dumps(t) + "\n" for t in trials))
    rng = np.random.default_rng(len(trials))
    hog = None
    try:
        for i in range(done, args.trials):
            stressed = not args.no_stress and (i // 10) % 2 == 1
            if stressed and hog is None:
                hog = subprocess.Popen([sys.executable, "-c", HOG])
            elif not stressed and hog is not None:
                hog.kill()
                hog = None
            if i >= 10 and i % 10 == 0:
                current[(i // 10) % BASELINES] = save((i // 10) % BASELINES)
            b = (3 * i) % BASELINES
            base = json.loads(current[b].read_text())
            for cond in rng.permutation(list(models)):
                proc = subprocess.run([*cli, "check", models[cond]["path"], "--baseline", current[b], "--json"],
                                      check=False, capture_output=True, text=True)
                if proc.returncode not in (0, 1):
                    raise SystemExit(f"check failed: {proc.stderr.strip()}")
                v = json.loads(proc.stdout)
                fresh = v["fresh"]["samples"]
                trial = {"trial": i, "condition": str(cond), "baseline": current[b].name, "stress": stressed,
                         "baseline_age_s": round(time.time() - current[b].stat().st_mtime),
                         "status": v["status"], "alarm": v["exit_code"] == 1, "change": v["latency"]["change"],
                         "change_without_control": v["latency"]["change_without_control"],
                         **stored_judgements(fresh, base["samples"], policy),
                         "candidate_ms": fresh["candidate_ms"], "control_ms": fresh["control_ms"]}
                trials.append(trial)
                with log.open("a") as f:
                    f.write(json.dumps(trial) + "\n")
            if i % 10 == 9:
                print(f"{i + 1}/{args.trials} trials per condition, {time.time() - t0:.0f} s")
    finally:
        if hog is not None:
            hog.kill()
    summary = {}
    for key, rule in RULES.items():
        r = rates(trials, key, models)
        summary[key] = {"rule": rule, "false_alarm_rate": r["0"]["alarm_rate"],
                        "detection_rate": {c: r[c]["alarm_rate"] for c in models if c != "0"}}
    by_stress = {str(s): {key: rates([t for t in trials if t["stress"] == s], key, models) for key in RULES}
                 for s in (False, True)}
    figures = {
        "benchmark": "check_power", "command": "python benchmarks/check_power.py" + (" --no-stress" if args.no_stress
                                                                                      else ""),
        "policy": policy.model_dump(), "trials_per_condition": args.trials, "baselines": BASELINES,
        "models": {c: {k: v for k, v in m.items() if k != "path"} for c, m in models.items()},
        "false_alarm_rate": summary["alarm"]["false_alarm_rate"],
        "detection_rate": summary["alarm"]["detection_rate"],
        "inconclusive_rate": {c: float(np.mean([t["status"] == "inconclusive" for t in trials
                                                if t["condition"] == c])) for c in models},
        "stored_number": {"same_rule": summary["stored_same_rule"], "asv": summary["stored_asv"],
                          "gbench_compare": summary["stored_gbench"]},
        "at_equal_power": {"with_control": equal_power(trials, "change"),
                           "stored_number": equal_power(trials, "change_without_control")},
        "by_stress": by_stress,
        "seconds_this_invocation": round(time.time() - t0, 1), **environment(),
    }
    write_json(args.out, figures)
    print(json.dumps({k: figures[k] for k in ("false_alarm_rate", "detection_rate", "stored_number")}, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
