"""Command line: parse, call one library function, print. One module per command group; the library is imported
inside the commands, so ``kdcompress --help`` and ``kdcompress profiles list`` load no torch."""

from __future__ import annotations

import signal
import sys
import warnings

import click
from rich.markup import escape

from kdcompress.cli import bench, check, info, runs
from kdcompress.console import err_console
from kdcompress.errors import KDCompressError, environment_error


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


for _command in (runs.shrink, runs.search, runs.distill, runs.export, bench.bench, runs.report, info.profiles,
                 info.doctor, check.baseline, check.check):
    cli.add_command(_command)


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
