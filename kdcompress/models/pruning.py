"""The ``pruned-teacher`` family: the teacher's own architecture made cheaper, starting from its trained weights,
so that a user's architecture can shrink too. Four cuts, applied in this order:

- ``downsample`` (0/1): the first convolution's stride doubled, so the rest of the network runs on a quarter of the
  pixels — the cut that buys the most speed per point on small images, as a student family's ``stem_stride`` does;
- ``drop_blocks`` (k): the k deepest shape-preserving blocks (children of an ``nn.Sequential`` that hold weights
  and whose output has their input's shape, e.g. a residual block without stride) replaced by the identity —
  deepest first, the order in which stochastic depth (Huang et al., ECCV 2016, linear decay rule) finds blocks most
  expendable; or ``drop_every`` (n): every n-th of them, as DistilBERT (Sanh et al., 2019) keeps every other layer;
- ``heads`` (a share): that share of every attention layer's heads removed, least important first, where the
  teacher prunes its own heads (Hugging Face's ViT/DeiT/BERT-like models: :func:`cut_heads`);
- ``ratio`` of the channels removed by Torch-Pruning's DepGraph (Fang et al., "DepGraph: Towards Any Structural
  Pruning", CVPR 2023), per layer or over the whole network (``global``), chosen by ``importance``.

Every cut is data-free and deterministic (the example input only gives shapes and the order of execution), so the
same genes rebuild the same student from the same teacher — the trainer and the exporter rebuild it that way, no
pickle involved. The cut student keeps the teacher's surviving weights.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from kdcompress.errors import KDCompressError, cause

Genes = dict


def _importances() -> dict[str, Callable[[], object]]:
    import torch_pruning as tp

    return {
        "l1": lambda: tp.importance.MagnitudeImportance(p=1),
        "l2": lambda: tp.importance.MagnitudeImportance(p=2),
        "bn_scale": tp.importance.BNScaleImportance,  # Network Slimming (Liu et al., ICCV 2017)
        "lamp": tp.importance.LAMPImportance,  # Lee et al., ICLR 2021
    }


IMPORTANCE_NAMES = ["l1", "l2", "bn_scale", "lamp"]
USE_FAMILIES = "use the student families instead: --set search.space=[resnet,mobilenetv2,vgg]"


def _classifier(net: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """The layer that computes the logits (the last Linear or convolution the forward pass calls): its outputs are
    the classes, which must all stay."""
    layers = _call_order(net, [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))], example)
    return [layers[-1][0]] if layers else []


def _attention_projections(net: nn.Module) -> list[nn.Module]:
    """The layers inside attention modules (``nn.MultiheadAttention``, or a module whose class is named
    ``…Attention…``, as timm's, Hugging Face's and most hand-written ones are): cutting their channels without the
    head count breaks the head reshape, so they keep their widths and only the MLPs and convolutions around them
    are cut."""
    inside: list[nn.Module] = []
    for m in net.modules():
        if isinstance(m, nn.MultiheadAttention) or "Attention" in type(m).__name__:
            inside.extend(x for x in m.modules() if isinstance(x, (nn.Linear, nn.Conv2d, nn.MultiheadAttention)))
    return inside


def check_prunable(teacher_module: nn.Module, kind: str, purpose: str = "the pruned-teacher space") -> None:
    """Raise :class:`KDCompressError` (one line) when DepGraph cannot prune this teacher (``purpose``: what needs
    it as a module, for the message)."""
    if kind in ("exported", "torchscript", "onnx"):
        raise KDCompressError(
            f"{purpose} needs an nn.Module teacher and this one is {'an' if kind[0] in 'aeiou' else 'a'} "
            f"{kind} graph",
            "pass its state_dict with --arch FILE.py:ClassName",
        )
    if not any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in teacher_module.modules()):
        raise KDCompressError("the teacher has no nn.Conv2d/nn.Linear layers for DepGraph to prune")


def _call_order(net: nn.Module, modules: list[nn.Module], example: torch.Tensor) -> list[tuple[nn.Module, bool]]:
    """``modules`` in the order the forward pass first calls them, each with whether its output has its input's
    shape; modules the forward pass never calls are left out."""
    seen: dict[int, tuple[nn.Module, bool]] = {}

    def hook(m: nn.Module, args: tuple, out: object) -> None:
        if isinstance(out, (tuple, list)) and out:  # e.g. a transformer layer returning (hidden, attention)
            out = out[0]
        if id(m) not in seen and args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor):
            seen[id(m)] = (m, out.shape == args[0].shape)

    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with torch.no_grad():
            net(example)
    finally:
        for h in handles:
            h.remove()
    return list(seen.values())


def halve_resolution(net: nn.Module, example: torch.Tensor) -> None:
    """Double the stride of the first convolution the forward pass calls (in place)."""
    convs = _call_order(net, [m for m in net.modules() if isinstance(m, nn.Conv2d)], example)
    if not convs:
        raise KDCompressError("the teacher has no nn.Conv2d whose stride could be doubled")
    conv = convs[0][0]
    with torch.no_grad():
        before = net(example).shape
    conv.stride = tuple(2 * s for s in conv.stride)
    try:
        with torch.no_grad():
            after = net(example).shape
    except Exception:  # noqa: BLE001 — e.g. a Linear sized for the full resolution
        after = None
    if after != before:
        raise KDCompressError("the teacher's output depends on the input resolution (no global pooling), so its "
                              "first stride cannot be doubled", "keep downsample at 0")


def spread_kept(n: int, every: int) -> list[int]:
    """The positions of ``n`` blocks kept when one in ``every`` goes, spread evenly with the first and the last kept
    (of BERT's 12 layers, one in 2 dropped keeps 0, 2, 4, 7, 9, 11: DistilBERT's initialisation, Sanh et al. 2019)."""
    m = n - n // every
    return [int(i * (n - 1) / (m - 1) + 0.5) for i in range(m)] if m > 1 else [0]


def drop_blocks(net: nn.Module, example: torch.Tensor, k: int, classifier: list[nn.Module], every: int = 0) -> None:
    """Remove the ``k`` deepest shape-preserving blocks (in place), or with ``every`` = n one block in n, spread
    (:func:`spread_kept`), never one holding ``classifier``: a child of an ``nn.Sequential`` becomes the identity,
    an item of an ``nn.ModuleList`` (a transformer's layers, which its forward loops over) is deleted."""
    blocks, slots = _droppable(net, example, classifier)
    if every:
        if len(blocks) < every:
            raise KDCompressError(f"the teacher has {len(blocks)} shape-preserving block(s), fewer than {every}",
                                  "keep drop_every at 0")
        kept = set(spread_kept(len(blocks), every))
        chosen = [b for i, b in enumerate(blocks) if i not in kept]
    else:
        if k > len(blocks):
            raise KDCompressError(f"the teacher has {len(blocks)} shape-preserving block(s) to drop, not {k}",
                                  f"keep drop_blocks at most {len(blocks)}")
        chosen = blocks[len(blocks) - k:]
    # deepest first, so deleting from a ModuleList leaves the indices of the blocks still to go as they were
    for block in sorted(chosen, key=lambda b: -slots[id(b)][1]):
        parent, i = slots[id(block)]
        if isinstance(parent, nn.ModuleList):
            del parent[i]
        else:
            parent[i] = nn.Identity()


def _droppable(net: nn.Module, example: torch.Tensor, classifier: list[nn.Module],
               ) -> tuple[list[nn.Module], dict[int, tuple[nn.Module, int]]]:
    """The blocks :func:`drop_blocks` may drop, in call order, and each one's (container, index)."""
    protected = set(map(id, classifier))
    containers = [m for m in net.modules() if isinstance(m, (nn.Sequential, nn.ModuleList))]
    slots = {id(child): (parent, i) for parent in containers for i, child in enumerate(parent)
             if any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in child.modules())
             and not protected & set(map(id, child.modules()))}
    blocks = [m for m, same in _call_order(net, [p[i] for p, i in slots.values()], example) if same]
    # a block inside another droppable block goes with it: keep the outermost only
    inner = {id(m) for b in blocks for m in b.modules() if m is not b}
    return [b for b in blocks if id(b) not in inner], slots


