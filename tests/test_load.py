"""Teacher loading: every format, by content; pickles only when trusted; corrupt files say so."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kdcompress.data import Preprocess
from kdcompress.errors import KDCompressError
from kdcompress.models.fit import check_teacher_learned, infer_io
from kdcompress.models.load import load_teacher

from .conftest import N_CLASSES, SIDE, make_images


@pytest.mark.parametrize("fmt, kind", [("pt2", "exported"), ("ts", "torchscript"), ("sd", "state_dict")])
def test_each_format_loads_and_matches(teacher_files, tiny_module, fmt, kind):
    arch = f"{teacher_files['arch']}:TinyNet" if fmt == "sd" else None
    t = load_teacher(teacher_files[fmt], arch=arch)
    assert t.kind == kind
    x = torch.rand(3, 1, SIDE, SIDE)
    torch.testing.assert_close(t.logits(x), tiny_module(x).detach(), rtol=1e-5, atol=1e-5)
    assert infer_io(t, (1, SIDE, SIDE)) == N_CLASSES


def test_format_is_sniffed_not_taken_from_extension(teacher_files, tmp_path):
    misnamed = tmp_path / "model.onnx"
    shutil.copy(teacher_files["ts"], misnamed)
    assert load_teacher(misnamed).kind == "torchscript"


def test_state_dict_without_arch_asks_for_it(teacher_files):
    with pytest.raises(KDCompressError, match="--arch"):
        load_teacher(teacher_files["sd"])


def test_pickle_needs_trust(teacher_files):
    with pytest.raises(KDCompressError, match="--trust-pickle"):
        load_teacher(teacher_files["pickle"])
    assert load_teacher(teacher_files["pickle"], trust_pickle=True).kind == "pickle"


class _Touch:
    """Unpickling this object creates a file: the proof that a pickle was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_malicious_pickle_is_never_executed(tmp_path):
    sentinel = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": _Touch(sentinel)}, evil)
    with pytest.raises(KDCompressError, match="--trust-pickle"):
        load_teacher(evil)
    assert not sentinel.exists()
    # and the legacy (non-zip) pickle format too
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps(_Touch(sentinel), protocol=2))
    with pytest.raises(KDCompressError):
        load_teacher(legacy)
    assert not sentinel.exists()


@pytest.mark.parametrize("fmt", ["pt2", "ts", "sd"])
def test_truncated_file_is_a_clear_error(teacher_files, tmp_path, fmt):
    bad = tmp_path / f"bad.{fmt}"
    data = teacher_files[fmt].read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(KDCompressError, match="corrupt|truncated|not a model"):
        load_teacher(bad, arch=f"{teacher_files['arch']}:TinyNet")


def test_garbage_and_missing_files(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"hello world")
    with pytest.raises(KDCompressError, match="not a model file"):
        load_teacher(junk)
    with pytest.raises(KDCompressError, match="not found"):
        load_teacher(tmp_path / "nope.pt")


def test_shape_mismatch_names_the_shape(teacher_files):
    t = load_teacher(teacher_files["pt2"])
    with pytest.raises(KDCompressError, match=r"\[3, 12, 12\]"):
        infer_io(t, (3, SIDE, SIDE))


