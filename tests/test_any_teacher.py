"""Teachers we did not design: Hugging Face transformers' image classifiers (built from configs, no download), cut
by the pruned-teacher space, run at the input size, exported to ONNX with parity, and rebuilt from what a run saves
(spec.json + a state_dict: no pickle). The full sweep of every cut the space offers is under ``make test-all``."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from kdcompress.errors import KDCompressError
from kdcompress.models.arch import LogitsOf
from kdcompress.models.pruning import PRUNED_FAMILY, PruningSource
from kdcompress.records import StudentSpec

T = pytest.importorskip("transformers", reason="the hf extra (make install installs it)")

SIDE, CLASSES = 32, 10
STAGES = {"hidden_sizes": [16, 32, 64, 64], "depths": [1, 1, 2, 1]}
# tiny configs of architectures designed elsewhere: CNNs, mobile CNNs, hybrids and transformers
ARCHS = {
    "resnet": lambda: T.ResNetConfig(embedding_size=16, **STAGES),
    "convnext": lambda: T.ConvNextConfig(image_size=SIDE, **STAGES),
    "convnextv2": lambda: T.ConvNextV2Config(image_size=SIDE, **STAGES),
    "regnet": lambda: T.RegNetConfig(embedding_size=16, groups_width=8, **STAGES),
    "bit": lambda: T.BitConfig(embedding_size=32, hidden_sizes=[32, 64, 64, 128], depths=[1, 1, 2, 1], num_groups=8),
    "mobilenet_v1": lambda: T.MobileNetV1Config(image_size=SIDE, depth_multiplier=0.25),
    "mobilenet_v2": lambda: T.MobileNetV2Config(image_size=SIDE, depth_multiplier=0.35),
    "efficientnet": lambda: T.EfficientNetConfig(image_size=SIDE, width_coefficient=0.25, depth_coefficient=0.3,
                                                 hidden_dim=320),
    "poolformer": lambda: T.PoolFormerConfig(**STAGES),
    "mobilevit": lambda: T.MobileViTConfig(image_size=SIDE, hidden_sizes=[32, 48, 64],
                                           neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64]),
    "vit": lambda: T.ViTConfig(image_size=SIDE, patch_size=8, hidden_size=64, num_hidden_layers=4,
                               num_attention_heads=4, intermediate_size=128),
    "swin": lambda: T.SwinConfig(image_size=SIDE, patch_size=4, embed_dim=16, depths=[1, 2], num_heads=[2, 4],
                                 window_size=4),
}
# the cut each architecture is checked with in make test: channels and a block at once
CUT = {"ratio": 0.5, "importance": "l2", "global": 0, "downsample": 0, "drop_blocks": 1, "round_to": 8}


def teacher(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    config = ARCHS[name]()
    config.num_labels = CLASSES
    return LogitsOf(T.AutoModelForImageClassification.from_config(config)).eval()


def example() -> torch.Tensor:
    return torch.rand(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1))


def reloads(source: PruningSource, genes: dict, cut: torch.nn.Module, tmp_path) -> None:
    """What a run saves for a cut (spec.json + model.pt) rebuilds the same network with weights_only loading."""
    from kdcompress.distill.trainer import load_student

    spec = StudentSpec(PRUNED_FAMILY, genes, 3, CLASSES)
    (tmp_path / "spec.json").write_text(json.dumps(spec.to_json()))
    torch.save(cut.state_dict(), tmp_path / "model.pt")
    again = load_student(tmp_path, source)
    x = example()
    with torch.no_grad():
        torch.testing.assert_close(again(x), cut.eval()(x))


def exports_with_parity(cut: torch.nn.Module, tmp_path) -> None:
    import onnxruntime as ort

    from kdcompress.export.onnx import check_parity, to_onnx

    path = tmp_path / "cut.onnx"
    to_onnx(cut.eval(), example()[:1], path)
    x = torch.rand(4, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(2))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        report = check_parity(cut(x).numpy(), got)
    assert report.passed, report


# exported to ONNX in make test (a CNN, a modern CNN, a transformer); every architecture under make test-all
EXPORTED_FAST = {"resnet", "convnext", "vit"}


def cut_of(name: str) -> tuple[PruningSource, torch.nn.Module]:
    """The architecture's teacher as a pruning source and its CUT, checked to run and to be smaller."""
    net = teacher(name)
    source = PruningSource(net, example())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cut = source.build(CUT)
    before, after = (sum(p.numel() for p in m.parameters()) for m in (net, cut))
    assert after < 0.8 * before, f"{name}: the cut kept {after}/{before} parameters"
    with torch.no_grad():
        assert cut(example()).shape == (2, CLASSES)
    return source, cut


@pytest.mark.parametrize("name", [pytest.param(n, marks=[] if n in EXPORTED_FAST else [pytest.mark.slow])
                                  for n in sorted(ARCHS)])
def test_cut_runs_exports_and_reloads(name, tmp_path):
    source, cut = cut_of(name)
    exports_with_parity(cut, tmp_path)
    reloads(source, CUT, cut, tmp_path)