def has_layer_list(net: nn.Module, example: torch.Tensor) -> bool:
    """Whether some droppable blocks are items of an ``nn.ModuleList`` (a transformer's layers): where dropping
    every n-th one (``drop_every``) is worth sweeping."""
    blocks, slots = _droppable(net, example, _classifier(net, example))
    return any(isinstance(slots[id(b)][0], nn.ModuleList) for b in blocks)


def attention_layers(inner: nn.Module) -> list[tuple[nn.Module, nn.Module, nn.Module]]:
    """Per layer, in order: (the attention block that prunes its own heads, its self-attention with the head count
    and the query/key/value projections, its output projection) — Hugging Face's ViT/DeiT/BERT-like layout."""
    found = []
    for m in inner.modules():
        if m is inner or not callable(getattr(m, "prune_heads", None)) or hasattr(m, "config"):
            continue
        attn = next((c for c in m.children() if hasattr(c, "num_attention_heads")
                     and all(isinstance(getattr(c, n, None), nn.Linear) for n in ("query", "key", "value"))), None)
        out = getattr(getattr(m, "output", None), "dense", None)
        if attn is not None and isinstance(out, nn.Linear):
            found.append((m, attn, out))
    return found


HEAD_SHARES = (0.0, 0.25, 0.5)  # the shares of heads the cut sweep tries on a teacher that prunes its own heads


