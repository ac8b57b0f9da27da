"""Commands of the CI regression gate: ``kdcompress baseline save`` and ``kdcompress check`` (DESIGN §7).

Kept apart from :mod:`kdcompress.cli`, which adds them to its group, because the gate has its own options and
outputs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click

from kdcompress.cli.options import NORMALISATION, normalisation
from pydantic import ValidationError
from rich.markup import escape

from kdcompress.console import err_console, out_console
from kdcompress.errors import KDCompressError

OUTCOME_STYLE = {"pass": "bold green", "regression": "bold red", "inconclusive": "bold yellow"}


def subject_options(fn):
    """How the artifact is run and which data gives its accuracy (shared by `baseline save` and `check`)."""
    options = [
        click.option("--backend", "-b", help="Backend to run on (default: the run's, the baseline's, or the file "
                                             "format's)."),
        click.option("--batch", type=click.IntRange(min=1), help="Batch size to time (default: the run's, the "
                                                                 "baseline's, or 1)."),
        click.option("--threads", type=click.IntRange(min=0), help="Intra-op threads (default: the run's, the "
                                                                   "baseline's, or 1)."),
        click.option("--shape", help="Input shape per sample C,H,W, where the file does not declare it."),
        click.option("--data", "-d", help="Also measure top-1 accuracy on this data's test split (a run uses its own; "
                                          "check reuses the baseline's)."),
        *NORMALISATION,
        click.option("--test-samples", type=click.IntRange(min=1), help="Accuracy on the first N test images only."),
        click.option("--control", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                     help="Control model to time beside the artifact (default: a small built-in ONNX model on "
                          "onnxruntime of the same device)."),
        click.option("--repetitions", "-r", type=click.IntRange(min=5, max=1000),
                     help="Shuffled artifact/control block pairs: `baseline save` takes this many (profile "
                          "check.baseline_repetitions, 100), `check` starts with it (check.repetitions, 30)."),
        click.option("--profile", "-p", help="Profile whose `check` section gives the defaults (a run's own profile "
                                             "for a run directory)."),
        click.option("--json", "as_json", is_flag=True, help="Print only JSON on stdout."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _policy(profile: str | None, run: Path | None, **overrides):
    from kdcompress.profiles import Check, load_profile

    if profile:
        policy = load_profile(profile).check
    elif run is not None and (run / "manifest.json").exists():
        from kdcompress.run import read_json

        policy = Check.model_validate(read_json(run / "manifest.json")["inputs"]["profile"].get("check", {}))
    else:
        policy = Check()
    try:
        return Check.model_validate({**policy.model_dump(), **{k: v for k, v in overrides.items() if v is not None}})
    except ValidationError as e:
        err = e.errors()[0]
        name = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "check options"
        raise KDCompressError(f"{name}: {str(err['msg']).removeprefix('Value error, ')}") from None


def _subject(target: Path, backend, batch, threads, shape, data, mean, std, normalize, test_samples,
             defaults: dict | None = None):
    from kdcompress.check import TestData, subject_from_file, subject_from_run

    norm = normalisation(mean, std, normalize)
    test = TestData(data, tuple(norm.get("data.mean", (0.0,))), tuple(norm.get("data.std", (1.0,))),
                    test_samples) if data else None
    if target.is_dir():
        if any(v is not None for v in (backend, batch, threads, shape)):
            raise KDCompressError("a run directory is checked on its own backend, batch and threads",
                                  "drop --backend/--batch/--threads/--shape, or pass the artifact file")
        return subject_from_run(target, test)
    from kdcompress.bench.artifact import parse_shape

    d = defaults or {}
    dims = parse_shape(shape) if shape else (tuple(d["input_shape"]) if d.get("input_shape") else None)
    return subject_from_file(target, backend or d.get("backend"), batch or d.get("batch", 1),
                             threads if threads is not None else d.get("threads", 1), dims, test)


@click.group()
def baseline() -> None:
    """Store what `kdcompress check` compares against."""


@baseline.command("save")
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Baseline file to write (JSON; commit it beside your model).")
@subject_options
def baseline_save(target: Path, out: Path, backend, batch, threads, shape, data, mean, std, normalize, test_samples,
                  control, repetitions, profile, as_json) -> None:
    """Measure TARGET (a run directory: its best artifact; or an artifact file) interleaved with a control model,
    and write the latency samples (and accuracy) to a baseline file."""
    from kdcompress.check import save_baseline

    policy = _policy(profile, target if target.is_dir() else None, baseline_repetitions=repetitions)
    subject = _subject(target, backend, batch, threads, shape, data, mean, std, normalize, test_samples)
    if not as_json:
        err_console.print(f"timing {escape(subject.artifact.name)} and the control, {policy.baseline_repetitions} "
                          "repetitions …")
    rec = save_baseline(subject, out, policy.baseline_repetitions, control)
    if as_json:
        click.echo(json.dumps(rec, indent=2))
        return
    import numpy as np

    s = rec["samples"]
    acc = f", accuracy {rec['accuracy']['value']:.2f} %" if rec.get("accuracy") else ""
    out_console.print(f"saved {escape(str(out))}: {escape(subject.artifact.name)} on {rec['backend']} p50 {np.median(s['candidate_ms']):.4f} "
                      f"ms, control {np.median(s['control_ms']):.4f} ms over {len(s['candidate_ms'])} repetitions"
                      f"{acc}", highlight=False, soft_wrap=True)


@click.command()
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--baseline", "baseline_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Baseline file from `kdcompress baseline save`.")
@click.option("--max-slowdown", type=float, help="Slowdown the gate must catch, as a fraction (profile "
                                                 "check.max_slowdown, 0.10).")
@click.option("--tolerance", type=float, help="Slowdown never flagged (the test's null), as a fraction (default: "
                                              "half of --max-slowdown).")
@click.option("--alpha", type=float, help="False-alarm level of the one-sided test, over all looks (0.01).")
@click.option("--max-repetitions", type=click.IntRange(min=5, max=1000),
              help="A check too noisy to decide doubles its repetitions up to this many (120).")
@click.option("--max-accuracy-drop", type=float, help="Accuracy points the artifact may lose (0.5).")
@click.option("--fail-inconclusive", is_flag=True, help="Exit 1 when the noise is too high to decide (default: "
                                                        "pass with a warning).")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write a JUnit XML report here.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the Markdown summary here (it is appended to $GITHUB_STEP_SUMMARY when that is set).")
@click.option("--history", type=click.Path(path_type=Path),
              help="Append this run's ratio to DIR/history.jsonl and test the last 20 runs for a creep.")
@click.option("--fail-on-creep", is_flag=True, help="Exit 1 when --history finds a creep (default: report it).")
@subject_options
def check(target: Path, baseline_path: Path, max_slowdown, tolerance, alpha, max_repetitions, max_accuracy_drop,
          fail_inconclusive, junit, markdown_path, history, fail_on_creep, backend, batch, threads, shape, data, mean,
          std, normalize, test_samples, control, repetitions, profile, as_json) -> None:
    """Measure TARGET again and compare it with a baseline. Exit 0 pass, 1 regression (or inconclusive with
    --fail-inconclusive), 2 input error.

    Latency is judged as the artifact/control ratio, both timed interleaved in shuffled blocks, so a machine that is
    slower today does not fail the check; accuracy by its absolute drop.
    """
    from kdcompress.check import check as run_check
    from kdcompress.check import junit_xml, load_baseline, markdown, verdict_line
    from kdcompress.run import atomic_write

    t0 = time.time()
    policy = _policy(profile, target if target.is_dir() else None, max_slowdown=max_slowdown, tolerance=tolerance,
                     alpha=alpha, max_accuracy_drop=max_accuracy_drop, repetitions=repetitions,
                     max_repetitions=max_repetitions)
    base = load_baseline(baseline_path)
    subject = _subject(target, backend, batch, threads, shape, data, mean, std, normalize, test_samples, defaults=base)
    if policy.max_repetitions < policy.repetitions:
        policy = policy.model_copy(update={"max_repetitions": policy.repetitions})  # -r 200: no doubling
    verdict, fresh = run_check(subject, base, policy, control=control)
    if history is not None:
        from kdcompress.check.history import record_and_detect

        verdict.trend = record_and_detect(history, verdict, fresh, policy)
    md = markdown(verdict)
    if markdown_path:
        atomic_write(markdown_path, md)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as f:
            f.write(md + "\n")
    if junit:
        atomic_write(junit, junit_xml(verdict, time.time() - t0, fail_inconclusive, fail_on_creep))
    code = verdict.exit_code(fail_inconclusive, fail_on_creep)
    if as_json:
        click.echo(json.dumps({**verdict.to_json(), "exit_code": code, "fresh": fresh}, indent=2))
    else:
        out_console.print(f"[{OUTCOME_STYLE[verdict.status]}]{verdict.status.upper()}[/] "
                          f"{escape(verdict_line(verdict).split(' ', 1)[1])}", highlight=False, soft_wrap=True)
        for w in verdict.warnings:
            err_console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
    if code:
        raise SystemExit(code)
