"""What DisWOT needs from a network: the last feature map before pooling and the classifier-weight gradient.

Students are our own families (``forward_features`` + ``head``). A teacher can be any traced graph, so
:class:`TeacherProbe` works on its ``torch.export`` graph: it finds the last linear layer, walks back from its input
through flatten/pool ops to the last 4-D feature map, and rewires the graph to return ``(logits, features)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from kdcompress.errors import KDCompressError, first_line
from kdcompress.models.load import Teacher
from kdcompress.models.students import logits_and_features

aten = torch.ops.aten
_LINEAR = {aten.linear.default, aten.addmm.default}
_PASS_THROUGH = {
    aten.flatten.using_ints, aten.view.default, aten.reshape.default, aten.squeeze.dims, aten.squeeze.dim,
    aten.mean.dim, aten.adaptive_avg_pool2d.default, aten.avg_pool2d.default, aten._adaptive_avg_pool2d.default,
    aten.amax.default, aten.max_pool2d.default, aten.dropout.default, aten.clone.default, aten.contiguous.default,
}


@dataclass
class Signals:
    """One network's DisWOT inputs for one batch."""

    features: torch.Tensor  # (N, C, H, W) last feature map before pooling
    classifier_grad: torch.Tensor  # (K, C) d CE / d classifier weight


_RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")


def gaussian_init_(module: nn.Module, generator: torch.Generator) -> None:
    """DisWOT's initialisation (authors' code): conv/linear weights N(0, 1), biases 0, norm scale 1 and shift 0.

    Covers parameters and, for graphs converted from TorchScript (which hold weights as buffers), weight buffers.
    """
    tensors = list(module.named_parameters()) + [
        (n, b) for n, b in module.named_buffers() if b.is_floating_point() and not n.endswith(_RUNNING_STATS)
    ]
    with torch.no_grad():
        for name, p in tensors:
            if p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=generator))
            elif name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()


