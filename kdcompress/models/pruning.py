"""The ``pruned-teacher`` family: the teacher's own architecture with channels removed by Torch-Pruning's DepGraph
(Fang et al., "DepGraph: Towards Any Structural Pruning", CVPR 2023), so that a user's architecture can shrink too.

A candidate's genes are ``ratio`` (share of channels removed per layer, or over the whole net with ``global``) and
``importance`` (which channels go). Every criterion here is data-free and deterministic, so the same genes rebuild
the same student from the same teacher — the trainer and the exporter rebuild it that way, no pickle involved.
The pruned student keeps the teacher's surviving weights.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from kdcompress.errors import KDCompressError

Genes = dict


def _importances() -> dict[str, Callable[[], object]]:
    import torch_pruning as tp

    return {
        "l1": lambda: tp.importance.MagnitudeImportance(p=1),
        "l2": lambda: tp.importance.MagnitudeImportance(p=2),
        "bn_scale": tp.importance.BNScaleImportance,  # Network Slimming (Liu et al., ICCV 2017)
        "lamp": tp.importance.LAMPImportance,  # Lee et al., ICLR 2021
    }


IMPORTANCE_NAMES = ["l1", "l2", "bn_scale", "lamp"]
USE_FAMILIES = "use the student families instead: --set search.space=[resnet,mobilenetv2,vgg]"


def _classifier(module: nn.Module) -> list[nn.Module]:
    """The last Linear layer: its outputs are the classes, which must all stay."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return linears[-1:]


def check_prunable(teacher_module: nn.Module, kind: str) -> None:
    """Raise :class:`KDCompressError` (one line) when DepGraph cannot prune this teacher."""
    if kind in ("exported", "torchscript", "onnx"):
        raise KDCompressError(
            f"the pruned-teacher space needs an nn.Module teacher and this one is {'an' if kind[0] in 'aeiou' else 'a'} "
            f"{kind} graph",
            "pass its state_dict with --arch FILE.py:ClassName",
        )
    if not any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in teacher_module.modules()):
        raise KDCompressError("the teacher has no nn.Conv2d/nn.Linear layers for DepGraph to prune")


def prune_teacher(
    teacher_module: nn.Module, genes: Genes, example: torch.Tensor,
) -> nn.Module:
    """A copy of ``teacher_module`` with ``genes["ratio"]`` of its channels removed by ``genes["importance"]``."""
    import torch_pruning as tp

    net = copy.deepcopy(teacher_module).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DepGraph warns about every unwrapped parameter and recursion depth
        try:
            pruner = tp.pruner.MetaPruner(
                net, example, importance=_importances()[genes["importance"]](),
                pruning_ratio=float(genes["ratio"]), global_pruning=bool(genes.get("global", 0)),
                max_pruning_ratio=0.95, ignored_layers=_classifier(net),
            )
            pruner.step()
        except Exception as e:  # noqa: BLE001 — DepGraph's failures are many; the user-facing fact is one
            raise KDCompressError(
                f"DepGraph cannot prune this teacher ({type(e).__name__}: {str(e).splitlines()[0][:120]})",
                USE_FAMILIES,
            ) from None
    if sum(p.numel() for p in net.parameters()) >= sum(p.numel() for p in teacher_module.parameters()):
        raise KDCompressError("DepGraph found no channel it can remove from this teacher", USE_FAMILIES)
    return net


PRUNED_FAMILY = "pruned-teacher"


@dataclass
class PruningSource:
    """The teacher that ``pruned-teacher`` students are cut from, with an example input for DepGraph's trace.

    Pruned students are cached by genes: an evolution revisits the same few dozen gene combinations many times.
    """

    module: nn.Module
    example: torch.Tensor
    _cache: dict[str, nn.Module] = field(default_factory=dict, repr=False)

    def build(self, genes: Genes) -> nn.Module:
        key = json.dumps(genes, sort_keys=True)
        if key not in self._cache:
            self._cache[key] = prune_teacher(self.module, genes, self.example)
        return copy.deepcopy(self._cache[key])
