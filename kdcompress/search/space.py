"""Search spaces: the genes of each student family, how to sample them and how to mutate one gene."""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from typing import Any, ClassVar

from kdcompress.models.pruning import IMPORTANCE_NAMES, PRUNED_FAMILY
from kdcompress.registry import Registry

Genes = dict[str, Any]


@dataclass(frozen=True)
class Candidate:
    family: str
    genes: tuple[tuple[str, Any], ...]  # hashable; use .as_dict() to build

    @classmethod
    def of(cls, family: str, genes: Genes) -> Candidate:
        return cls(family, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in genes.items())))

    def as_dict(self) -> Genes:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.genes}

    @property
    def key(self) -> str:
        return f"{self.family}:{json.dumps(self.as_dict(), sort_keys=True, separators=(',', ':'))}"


class GeneSpace:
    """A student family's genes as flat choices (``w0``, ``d1``, ...), folded into per-stage lists for the builder.

    ``lists`` maps a list gene (``widths``) to its flat prefix (``w``); every other choice is a scalar gene.
    ``fixed`` genes are not size genes, so :meth:`shrink` leaves them alone.
    """

    family: ClassVar[str] = ""
    stages: ClassVar[int] = 3
    lists: ClassVar[dict[str, str]] = {}
    choices: ClassVar[dict[str, list]] = {}
    fixed: ClassVar[frozenset[str]] = frozenset({"stem_stride"})

    def _to_genes(self, flat: dict[str, Any]) -> Genes:
        listed = {f"{prefix}{i}" for prefix in self.lists.values() for i in range(self.stages)}
        genes: Genes = {k: v for k, v in flat.items() if k not in listed}
        for name, prefix in self.lists.items():
            genes[name] = [flat[f"{prefix}{i}"] for i in range(self.stages)]
        return genes

    def _to_flat(self, genes: Genes) -> dict[str, Any]:
        flat = {k: v for k, v in genes.items() if k not in self.lists}
        for name, prefix in self.lists.items():
            flat.update({f"{prefix}{i}": v for i, v in enumerate(genes[name])})
        return flat

    def describe(self, genes: Genes) -> str:
        """Short form for tables, e.g. ``stem8/s2 w8-16-48 d1-2-1`` (list genes by their flat prefix)."""
        parts = [f"stem{genes['stem']}/s{genes.get('stem_stride', 1)}"] if "stem" in genes else []
        parts += [f"{prefix}{'-'.join(map(str, genes[name]))}" for name, prefix in self.lists.items()]
        parts += [f"{k}{v}" for k, v in genes.items() if k not in self.lists and k not in ("stem", "stem_stride")]
        return " ".join(parts)

    def sample(self, rng: random.Random) -> Candidate:
        return Candidate.of(self.family, self._to_genes({k: rng.choice(v) for k, v in self.choices.items()}))

    def mutate(self, cand: Candidate, rng: random.Random) -> Candidate:
        """Change exactly one gene to another of its values."""
        flat = self._to_flat(cand.as_dict())
        gene = rng.choice(sorted(self.choices))
        flat[gene] = rng.choice([v for v in self.choices[gene] if v != flat.get(gene)])
        return Candidate.of(self.family, self._to_genes(flat))

    def shrink(self, cand: Candidate, rng: random.Random) -> Candidate | None:
        """Lower one size gene (width, depth, expansion, kernel, stem) to a smaller value; None when all are at their
        minimum. Used to pull randomly sampled candidates into a budget without measuring the hopeless ones.
        """
        flat = self._to_flat(cand.as_dict())
        genes = [g for g in sorted(self.choices) if g not in self.fixed and flat[g] > self.choices[g][0]]
        if not genes:
            return None
        gene = rng.choice(genes)
        flat[gene] = rng.choice([v for v in self.choices[gene] if v < flat[gene]])
        return Candidate.of(self.family, self._to_genes(flat))


# Per-stage widths and depths of the plain-conv families (resnet, vgg).
_PLAIN_STAGES: dict[str, list] = {
    "w0": list(range(8, 65, 8)),
    "w1": list(range(16, 129, 8)),
    "w2": list(range(16, 257, 16)),
    "d0": [1, 2, 3],
    "d1": [1, 2, 3],
    "d2": [1, 2, 3],
}


class ResNetSpace(GeneSpace):
    """Genes of :func:`kdcompress.models.students.build_resnet`: stem width/stride, per-stage width and depth."""

    family = "resnet"
    lists: ClassVar[dict[str, str]] = {"widths": "w", "depths": "d"}
    choices: ClassVar[dict[str, list]] = {
        "stem": [8, 16, 24, 32],
        "stem_stride": [1, 2],
        **_PLAIN_STAGES,
    }


