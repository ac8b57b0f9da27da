"""``kdcompress profiles`` and ``kdcompress doctor``: what is shipped and what this machine can run."""

from __future__ import annotations

import json

import click


@click.group()
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

    click.echo(yaml.safe_dump(load_profile(name).model_dump(mode="json"), sort_keys=False))


@click.command()
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
