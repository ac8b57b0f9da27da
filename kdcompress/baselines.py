"""What a user would do instead of kdcompress, measured in the same run (``shrink --baselines``).

Twenty lines of Torch-Pruning and onnxruntime quantization are the bar: if one of these recipes beats every
artifact of ours, nobody needs the tool. Each recipe runs on the same data, with the same epoch budget as our
students (the profile's ``distill``), through the same export, parity check and latency harness, its latency
interleaved with ours in one process:

- ``teacher-int8``: the teacher quantized to int8 (onnxruntime static PTQ, QDQ, the scheme chosen for this machine);
- ``tp50-ft``: Torch-Pruning's DepGraph removes 50 % of the channels by L2 magnitude, then fine-tune (cross-entropy);
- ``tp50-ft-int8``: the same, quantized to int8;
- ``tp75-kd``: DepGraph 75 % by L2 magnitude, then knowledge distillation from the teacher (the profile's KD loss).

The pruning recipes need the teacher as an nn.Module (a state_dict with ``--arch``, or a graph teacher with a recipe
file beside it); where there is none, they are skipped with one line and ``teacher-int8`` still runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdcompress.models.pruning import PRUNED_FAMILY
from kdcompress.records import StudentSpec


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    model: str  # "teacher", or the id of the pruned student it ships (under students/)
    precision: str


@dataclass(frozen=True)
class PruneAndTrain:
    """A pruned teacher trained by the trainer: ``kd`` False = plain fine-tuning (alpha 0)."""

    model: str
    ratio: float
    kd: bool

    def spec(self, in_channels: int, num_classes: int) -> StudentSpec:
        return StudentSpec(PRUNED_FAMILY, {"ratio": self.ratio, "importance": "l2", "global": 0}, in_channels,
                           num_classes)


TRAINED = (PruneAndTrain("b-tp50-ft", 0.5, kd=False), PruneAndTrain("b-tp75-kd", 0.75, kd=True))

RECIPES = (
    Recipe("teacher-int8", "int8 PTQ of the teacher (onnxruntime static, QDQ)", "teacher", "int8"),
    Recipe("tp50-ft", "Torch-Pruning DepGraph 50 % (L2 magnitude) + fine-tune", "b-tp50-ft", "fp32"),
    Recipe("tp50-ft-int8", "Torch-Pruning 50 % + fine-tune, then int8 PTQ", "b-tp50-ft", "int8"),
    Recipe("tp75-kd", "Torch-Pruning DepGraph 75 % (L2 magnitude) + KD", "b-tp75-kd", "fp32"),
)


def precisions_of(model: str) -> list[str]:
    """The precisions the recipes need of ``model``."""
    return sorted({r.precision for r in RECIPES if r.model == model}, key=["fp32", "fp16", "int8"].index)
