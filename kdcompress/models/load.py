"""Load a teacher by what the file *is*, never by its extension (DESIGN §2).

Formats: TorchScript archive (``torch.jit.load``), ``torch.export`` ExportedProgram (``.pt2``), a state_dict with
``--arch module.py:ClassName`` (read with ``weights_only=True``), an ONNX model (run by onnxruntime: logits only,
no gradients, so what needs the teacher in PyTorch — DisWOT, pruning, compiling it — says so and the rest runs),
and a full pickled ``nn.Module`` only with ``--trust-pickle`` — unpickling executes code from the file.
"""

from __future__ import annotations

import json
import math
import pickle
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from kdcompress.data.splits import Images, batches
from kdcompress.errors import KDCompressError, first_line
from kdcompress.models.arch import LogitsOf, build_arch, fit_state_dict, returns_structure
from kdcompress.models.hf import folder_sha256, load_image_classifier
from kdcompress.models.pruning import PruningSource, check_prunable
from kdcompress.run import file_sha256

PICKLE_HINT = (
    "loading it would execute code from the file: pass --trust-pickle if you trust its source, or save the model as "
    "TorchScript (torch.jit.save), an ExportedProgram (torch.export.save) or a state_dict used with --arch"
)


@dataclass
class Teacher:
    """A loaded teacher: a callable module plus where it came from."""

    module: nn.Module
    kind: str  # torchscript | exported | state_dict | pickle | onnx | hf (a Hugging Face folder)
    path: Path
    sha256: str
    # the same network as an ordinary nn.Module, for what needs one (Torch-Pruning): rebuilt for a graph teacher
    # from the recipe file beside it (see eager_from_recipe); None where there is none
    eager: nn.Module | None = None

    def set_eval(self) -> None:
        # An ExportedProgram's module has its mode baked in and raises on .eval()/.train().
        if self.kind != "exported":
            self.module.eval()

    def pruning_source(self, example: torch.Tensor, purpose: str = "the pruned-teacher space") -> PruningSource:
        """The teacher as the source of pruned (or Born-Again) students; one line (KDCompressError) when it cannot
        be rebuilt as a module to cut (``purpose``: what needs it, for that line)."""
        module, kind = (self.eager, "state_dict") if self.eager is not None else (self.module, self.kind)
        check_prunable(module, kind, purpose)
        return PruningSource(module, example)

    @torch.no_grad()
    def logits(self, x: Images, batch: int = 512,
               prep: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """The teacher's logits on ``x`` in batches (an image folder's decoded by its workers); ``prep`` applied to
        each batch (raw images stay small)."""
        self.set_eval()
        none = torch.zeros(len(x), dtype=torch.long)
        return torch.cat([self.module(xb if prep is None else prep(xb)) for _, xb, _ in batches(x, none, batch)])

    def declared_input(self) -> tuple[int, ...] | None:
        """The per-image input shape the file fixes (an exported program's or ONNX graph's static C, H, W), or None
        where it fixes none (TorchScript, a state_dict, a pickle, dynamic sizes)."""
        if self.kind == "onnx":
            from kdcompress.export.onnx import load_single_input

            _, inp = load_single_input(self.path, "")
            dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim][1:]
        elif self.kind == "exported":
            first = next((n for n in self.module.graph.nodes if n.op == "placeholder"), None)
            val = first.meta.get("val") if first is not None else None
            dims = [d if isinstance(d, int) else None for d in val.shape[1:]] if val is not None else [None]
        else:
            return None
        return tuple(dims) if dims and all(isinstance(d, int) for d in dims) else None  # type: ignore[return-value]


# Recipe files name our own families only: a JSON file never makes us import code.
RECIPE_ARCHS = {"kdcompress.models.students.ResNet": "resnet", "resnet": "resnet", "mobilenetv2": "mobilenetv2",
                "vgg": "vgg"}


