"""Does the teacher fit the data: the input shape it accepts, the classes it outputs, and whether it has learnt these
images (a chance-level check that bench's accuracy shares)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from kdcompress.data.splits import Images, take
from kdcompress.errors import KDCompressError, first_line
from kdcompress.models.load import Teacher


def chance_level(y: torch.Tensor) -> float:
    """The majority class's share of ``y`` (%): what always answering that class scores."""
    return 100.0 * float(torch.bincount(y).max()) / len(y)


def near_chance(accuracy: float, y: torch.Tensor) -> bool:
    """Less than a tenth of the way from chance to 100 %: a model that has not learnt these data as given."""
    chance = chance_level(y)
    return accuracy < chance + 0.1 * (100.0 - chance)


def _accepts(teacher: Teacher, shape: tuple[int, ...]) -> bool:
    try:
        with torch.no_grad():
            teacher.module(torch.zeros(*shape))
        return True
    except Exception:  # noqa: BLE001
        return False


def check_teacher_learned(teacher: Teacher, x: Images, y: torch.Tensor, prep: Callable[[torch.Tensor], torch.Tensor],
                          data_name: str, limit: int = 2000) -> tuple[float, int]:
    """The teacher's accuracy (%) on ``limit`` images drawn from ``x`` (the validation split, seeded) and how many
    images that is; one clear error when
    it is not clearly above chance: less than a tenth of the way from the majority class's share to 100 %. That is
    what a teacher given other data than it learnt (``--data`` left at its default), labels in another order or
    another normalisation (``--mean``/``--std``) scores, and distilling from it would spend the run for nothing."""
    # a seeded sample spread over the split, not its head: an image folder's splits are sorted by class, where the
    # first images would be two or three classes and "chance" their share
    pick = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:limit].sort().values
    x, y = take(x, pick), y[pick]
    if len(y) == 0:
        return float("nan"), 0
    with torch.no_grad():
        correct = int((teacher.logits(x, 500, prep).argmax(1) == y).sum())
    accuracy, chance = 100.0 * correct / len(y), chance_level(y)
    if near_chance(accuracy, y):
        raise KDCompressError(
            f"teacher {teacher.path.name} scores {accuracy:.1f} % on {len(y)} validation images of {data_name} "
            f"(chance: {chance:.1f} %): it has not learnt these data as given",
            "pass the data it was trained on with --data (default: fashion-mnist), in the same label order, and its "
            "normalisation with --mean/--std",
        )
    return accuracy, len(y)


def infer_io(teacher: Teacher, input_shape: tuple[int, ...]) -> int:
    """Run the teacher on a zero batch of ``input_shape``; return its class count or say why it does not fit."""
    teacher.set_eval()
    try:
        with torch.no_grad():
            out = teacher.module(torch.zeros(2, *input_shape))
    except Exception as e:  # noqa: BLE001 — any failure here means the data does not fit the model
        msg = first_line(e, None)
        if teacher.kind == "exported" and _accepts(teacher, (1, *input_shape)):
            raise KDCompressError(
                f"{teacher.path.name} was exported with a fixed batch size of 1",
                "re-export it with dynamic_shapes={'x': {0: torch.export.Dim('batch')}}",
            ) from None
        raise KDCompressError(
            f"teacher {teacher.path.name} does not accept inputs of shape {list(input_shape)} ({msg[:160]})",
            "check that --data matches what the teacher was trained on",
        ) from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise KDCompressError(f"teacher must return logits (N, K); returned {type(out).__name__} "
                              f"{tuple(out.shape) if isinstance(out, torch.Tensor) else ''}")
    return int(out.shape[1])
