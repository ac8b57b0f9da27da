"""The architecture behind a state_dict teacher (``--arch``), and teachers whose forward returns more than logits.

``--arch`` names either a class in a file (``path/to/arch.py:ClassName``, built without arguments) or an importable
factory (``torchvision.models:resnet18``, ``timm:resnet18``, ``transformers:ResNetForImageClassification``): the
factory is called without weights, with the class count (and, where it takes one, the input channel count) read
from the state_dict — the classifier is the last 2-D ``.weight``, the input the first 4-D one. The user named this
code, so importing it is their choice; no weights are ever downloaded.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from kdcompress.errors import KDCompressError, first_line

# keyword names factories use for the class count and the input channels (torchvision, timm, our families)
CLASS_KWARGS = ("num_classes", "num_labels")
CHANNEL_KWARGS = ("in_chans", "in_channels", "num_channels")
# packages whose PyPI wheels do not import beside the pinned CPU torch (torchvision is a CUDA build; timm needs it)
NO_CPU_WHEEL = frozenset({"torchvision", "timm"})


def _first_line(e: BaseException) -> str:
    return type(e).__name__ + (f": {first_line(e)}" if str(e).strip() else "")


def _import_file(file: str) -> object:
    p = Path(file)
    if not p.is_file():
        raise KDCompressError(f"--arch: file not found: {file}")
    mod_name = f"kdcompress_user_arch_{hashlib.md5(str(p.resolve()).encode()).hexdigest()[:8]}"
    mspec = importlib.util.spec_from_file_location(mod_name, p)
    assert mspec and mspec.loader
    module = importlib.util.module_from_spec(mspec)
    sys.modules[mod_name] = module
    try:
        mspec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 — the user's code failed, not ours: say where, keep it one line
        sys.modules.pop(mod_name, None)
        raise KDCompressError(f"--arch: importing {file} raised {_first_line(e)}",
                              f"run `python {file}` to see the traceback") from None
    return module


def _import_module(name: str) -> object:
    try:
        return importlib.import_module(name)
    except ImportError as e:
        top = name.split(".")[0]
        hint = (f"install it (pip install {top}) or name FILE.py:ClassName" if top not in NO_CPU_WHEEL else
                f"{top} from PyPI does not import beside kdcompress's CPU torch (torchvision's wheel is a CUDA "
                "build; README: Teachers we did not design): copy the model's class into FILE.py, or save the "
                "model as TorchScript / torch.export .pt2 where it imports")
        raise KDCompressError(f"--arch: cannot import {name} ({_first_line(e)})", hint) from None


def names_file(where: str) -> bool:
    """Whether the part of ``--arch`` before the colon is a file (else an importable module)."""
    return where.endswith(".py") or "/" in where or Path(where).is_file()


def resolve_arch(spec: str) -> tuple[Callable[..., nn.Module], bool]:
    """The class or factory ``spec`` names (``FILE.py:Name`` or ``package.module:name``), and whether it came from
    a file (built without arguments, as before factories were named)."""
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise KDCompressError(f"--arch {spec!r}: expected FILE.py:ClassName or package.module:factory "
                              "(e.g. torchvision.models:resnet18)")
    is_file = names_file(where)
    module = _import_file(where) if is_file else _import_module(where)
    obj = getattr(module, name, None)
    if obj is None and where == "timm":  # timm names its models in a registry, not as module attributes
        create = module.create_model

        def obj(*, num_classes: int = 1000, in_chans: int = 3) -> nn.Module:
            return create(name, pretrained=False, num_classes=num_classes, in_chans=in_chans)

    if isinstance(obj, type) and not issubclass(obj, nn.Module):
        obj = None
    if obj is None or not callable(obj):
        raise KDCompressError(f"--arch: {where} has no nn.Module class or factory {name!r}")
    return obj, is_file


def state_dict_io(state_dict: dict[str, torch.Tensor]) -> tuple[int | None, int | None]:
    """(classes, input channels) as the state_dict shows them: the last 2-D weight's rows, the first 4-D weight's
    input channels; None where it shows none."""
    weights = [(k, v) for k, v in state_dict.items() if k.endswith("weight")]
    linear = [v for _, v in weights if v.dim() == 2]
    conv = [v for _, v in weights if v.dim() == 4]
    return (int(linear[-1].shape[0]) if linear else None, int(conv[0].shape[1]) if conv else None)


def _accepted(factory: Callable[..., nn.Module]) -> set[str] | None:
    """The keyword names ``factory`` accepts, or None when it takes ``**kwargs`` (then only the class count is
    passed, the one keyword every classifier factory knows)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params}


