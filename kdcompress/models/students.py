"""Student families and their builders.

A family maps a gene dict to an ``nn.Module`` whose ``forward_features(x)`` returns the last feature map before
pooling and whose ``head`` is the classifier (``nn.Linear``); the DisWOT proxy and feature distillers read those two.
Registered in :data:`STUDENTS` (name -> builder).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdcompress.errors import KDCompressError
from kdcompress.models.pruning import BORN_AGAIN, PRUNED_FAMILY, PruningSource
from kdcompress.registry import Registry

Genes = dict[str, Any]


def _round8(c: int) -> int:
    return max(8, round(c / 8) * 8)


class BasicBlock(nn.Module):
    """ResNet basic block (He et al., CVPR 2016): two 3x3 convs with a projection shortcut when shapes change."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A small-image ResNet: 3x3 stem, stages of basic blocks (stride 1 then 2, 2, ...), global pool, linear head.

    Genes: ``stem`` (channels), ``widths`` and ``depths`` (one entry per stage), ``stem_stride`` (1 or 2).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: list[int],
        depths: list[int],
        stem: int | None = None,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        if len(widths) != len(depths) or not widths:
            raise ValueError(f"widths {widths} and depths {depths} must be non-empty and of equal length")
        stem = stem or widths[0]
        self.stem = nn.Sequential(*_stem(in_channels, stem, stem_stride))
        blocks: list[nn.Module] = []
        cin = stem
        for i, (w, d) in enumerate(zip(widths, depths)):
            for j in range(d):
                blocks.append(BasicBlock(cin, w, 2 if (i > 0 and j == 0) else 1))
                cin = w
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(cin, num_classes)
        self.feature_dim = cin

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.forward_features(x)), 1))


def build_resnet(genes: Genes, in_channels: int, num_classes: int, pruning: PruningSource | None = None) -> ResNet:
    """Build a :class:`ResNet` from genes; widths are rounded to multiples of 8."""
    return ResNet(
        in_channels,
        num_classes,
        widths=[_round8(w) for w in genes["widths"]],
        depths=[int(d) for d in genes["depths"]],
        stem=_round8(genes.get("stem", genes["widths"][0])),
        stem_stride=int(genes.get("stem_stride", 1)),
    )


