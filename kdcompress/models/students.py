"""Student families and their builders.

A family maps a gene dict to an ``nn.Module`` whose ``forward_features(x)`` returns the last feature map before
pooling and whose ``head`` is the classifier (``nn.Linear``); the DisWOT proxy and feature distillers read those two.
Registered in :data:`STUDENTS` (name -> builder).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

Genes = dict[str, Any]


def _round8(c: int) -> int:
    return max(8, int(round(c / 8)) * 8)


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
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True)
        )
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


def build_resnet(genes: Genes, in_channels: int, num_classes: int) -> ResNet:
    """Build a :class:`ResNet` from genes; widths are rounded to multiples of 8."""
    return ResNet(
        in_channels,
        num_classes,
        widths=[_round8(w) for w in genes["widths"]],
        depths=[int(d) for d in genes["depths"]],
        stem=_round8(genes.get("stem", genes["widths"][0])),
        stem_stride=int(genes.get("stem_stride", 1)),
    )


StudentBuilder = Callable[[Genes, int, int], nn.Module]

STUDENTS: dict[str, StudentBuilder] = {
    "resnet": build_resnet,
}


def build_student(family: str, genes: Genes, in_channels: int, num_classes: int) -> nn.Module:
    """Build a student of ``family`` from ``genes`` (unknown family -> KDCompressError listing the valid ones)."""
    from kdcompress.errors import lookup

    return lookup(STUDENTS, family, "student family")(genes, in_channels, num_classes)