class MobileNetV2Space(GeneSpace):
    """Genes of :func:`kdcompress.models.students.build_mobilenetv2`: per-stage width, depth, expansion ratio and
    depthwise kernel, plus stem and the width of the last 1x1 conv."""

    family = "mobilenetv2"
    lists: ClassVar[dict[str, str]] = {"widths": "w", "depths": "d", "expand": "e", "kernel": "k"}
    choices: ClassVar[dict[str, list]] = {
        "stem": [8, 16, 24, 32],
        "stem_stride": [1, 2],
        "w0": list(range(8, 49, 8)),
        "w1": list(range(16, 97, 8)),
        "w2": list(range(24, 161, 8)),
        "d0": [1, 2, 3],
        "d1": [1, 2, 3],
        "d2": [1, 2, 3],
        "e0": [1, 2, 3, 4, 6],
        "e1": [2, 3, 4, 6],
        "e2": [2, 3, 4, 6],
        "k0": [3, 5, 7],
        "k1": [3, 5, 7],
        "k2": [3, 5, 7],
        "last": [64, 128, 192, 256, 384],
    }


class VGGSpace(GeneSpace):
    """Genes of :func:`kdcompress.models.students.build_vgg`: per-stage width, depth and kernel size."""

    family = "vgg"
    lists: ClassVar[dict[str, str]] = {"widths": "w", "depths": "d", "kernel": "k"}
    choices: ClassVar[dict[str, list]] = {
        **_PLAIN_STAGES,
        "k0": [3, 5],
        "k1": [3, 5],
        "k2": [3, 5],
    }


class PrunedTeacherSpace(GeneSpace):
    """Genes of :mod:`kdcompress.models.pruning`: whether the teacher's first stride doubles, how many of its
    deepest blocks go, how much of its channels to cut, by which criterion, whether the ratio holds per layer or
    over the whole network, and the multiple each layer's channel count is rounded to. The share of attention
    heads cut (``heads``) and every n-th layer dropped (``drop_every``) are swept only (:mod:`kdcompress.search.cuts`),
    on teachers that have heads and layer lists: an evolution over every teacher would spend samples on genes most
    teachers cannot take."""

    family = PRUNED_FAMILY
    choices: ClassVar[dict[str, list]] = {
        "ratio": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9],
        "importance": IMPORTANCE_NAMES,
        "global": [0, 1],
        "downsample": [0, 1],
        "drop_blocks": [0, 1, 2, 3],
        "round_to": [1, 8, 16],
    }

    def describe(self, genes: Genes) -> str:
        cuts = [f"ratio {genes['ratio']} {genes['importance']}{' global' if genes.get('global') else ''}"]
        if genes.get("round_to", 1) > 1:
            cuts.append(f"channels in {genes['round_to']}s")
        if genes.get("downsample"):
            cuts.append("stride x2")
        if genes.get("drop_blocks"):
            cuts.append(f"-{genes['drop_blocks']} blocks")
        if genes.get("drop_every"):
            cuts.append(f"1 block in {genes['drop_every']} dropped")
        if genes.get("heads"):
            cuts.append(f"-{genes['heads']:.0%} heads")
        return ", ".join(cuts)

    def shrink(self, cand: Candidate, rng: random.Random) -> Candidate | None:
        """Cut more, one gene at random: the next larger ratio, the stride doubled or one more block dropped; None
        when every cut is at its largest."""
        genes = cand.as_dict()
        moves = []
        higher = [r for r in self.choices["ratio"] if r > genes["ratio"]]
        if higher:
            moves.append({"ratio": higher[0]})
        if not genes.get("downsample"):
            moves.append({"downsample": 1})
        if genes.get("drop_blocks", 0) < max(self.choices["drop_blocks"]):
            moves.append({"drop_blocks": genes.get("drop_blocks", 0) + 1})
        return Candidate.of(self.family, {**genes, **rng.choice(moves)}) if moves else None


SPACES: Registry[GeneSpace] = Registry("search space", {
    s.family: s for s in (ResNetSpace(), MobileNetV2Space(), VGGSpace(), PrunedTeacherSpace())
})


# From this image side up, a family's stem is ImageNet-style (He et al. 2016; Sandler et al. 2018): a strided conv,
# and optionally a max pool after it (stem_stride 4), so that students at 224 px cost what mobile networks cost
# instead of running their first stage on every pixel.
LARGE_IMAGES = 64
LARGE_STEM_STRIDES = [2, 4]


def get_space(name: str, side: int | None = None) -> GeneSpace:
    """The space ``name``; for images of ``side`` >= LARGE_IMAGES px, its stem strides are the ImageNet-style ones."""
    space = SPACES[name]
    if side is None or side < LARGE_IMAGES or "stem_stride" not in space.choices:
        return space
    large = copy.copy(space)
    large.choices = {**space.choices, "stem_stride": LARGE_STEM_STRIDES}  # on the instance: the class keeps its own
    return large
