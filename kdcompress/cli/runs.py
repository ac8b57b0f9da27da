"""The commands that run the pipeline or a stage of it: ``shrink``, ``search``, ``distill``, ``export``, ``report``.
The library is imported inside each command, so ``--help`` loads no torch."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from kdcompress.cli.options import PROXY_HELP, input_options, make_inputs
from kdcompress.cli.progress import BarProgress
from kdcompress.console import err_console, out_console
from kdcompress.run import default_run_dir


@click.command()
@click.argument("teacher", type=click.Path(path_type=Path))
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
    the profile asks for, each measured as itself).

    TEACHER: a torch.export .pt2, TorchScript or ONNX file, a state_dict (with --arch), a pickled module (with
    --trust-pickle), or a Hugging Face image classifier folder saved with save_pretrained (the hf extra)."""
    from kdcompress.pipeline import shrink as run_shrink
    from kdcompress.profiles import parse_overrides
    from kdcompress.report.terminal import print_result

    if student is not None:
        job["overrides"] = {**parse_overrides(job["overrides"]), "search.student": student}
    out = out or default_run_dir(Path("runs/shrink"), resume)
    result = run_shrink(make_inputs(teacher, **job, baselines=baselines), out, resume=resume, progress=BarProgress())
    print_result(result, as_json)
    if not as_json:
        out_console.print(f"run directory: {out}  (result.json, report.md, report.html)")
    if require_budget and not result.budget_met:
        raise SystemExit(1)


@click.command()
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
        return rerun_stage(target, "search", as_json)
    from kdcompress.pipeline import Session, open_run, search_candidates
    from kdcompress.profiles import parse_overrides
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
    for sid, pick in Session(open_run(out, must_exist=True)).top().students():
        target = "no latency target" if pick.target is None else f"latency ratio {pick.target}"
        out_console.print(f"pick {sid.partition('-')[0]} for {target}: {pick.space} "
                          f"{get_space(pick.space).describe(pick.genes)} (ratio {pick.latency_ratio:.3f})",
                          highlight=False)


def rerun_stage(run: Path, name: str, as_json: bool) -> None:
    """Re-run stage ``name`` of ``run``; for the stages after search, go on through the report and print it."""
    from kdcompress.distill.distributed import init_from_env, rank_and_world
    from kdcompress.pipeline import Session, open_run, read_result, run_stage, run_stage_data_parallel
    from kdcompress.report.terminal import print_result
    from kdcompress.run import Progress
    from kdcompress.stages import STAGES

    if init_from_env():  # started by torchrun: train across its processes, then rank 0 goes on alone
        first = rank_and_world()[0] == 0
        session = Session(open_run(run, must_exist=True), BarProgress() if first else Progress())
        if not run_stage_data_parallel(session, name):
            return
    else:
        session = Session(open_run(run, must_exist=True), BarProgress())
        run_stage(session, name)
    if name == "search":
        record = session.run.manifest["stages"][name]
        click.echo(json.dumps(record, indent=2) if as_json else f"{name}: done in {record['seconds']:.1f}s ({run})")
        return
    names = [s.name for s in STAGES]
    for later in names[names.index(name) + 1 :]:
        run_stage(session, later)
    print_result(read_result(run), as_json)


def _stage_command(name: str, doc: str) -> click.Command:
    @click.command(name=name, help=doc + " Re-runs the stage in RUN and every later one, then prints the result.")
    @click.argument("run", type=click.Path(file_okay=False, exists=True, path_type=Path))
    @click.option("--json", "as_json", is_flag=True, help="Print only the result JSON on stdout.")
    def command(run: Path, as_json: bool) -> None:
        rerun_stage(run, name, as_json)

    return command


distill = _stage_command("distill", "Distil the top candidates from the teacher.")
export = _stage_command("export", "Export the trained students (every precision of the profile) and check parity "
                                  "with PyTorch.")


@click.command()
@click.argument("run", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print only the result JSON on stdout.")
@click.option("--open", "open_html", is_flag=True, help="Open report.html in the web browser.")
def report(run: Path, as_json: bool, open_html: bool) -> None:
    """Rebuild result.json, report.md and report.html (trade-off plot embedded) from a run, and print the table."""
    from kdcompress.pipeline import Session, open_run, read_result, run_stage
    from kdcompress.report.terminal import print_result

    run_stage(Session(open_run(run, must_exist=True)), "report")
    print_result(read_result(run), as_json)
    if open_html:
        import webbrowser

        if not webbrowser.open((run / "report.html").resolve().as_uri()):
            err_console.print(f"no web browser here; open {run / 'report.html'} yourself", highlight=False)