def student_signals(student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Signals:
    """One forward and one cross-entropy backward through a student (train mode).

    Our families expose ``forward_features`` and ``head``; any other network (a pruned teacher) goes through the
    same graph rewiring as the teacher, with batch statistics as a network in train mode uses.
    """
    if not hasattr(student, "forward_features"):
        return TeacherProbe(student, x[:2], batch_stats=True).signals(x, y)
    student.train()
    student.zero_grad(set_to_none=True)
    logits, feats = logits_and_features(student, x)
    F.cross_entropy(logits, y).backward()
    return Signals(feats.detach(), student.head.weight.grad.detach().clone())


def _graph_module(teacher: Teacher | nn.Module, example: torch.Tensor) -> fx.GraphModule:
    """A private copy of the teacher as an fx graph: the probe rewires and may re-initialise it."""
    module = teacher.module if isinstance(teacher, Teacher) else teacher
    if isinstance(module, fx.GraphModule):
        return copy.deepcopy(module)
    if isinstance(module, torch.jit.ScriptModule):
        from torch._export.converter import TS2EPConverter

        # The converted graph shares tensors with the ScriptModule: copy before rewiring.
        return copy.deepcopy(TS2EPConverter(module, (example,)).convert().module())
    batch = torch.export.Dim("batch", min=1, max=65536)
    return torch.export.export(copy.deepcopy(module).eval(), (example,), dynamic_shapes=({0: batch},)).module()


def _fetch(gm: nn.Module, target: str) -> torch.Tensor:
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _shape(node: fx.Node) -> tuple[int, ...] | None:
    val = node.meta.get("val")
    return tuple(val.shape) if isinstance(val, torch.Tensor) else None


class TeacherProbe:
    """The teacher's graph rewired to return ``(logits, features)``, with its classifier weight located."""

    def __init__(self, teacher: Teacher | nn.Module, example: torch.Tensor, batch_stats: bool = False,
                 purpose: str = "the DisWOT proxy", instead: str = "use another proxy: --set search.proxy=params",
                 ) -> None:
        try:
            gm = _graph_module(teacher, example)
        except Exception as e:  # noqa: BLE001 — tracing failures are many; the user-facing fact is one
            raise KDCompressError(
                f"cannot trace the teacher for {purpose} ({first_line(e)})",
                f"save it with torch.export (.pt2) or {instead}",
            ) from None
        self.gm, self.instead = gm, instead
        self.classifier_weight = self._rewire(gm)
        if batch_stats:
            self._use_batch_stats(gm)
        gm.recompile()

    def _rewire(self, gm: fx.GraphModule) -> torch.Tensor:
        nodes = list(gm.graph.nodes)
        linear = next((n for n in reversed(nodes) if n.op == "call_function" and n.target in _LINEAR), None)
        if linear is None:
            raise KDCompressError("the teacher has no final linear classifier", "DisWOT needs one; use another proxy: --set search.proxy=params")
        if linear.target != aten.linear.default or linear.args[1].op != "get_attr":
            raise KDCompressError("the teacher's classifier is not a plain linear layer", "use another proxy: --set search.proxy=params")
        weight = _fetch(gm, linear.args[1].target)
        # Walk back from the classifier's input through flatten/pool ops to the feature map they reduce.
        feat = linear.args[0]
        while feat.op == "call_function" and feat.target in _PASS_THROUGH:
            feat = feat.args[0]
        if _shape(feat) is None or len(_shape(feat)) != 4:
            # a transformer's classifier reads a token or pooled vector: DisWOT's maps (B, C, H, W) are not there
            raise KDCompressError(f"cannot find the teacher's 4-D feature map before its classifier (at {feat.name}): "
                                  "DisWOT compares convolutional feature maps", self.instead)
        out = next(n for n in nodes if n.op == "output")
        logits = out.args[0]
        logits = logits[0] if isinstance(logits, (tuple, list)) else logits
        out.args = ((logits, feat),)
        # The exported graph carries a pytree out-spec for a single tensor; return a plain tuple instead.
        gm.graph._codegen = fx.graph.CodeGen()
        return weight

    @staticmethod
    def _use_batch_stats(gm: fx.GraphModule) -> None:
        """Normalise with the batch's statistics, as a freshly initialised net in train mode does."""
        for n in gm.graph.nodes:
            if n.op == "call_function" and n.target == aten.batch_norm.default:
                args = list(n.args)
                args[3], args[4], args[5] = None, None, True
                n.args = tuple(args)

    def reinit_(self, generator: torch.Generator) -> None:
        gaussian_init_(self.gm, generator)

    def signals(self, x: torch.Tensor, y: torch.Tensor) -> Signals:
        # Only the classifier-weight gradient is needed, so only that tensor tracks gradients.
        for p in self.gm.parameters():
            p.requires_grad_(False)
        w = self.classifier_weight
        w.grad = None
        w.requires_grad_(True)
        logits, feats = self.gm(x)
        F.cross_entropy(logits, y).backward()
        return Signals(feats.detach(), w.grad.detach().clone())


@dataclass
class ProxyBatch:
    """One scoring mini-batch: inputs, labels, the teacher's signals on it (None when no proxy needs them) and the
    seed that initialises the students scored on it."""

    x: torch.Tensor
    y: torch.Tensor
    teacher: Signals | None
    seed: int


def proxy_batches(
    teacher: Teacher, x_train: torch.Tensor, y_train: torch.Tensor, prep: Callable[[torch.Tensor], torch.Tensor],
    n: int, batch: int, teacher_init: str, seed: int, with_teacher: bool,
) -> list[ProxyBatch]:
    """``n`` disjoint seeded mini-batches of the training data; batch ``b`` uses seed ``seed + b`` for the
    teacher's re-initialisation (``teacher_init="random"``, as in the paper) and for the students' init."""
    idx = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(seed))
    probe = None
    out = []
    for b in range(n):
        sel = idx[b * batch:(b + 1) * batch]
        x, y = prep(x_train[sel]), y_train[sel]
        signals = None
        if with_teacher:
            probe = probe or TeacherProbe(teacher, x[:2], batch_stats=teacher_init == "random")
            if teacher_init == "random":
                probe.reinit_(torch.Generator().manual_seed(seed + b))
            signals = probe.signals(x, y)
        out.append(ProxyBatch(x, y, signals, seed + b))
    return out
