"""Command line: parse, call one library function, print. Nothing else lives here."""

from __future__ import annotations

import json
import signal
import sys
import warnings
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar
from rich.table import Table

from kdcompress.check_commands import baseline, check
from kdcompress.console import err_console, out_console
from kdcompress.errors import KDCompressError, environment_error
from kdcompress.report.result import budget_line
from kdcompress.report.result import table as result_table
from kdcompress.run import default_run_dir


class BarProgress:
    """A rich progress bar on stderr (stdout stays clean for --json)."""

    def __init__(self) -> None:
        self.bar: RichBar | None = None
        self.task = None

    def start(self, description: str, total: int | None) -> None:
        self.stop()
        self.bar = RichBar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), TextColumn("{task.fields[note]}"), console=err_console,
                           transient=False, disable=not err_console.is_terminal)
        self.bar.start()
        self.task = self.bar.add_task(description, total=total, note="")
        if not err_console.is_terminal:
            err_console.print(f"{description} …")

    def advance(self, n: int = 1, note: str | None = None) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=n, **({"note": note} if note else {}))

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def note(self, message: str) -> None:
        err_console.print(f"[yellow]note:[/] {escape(message)}", highlight=False, soft_wrap=True)


# Spelled out rather than imported: importing the registry pulls in torch, and --help should be instant.
# tests/test_cli.py checks that it names every registered proxy.
PROXY_HELP = ("synflow (default), zen, params, flops, grad_norm, snip, nwot, combo; diswot as its authors run it "
              "(ICKD semantic + SP relation where the student's classifier width equals the teacher's, SP relation "
              "alone where it differs), diswot_code (the relation term as the authors' NAS-Bench-201 code computes "
              "it), diswot_relation (SP alone), and our width-independent variant diswot_kxk (K×K class "
              "correlation) with diswot_kxk_semantic and diswot_kxk_log")


