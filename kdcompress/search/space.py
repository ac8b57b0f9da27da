"""Search spaces: the genes of each student family, how to sample them and how to mutate one gene."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from kdcompress.errors import lookup

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


class ResNetSpace:
    """Genes of :class:`kdcompress.models.students.ResNet`: stem width/stride and per-stage width (multiples of 8)
    and depth, three stages."""

    family = "resnet"
    choices: dict[str, list] = {
        "stem": [8, 16, 24, 32],
        "stem_stride": [1, 2],
        "w0": list(range(8, 65, 8)),
        "w1": list(range(16, 129, 8)),
        "w2": list(range(16, 257, 16)),
        "d0": [1, 2, 3],
        "d1": [1, 2, 3],
        "d2": [1, 2, 3],
    }

    @staticmethod
    def _to_genes(flat: dict[str, int]) -> Genes:
        return {
            "stem": flat["stem"], "stem_stride": flat["stem_stride"],
            "widths": [flat["w0"], flat["w1"], flat["w2"]], "depths": [flat["d0"], flat["d1"], flat["d2"]],
        }

    @staticmethod
    def _to_flat(genes: Genes) -> dict[str, int]:
        w, d = genes["widths"], genes["depths"]
        return {"stem": genes["stem"], "stem_stride": genes["stem_stride"], "w0": w[0], "w1": w[1], "w2": w[2],
                "d0": d[0], "d1": d[1], "d2": d[2]}

    @staticmethod
    def describe(genes: Genes) -> str:
        """Short form for tables: ``stem 8/s2 w8-16-48 d1-2-1``."""
        w, d = "-".join(map(str, genes["widths"])), "-".join(map(str, genes["depths"]))
        return f"stem {genes['stem']}/s{genes['stem_stride']} w{w} d{d}"

    def sample(self, rng: random.Random) -> Candidate:
        return Candidate.of(self.family, self._to_genes({k: rng.choice(v) for k, v in self.choices.items()}))

    def mutate(self, cand: Candidate, rng: random.Random) -> Candidate:
        """Change exactly one gene to another of its values."""
        flat = self._to_flat(cand.as_dict())
        gene = rng.choice(sorted(self.choices))
        flat[gene] = rng.choice([v for v in self.choices[gene] if v != flat[gene]])
        return Candidate.of(self.family, self._to_genes(flat))

    def shrink(self, cand: Candidate, rng: random.Random) -> Candidate | None:
        """Lower one size gene (width, depth or stem) to a smaller value; None when all are at their minimum.

        Used to pull randomly sampled candidates into a budget without measuring the hopeless ones.
        """
        flat = self._to_flat(cand.as_dict())
        genes = [g for g in sorted(self.choices) if g != "stem_stride" and flat[g] > self.choices[g][0]]
        if not genes:
            return None
        gene = rng.choice(genes)
        flat[gene] = rng.choice([v for v in self.choices[gene] if v < flat[gene]])
        return Candidate.of(self.family, self._to_genes(flat))


SPACES: dict[str, ResNetSpace] = {"resnet": ResNetSpace()}


def get_space(name: str) -> ResNetSpace:
    return lookup(SPACES, name, "search space")
