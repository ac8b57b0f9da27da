"""The teacher's cuts ranked by what they keep of it (``search.cut_rank``: ``fidelity``, how close their outputs stay
to the teacher's; ``params``, how many weights they keep): every cut of a fixed sweep sized and scored first, then
measured best first until enough fit the budget — no evolution, so the pick is the best cut that fits, not the best
one a random walk happened to visit.

The sweep covers the structural genes (``downsample``, ``drop_blocks``, ``ratio``) with channels cut uniformly by
L2 magnitude (DepGraph's usual criterion) and rounded to the multiple the target computes in one block
(:func:`channel_multiple`); genes that build the same network are measured once; the other criteria and global pruning change which channels go rather
than how many, and are left to the evolution (``cut_rank: proxy``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from kdcompress.bench.backends import BACKENDS
from kdcompress.errors import KDCompressError
from kdcompress.export.int8 import cpu_flags
from kdcompress.models.pruning import HEAD_SHARES, PRUNED_FAMILY, PruningSource, has_heads, has_layer_list
from kdcompress.records import Scored
from kdcompress.run import Progress, atomic_path
from kdcompress.search.context import SearchContext, evaluate
from kdcompress.search.fidelity import FidelityProbe
from kdcompress.search.journal import remember, remember_scores
from kdcompress.search.space import Candidate, get_space


def candidate_identity(space: str, genes: dict) -> str:
    """The key that says two candidates are the same student (as ``exclude`` holds them)."""
    return json.dumps([space, genes], sort_keys=True)


def channel_multiple(device: str, flags: set[str] | None = None) -> int:
    """The number of channels the target computes in one block: 16 on x86 CPUs with AVX-512 (onnxruntime's NCHWc
    convolution blocks), else 8 (its AVX2 blocks; GPU tensor cores). Widths that are not a multiple run the rest in
    a padded block: see :mod:`kdcompress.models.pruning`."""
    return 16 if device == "cpu" and "avx512f" in (cpu_flags() if flags is None else flags) else 8


DROP_EVERY = (2, 3, 4)  # every n-th layer dropped: swept on teachers whose layers are a ModuleList (transformers)


def sweep_genes(multiple: int = 8, heads: tuple[float, ...] = (0.0,), layers: bool = False) -> list[dict]:
    """Every structural cut of the pruned-teacher space, channels by L2 magnitude per layer, each layer's count
    rounded to ``multiple``; with ``heads``, each also with those shares of attention heads cut, and with
    ``layers``, also with every n-th layer dropped (:data:`DROP_EVERY`) instead of the deepest. Those genes appear
    only where they are not 0, so the genes of other teachers stay as they were."""
    choices = get_space(PRUNED_FAMILY).choices
    drops = [{"drop_blocks": k} for k in choices["drop_blocks"]]
    drops += [{"drop_blocks": 0, "drop_every": n} for n in DROP_EVERY] if layers else []
    return [{"ratio": r, "importance": "l2", "global": 0, "downsample": d, **drop,
             "round_to": multiple if r else 1, **({"heads": h} if h else {})}
            for h in heads for d in choices["downsample"] for drop in drops for r in choices["ratio"]]


def sized_cuts(pruning: PruningSource, multiple: int) -> list[tuple[int, dict]]:
    """(parameters, genes) of every distinct network of the sweep that this teacher admits, largest first; genes
    that build the same network as earlier genes of the sweep are left out."""
    sized, seen = [], set()
    heads = HEAD_SHARES if has_heads(pruning.module) else (0.0,)
    for genes in sweep_genes(multiple, heads, has_layer_list(pruning.module, pruning.example)):
        try:
            net = pruning.build(genes)
        except KDCompressError:  # e.g. more blocks to drop than the teacher has: not a cut of this teacher
            continue
        # the same network: the same stride and the same weights (shapes alone would merge every other layer
        # dropped with as many deepest layers dropped)
        with torch.no_grad():
            same = (genes["downsample"], tuple((tuple(p.shape), round(float(p.double().sum()), 6))
                                               for p in net.parameters()))
        if same not in seen:
            seen.add(same)
            sized.append((sum(p.numel() for p in net.parameters()), genes))
    sized.sort(key=lambda pg: -pg[0])  # stable: equal sizes keep the sweep's order
    return sized


def largest_cuts(
    ctx: SearchContext, top_k: int, exclude: set[str], log: Path, progress: Progress | None = None,
    fidelity: FidelityProbe | None = None,
) -> list[Scored]:
    """The ``top_k`` best cuts that fit ``ctx``'s budget and are not in ``exclude`` (keys of
    :func:`candidate_identity`): those with the most parameters, or with ``fidelity`` the ones whose outputs stay
    closest to the teacher's (:mod:`kdcompress.search.fidelity`, kept as the ``fidelity`` score); every measured cut
    is logged to ``log`` (JSON lines)."""
    assert ctx.pruning is not None, "the pruned-teacher space needs the teacher as a pruning source"
    progress = progress or Progress()
    sized = sized_cuts(ctx.pruning, channel_multiple(BACKENDS[ctx.backend].device))
    if fidelity is not None:
        progress.start("search cuts: fidelity", len(sized))
        for _, genes in sized:
            key = Candidate.of(PRUNED_FAMILY, genes).key
            if "fidelity" not in ctx.score_cache.get(key, {}):  # once per search, journaled: --resume reads it
                remember_scores(ctx, key, {"fidelity": fidelity.score(ctx.pruning.build(genes))})
            progress.advance()
        progress.stop()
        sized.sort(key=lambda pg: -ctx.score_cache[Candidate.of(PRUNED_FAMILY, pg[1]).key]["fidelity"])
    progress.start("search cuts", len(sized))
    found: list[Scored] = []
    with atomic_path(log) as tmp, tmp.open("w") as f:
        for _, genes in sized:
            progress.advance(note=f"{len(found)}/{top_k} fit")
            if candidate_identity(PRUNED_FAMILY, genes) in exclude:
                continue
            cand = Candidate.of(PRUNED_FAMILY, genes)
            s = evaluate(cand, ctx)
            remember(ctx, cand.key, s)
            f.write(json.dumps(s.to_json()) + "\n")
            if s.feasible:
                found.append(s)
                if len(found) == top_k:
                    break
    progress.stop()
    return found
