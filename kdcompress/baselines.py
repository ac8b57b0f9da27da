"""What a user would do instead of kdcompress, measured in the same run (``shrink --baselines``).

Twenty lines of Torch-Pruning and onnxruntime quantization are the bar: if one of these recipes beats every
artifact of ours, nobody needs the tool. Each recipe runs on the same data, with the same epoch budget as our
students (the profile's ``distill``), through the same export, parity check and latency harness, its latency
interleaved with ours in one process:

- ``teacher-int8``: the teacher quantized to int8 (onnxruntime static PTQ, QDQ, the scheme chosen for this machine);
- ``tp50-ft``: Torch-Pruning's DepGraph removes 50 % of the channels by L2 magnitude, then fine-tune (cross-entropy);
- ``tp50-kd``: the same cut trained with the same KD loss as our students (the recipe at full strength);
- ``tp75-kd``: DepGraph 75 % by L2 magnitude, then the same KD;
- ``teacher-kd``: the teacher itself trained on for the same epochs with KD from itself (what extra training alone
  buys, so that a student's gain over the teacher is not mistaken for compression);
- each of these also quantized to int8 (``…-int8``).

The pruning recipes need the teacher as an nn.Module (a state_dict with ``--arch``, or a graph teacher with a recipe
file beside it); where there is none, they are skipped with one line and ``teacher-int8`` still runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdcompress.models.pruning import BORN_AGAIN, PRUNED_FAMILY
from kdcompress.records import StudentSpec


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    model: str  # "teacher", or the id of the trained model it ships (under students/)
    precision: str


@dataclass(frozen=True)
class PruneAndTrain:
    """A network a recipe trains with our trainer: the teacher cut by DepGraph to ``ratio``, or with ``ratio`` None
    the teacher itself, from its own weights; ``kd`` False = plain fine-tuning (alpha 0)."""

    model: str
    ratio: float | None
    kd: bool

    def spec(self, in_channels: int, num_classes: int) -> StudentSpec:
        if self.ratio is None:  # the teacher's architecture started from the teacher's weights: it trains on
            return StudentSpec(BORN_AGAIN, {}, in_channels, num_classes, init="teacher")
        return StudentSpec(PRUNED_FAMILY, {"ratio": self.ratio, "importance": "l2", "global": 0}, in_channels,
                           num_classes)


TRAINED = (PruneAndTrain("b-tp50-ft", 0.5, kd=False), PruneAndTrain("b-tp50-kd", 0.5, kd=True),
           PruneAndTrain("b-tp75-kd", 0.75, kd=True), PruneAndTrain("b-teacher-kd", None, kd=True))

RECIPES = (
    Recipe("teacher-int8", "int8 PTQ of the teacher (onnxruntime static, QDQ)", "teacher", "int8"),
    Recipe("tp50-ft", "Torch-Pruning DepGraph 50 % (L2 magnitude) + fine-tune", "b-tp50-ft", "fp32"),
    Recipe("tp50-ft-int8", "Torch-Pruning 50 % + fine-tune, then int8 PTQ", "b-tp50-ft", "int8"),
    Recipe("tp50-kd", "Torch-Pruning DepGraph 50 % (L2 magnitude) + our KD", "b-tp50-kd", "fp32"),
    Recipe("tp50-kd-int8", "Torch-Pruning 50 % + our KD, then int8 PTQ", "b-tp50-kd", "int8"),
    Recipe("tp75-kd", "Torch-Pruning DepGraph 75 % (L2 magnitude) + our KD", "b-tp75-kd", "fp32"),
    Recipe("tp75-kd-int8", "Torch-Pruning 75 % + our KD, then int8 PTQ", "b-tp75-kd", "int8"),
    Recipe("teacher-kd", "the teacher trained on for the same epochs by KD from itself", "b-teacher-kd", "fp32"),
    Recipe("teacher-kd-int8", "the teacher trained on by KD from itself, then int8 PTQ", "b-teacher-kd", "int8"),
)


def precisions_of(model: str) -> list[str]:
    """The precisions the recipes need of ``model``."""
    return sorted({r.precision for r in RECIPES if r.model == model}, key=["fp32", "fp16", "int8"].index)