def print_result(result: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    t = result["teacher"]
    head, rows, _ = result_table(result)
    keep = [i for i, col in enumerate(head) if col != "p99 ms"]  # p99 stays in report.md/html and --json
    table = Table(title=f"kdcompress — {result['profile']} on {result['backend']} (batch {result['batch']})")
    for i in keep:
        table.add_column(head[i], justify="left" if head[i] in ("model", "prec.") else "right",
                         no_wrap=head[i] == "model")  # a row name split over two lines reads as two rows
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    out_console.print(table)
    best = next((s for s in result["students"] if s["id"] == result["best"]), None)
    if best is not None:
        out_console.print(f"best student: {best['artifact']}  (★; ◆ = on the trade-off front; teacher: "
                          f"{t['artifact']})", soft_wrap=True, highlight=False)
    for r in result.get("baselines", []):
        if not r["beaten_by"]:
            out_console.print(f"[bold yellow]recipe {escape(r['name'])} ({escape(r['description'] or '')}) is not "
                              "beaten: no artifact of ours is both as fast and as accurate[/]", soft_wrap=True,
                              highlight=False)
    missed = budget_line(result)
    if missed:
        out_console.print(f"[bold yellow]{escape(missed)}[/]", soft_wrap=True, highlight=False)
    for s in result["students"]:
        for flag in s.get("flags", []):
            out_console.print(f"! {s['id']}: {flag}", highlight=False, soft_wrap=True)
    if result.get("int8"):
        q = result["int8"]
        out_console.print(f"int8: {q['scheme']}, reduce_range {q['reduce_range']} — {q['reason']}", highlight=False,
                          soft_wrap=True)
    if result.get("backend_note"):
        out_console.print(f"note: {result['backend_note']}", highlight=False, soft_wrap=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for every error.")
@click.version_option(package_name="kdcompress")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """kdcompress: turn a trained PyTorch model into a smaller, faster, verified artifact.

    \b
    Quick start:
      kdcompress shrink teachers/fmnist_resnet.pt2 --profile ci --data fashion-mnist --out runs/demo
    """
    ctx.obj = {"debug": debug}


def input_options(fn):
    """The options that describe a job: teacher loading, data, profile and its overrides, run directory."""
    options = [
        click.option("--profile", "-p", default="cpu", show_default=True,
                     help="Profile name (see `profiles list`) or YAML path."),
        click.option("--data", "-d", default="fashion-mnist", show_default=True,
                     help="fashion-mnist, a .npz file (x_train,y_train,x_test,y_test) or an ImageFolder directory."),
        click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path),
                     help="Run directory [default: runs/<command>, or runs/<command>2, 3, ... if taken; with "
                          "--resume, the newest of those]."),
        click.option("--arch", help="FILE.py:ClassName for a state_dict teacher."),
        click.option("--trust-pickle", is_flag=True, help="Allow loading a full pickled nn.Module (executes code)."),
        click.option("--resume", is_flag=True, help="Continue a run in --out, skipping finished stages."),
        click.option("--seed", default=0, show_default=True, help="Seed for splits, search and training."),
        click.option("--mean", type=float, multiple=True, help="Per-channel input mean after scaling to [0,1] (repeat)."),
        click.option("--std", type=float, multiple=True, help="Per-channel input std after scaling to [0,1] (repeat)."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override a profile field (repeat), YAML values: e.g. --set distill.epochs=5, --set "
                          "'distill.loss={kd: {T: 4}, sp: {}}', --set distill.mix=cutmix, --set distill.aug=crop_flip, "
                          "--set distill.device=cpu, --set distill.amp=fp16. `kdcompress profiles show NAME` lists "
                          "every field."),
        click.option("--strict-target", is_flag=True,
                     help="Fail instead of falling back when the target backend is missing."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def make_inputs(teacher: Path, profile: str, data: str, arch: str | None, trust_pickle: bool, seed: int,
                mean: tuple[float, ...], std: tuple[float, ...], overrides: tuple[str, ...] | dict,
                strict_target: bool, baselines: bool = False):
    from kdcompress.pipeline import Inputs
    from kdcompress.profiles import load_profile, parse_overrides

    sets = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
    if mean:
        sets["data.mean"] = list(mean)
    if std:
        sets["data.std"] = list(std)
    return Inputs(str(teacher), data, load_profile(profile, sets), arch, trust_pickle, seed, strict_target, baselines)


@cli.command()
@click.argument("teacher", type=click.Path(dir_okay=False, path_type=Path))
@input_options
@click.option("--json", "as_json", is_flag=True, help="Print only the result JSON on stdout.")
@click.option("--require-budget", is_flag=True, help="Exit with code 1 when no artifact meets the profile's budget.")
@click.option("--baselines", is_flag=True, help="Also run, in the same run, what users would do instead: int8 PTQ of "
                                                "the teacher, Torch-Pruning 50 % + fine-tune (and + int8), 75 % + KD.")
@click.option("--student", type=click.Choice(["search", "same"]), default=None,
              help="search: find students within the budget [profile's search.student, default]; same: Born-Again — "
                   "no search, the teacher's own architecture freshly initialised and distilled from the teacher.")
def shrink(teacher: Path, out: Path, resume: bool, as_json: bool, require_budget: bool, baselines: bool,
           student: str | None, **job) -> None:
    """Search, distil, export, benchmark and report: TEACHER in, verified deployable students out (every precision
    the profile asks for, each measured as itself)."""
    from kdcompress.pipeline import shrink as run_shrink
    from kdcompress.profiles import parse_overrides

    if student is not None:
        job["overrides"] = {**parse_overrides(job["overrides"]), "search.student": student}
    out = out or default_run_dir(Path("runs/shrink"), resume)
    result = run_shrink(make_inputs(teacher, **job, baselines=baselines), out, resume=resume, progress=BarProgress())
    print_result(result, as_json)
    if not as_json:
        out_console.print(f"run directory: {out}  (result.json, report.md, report.html)")
    if require_budget and not result["budget_met"]:
        raise SystemExit(1)


@cli.command()
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@input_options
@click.option("--proxy", help="Proxy that ranks the candidates, or 'all' to rank with the profile's and score with "
                              "every proxy side by side. Proxies: " + PROXY_HELP + ".")
@click.option("--iterations", type=int, help="Evolution iterations (profile: search.iterations).")
@click.option("--top-k", type=int, help="Candidates kept for distillation (profile: search.top_k).")
@click.option("--json", "as_json", is_flag=True, help="Print the candidates as JSON on stdout.")
def search(target: Path, out: Path, resume: bool, proxy: str | None, iterations: int | None, top_k: int | None,
           as_json: bool, **job) -> None:
    """Score candidate students training-free under the profile's budget.

    TARGET is a teacher file (load + search into --out) or an existing run directory (re-run its search stage).
    """
    if target.is_dir():
        return _rerun_stage(target, "search", as_json)
    from kdcompress.pipeline import search_candidates
    from kdcompress.profiles import parse_overrides
    from kdcompress.run import read_json
    from kdcompress.search import PROXIES
    from kdcompress.search.space import get_space

    sets = parse_overrides(job.pop("overrides"))
    if proxy == "all":
        sets["search.also_score"] = sorted(PROXIES)
    elif proxy:
        sets["search.proxy"] = proxy
    if iterations is not None:
        sets["search.iterations"] = iterations
    if top_k is not None:
        sets["search.top_k"] = top_k
    inputs = make_inputs(target, overrides=sets, **job)
    out = out or default_run_dir(Path("runs/search"), resume)
    rows = search_candidates(inputs, out, resume=resume, progress=BarProgress())
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    ranked_by = inputs.profile.search.proxy
    # DisWOT's single-term ablations stay in --json and candidates.jsonl: the table must fit a terminal
    # only the proxies every row was scored with (the teacher's cuts carry a params rank the families do not)
    names = [n for n in (rows[0]["scores"] if rows else []) if all(n in r["scores"] for r in rows)
             and (n == ranked_by or not n.startswith("diswot_"))]
    as_ranks = len(names) > 3  # many proxies side by side: their rankings compare at a glance, values do not
    spaces = ", ".join(inputs.profile.search.space)
    title = f"{len(rows)} candidates within budget from {spaces} (best first by {ranked_by}, higher is better)"
    table = Table(title=title + ("; #proxy: rank by that proxy, 1 = best, values in --json" if as_ranks else ""))
    table.add_column("candidate", overflow="fold", min_width=18)
    for col in ("params", "MFLOPs", "lat. ratio"):
        table.add_column(col, justify="right")
    for name in names:
        table.add_column(f"#{name}" if as_ranks else name, justify="right")
    ranks = {n: {id(r): i + 1 for i, r in enumerate(sorted(rows, key=lambda r: -r["scores"][n]))} for n in names}
    for r in rows[:20]:
        cells = [str(ranks[n][id(r)]) if as_ranks else f"{r['scores'][n]:.3g}" for n in names]
        table.add_row(f"{r['space']} {get_space(r['space']).describe(r['genes'])}", f"{r['params']:,}",
                      f"{r['flops'] / 1e6:.1f}", f"{r['latency_ratio']:.3f}", *cells)
    out_console.print(table)
    if len(rows) > 20:
        out_console.print(f"(first 20 of {len(rows)}; --json prints them all)")
    out_console.print("lat. ratio: p50 latency / the teacher's on the profile's backend; genes: stem width/stride, "
                      "w widths, d depths, e expansion, k kernels per stage", highlight=False)
    out_console.print(f"all candidates: {out / 'search' / 'candidates.jsonl'}")
    # what distillation will take: per target and origin (and after search.refine), not simply the table's head
    for i, pick in enumerate(read_json(out / "search" / "top.json")["top"]):
        target = "no latency target" if pick["target"] is None else f"latency ratio {pick['target']}"
        out_console.print(f"pick s{i} for {target}: {pick['space']} "
                          f"{get_space(pick['space']).describe(pick['genes'])} (ratio {pick['latency_ratio']:.3f})",
                          highlight=False)


def _rerun_stage(run: Path, name: str, as_json: bool) -> None:
    """Re-run stage ``name`` of ``run``; for the stages after search, go on through the report and print it."""
    from kdcompress.distill.distributed import init_from_env, rank_and_world
    from kdcompress.pipeline import STAGE_FUNCS, Session, run_stage, run_stage_data_parallel
    from kdcompress.run import Progress, RunDir, read_json

    if init_from_env():  # started by torchrun: train across its processes, then rank 0 goes on alone
        first = rank_and_world()[0] == 0
        session = Session(RunDir.open(run, must_exist=True), BarProgress() if first else Progress())
        if not run_stage_data_parallel(session, name):
            return
    else:
        session = Session(RunDir.open(run, must_exist=True), BarProgress())
        run_stage(session, name)
    if name == "search":
        record = session.run.manifest["stages"][name]
        click.echo(json.dumps(record, indent=2) if as_json else f"{name}: done in {record['seconds']:.1f}s ({run})")
        return
    stages = list(STAGE_FUNCS)
    for later in stages[stages.index(name) + 1 :]:
        run_stage(session, later)
    print_result(read_json(run / "result.json"), as_json)


def _stage_command(name: str, doc: str) -> None:
    @cli.command(name=name, help=doc + " Re-runs the stage in RUN and every later one, then prints the result.")
    @click.argument("run", type=click.Path(file_okay=False, exists=True, path_type=Path))
    @click.option("--json", "as_json", is_flag=True, help="Print only the result JSON on stdout.")
    def command(run: Path, as_json: bool) -> None:
        _rerun_stage(run, name, as_json)


for _name, _doc in [
    ("distill", "Distil the top candidates from the teacher."),
    ("export", "Export the trained students (every precision of the profile) and check parity with PyTorch."),
]:
    _stage_command(_name, _doc)


@cli.command()
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--backend", "-b", help="Backend to run on (see `kdcompress doctor`); default by the file's format: "
                                      "onnxruntime-cpu for ONNX, tensorrt for an engine, aoti-cpu or aoti-cuda (as "
                                      "compiled) for a package.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Batch size to time.")
@click.option("--shape", help="Input shape per sample C,H,W, where the file does not declare it.")
@click.option("--threads", type=click.IntRange(min=0), default=1, show_default=True,
              help="Intra-op threads for CPU backends (0: the runtime's default).")
@click.option("--warmup", type=click.IntRange(min=0), default=50, show_default=True)
@click.option("--iters", type=click.IntRange(min=1), default=300, show_default=True, help="Timed runs per repeat.")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--data", "-d", help="Also measure top-1 accuracy on this data's test split (fashion-mnist, .npz, "
                                   "ImageFolder).")