def has_heads(net: nn.Module) -> bool:
    """Whether :func:`cut_heads` applies: the model prunes its own attention heads, by layer index into its
    encoder's ``layer`` list (what Hugging Face's ``_prune_heads`` reads; Swin's has no such list)."""
    inner = getattr(net, "inner", net)
    found = attention_layers(inner)
    layers = getattr(getattr(getattr(inner, "base_model", None), "encoder", None), "layer", None)
    return (callable(getattr(inner, "prune_heads", None)) and bool(found) and isinstance(layers, nn.ModuleList)
            and len(layers) == len(found)
            and all(getattr(layer, "attention", None) is block for layer, (block, _, _) in zip(layers, found)))


def cut_heads(net: nn.Module, share: float) -> None:
    """Remove ``share`` of each attention layer's heads (in place), the least important first by the L2 norm of the
    head's query, key and value rows and output columns (the magnitude criterion DepGraph uses for channels; trained
    transformers lose many heads at little cost: Michel et al., "Are Sixteen Heads Really Better than One?",
    NeurIPS 2019). Through the model's own ``prune_heads`` (Hugging Face's), which records them in its config
    (``pruned_heads``), so ``save_pretrained``/``from_pretrained`` rebuild the same network."""
    inner = getattr(net, "inner", net)
    layers = attention_layers(inner)
    if not has_heads(inner):
        raise KDCompressError("the teacher has no attention heads it prunes itself (a Hugging Face ViT/BERT-like "
                              "model's prune_heads)", "keep heads at 0")
    plan = {}
    for i, (block, attn, out) in enumerate(layers):
        n, d = attn.num_attention_heads, attn.attention_head_size
        k = min(n - 1, round(share * n))
        if k < 1:
            raise KDCompressError(f"{share} of {n} heads is no whole head to cut", "keep heads at 0")
        rows = sum(getattr(attn, p).weight.detach().reshape(n, d, -1).pow(2).sum((1, 2))
                   for p in ("query", "key", "value"))
        norm = rows + out.weight.detach().reshape(out.out_features, n, d).pow(2).sum((0, 2))
        # prune_heads takes the heads' original numbers: a teacher already cut names its remaining heads so
        gone = set(getattr(block, "pruned_heads", set()))
        original = sorted(set(range(n + len(gone))) - gone)
        plan[i] = sorted(original[int(h)] for h in torch.argsort(norm)[:k])
    try:
        inner.prune_heads(plan)
    except Exception as e:  # noqa: BLE001 — a layout has_heads did not foresee: one line, the sweep goes on
        raise KDCompressError(f"the teacher's prune_heads failed ({cause(e)})", "keep heads at 0") from None


def _check_runs(net: nn.Module, example: torch.Tensor, expected: torch.Size) -> None:
    """Raise (one line) when the cut network no longer runs at the input size or no longer gives the logits."""
    try:
        with torch.no_grad():
            out = net(example)
    except Exception as e:  # noqa: BLE001 — e.g. channels of attention projections cut without their head count
        raise KDCompressError(f"the cut does not run at the input size ({cause(e)})",
                              USE_FAMILIES) from None
    if not isinstance(out, torch.Tensor) or out.shape != expected:
        raise KDCompressError(f"the cut's output is {getattr(out, 'shape', type(out).__name__)}, not the "
                              f"teacher's {tuple(expected)}", USE_FAMILIES)