def build_arch(spec: str, state_dict: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """An instance of the ``--arch`` class or factory, sized from ``state_dict`` (see the module docstring)."""
    factory, from_file = resolve_arch(spec)
    kwargs: dict[str, int] = {}
    if state_dict is not None and not from_file:
        classes, channels = state_dict_io(state_dict)
        accepted = _accepted(factory)
        for names, value in ((CLASS_KWARGS, classes), (CHANNEL_KWARGS, channels)):
            if value is None:
                continue
            usable = [n for n in names if accepted is not None and n in accepted]
            if usable:
                kwargs[usable[0]] = value
            elif accepted is None and names is CLASS_KWARGS:
                kwargs["num_classes"] = value
    try:
        model = factory(**kwargs)
    except TypeError as e:
        args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        raise KDCompressError(f"--arch: {spec} cannot be built {f'with {args}' if args else 'without arguments'} "
                              f"({_first_line(e)})",
                              "give its __init__ arguments defaults, or name a factory that takes none") from None
    except Exception as e:  # noqa: BLE001 — the user's constructor failed
        raise KDCompressError(f"--arch: {spec}() raised {_first_line(e)}",
                              "fix the class so it builds without arguments") from None
    if not isinstance(model, nn.Module):
        raise KDCompressError(f"--arch: {spec} built a {type(model).__name__}, not an nn.Module")
    return model


def _common_prefix(keys: list[str]) -> str | None:
    first = keys[0].split(".", 1)[0] + "." if keys and "." in keys[0] else None
    return first if first and all(k.startswith(first) for k in keys) else None


def fit_state_dict(model: nn.Module, sd: dict[str, torch.Tensor], what: str) -> None:
    """Load ``sd`` into ``model`` strictly; a prefix a wrapper added (``model.``, ``module.`` …) on every key is
    stripped when what remains fits exactly, and a misfit is one line saying what differs."""
    want = set(model.state_dict())
    have = set(sd)
    if have != want and (prefix := _common_prefix(sorted(have))) and {k[len(prefix):] for k in have} == want:
        sd = {k[len(prefix):]: v for k, v in sd.items()}
        have = set(sd)
    missing, unexpected = sorted(want - have), sorted(have - want)
    if missing or unexpected:
        hint = "save the model's own state_dict, or name the architecture that saved it"
        prefix = _common_prefix(sorted(have))
        if prefix and not any(k.startswith(prefix) for k in want):
            hint = f"the file's keys all start with {prefix!r}, the architecture's do not: {hint}"
        elif missing and (mp := _common_prefix(missing)) and {mp + k for k in unexpected} & want:
            hint = f"the architecture's keys carry a {mp!r} prefix the file's lack"
        parts = [f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else ""]
        raise KDCompressError(f"{what}: state_dict keys do not fit: {', '.join(p for p in parts if p)}", hint)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()]
        raise KDCompressError(f"{what}: state_dict does not fit ({lines[0] if lines else first_line(e)})",
                              "the architecture's layer sizes differ from the file's (another variant?)") from None


class LogitsOf(nn.Module):
    """A classifier whose forward returns a structure (a Hugging Face ``ModelOutput``, a dict, a tuple) seen as one
    that returns its logits, as every stage expects."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return logits_of(self.inner(x))


def logits_of(out: object) -> torch.Tensor:
    """The logits in a model's output: the tensor itself, ``.logits``/``["logits"]``, or a tuple's first item."""
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if logits is None and isinstance(out, dict):
        logits = out.get("logits")
    if logits is None and isinstance(out, (tuple, list)) and out:
        logits = out[0]
    if not isinstance(logits, torch.Tensor):
        raise KDCompressError(f"the model returned a {type(out).__name__} without logits",
                              "wrap it in a module whose forward returns the logits tensor")
    return logits


def returns_structure(module: nn.Module) -> bool:
    """Whether ``module`` is a model known to return a structure rather than a tensor (Hugging Face)."""
    config = getattr(module, "config", None)
    return config is not None and hasattr(config, "model_type") and hasattr(module, "can_generate")