@click.option("--mean", type=float, multiple=True, help="Per-channel input mean after scaling to [0,1] (repeat).")
@click.option("--std", type=float, multiple=True, help="Per-channel input std after scaling to [0,1] (repeat).")
@click.option("--test-samples", type=click.IntRange(min=1), help="Accuracy on the first N test images only.")
@click.option("--json", "as_json", is_flag=True, help="Print only JSON on stdout.")
def bench(target: Path, backend: str | None, batch: int, shape: str | None, threads: int, warmup: int, iters: int,
          repeats: int, data: str | None, mean: tuple[float, ...], std: tuple[float, ...], test_samples: int | None,
          as_json: bool) -> None:
    """Measure latency (and accuracy) of TARGET: a run directory (re-bench every artifact, rebuild the report) or
    any artifact file — an ONNX model from anywhere, a TensorRT engine, an AOTInductor package."""
    if target.is_dir():
        return _rerun_stage(target, "bench", as_json)
    from kdcompress.bench.artifact import bench_artifact, parse_shape

    dims = parse_shape(shape) if shape else None
    dataset = None
    if data:
        from kdcompress.data import Preprocess, load_data

        splits = load_data(data, 0.1, 0)
        dataset = (splits.x_test[:test_samples], splits.y_test[:test_samples],
                   Preprocess(tuple(mean) or (0.0,), tuple(std) or (1.0,)))
    r = bench_artifact(target, backend, batch, dims, threads, warmup, iters, repeats, dataset)
    if as_json:
        click.echo(json.dumps(r, indent=2))
        return
    table = Table(title=f"{target.name} — {r['format']} {r['precision']} on {r['backend']} (batch {r['batch']}, "
                        f"{r['samples']} timed runs)")
    for col in ("p50 ms", "p90 ms", "p99 ms", "mean ms", "IQR ms", "samples/s", *(["acc %"] if "accuracy" in r else [])):
        table.add_column(col, justify="right")
    lm = r["latency_ms"]
    table.add_row(*(f"{lm[k]:.4f}" for k in ("p50", "p90", "p99", "mean", "iqr")), f"{r['throughput']:,.0f}",
                  *([f"{r['accuracy']:.2f}"] if "accuracy" in r else []))
    out_console.print(table)
    m = r["environment"]["machine"]
    out_console.print(f"machine: {m['cpu']}{', GPU ' + m['gpu'] if m.get('gpu') else ''}; input "
                      f"{[r['batch'], *r['input_shape']]}", highlight=False, soft_wrap=True)


