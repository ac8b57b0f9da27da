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



def _cut(model: torch.nn.Module, **genes) -> torch.nn.Module:
    from kdcompress.models.pruning import prune_teacher

    base = {"ratio": 0.0, "importance": "l2", "global": 0, "downsample": 0, "drop_blocks": 0, "round_to": 1}
    return prune_teacher(model, {**base, **genes}, torch.rand(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0)))


def test_a_cut_its_config_can_say_is_a_pretrained_folder_that_optimum_exports(tmp_path):
    """Fewer layers and one MLP width for all: a ViT of the teacher's class whose config says so, saved with
    save_pretrained, loaded back by from_pretrained with the cut's logits, and optimum's ONNX of the folder agrees."""
    import onnxruntime as ort

    from kdcompress.export.pretrained import as_pretrained, optimum_onnx, save_pretrained
    from kdcompress.models.arch import LogitsOf

    pytest.importorskip("optimum.exporters.onnx", reason="the hf extra (make install installs it)")
    save_vit(tmp_path / "teacher")
    teacher = LogitsOf(T.AutoModelForImageClassification.from_pretrained(tmp_path / "teacher")).eval()
    cut = _cut(teacher, ratio=0.5, drop_blocks=1, round_to=8)
    x = torch.rand(3, 3, SIDE, SIDE)
    model = as_pretrained(cut, x)
    assert (model.config.num_hidden_layers, model.config.intermediate_size) == (1, 32)
    (tmp_path / ".s0.hf.killed").mkdir()  # a save a kill interrupted: cleared by the next one
    folder = save_pretrained(model, tmp_path / "s0.hf", tmp_path / "teacher")
    assert not (tmp_path / ".s0.hf.killed").exists()
    assert (folder / "preprocessor_config.json").is_file() and (folder / "model.safetensors").is_file()
    back = T.AutoModelForImageClassification.from_pretrained(folder, local_files_only=True).eval()
    with torch.no_grad():
        want = cut(x)
        torch.testing.assert_close(back(pixel_values=x).logits, want)
    optimum_onnx(folder, tmp_path / "s0.onnx", 18)
    session = ort.InferenceSession(str(tmp_path / "s0.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert abs(got - want.numpy()).max() < 1e-4


def test_a_cut_no_config_can_say_stays_a_kdcompress_student():
    """Widths that differ by layer (global pruning), and a doubled stride no config field holds: the config's model
    is built and loads every weight of the latter, but computes other logits — so neither is passed off as one."""
    from kdcompress.export.pretrained import as_pretrained
    from kdcompress.models.arch import LogitsOf

    torch.manual_seed(0)
    vit = LogitsOf(T.ViTForImageClassification(T.ViTConfig(
        image_size=SIDE, patch_size=8, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
        intermediate_size=128, num_labels=4))).eval()
    uneven = _cut(vit, ratio=0.5, **{"global": 1})
    widths = {m.out_features for n, m in uneven.named_modules() if n.endswith("intermediate.dense")}
    assert len(widths) > 1 and as_pretrained(uneven, torch.rand(2, 3, SIDE, SIDE)) is None
    resnet = LogitsOf(T.ResNetForImageClassification(T.ResNetConfig(
        embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], num_labels=4))).eval()
    assert as_pretrained(_cut(resnet, downsample=1), torch.rand(2, 3, SIDE, SIDE)) is None
    assert as_pretrained(resnet, torch.rand(2, 3, SIDE, SIDE)) is not None  # the uncut network is, as a control


# the ci profile as users get it, made small: one cut per target, a short distillation, quick measurements
CI_SMALL = ["--profile", "ci", "--set", "search.space=[pruned-teacher]", "--set", "budget.latency_ratio=[0.95]",
            "--set", "budget.flops_ratio=null", "--set", "distill.epochs=1", "--set", "distill.batch=32",
            "--set", "export.calibration_samples=32", "--set", "export.parity_samples=16", "--set", "bench.warmup=2",
            "--set", "bench.iters=5", "--set", "bench.repeats=1", "--set", "bench.throughput_batch=4",
            "--set", "bench.throughput_iters=2", "--set", "data.workers=0"]


def trained_vit(folder: Path, photos: Path) -> None:
    """A tiny ViT that has seen the photos (above chance, as shrink's check wants), saved with save_pretrained."""
    from kdcompress.data.splits import FolderOptions, load_data

    data = load_data(str(photos), folder=FolderOptions(image_size=SIDE))
    torch.manual_seed(0)
    config = T.ViTConfig(image_size=SIDE, patch_size=8, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                         intermediate_size=64, num_labels=data.num_classes)
    model = T.ViTForImageClassification(config)
    x = (data.x_train[:].float() / 255 - 0.5) / 0.5  # the processor's normalisation (mean = std = 0.5)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(pixel_values=x).logits, data.y_train).backward()
        opt.step()
    model.eval().save_pretrained(folder)
    T.ViTImageProcessor(size={"height": SIDE, "width": SIDE}).save_pretrained(folder)


@pytest.mark.slow  # ~30 s, a whole shrink: make test-all; the pieces are tested above
def test_a_vit_folder_shrinks_to_hugging_face_folders_exported_by_optimum(tmp_path):
    """The issue's acceptance, small: a ViT saved with save_pretrained and a folder of photos; the students are
    Hugging Face folders (from_pretrained loads them and they compute the student's logits), their float ONNX comes
    from optimum's exporter and matches them, the report names the folders, and check gates the best artifact."""
    import subprocess
    import sys

    import onnxruntime as ort

    from .test_folders import make_folder

    pytest.importorskip("optimum.exporters.onnx", reason="the hf extra (make install installs it)")
    make_folder(tmp_path / "photos", [(40, 36), (48, 48), (36, 52)])
    trained_vit(tmp_path / "vit", tmp_path / "photos")
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "kdcompress.cli", "shrink", str(tmp_path / "vit"), "--data",
                           str(tmp_path / "photos"), *CI_SMALL, "--out", str(out), "--json"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    exported = json.loads((out / "artifacts" / "export.json").read_text())
    folders = {sid: e["pretrained"] for sid, e in exported["students"].items()}
    assert folders and all(e["exporter"] == "optimum" for e in exported["students"].values())
    assert all(r["pretrained"] == folders[r["student"]] for r in result["students"])
    sid, folder = next(iter(folders.items()))
    student = T.AutoModelForImageClassification.from_pretrained(folder, local_files_only=True).eval()
    assert student.config.num_hidden_layers <= 4 and (Path(folder) / "preprocessor_config.json").is_file()
    session = ort.InferenceSession(str(out / "artifacts" / f"{sid}.onnx"), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 3, SIDE, SIDE)
    with torch.no_grad():
        want = student(pixel_values=x).logits.numpy()
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert abs(got - want).max() < 1e-4
    assert folder in (out / "report.md").read_text()
    cli = [sys.executable, "-m", "kdcompress.cli"]
    base = tmp_path / "baseline.json"
    for args in (["baseline", "save", str(out), "-o", str(base), "--repetitions", "6"],
                 ["check", str(out), "--baseline", str(base), "--repetitions", "6", "--max-slowdown", "1.0"]):
        gate = subprocess.run([*cli, *args], capture_output=True, text=True, check=False)
        assert gate.returncode == 0, gate.stdout[-2000:] + gate.stderr[-2000:]
    assert gate.stdout.startswith(f"PASS {Path(result['students'][0]['artifact']).name[:2]}")


def test_heads_are_cut_least_important_first_and_the_folder_rebuilds_them(tmp_path):
    """A share of every layer's heads goes, the ones of smallest weight norm; the config records them
    (pruned_heads), so from_pretrained rebuilds the same network."""
    from kdcompress.export.pretrained import as_pretrained, save_pretrained
    from kdcompress.models.arch import LogitsOf
    from kdcompress.models.pruning import cut_heads, has_heads

    torch.manual_seed(0)
    vit = T.ViTForImageClassification(T.ViTConfig(
        image_size=SIDE, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, num_labels=4)).eval()
    with torch.no_grad():  # head 2 of layer 0 (its query rows) and head 0 of layer 1 (all four parts) the weakest
        vit.vit.encoder.layer[0].attention.attention.query.weight[32:48] *= 0.01
        second = vit.vit.encoder.layer[1].attention
        for w in (second.attention.query.weight, second.attention.key.weight, second.attention.value.weight):
            w[0:16] *= 0.01
        second.output.dense.weight[:, 0:16] *= 0.01
    teacher = LogitsOf(vit)
    cut = _cut(teacher, heads=0.25)
    assert cut.inner.config.pruned_heads == {0: [2], 1: [0]} and not vit.config.pruned_heads
    x = torch.rand(2, 3, SIDE, SIDE)
    folder = save_pretrained(as_pretrained(cut, x), tmp_path / "s.hf", None)
    back = T.AutoModelForImageClassification.from_pretrained(folder, local_files_only=True).eval()
    assert back.vit.encoder.layer[0].attention.attention.query.out_features == 48
    with torch.no_grad():
        torch.testing.assert_close(back(pixel_values=x).logits, cut(x))
    # a teacher already cut (a kdcompress folder used as a teacher) is cut again by its heads' original numbers
    again = _cut(LogitsOf(back), heads=0.34)
    assert all(len(again.inner.config.pruned_heads[i]) == 2 for i in (0, 1))
    assert 2 in again.inner.config.pruned_heads[0] and 0 in again.inner.config.pruned_heads[1]
    assert again.inner.vit.encoder.layer[0].attention.attention.query.out_features == 32
    assert has_heads(teacher) and not has_heads(torch.nn.Linear(2, 2))
    with pytest.raises(KDCompressError, match="no attention heads"):
        cut_heads(torch.nn.Sequential(torch.nn.Linear(2, 2)), 0.5)
    # Swin prunes heads by a layer list it does not have: no head cuts offered, and a forced one is one line
    swin = LogitsOf(T.SwinForImageClassification(T.SwinConfig(image_size=SIDE, patch_size=4, embed_dim=16,
                                                              depths=[1, 2], num_heads=[2, 4], window_size=4)))
    assert not has_heads(swin)
    with pytest.raises(KDCompressError, match="no attention heads"):
        cut_heads(swin, 0.5)


def test_every_nth_layer_goes_distilbert_style_and_only_transformers_sweep_it(monkeypatch):
    """drop_every 2 keeps layers 0 and 3 of four (one out of two, spread with the first and the last kept: of
    BERT's 12, DistilBERT's 0, 2, 4, 7, 9, 11); the config says two layers; both drop genes at once are refused; the
    sweep offers it (and head cuts) on a transformer, and leaves a CNN's genes as they were."""
    from kdcompress.export.pretrained import as_pretrained
    from kdcompress.models.arch import LogitsOf
    from kdcompress.models.pruning import HEAD_SHARES, PruningSource, has_heads, has_layer_list, spread_kept
    from kdcompress.models.students import build_resnet
    from kdcompress.search import cuts
    from kdcompress.search.cuts import DROP_EVERY, sweep_genes

    torch.manual_seed(0)
    vit = T.ViTForImageClassification(T.ViTConfig(
        image_size=SIDE, patch_size=8, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=64, num_labels=4)).eval()
    teacher = LogitsOf(vit)
    cut = _cut(teacher, drop_every=2)
    kept = cut.inner.vit.encoder.layer
    assert len(kept) == 2
    for got, want in zip(kept, (vit.vit.encoder.layer[0], vit.vit.encoder.layer[3])):
        torch.testing.assert_close(got.output.dense.weight, want.output.dense.weight)
    assert as_pretrained(cut, torch.rand(2, 3, SIDE, SIDE)).config.num_hidden_layers == 2
    assert spread_kept(12, 2) == [0, 2, 4, 7, 9, 11] and spread_kept(12, 4) == [0, 1, 3, 4, 6, 7, 8, 10, 11]
    with pytest.raises(KDCompressError, match="both set"):
        _cut(teacher, drop_every=2, drop_blocks=1)
    x = torch.rand(2, 3, SIDE, SIDE)
    cnn = build_resnet({"stem": 8, "widths": [8, 16], "depths": [2, 2]}, 3, 4).eval()
    assert has_layer_list(teacher, x) and has_heads(teacher)
    assert not has_layer_list(cnn, x) and not has_heads(cnn)
    sweep = sweep_genes(8, HEAD_SHARES, True)
    assert {g.get("drop_every", 0) for g in sweep} == {0, *DROP_EVERY} and sweep_genes(8) == sweep_genes(8, (0.0,), False)
    assert not any("drop_every" in g or "heads" in g for g in sweep_genes(8))
    # as many layers dropped, other layers kept: two networks, both swept (not merged as one by their shapes)
    two = [{"ratio": 0.0, "importance": "l2", "global": 0, "downsample": 0, "drop_blocks": 2, "round_to": 1},
           {"ratio": 0.0, "importance": "l2", "global": 0, "downsample": 0, "drop_blocks": 0, "drop_every": 2,
            "round_to": 1}]
    monkeypatch.setattr(cuts, "sweep_genes", lambda *a: two + two)
    assert [g for _, g in cuts.sized_cuts(PruningSource(teacher, x), 8)] == two


def test_minilm_relations_train_a_cut_vit_and_refuse_a_cnn_student(tmp_path):
    """The relation loss hooks the last attention layer of the cut (half its heads gone) and of the teacher, the
    teacher runs on every batch, the term changes what the student learns, and the hooks are gone afterwards; a CNN
    student is refused in one line."""
    from kdcompress.data.splits import DataSplits, Preprocess
    from kdcompress.distill.trainer import distill, load_student
    from kdcompress.job import Job
    from kdcompress.models.pruning import PRUNED_FAMILY
    from kdcompress.profiles import Distill
    from kdcompress.records import StudentSpec

    save_vit(tmp_path / "vit")
    teacher = load_teacher(tmp_path / "vit")
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (48, 3, SIDE, SIDE), generator=g, dtype=torch.uint8)
    y = torch.arange(48) % 4
    data = DataSplits("t", x[:32], y[:32], x[32:40], y[32:40], x[40:], y[40:])
    genes = {"ratio": 0.0, "importance": "l2", "global": 0, "downsample": 0, "drop_blocks": 0, "heads": 0.5,
             "round_to": 1}
    spec = StudentSpec(PRUNED_FAMILY, genes, 3, 4)
    job = Job(teacher, data, Preprocess((0.5,), (0.5,)), tmp_path / "cache" / "t.pt", 0)
    weights = {}
    for name, loss in (("kd", {"kd": {}}), ("minilm", {"kd": {}, "minilm": {"weight": 10.0}})):
        cfg = Distill(epochs=1, batch=16, lr=0.01, loss=loss, device="cpu")
        distill(job, spec, cfg, tmp_path / name)
        weights[name] = load_student(tmp_path / name, teacher.pruning_source(job.prep(x[:2]))).state_dict()
    query = teacher.module.inner.vit.encoder.layer[-1].attention.attention.query
    assert not query._forward_hooks  # removed after the distillation
    assert any(not torch.equal(weights["kd"][k], weights["minilm"][k]) for k in weights["kd"])
    cnn = StudentSpec("resnet", {"stem": 8, "widths": [8, 16, 16], "depths": [1, 1, 1]}, 3, 4)
    with pytest.raises(KDCompressError, match="needs a transformer student"):
        distill(job, cnn, Distill(epochs=1, batch=16, loss={"kd": {}, "minilm": {}}, device="cpu"), tmp_path / "c")