def prune_teacher(
    teacher_module: nn.Module, genes: Genes, example: torch.Tensor,
) -> nn.Module:
    """A copy of ``teacher_module`` cut as ``genes`` say (see the module docstring); old genes without
    ``downsample``/``drop_blocks``/``drop_every``/``heads``/``round_to`` mean none of these."""
    import torch_pruning as tp

    net = copy.deepcopy(teacher_module).eval()
    try:
        with torch.no_grad():
            expected = net(example).shape
    except Exception as e:  # noqa: BLE001 — e.g. a ViT built for another image size
        raise KDCompressError(f"the teacher does not run at the input size {tuple(example.shape[1:])} "
                              f"({cause(e)})", USE_FAMILIES) from None
    classifier = _classifier(net, example)  # found once: cutting keeps the module, not its place in the order
    downsample, dropped, ratio = int(genes.get("downsample", 0)), int(genes.get("drop_blocks", 0)), float(genes["ratio"])
    round_to, heads = int(genes.get("round_to", 1)), float(genes.get("heads", 0))
    if downsample:
        halve_resolution(net, example)
    every = int(genes.get("drop_every", 0))
    if dropped and every:
        raise KDCompressError("drop_blocks and drop_every both set: the deepest blocks or one in n, not both",
                              "set one of them to 0")
    if dropped or every:
        drop_blocks(net, example, dropped, classifier, every)
    if heads:
        cut_heads(net, heads)
    if ratio == 0:
        if not (downsample or dropped or every or heads):
            raise KDCompressError("these genes leave the teacher as it is (ratio 0, no downsample, no dropped block, "
                                  "no head cut)")
        _check_runs(net, example, expected)
        return net
    before = sum(p.numel() for p in net.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DepGraph warns about every unwrapped parameter and recursion depth
        try:
            pruner = tp.pruner.MetaPruner(
                net, example, importance=_importances()[genes["importance"]](),
                pruning_ratio=ratio, global_pruning=bool(genes.get("global", 0)),
                max_pruning_ratio=0.95, ignored_layers=classifier + _attention_projections(net),
                round_to=round_to if round_to > 1 else None,
            )
            pruner.step()
        except Exception as e:  # noqa: BLE001 — DepGraph's failures are many; the user-facing fact is one
            raise KDCompressError(
                f"DepGraph cannot prune this teacher ({cause(e)})",
                USE_FAMILIES,
            ) from None
    if sum(p.numel() for p in net.parameters()) >= before:
        raise KDCompressError("DepGraph found no channel it can remove from this teacher", USE_FAMILIES)
    _check_runs(net, example, expected)
    return net


PRUNED_FAMILY = "pruned-teacher"
# Born-Again (Furlanello et al., "Born-Again Neural Networks", ICML 2018): the teacher's own architecture, freshly
# initialised, distilled from the teacher — no search, no cut (``shrink --student same``).
BORN_AGAIN = "born-again"
TEACHER_FAMILIES = frozenset({PRUNED_FAMILY, BORN_AGAIN})  # students built from the teacher's own module


def reinitialise_(module: nn.Module) -> nn.Module:
    """Every layer of ``module`` back to PyTorch's default init (normalisation statistics too), every parameter
    trainable; parameters no layer resets (a class token, a raw ``nn.Parameter``) drawn from N(0, 0.02²), timm's
    convention for them. Returns ``module``."""
    reset: set[int] = set()
    for m in module.modules():
        fn = getattr(m, "reset_parameters", None) or getattr(m, "_reset_parameters", None)  # the latter: attention
        if callable(fn):
            fn()
            reset.update(id(p) for p in m.parameters(recurse=False))
    with torch.no_grad():
        for p in module.parameters():
            if id(p) not in reset:
                p.normal_(0.0, 0.02)
            p.requires_grad_(True)
    return module


@dataclass
class PruningSource:
    """The teacher that ``pruned-teacher`` students are cut from, with an example input for DepGraph's trace.

    Pruned students are cached by genes: an evolution revisits the same few dozen gene combinations many times.
    """

    module: nn.Module
    example: torch.Tensor
    _cache: dict[str, nn.Module] = field(default_factory=dict, repr=False)

    def fresh(self) -> nn.Module:
        """The teacher's architecture with a fresh init (PyTorch's defaults from the global RNG): Born-Again."""
        return reinitialise_(copy.deepcopy(self.module).train())

    def build(self, genes: Genes) -> nn.Module:
        key = json.dumps(genes, sort_keys=True)
        if key not in self._cache:
            self._cache[key] = prune_teacher(self.module, genes, self.example)
        return copy.deepcopy(self._cache[key])
