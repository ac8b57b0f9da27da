"""Options several commands share, declared once."""

from __future__ import annotations

from pathlib import Path

import click

# Spelled out rather than imported: importing the registry pulls in torch, and --help should be instant.
# tests/test_cli.py checks that it names every registered proxy.
PROXY_HELP = ("synflow (default), zen, params, flops, grad_norm, snip, nwot, combo; diswot as its authors run it "
              "(ICKD semantic + SP relation where the student's classifier width equals the teacher's, SP relation "
              "alone where it differs), diswot_code (the relation term as the authors' NAS-Bench-201 code computes "
              "it), diswot_relation (SP alone), and our width-independent variant diswot_kxk (K×K class "
              "correlation) with diswot_kxk_semantic and diswot_kxk_log")


# Per-channel normalisation of the images after scaling to [0,1]: `shrink`, `search` and `bench --data` alike.
NORMALISATION = [
    click.option("--mean", type=float, multiple=True, help="Per-channel input mean after scaling to [0,1] (repeat)."),
    click.option("--std", type=float, multiple=True, help="Per-channel input std after scaling to [0,1] (repeat)."),
    click.option("--normalize", type=click.Choice(["imagenet", "none"]),
                 help="A normalisation preset instead of --mean/--std: imagenet = mean (0.485, 0.456, 0.406), "
                      "std (0.229, 0.224, 0.225), what torchvision's and timm's ImageNet weights expect."),
]
# Reading image folders (``--data DIR``): shrink, search and bench --data alike.
FOLDER = [
    click.option("--image-size", type=click.IntRange(min=8),
                 help="Input side N for an image folder: eval images are resized (shorter side N / 0.875) and "
                      "centre-cropped to N x N [default: the teacher's declared size, else the folder's one size]."),
    click.option("--strict-data", is_flag=True, help="Stop on an unreadable image file instead of skipping it."),
]
PRESETS = {"imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), "none": ((0.0,), (1.0,))}


def normalisation(mean: tuple[float, ...], std: tuple[float, ...], preset: str | None) -> dict:
    """The profile overrides ``--mean/--std/--normalize`` make (a preset and explicit values together: refused)."""
    if preset and (mean or std):
        raise click.UsageError("--normalize and --mean/--std together: give one of them")
    if preset:
        mean, std = PRESETS[preset]
    return {**({"data.mean": list(mean)} if mean else {}), **({"data.std": list(std)} if std else {})}


def with_options(options: list, fn):
    for option in reversed(options):
        fn = option(fn)
    return fn


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
        click.option("--arch", help="The architecture of a state_dict teacher: FILE.py:ClassName, or an importable "
                     "factory such as torchvision.models:resnet18 or timm:resnet18 (sized from the state_dict)."),
        click.option("--trust-pickle", is_flag=True, help="Allow loading a full pickled nn.Module (executes code)."),
        click.option("--resume", is_flag=True, help="Continue a run in --out, skipping finished stages."),
        click.option("--seed", default=0, show_default=True, help="Seed for splits, search and training."),
        *NORMALISATION,
        *FOLDER,
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override a profile field (repeat), YAML values: e.g. --set distill.epochs=5, --set "
                          "'distill.loss={kd: {T: 4}, sp: {}}', --set distill.mix=cutmix, --set distill.aug=crop_flip, "
                          "--set distill.device=cpu, --set distill.amp=fp16. `kdcompress profiles show NAME` lists "
                          "every field."),
        click.option("--strict-target", is_flag=True,
                     help="Fail instead of falling back when the target backend is missing."),
    ]
    return with_options(options, fn)


def make_inputs(teacher: Path, profile: str, data: str, arch: str | None, trust_pickle: bool, seed: int,
                mean: tuple[float, ...], std: tuple[float, ...], overrides: tuple[str, ...] | dict,
                strict_target: bool, baselines: bool = False, normalize: str | None = None,
                image_size: int | None = None, strict_data: bool = False):
    from kdcompress.models.hf import is_model_folder, read_preprocessing
    from kdcompress.pipeline import Inputs
    from kdcompress.profiles import load_profile, parse_overrides

    sets = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
    # a Hugging Face folder's image processor gives the data's size and normalisation; the user's flags win
    if is_model_folder(Path(teacher)) and (pre := read_preprocessing(Path(teacher))) is not None:
        sets = {**pre.profile_overrides(), **sets}
    sets.update(normalisation(mean, std, normalize))
    if image_size is not None:
        sets["data.image_size"] = image_size
    if strict_data:
        sets["data.strict"] = True
    return Inputs(str(teacher), data, load_profile(profile, sets), arch, trust_pickle, seed, strict_target, baselines)