@pytest.mark.parametrize("name", sorted(set(ARCHS) - EXPORTED_FAST))
def test_cut_runs_and_reloads(name, tmp_path):
    """The same without the ONNX export (seconds each), so that make test cuts every architecture."""
    source, cut = cut_of(name)
    reloads(source, CUT, cut, tmp_path)


def test_a_cut_that_breaks_the_network_is_one_line():
    """A cut whose network no longer runs (here: the first stride doubled in a ViT, whose position embeddings are
    sized for the full grid of patches) is refused in one line, never a traceback."""
    source = PruningSource(teacher("vit"), example())
    with pytest.raises(KDCompressError) as e:
        source.build({**CUT, "downsample": 1, "ratio": 0.0, "drop_blocks": 0})
    assert "\n" not in str(e.value)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ARCHS))
def test_every_cut_of_the_sweep_runs_or_is_refused_in_one_line(name):
    """Every cut the space offers builds a network that runs at the input size and is smaller than the teacher,
    or is refused with one line; on every architecture channel cuts and at least 20 cuts build (Swin, the fewest:
    26 of 95 — no stride doubling at 32 px, two blocks to drop, some channel ratios refused)."""
    from kdcompress.models.pruning import HEAD_SHARES
    from kdcompress.search.cuts import sweep_genes

    net = teacher(name)
    n_teacher = sum(p.numel() for p in net.parameters())
    source = PruningSource(net, example())
    built, channel_cuts = 0, 0
    genes_list = [g for g in sweep_genes(8) if g["ratio"] or g["downsample"] or g["drop_blocks"]]
    # the transformer genes (head shares, one layer in n), forced on every architecture at two channel ratios: each
    # builds or is refused in one line, whether the sweep would offer it to this teacher or not
    genes_list += [g for g in sweep_genes(8, HEAD_SHARES, True) if (g.get("heads") or g.get("drop_every"))
                   and g["ratio"] in (0.0, 0.5) and not g["downsample"]]
    for genes in genes_list:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cut = source.build(genes)
        except KDCompressError as e:
            assert "\n" not in str(e)
            continue
        built += 1
        channel_cuts += genes["ratio"] > 0
        with torch.no_grad():
            assert cut(example()).shape == (2, CLASSES)
        assert sum(p.numel() for p in cut.parameters()) <= n_teacher
    assert built >= 20 and channel_cuts > 0, f"{name}: {built}/{len(genes_list)} cuts built, {channel_cuts} of channels"


def test_logits_of_reads_the_structures_models_return():
    from kdcompress.models.arch import logits_of

    t = torch.ones(2, 3)
    assert logits_of(t) is t
    assert logits_of({"logits": t}) is t
    assert logits_of((t, None)) is t
    assert logits_of(T.modeling_outputs.ImageClassifierOutput(logits=t)) is t
    with pytest.raises(KDCompressError, match="without logits"):
        logits_of({"loss": t})
    with torch.no_grad():
        assert np.isfinite(teacher("resnet")(example()).numpy()).all()


class _Block(torch.nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv, self.bn = torch.nn.Conv2d(c, c, 3, padding=1, bias=False), torch.nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn(self.conv(x)))


class GraphOnlyNet(torch.nn.Module):
    """A CNN of no kdcompress family, with a residual block and a grouped convolution: what a user exports."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, 2, 1), torch.nn.BatchNorm2d(32), torch.nn.ReLU())
        self.block = _Block(32)
        self.dw = torch.nn.Conv2d(32, 64, 3, 2, 1, groups=2)
        self.head = torch.nn.Linear(64, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.dw(self.block(self.stem(x))))
        return self.head(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_a_pt2_teacher_without_recipe_is_cut_through_its_graph(tmp_path):
    """A torch.export program of a network we did not design, saved without a recipe file: its graph's layers become
    modules again (same logits), DepGraph cuts them, the cut runs, exports with parity and rebuilds from what a run
    saves."""
    from kdcompress.models.load import load_teacher

    torch.manual_seed(0)
    net = GraphOnlyNet().eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.export.save(torch.export.export(net, (example(),), dynamic_shapes=({0: batch},)), tmp_path / "t.pt2")
    teacher = load_teacher(tmp_path / "t.pt2")
    assert teacher.kind == "exported" and teacher.eager is not None
    with torch.no_grad():
        torch.testing.assert_close(teacher.eager(example()), net(example()))
    source = teacher.pruning_source(example())
    genes = {**CUT, "drop_blocks": 0}
    cut = source.build(genes)
    assert sum(p.numel() for p in cut.parameters()) < 0.5 * sum(p.numel() for p in net.parameters())
    assert cut(example()).shape == (2, CLASSES)
    exports_with_parity(cut, tmp_path)
    reloads(source, genes, cut, tmp_path)
    from kdcompress.export.onnx import onnx_bytes

    assert onnx_bytes(cut, example()[:1])  # the search times cuts through TorchScript's exporter
