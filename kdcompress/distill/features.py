"""Feature distillation: the last feature map before pooling of student and teacher, and the losses over it.

The teacher may be any format kdcompress loads (TorchScript, a ``torch.export`` program, an ``nn.Module``): its map
comes from the same rewired graph the DisWOT proxy uses (:class:`kdcompress.models.probe.TeacherProbe`), which
returns ``(logits, features)``. The student is one of our networks (a family or a cut of a family teacher), which
expose ``forward_features`` and ``head``. Where student and teacher maps differ in size, the larger one is
average-pooled to the smaller for FitNets (the one loss that compares positions one to one); SP, ICKD and CAT-KD
(whose class activation maps are pooled to a fixed size) are defined for any sizes; RKD and ND work on the pooled
embeddings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from kdcompress.distill.losses import LOSSES, class_activation_maps
from kdcompress.distill.teacher_cache import cached_on_disk
from kdcompress.errors import KDCompressError
from kdcompress.models.load import Teacher
from kdcompress.models.probe import TeacherProbe
from kdcompress.profiles import Losses


def _adapter(c_in: int, c_out: int) -> nn.Module:
    """A learned 1x1 convolution + batch norm from the student's channels to the teacher's (FitNets' regressor,
    ICKD's embedding)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))


def _same_size(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both maps at the smaller of their two spatial sizes (average pooling)."""
    size = (min(a.shape[2], b.shape[2]), min(a.shape[3], b.shape[3]))
    return F.adaptive_avg_pool2d(a, size), F.adaptive_avg_pool2d(b, size)


class FeatureDistiller(nn.Module):
    """The feature losses of ``cfg`` with their learned adapters (trained with the student, kept in its checkpoint,
    never exported) and the teacher's tap."""

    def __init__(self, cfg: Losses, teacher: Teacher, student: nn.Module, example: torch.Tensor) -> None:
        super().__init__()
        if not hasattr(student, "forward_features"):
            raise KDCompressError(
                "the feature losses (fitnet, sp, ickd, rkd, nd, cat) need a student with forward_features — kdcompress's "
                "families, or cuts of a teacher built from them",
                "use kd or dkd alone for this student: --set distill.loss={kd: {}}",
            )
        self.cfg = cfg
        # a private copy of the teacher's graph, with its own (evaluation) statistics
        self.probe = TeacherProbe(teacher, example[:2], purpose="the feature losses",
                                  instead="use kd or dkd alone: --set distill.loss={kd: {}}")
        for p in self.probe.gm.parameters():
            p.requires_grad_(False)
        student.eval()
        with torch.no_grad():
            c_s = student.forward_features(example[:2]).shape[1]
            c_t = self.probe.gm(example[:2])[1].shape[1]
        self.fitnet = _adapter(c_s, c_t) if cfg.fitnet else None
        self.ickd = (_adapter(c_s, c_t) if c_s != c_t else nn.Identity()) if cfg.ickd else None
        # ND compares embeddings in the teacher's width: a learned linear map where the widths differ (their EmbTrans)
        self.nd = (nn.Linear(c_s, c_t) if c_s != c_t else nn.Identity()) if cfg.nd else None
        self.class_means: torch.Tensor | None = None  # the teacher's mean embedding per class, for ND

    def adapters(self) -> list[tuple[str, nn.Module]]:
        return [(n, m) for n, m in (("fitnet", self.fitnet), ("ickd", self.ickd), ("nd", self.nd)) if m is not None]

    def adapter_parameters(self) -> list[nn.Parameter]:
        return [p for _, m in self.adapters() for p in m.parameters()]

    def adapter_state(self) -> dict:
        return {name: m.state_dict() for name, m in self.adapters()}

    def load_adapter_state(self, state: dict) -> None:
        for name, m in self.adapters():
            m.load_state_dict(state[name])

    @torch.no_grad()
    def fit_class_means(self, x: torch.Tensor, y: torch.Tensor, prep: Callable[[torch.Tensor], torch.Tensor],
                        maps: torch.Tensor | None = None) -> None:
        """The teacher's mean pooled embedding per class over ``x`` (ND's class centres), from ``maps`` where the
        teacher's maps are cached."""
        sums: torch.Tensor | None = None
        for i in range(0, len(x), 500):
            f = maps[i:i + 500].float() if maps is not None else self.teacher(prep(x[i:i + 500]))[1]
            emb = _pool(f)
            sums = torch.zeros(int(y.max()) + 1, emb.shape[1]) if sums is None else sums
            sums.index_add_(0, y[i:i + 500], emb)
        assert sums is not None
        self.class_means = sums / torch.bincount(y, minlength=len(sums)).clamp(min=1)[:, None].float()

    @torch.no_grad()
    def teacher(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's ``(logits, last feature map)``."""
        logits, feats = self.probe.gm(x)
        return logits, feats

    @torch.no_grad()
    def teacher_cached(self, x: torch.Tensor, prep: Callable[[torch.Tensor], torch.Tensor],
                       cache: Path) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's logits and maps on un-augmented ``x``, computed once and kept in ``cache``. The maps are
        kept in half precision (a 128 x 7 x 7 map for 54,000 images is 0.7 GB so); the losses read them as float."""
        def compute() -> dict[str, torch.Tensor]:
            logits, feats = [], []
            for i in range(0, len(x), 500):
                lg, ft = self.teacher(prep(x[i:i + 500]))
                logits.append(lg)
                feats.append(ft.half())
            return {"logits": torch.cat(logits), "features": torch.cat(feats)}

        kept = cached_on_disk(cache, len(x), compute)
        return kept["logits"], kept["features"]

    def loss(self, s_feats: torch.Tensor, t_feats: torch.Tensor, student: nn.Module,
             labels: list[tuple[float, torch.Tensor]]) -> torch.Tensor:
        """The weighted sum of the feature losses; gradients reach the student and the adapters only. ``labels``:
        ``[(1, y)]``, or for a mixed batch ``[(lam, y_a), (1 - lam, y_b)]`` (ND weighs its class centres so)."""
        cfg, t_feats = self.cfg, t_feats.detach()
        total = s_feats.new_zeros(())
        if self.fitnet is not None:
            total = total + cfg.fitnet.weight * LOSSES["fitnet"](*_same_size(self.fitnet(s_feats), t_feats))
        if cfg.sp:
            total = total + cfg.sp.weight * LOSSES["sp"](s_feats, t_feats)
        if self.ickd is not None:
            total = total + cfg.ickd.weight * LOSSES["ickd"](self.ickd(s_feats), t_feats)
        if cfg.rkd:
            total = total + LOSSES["rkd"](_pool(s_feats), _pool(t_feats), cfg.rkd.distance, cfg.rkd.angle)
        if self.nd is not None:
            assert self.class_means is not None, "fit_class_means first"
            s_emb, t_emb = self.nd(_pool(s_feats)), _pool(t_feats)
            centres = self.class_means.to(s_emb.device)
            total = total + cfg.nd.weight * sum(w * LOSSES["nd"](s_emb, t_emb, centres, y) for w, y in labels)
        if cfg.cat:
            cams = (class_activation_maps(s_feats, student.head.weight),
                    class_activation_maps(t_feats, self.probe.classifier_weight.detach().to(t_feats.device)))
            total = total + cfg.cat.weight * LOSSES["cat"](*cams, cfg.cat.resolution, cfg.cat.normalize)
        return total


def _pool(f: torch.Tensor) -> torch.Tensor:
    """The embedding: global average pooling of a feature map."""
    return torch.flatten(F.adaptive_avg_pool2d(f, 1), 1)
