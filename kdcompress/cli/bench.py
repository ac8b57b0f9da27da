"""``kdcompress bench``: latency (and accuracy) of a run's artifacts or of any artifact file."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from kdcompress.cli.options import NORMALISATION, normalisation, with_options
from kdcompress.cli.runs import rerun_stage
from kdcompress.console import err_console, out_console


def normalisation_options(fn):
    return with_options(NORMALISATION, fn)


@click.command()
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
@normalisation_options
@click.option("--test-samples", type=click.IntRange(min=1), help="Accuracy on the first N test images only.")
@click.option("--json", "as_json", is_flag=True, help="Print only JSON on stdout.")
def bench(target: Path, backend: str | None, batch: int, shape: str | None, threads: int, warmup: int, iters: int,
          repeats: int, data: str | None, mean: tuple[float, ...], std: tuple[float, ...], normalize: str | None,
          test_samples: int | None, as_json: bool) -> None:
    """Measure latency (and accuracy) of TARGET: a run directory (re-bench every artifact, rebuild the report) or
    any artifact file — an ONNX model from anywhere, a TensorRT engine, an AOTInductor package."""
    if target.is_dir():
        return rerun_stage(target, "bench", as_json)
    from kdcompress.bench.artifact import artifact_test_data, bench_artifact, parse_shape
    from kdcompress.data import Preprocess

    dims = parse_shape(shape) if shape else None
    dataset = None
    if data:
        norm = normalisation(mean, std, normalize)
        prep = Preprocess(tuple(norm.get("data.mean", (0.0,))), tuple(norm.get("data.std", (1.0,))))
        dataset = artifact_test_data(target, data, prep, dims, test_samples)
    r = bench_artifact(target, backend, batch, dims, threads, warmup, iters, repeats, dataset)
    if dataset is not None:
        from kdcompress.models.fit import chance_level, near_chance

        if near_chance(r["accuracy"], dataset[1]):
            err_console.print(f"warning: {r['accuracy']:.2f} % is near chance ({chance_level(dataset[1]):.1f} %) on "
                              f"{data}: check the data, its label order and the normalisation (--normalize, --mean/"
                              "--std)", highlight=False, soft_wrap=True)
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