def test_a_trusted_pickle_finds_its_class_beside_the_model_or_says_which_module_is_missing(tmp_path, monkeypatch):
    import subprocess
    import sys

    (tmp_path / "userarch.py").write_text("from torch import nn\n\n\nclass UserNet(nn.Module):\n"
                                          "    def __init__(self):\n        super().__init__()\n"
                                          "        self.fc = nn.Linear(4, 2)\n\n    def forward(self, x):\n"
                                          "        return self.fc(x)\n")
    subprocess.run([sys.executable, "-c", "import torch, userarch; torch.save(userarch.UserNet(), 'whole.pt')"],
                   cwd=tmp_path, check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delitem(sys.modules, "userarch", raising=False)
    t = load_teacher(tmp_path / "whole.pt", trust_pickle=True)  # userarch.py lies beside the model
    assert t.kind == "pickle" and type(t.module).__name__ == "UserNet"
    assert str(tmp_path) not in sys.path  # the import path is left as it was
    moved = elsewhere / "whole.pt"
    moved.write_bytes((tmp_path / "whole.pt").read_bytes())
    monkeypatch.delitem(sys.modules, "userarch", raising=False)
    with pytest.raises(KDCompressError, match="needs module 'userarch'"):
        load_teacher(moved, trust_pickle=True)


def test_a_teacher_no_better_than_chance_on_the_data_is_refused(teacher_files):
    """A teacher given data it has not learnt (other data, labels in another order) scores about chance: one line
    before any search or training; on its own data its accuracy is returned."""
    t = load_teacher(teacher_files["pt2"])
    x, y = make_images(400, np.random.default_rng(5))
    x, y = torch.from_numpy(x), torch.from_numpy(y).long()
    accuracy, checked = check_teacher_learned(t, x, y, Preprocess(), "tiny")
    assert accuracy > 60 and checked == 400
    with pytest.raises(KDCompressError, match=r"scores \d+\.\d % on 400 validation images of shifted \(chance: "):
        check_teacher_learned(t, x, (y + 1) % N_CLASSES, Preprocess(), "shifted")
    # the bar is a tenth of the way from the majority class's share to 100 %, so a weak but real teacher passes
    assert check_teacher_learned(t, x[:10], y[:10], Preprocess(), "ten", limit=10)[0] >= 0


ZOO = '''
import torch
from torch import nn


def tiny(num_classes: int = 1000, in_chans: int = 3) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_chans, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, num_classes))


def loose(**kwargs) -> nn.Module:  # a factory that takes **kwargs: only the class count is passed
    return tiny(num_classes=kwargs.pop("num_classes"), in_chans=1)


class Wider(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = tiny(5, 1)
        self.extra = nn.Linear(5, 5)
'''


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    """An importable module of factories, as torchvision.models or timm are."""
    (tmp_path / "userzoo.py").write_text(ZOO)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import sys

    sys.modules.pop("userzoo", None)
    return importlib.import_module("userzoo")


def _save_sd(model: torch.nn.Module, path: Path, prefix: str = "") -> Path:
    torch.save({prefix + k: v for k, v in model.state_dict().items()}, path)
    return path


@pytest.mark.parametrize("factory", ["tiny", "loose"])
def test_arch_factory_is_sized_from_the_state_dict(zoo, tmp_path, factory):
    """--arch package.module:factory builds the network with the class count (and input channels, where the
    factory takes them) read from the state_dict, as torchvision.models:resnet18 or timm:resnet18 would be."""
    model = zoo.tiny(num_classes=7, in_chans=1).eval()
    t = load_teacher(_save_sd(model, tmp_path / "sd.pt"), arch=f"userzoo:{factory}")
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(t.logits(x), model(x).detach())


@pytest.mark.parametrize("prefix", ["model.", "module."])
def test_a_wrappers_prefix_is_stripped(zoo, tmp_path, prefix):
    model = zoo.tiny(num_classes=3, in_chans=1).eval()
    t = load_teacher(_save_sd(model, tmp_path / "sd.pt", prefix), arch="userzoo:tiny")
    x = torch.rand(1, 1, 8, 8)
    torch.testing.assert_close(t.logits(x), model(x).detach())


def test_a_misfit_state_dict_is_one_line_naming_what_differs(zoo, tmp_path):
    sd = _save_sd(zoo.tiny(num_classes=5, in_chans=1), tmp_path / "sd.pt", "model.")
    with pytest.raises(KDCompressError) as e:  # the prefix does not explain it all: the arch has more layers
        load_teacher(sd, arch=f"{tmp_path / 'userzoo.py'}:Wider")
    msg = str(e.value)
    assert "\n" not in msg and "missing" in msg and "unexpected" in msg and "'model.'" in msg, msg


def test_an_arch_that_cannot_be_imported_says_how_to_install_it(teacher_files):
    with pytest.raises(KDCompressError, match="pip install no_such_zoo"):
        load_teacher(teacher_files["sd"], arch="no_such_zoo.models:resnet18")


def test_a_factory_arch_stays_a_name_and_a_file_arch_becomes_absolute(tmp_path, monkeypatch):
    """The run records --arch as given for a factory (resolving it as a path broke torchvision.models:resnet18)."""
    from kdcompress.pipeline import Inputs
    from kdcompress.profiles import load_profile

    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text("")
    make = lambda arch: Inputs("t.pt", "fashion-mnist", load_profile("ci"), arch)
    assert make("torchvision.models:resnet18").arch == "torchvision.models:resnet18"
    assert make("net.py:Net").arch == f"{tmp_path / 'net.py'}:Net"
