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
from torch import nn

from kdcompress.distill.losses import LOSSES, Taps, embedding
from kdcompress.data.splits import Images, batches
from kdcompress.distill.teacher_cache import cached_on_disk
from kdcompress.errors import KDCompressError
from kdcompress.models.load import Teacher
from kdcompress.models.probe import TeacherProbe
from kdcompress.profiles import FEATURE_LOSSES, Losses


class FeatureDistiller(nn.Module):
    """The feature losses of ``cfg`` with their learned adapters (trained with the student, kept in its checkpoint,
    never exported) and the teacher's tap."""

    def __init__(self, cfg: Losses, teacher: Teacher, student: nn.Module, example: torch.Tensor) -> None:
        super().__init__()
        if not hasattr(student, "forward_features"):
            raise KDCompressError(
                f"the feature losses ({', '.join(FEATURE_LOSSES)}) need a student with forward_features — kdcompress's "
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
        # the learned adapters of the losses that train one (FitNets' regressor, ICKD's embedding, ND's EmbTrans)
        self.adapter_modules = nn.ModuleDict({name: entry.adapter(c_s, c_t) for name, entry in LOSSES.items()
                                              if entry.adapter is not None and getattr(cfg, name) is not None})
        self.class_means: torch.Tensor | None = None  # the teacher's mean embedding per class, for ND
        self.needs_class_means = any(e.needs_class_means and getattr(cfg, n) is not None for n, e in LOSSES.items())

    def adapters(self) -> list[tuple[str, nn.Module]]:
        return list(self.adapter_modules.items())

    def adapter_parameters(self) -> list[nn.Parameter]:
        return list(self.adapter_modules.parameters())

    def adapter_state(self) -> dict:
        return {name: m.state_dict() for name, m in self.adapters()}

    def load_adapter_state(self, state: dict) -> None:
        for name, m in self.adapters():
            m.load_state_dict(state[name])

    @torch.no_grad()
    def fit_class_means(self, x: Images, y: torch.Tensor, prep: Callable[[torch.Tensor], torch.Tensor],
                        maps: torch.Tensor | None = None) -> None:
        """The teacher's mean pooled embedding per class over ``x`` (ND's class centres), from ``maps`` where the
        teacher's maps are cached."""
        sums: torch.Tensor | None = None
        for idx, xb, yb in batches(x, y, 500):
            f = maps[idx].float() if maps is not None else self.teacher(prep(xb))[1]
            emb = embedding(f)
            sums = torch.zeros(int(y.max()) + 1, emb.shape[1]) if sums is None else sums
            sums.index_add_(0, yb, emb)
        assert sums is not None
        self.class_means = sums / torch.bincount(y, minlength=len(sums)).clamp(min=1)[:, None].float()

    @torch.no_grad()
    def teacher(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's ``(logits, last feature map)``."""
        logits, feats = self.probe.gm(x)
        return logits, feats

    @torch.no_grad()
    def teacher_cached(self, x: Images, prep: Callable[[torch.Tensor], torch.Tensor],
                       cache: Path) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's logits and maps on un-augmented ``x``, computed once and kept in ``cache``. The maps are
        kept in half precision (a 128 x 7 x 7 map for 54,000 images is 0.7 GB so); the losses read them as float."""
        def compute() -> dict[str, torch.Tensor]:
            logits, feats = [], []
            for _, xb, _ in batches(x, torch.zeros(len(x), dtype=torch.long), 500):
                lg, ft = self.teacher(prep(xb))
                logits.append(lg)
                feats.append(ft.half())
            return {"logits": torch.cat(logits), "features": torch.cat(feats)}

        kept = cached_on_disk(cache, len(x), compute)
        return kept["logits"], kept["features"]

    def taps(self, s_logits: torch.Tensor, t_logits: torch.Tensor, s_maps: torch.Tensor, t_maps: torch.Tensor,
             student: nn.Module, labels: list[tuple[float, torch.Tensor]], epoch: int, epochs: int) -> Taps:
        """A batch as the losses read it; gradients reach the student and the adapters only."""
        return Taps(s_logits, t_logits, labels, epoch, epochs, s_maps, t_maps.detach(), self.adapter_modules,
                    student.head.weight, self.probe.classifier_weight.detach(), self.class_means)