class InvertedResidual(nn.Module):
    """MobileNetV2 block (Sandler et al., CVPR 2018): 1x1 expand, kxk depthwise, 1x1 linear project; identity
    shortcut when stride is 1 and widths match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, kernel: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class _Backbone(nn.Module):
    """Shared tail of every family: ``features`` -> global average pool -> linear ``head``."""

    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.forward_features(x)), 1))


def _conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _stem(cin: int, cout: int, stride: int) -> list[nn.Module]:
    """A 3x3 conv-BN-ReLU of stride 1 or 2; stride 4 is the ImageNet-style stem: stride 2, then a 3x3 max pool of
    stride 2 (as torchvision's ResNet, with a 3x3 conv instead of its 7x7)."""
    if stride == 4:
        return [*_conv_bn_relu(cin, cout, 3, 2), nn.MaxPool2d(3, 2, 1)]
    return _conv_bn_relu(cin, cout, 3, stride)


def build_mobilenetv2(genes: Genes, in_channels: int, num_classes: int, pruning: PruningSource | None = None) -> nn.Module:
    """MobileNetV2-style student: 3x3 stem (stride 1 or 2), three stages of inverted residuals (first block of
    stages 2 and 3 strides 2), a 1x1 conv to ``last`` channels, pool, linear head.

    Genes: ``stem``, ``stem_stride``, ``widths``, ``depths``, ``expand`` and ``kernel`` (one per stage), ``last``.
    """
    stem = _round8(genes["stem"])
    layers: list[nn.Module] = _stem(in_channels, stem, int(genes.get("stem_stride", 1)))
    cin = stem
    for i, (w, d, e, k) in enumerate(zip(genes["widths"], genes["depths"], genes["expand"], genes["kernel"])):
        for j in range(int(d)):
            layers.append(InvertedResidual(cin, _round8(w), 2 if (i > 0 and j == 0) else 1, int(e), int(k)))
            cin = _round8(w)
    last = _round8(genes["last"])
    layers += _conv_bn_relu(cin, last, 1)
    return _Backbone(nn.Sequential(*layers), last, num_classes)


def build_vgg(genes: Genes, in_channels: int, num_classes: int, pruning: PruningSource | None = None) -> nn.Module:
    """VGG-style student (Simonyan & Zisserman, ICLR 2015) with BatchNorm: stages of kxk conv-BN-ReLU, a 2x2 max
    pool between stages, global pool, linear head. No shortcuts.

    Genes: ``widths``, ``depths`` and ``kernel`` (one per stage).
    """
    layers: list[nn.Module] = []
    cin = in_channels
    for i, (w, d, k) in enumerate(zip(genes["widths"], genes["depths"], genes["kernel"])):
        if i > 0:
            layers.append(nn.MaxPool2d(2))
        for _ in range(int(d)):
            layers += _conv_bn_relu(cin, _round8(w), int(k))
            cin = _round8(w)
    return _Backbone(nn.Sequential(*layers), cin, num_classes)


def build_cut(genes: Genes, in_channels: int, num_classes: int, pruning: PruningSource | None = None) -> nn.Module:
    """A cut of the teacher (``pruned-teacher``): rebuilt from it, keeping its surviving trained weights."""
    return _teacher(pruning, PRUNED_FAMILY).build(genes)


def build_born_again(genes: Genes, in_channels: int, num_classes: int,
                     pruning: PruningSource | None = None) -> nn.Module:
    """The teacher's whole architecture, freshly initialised (``born-again``)."""
    return _teacher(pruning, BORN_AGAIN).fresh()


def _teacher(pruning: PruningSource | None, family: str) -> PruningSource:
    if pruning is None:
        raise KDCompressError(f"a {family} student is rebuilt from its teacher, and none was given")
    return pruning


StudentBuilder = Callable[..., nn.Module]  # (genes, in_channels, num_classes, pruning=None) -> student

STUDENTS: Registry[StudentBuilder] = Registry("student family", {
    "resnet": build_resnet,
    "mobilenetv2": build_mobilenetv2,
    "vgg": build_vgg,
    PRUNED_FAMILY: build_cut,
    BORN_AGAIN: build_born_again,
})


def build_student(
    family: str, genes: Genes, in_channels: int, num_classes: int, pruning: PruningSource | None = None,
) -> nn.Module:
    """Build a student of ``family`` from ``genes`` (unknown family -> KDCompressError listing the valid ones).

    ``pruned-teacher`` students are cut from the teacher, so they need ``pruning`` (the teacher and an example
    input); they start from the teacher's surviving weights, the other families from a fresh init. ``born-again``
    is the teacher's whole architecture, freshly initialised (it needs ``pruning`` too).
    """
    return STUDENTS[family](genes, in_channels, num_classes, pruning)


def _stage_blocks(state: dict[str, torch.Tensor]) -> list[list[int]]:
    """The indices of a :class:`ResNet`'s blocks (``stages.<i>``) per stage, from its state_dict alone: a stage
    starts at block 0 and at every later block with a shortcut (the stride-2 first block of each stage)."""
    indices = {int(k.split(".")[1]) for k in state if k.startswith("stages.") and k.split(".")[1].isdigit()}
    if not indices:
        return []
    n = max(indices) + 1
    starts = [0] + [i for i in range(1, n) if f"stages.{i}.shortcut.0.weight" in state]
    return [list(range(a, b)) for a, b in zip(starts, [*starts[1:], n])]


EXTRA_BLOCKS = ("identity", "fresh")


def inherit_weights(student: nn.Module, teacher: nn.Module, extra_blocks: str = "identity") -> int:
    """Copy into ``student`` the teacher's tensors that have a place of the same shape in it; return how many.

    For a :class:`ResNet` student of the teacher's widths and other depths (the depth space of DisWOT's S1
    setting) that is the stem, the head and the first blocks of each stage, block *j* of a stage from the
    teacher's block *j* of the same stage (a student with another number of stages is a one-line error). A block
    deeper than the teacher's starts, with ``extra_blocks="identity"``, as the identity: its last BatchNorm's scale
    and shift are zero, so it adds nothing to its (post-ReLU, non-negative) input, and a student at least as deep
    as the teacher in every stage computes at init exactly what the teacher computes (Net2DeeperNet, Chen et al.,
    ICLR 2016, reached the way Goyal et al. 2017 zero-initialise a residual branch; a stage shallower than the
    teacher's drops its last blocks); ``"fresh"`` leaves it randomly initialised. Networks without numbered
    ``stages`` share tensors by name."""
    if extra_blocks not in EXTRA_BLOCKS:
        raise ValueError(f"extra_blocks must be one of {EXTRA_BLOCKS}, not {extra_blocks!r}")
    theirs, ours = teacher.state_dict(), student.state_dict()
    rename: dict[str, str] = {}
    extra: list[int] = []
    t_stages, s_stages = _stage_blocks(theirs), _stage_blocks(ours)
    if t_stages and s_stages and len(t_stages) != len(s_stages):
        raise KDCompressError(f"the student has {len(s_stages)} stages and the teacher {len(t_stages)}: init: teacher "
                              "maps their blocks stage by stage", "give the student the teacher's number of stages")
    for t_blocks, s_blocks in zip(t_stages, s_stages):
        rename.update({f"stages.{t}.": f"stages.{s}." for t, s in zip(t_blocks, s_blocks)})
        extra += s_blocks[len(t_blocks):]
    shared = {}
    for key, value in theirs.items():
        if key.startswith("stages."):
            prefix = ".".join(key.split(".")[:2]) + "."
            if prefix not in rename:
                continue
            key = rename[prefix] + key[len(prefix):]
        if key in ours and ours[key].shape == value.shape:
            shared[key] = value
    student.load_state_dict({**ours, **shared})
    if extra_blocks == "identity" and shared:
        for i in extra:  # a stage's later blocks keep its width and stride 1: their shortcut is the identity
            block = student.get_submodule(f"stages.{i}")
            if isinstance(block, BasicBlock) and isinstance(block.shortcut, nn.Identity):
                with torch.no_grad():
                    block.bn2.weight.zero_()
                    block.bn2.bias.zero_()
    return len(shared)


def logits_and_features(student: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, last feature map before pooling)`` of one of our networks (``forward_features`` + ``head``) in
    one forward pass: what ``forward`` computes, with the map it pools."""
    feats = student.forward_features(x)
    return student.head(torch.flatten(F.adaptive_avg_pool2d(feats, 1), 1)), feats
