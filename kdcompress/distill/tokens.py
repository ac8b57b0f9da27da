"""What the transformer relation losses (``minilm``) read: the queries, keys and values of the last attention layer
of student and teacher, kept by forward hooks as each network runs (Hugging Face's ViT/DeiT/BERT-like layout, found
as :func:`kdcompress.models.pruning.attention_layers` finds it for head cuts)."""

from __future__ import annotations

import torch
from torch import nn

from kdcompress.errors import KDCompressError
from kdcompress.models.pruning import attention_layers

PROJECTIONS = ("query", "key", "value")
INSTEAD = "use kd or dkd alone: --set distill.loss={kd: {}}"


class LastAttention:
    """Forward hooks on the query, key and value projections of ``net``'s last attention layer; :meth:`take`
    returns the latest outputs (with their graph, for the student)."""

    def __init__(self, net: nn.Module, who: str) -> None:
        layers = attention_layers(getattr(net, "inner", net))
        if not layers:
            raise KDCompressError(f"the relation loss (minilm) needs a transformer {who} with query/key/value "
                                  "projections (a Hugging Face ViT/DeiT/BERT-like model)", INSTEAD)
        attn = layers[-1][1]
        self.kept: dict[str, torch.Tensor] = {}
        self.handles = [getattr(attn, name).register_forward_hook(self._keep(name)) for name in PROJECTIONS]

    def _keep(self, name: str):
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            self.kept[name] = out
        return hook

    def take(self) -> tuple[torch.Tensor, ...]:
        """The last forward pass's (queries, keys, values), each (B, N, D); forgotten once taken."""
        if set(self.kept) != set(PROJECTIONS):  # e.g. a forward that skips the projections it was built with
            raise KDCompressError("the relation loss (minilm) saw no queries, keys and values from the last "
                                  "attention layer in this batch", INSTEAD)
        out, self.kept = tuple(self.kept[name].float() for name in PROJECTIONS), {}
        return out

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


class TokenTaps:
    """The student's and the teacher's last attention layers, hooked for one distillation."""

    def __init__(self, student: nn.Module, teacher: nn.Module) -> None:
        if not isinstance(teacher, nn.Module) or isinstance(teacher, torch.jit.ScriptModule):
            raise KDCompressError("the relation loss (minilm) needs the teacher as a PyTorch module (a Hugging Face "
                                  "folder, a state_dict with --arch, or a pickled module)", INSTEAD)
        self.student, self.teacher = LastAttention(student, "student"), LastAttention(teacher, "teacher")

    def take(self) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """(student's, teacher's) of the last batch both ran on."""
        return self.student.take(), tuple(t.detach() for t in self.teacher.take())

    def remove(self) -> None:
        self.student.remove()
        self.teacher.remove()