@cli.command()
@click.argument("run", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print only the result JSON on stdout.")
@click.option("--open", "open_html", is_flag=True, help="Open report.html in the web browser.")
def report(run: Path, as_json: bool, open_html: bool) -> None:
    """Rebuild result.json, report.md and report.html (trade-off plot embedded) from a run, and print the table."""
    from kdcompress.pipeline import Session, run_stage
    from kdcompress.run import RunDir, read_json

    run_stage(Session(RunDir.open(run, must_exist=True)), "report")
    print_result(read_json(run / "result.json"), as_json)
    if open_html:
        import webbrowser

        if not webbrowser.open((run / "report.html").resolve().as_uri()):
            err_console.print(f"no web browser here; open {run / 'report.html'} yourself", highlight=False)


@cli.group()
def profiles() -> None:
    """List and show the shipped profiles."""


@profiles.command("list")
def profiles_list() -> None:
    """Names and one-line descriptions of the shipped profiles."""
    from kdcompress.profiles import available_profiles, load_profile

    for name in available_profiles():
        p = load_profile(name)
        click.echo(f"{name:8s} {p.target.device}/{p.target.backend} {p.target.precision} batch {p.target.batch} — "
                   f"{p.description}")


@profiles.command("show")
@click.argument("name")
def profiles_show(name: str) -> None:
    """The fully resolved profile NAME (or YAML path), defaults included, as YAML."""
    import yaml

    from kdcompress.profiles import load_profile

    click.echo(yaml.safe_dump(load_profile(name).model_dump(), sort_keys=False))


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def doctor(as_json: bool) -> None:
    """Which backends are usable here, what each needs, and the optional extras."""
    from kdcompress.bench import BACKENDS, backend_status
    from kdcompress.bench.backends import extras_status
    from kdcompress.report.environment import environment

    status, extras = backend_status(), extras_status()
    if as_json:
        backends = {n: {"status": st, "runs": BACKENDS[n].format, "needs": BACKENDS[n].needs}
                    for n, st in status.items()}
        click.echo(json.dumps({"backends": backends, "extras": extras, **environment()}, indent=2))
        return
    for name, state in status.items():
        click.echo(f"{'✓' if state.startswith('available') else '✗'} {name:21s} {state}")
    for name, state in extras.items():
        click.echo(f"{'✓' if state.startswith('available') else '✗'} {name:21s} {state}")
    click.echo("every backend above has a runner in kdcompress; the TensorRT runner and engine builder are written "
               "against TensorRT's API and have not yet run against a real TensorRT")


cli.add_command(baseline)
cli.add_command(check)


class Terminated(BaseException):
    """SIGTERM, turned into an exception so that every ``finally`` (temp files, progress bars) runs. A
    BaseException, like KeyboardInterrupt, so that no ``except Exception`` (an exporter's fallback, a tracer's
    one-line error) can swallow it: a SIGTERM during export once ended the run with exit code 0."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


RESUME_LINE = "stopped: finished stages and epochs are kept; run the same command with --resume to continue"


def main() -> None:
    debug = "--debug" in sys.argv[1:]
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        _main(debug)
    finally:  # main() may be called in-process (tests, notebooks): leave the caller's handler as it was
        signal.signal(signal.SIGTERM, previous)


def _main(debug: bool) -> None:
    if not debug:
        # torch and the exporters warn about their own internals; users cannot act on those.
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\..*|onnxscript\..*")
    try:
        try:
            cli.main(standalone_mode=False)
        except OSError as e:  # a full disk or a folder it may not write: the user's to fix, in one line
            user = environment_error(e)
            if user is None:
                raise
            raise user from e
    except KDCompressError as e:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt):
        err_console.print(RESUME_LINE, highlight=False, soft_wrap=True)
        sys.exit(130)
    except Terminated:
        err_console.print(RESUME_LINE, highlight=False, soft_wrap=True)
        sys.exit(143)
    except click.ClickException as e:
        e.show()
        sys.exit(2)


if __name__ == "__main__":
    main()