def eager_from_recipe(path: Path, graph: nn.Module) -> nn.Module | None:
    """For an ExportedProgram teacher with a recipe beside it (``<name>.json`` with ``arch`` naming a kdcompress
    family and its ``genes``, as the shipped teacher has): the same network rebuilt as an nn.Module with the
    program's weights, checked to compute what the program computes. None when there is no usable recipe."""
    recipe_path = path.with_suffix(".json")
    if not recipe_path.is_file():
        return None
    try:
        recipe = json.loads(recipe_path.read_text())
        family = RECIPE_ARCHS[recipe["arch"]]
        in_shape, classes = recipe["input_shape"], recipe["num_classes"]
        from kdcompress.models.students import STUDENTS

        model = STUDENTS[family](recipe["genes"], in_shape[0], classes)
        model.load_state_dict(torch.export.load(str(path)).state_dict, strict=True)
        model.eval()
        x = torch.rand(2, *in_shape, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            same = torch.allclose(model(x), graph(x), rtol=1e-4, atol=1e-5)
    except Exception:  # noqa: BLE001 — a recipe that does not describe this network is ignored, never trusted
        return None
    return model if same else None


def eager_from_graph(graph: nn.Module) -> nn.Module | None:
    """For an ExportedProgram teacher without a recipe: its graph with the layers as modules
    (:func:`kdcompress.models.graph_layers.layers_as_modules`), which DepGraph can cut, checked to compute what the
    program computes on its declared input shape. None where it cannot be rewritten or the shape is not fixed."""
    from kdcompress.models.graph_layers import layers_as_modules

    first = next((n for n in graph.graph.nodes if n.op == "placeholder"), None)
    val = first.meta.get("val") if first is not None else None
    if val is None or not all(isinstance(d, int) for d in val.shape[1:]):
        return None
    x = torch.rand(2, *val.shape[1:], generator=torch.Generator().manual_seed(0))
    try:
        eager = layers_as_modules(graph)
        with torch.no_grad():
            same = torch.allclose(eager(x), graph(x), rtol=1e-4, atol=1e-5)
    except Exception:  # noqa: BLE001 — a graph it cannot rewrite stays as it is: no cuts, as before
        return None
    return eager if same else None


class OnnxTeacher(nn.Module):
    """An ONNX teacher behind the nn.Module call interface: onnxruntime (CPU) computes its logits. It has no
    parameters and no gradients; the session is opened on first use (so forked search workers open their own)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._session = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._session is None:
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.log_severity_level = 3
            self._session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        name = self._session.get_inputs()[0].name
        out = self._session.run(None, {name: x.detach().cpu().numpy().astype("float32")})[0]
        return torch.from_numpy(out).float()

    def param_count(self) -> int:
        import onnx

        model = onnx.load(str(self.path), load_external_data=False)
        return sum(int(math.prod(i.dims)) for i in model.graph.initializer)


def _load_onnx(path: Path) -> nn.Module:
    from kdcompress.export.onnx import load_single_input

    _, inp = load_single_input(path, "re-export the model (an ONNX teacher takes one input: images)")
    dims = inp.type.tensor_type.shape.dim
    if dims and dims[0].HasField("dim_value"):
        raise KDCompressError(f"{path.name} was exported with a fixed batch size of {dims[0].dim_value}",
                              "re-export it with a dynamic batch axis (dynamic_axes / dynamic_shapes)")
    return OnnxTeacher(path)


def sniff(path: Path) -> str:
    """What the file is: torchscript | exported | torch-zip | legacy-pickle | corrupt-zip | onnx | unknown."""
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        try:
            names = zipfile.ZipFile(path).namelist()
        except zipfile.BadZipFile:
            return "corrupt-zip"
        if any(n.split("/")[-1] == "archive_format" for n in names):
            return "exported"
        if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "torch-zip"
        return "unknown"
    if head[:1] == b"\x80":
        return "legacy-pickle"
    if head[:1] == b"\x08":  # protobuf field 1 (ir_version), varint: how every ONNX model file starts
        return "onnx"
    return "unknown"


def _unpickle_module(path: Path) -> object:
    """``torch.load`` a trusted pickle the way the user's own script would: with the current folder and the
    model's folder importable, since the pickle names the module its classes live in (e.g. ``arch``)."""
    extra = [str(Path.cwd()), str(path.resolve().parent)]
    sys.path[:0] = extra
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except ModuleNotFoundError as e:
        raise KDCompressError(
            f"{path}: the pickle needs module {e.name!r}, which is not importable from here or beside the model",
            f"run from the folder that holds {e.name}.py or add it to PYTHONPATH (or save a state_dict and pass "
            "--arch FILE.py:ClassName)",
        ) from None
    finally:
        for entry in extra:
            sys.path.remove(entry)


def _unwrap_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise KDCompressError(f"{path}: holds no state_dict of tensors")


def _load_state_dict(path: Path, arch: str | None) -> nn.Module:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    sd = _unwrap_state_dict(obj, path)
    if arch is None:
        raise KDCompressError(f"{path}: is a state_dict, which needs its architecture",
                              "pass --arch FILE.py:ClassName or a factory such as torchvision.models:resnet18")
    model = build_arch(arch, sd)
    fit_state_dict(model, sd, f"{path} with --arch {arch}")
    return model


def load_teacher(path: Path | str, arch: str | None = None, trust_pickle: bool = False) -> Teacher:
    """Load a teacher file; a user-fixable problem raises :class:`KDCompressError`."""
    path = Path(path)
    if path.is_dir():  # a Hugging Face folder (save_pretrained), or a one-line refusal saying what a folder needs
        module = LogitsOf(load_image_classifier(path))
        return Teacher(module=module, kind="hf", path=path, sha256=folder_sha256(path))
    if not path.is_file():
        raise KDCompressError(f"teacher file not found: {path}")
    kind = sniff(path)
    try:
        eager = None
        if kind == "exported":
            module = torch.export.load(str(path)).module()
            eager = eager_from_recipe(path, module) or eager_from_graph(module)
        elif kind == "torchscript":
            module = torch.jit.load(str(path), map_location="cpu")
        elif kind in ("torch-zip", "legacy-pickle"):
            try:
                module = _load_state_dict(path, arch)
                kind = "state_dict"
            except pickle.UnpicklingError as e:
                if "weights_only" not in str(e).lower() and "unsupported global" not in str(e).lower():
                    raise
                if not trust_pickle:
                    raise KDCompressError(f"{path}: is a pickled Python object, not weights", PICKLE_HINT) from None
                module = _unpickle_module(path)
                if not isinstance(module, nn.Module):
                    raise KDCompressError(f"{path}: unpickled a {type(module).__name__}, not an nn.Module") from None
                kind = "pickle"
        elif kind == "onnx":
            module = _load_onnx(path)
        elif kind == "corrupt-zip":
            raise KDCompressError(f"{path}: corrupt or truncated archive", "re-save or re-download the model")
        else:
            raise KDCompressError(
                f"{path}: not a model file kdcompress can read",
                "expected TorchScript, a torch.export .pt2, an ONNX model, or a state_dict (+ --arch)",
            )
    except KDCompressError:
        raise
    except (RuntimeError, zipfile.BadZipFile, EOFError, pickle.UnpicklingError, ValueError, KeyError, OSError) as e:
        msg = first_line(e, None)
        raise KDCompressError(f"{path}: corrupt or unreadable {kind} file ({msg[:200]})", "re-save the model") from None
    if returns_structure(module):  # a Hugging Face model returns a ModelOutput: every stage wants the logits
        module = LogitsOf(module)
    return Teacher(module=module, kind=kind, path=path, sha256=file_sha256(path), eager=eager)
