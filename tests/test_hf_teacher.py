"""Hugging Face model folders as teachers (issue 30): read offline, their image processor's size and normalisation
as the data's defaults, and every folder that is not one a usable image classifier refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kdcompress.errors import KDCompressError
from kdcompress.models.hf import check_folder, read_preprocessing
from kdcompress.models.load import load_teacher

T = pytest.importorskip("transformers", reason="the hf extra (make install installs it)")

SIDE = 32
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def save_vit(folder: Path, processor: T.BaseImageProcessor | None = None) -> torch.nn.Module:
    torch.manual_seed(0)
    config = T.ViTConfig(image_size=SIDE, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, num_labels=4)
    model = T.ViTForImageClassification(config).eval()
    model.save_pretrained(folder)
    (processor or T.ViTImageProcessor(size={"height": SIDE, "width": SIDE})).save_pretrained(folder)
    return model


def test_a_saved_folder_loads_offline_and_gives_its_logits(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = save_vit(tmp_path / "vit")
    teacher = load_teacher(tmp_path / "vit")
    x = torch.rand(3, 3, SIDE, SIDE)
    assert teacher.kind == "hf"
    with torch.no_grad():
        torch.testing.assert_close(teacher.logits(x), model(pixel_values=x).logits)
    assert teacher.sha256 == load_teacher(tmp_path / "vit").sha256


@pytest.mark.parametrize(("processor", "size", "crop_pct", "mean"), [
    (lambda: T.ViTImageProcessor(size={"height": 48, "width": 48}), 48, 1.0, [0.5, 0.5, 0.5]),
    (lambda: T.ConvNextImageProcessor(size={"shortest_edge": 40}, crop_pct=0.875, image_mean=IMAGENET[0],
                                      image_std=IMAGENET[1]), 40, 0.875, IMAGENET[0]),
    (lambda: T.ViTImageProcessor(size={"height": 32, "width": 32}, do_normalize=False), 32, 1.0, [0.0]),
])
def test_the_image_processor_sets_the_eval_transform(tmp_path, processor, size, crop_pct, mean):
    save_vit(tmp_path / "m", processor())
    pre = read_preprocessing(tmp_path / "m")
    assert (pre.size, pre.crop_pct) == (size, crop_pct)
    assert pre.mean == pytest.approx(mean)


def test_the_processor_fills_the_profile_and_the_users_flags_win(tmp_path):
    from kdcompress.cli.options import make_inputs

    save_vit(tmp_path / "m", T.ConvNextImageProcessor(size={"shortest_edge": 40}, crop_pct=0.875,
                                                      image_mean=IMAGENET[0], image_std=IMAGENET[1]))
    common = {"profile": "ci", "data": "fashion-mnist", "arch": None, "trust_pickle": False, "seed": 0, "overrides": (),
                  "strict_target": False}
    data = make_inputs(tmp_path / "m", mean=(), std=(), **common).profile.data
    assert (data.image_size, data.crop_pct) == (40, 0.875) and data.mean == pytest.approx([0.485, 0.456, 0.406])
    data = make_inputs(tmp_path / "m", mean=(0.5,), std=(0.25,), image_size=24, **common).profile.data
    assert (data.image_size, data.mean, data.std) == (24, [0.5], [0.25])


def _folder(tmp_path: Path, config: dict | None, weights: bool = True) -> Path:
    d = tmp_path / "m"
    d.mkdir()
    if config is not None:
        (d / "config.json").write_text(json.dumps(config))
    if weights:
        (d / "model.safetensors").write_bytes(b"")
    return d


@pytest.mark.parametrize(("config", "weights", "said"), [
    (None, True, "without config.json"),
    ({"model_type": "vit"}, False, "no weights"),
    ({"model_type": "custom", "auto_map": {"AutoModel": "m.Net"}}, True, "brings its own code"),
    ({"model_type": "bert", "architectures": ["BertForSequenceClassification"]}, True, "(text) model"),
])
def test_a_folder_that_is_not_a_usable_image_classifier_is_one_line(tmp_path, config, weights, said):
    folder = _folder(tmp_path, config, weights)
    with pytest.raises(KDCompressError) as e:
        load_teacher(folder)
    assert said in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(KDCompressError):
        check_folder(folder)


def test_a_corrupt_weights_file_is_one_line(tmp_path):
    save_vit(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(KDCompressError) as e:
        load_teacher(tmp_path / "m")
    assert "\n" not in str(e.value)
