"""One search's fixed inputs (:class:`SearchContext`) and the evaluation of one candidate against them: size and
FLOPs first, then *measured* latency on the target backend, then the proxy scores (DESIGN §4).

Latency is budgeted as a ratio to the teacher. On a shared machine absolute timings drift by 1.5x from one minute
to the next (seen on our 2-core CI machine), so a candidate timed in a fast phase against a teacher timed in a slow
one would pass a budget it does not meet. Each candidate is therefore timed interleaved with a small *reference*
student, whose ratio to the teacher was measured once, interleaved and at length, when the search started:
``candidate / teacher = (candidate / reference)_now × (reference / teacher)_start``. Timing beside the reference
rather than the teacher itself costs a fraction of the time (the reference is as small as the candidates).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kdcompress.bench import interleaved_latency
from kdcompress.bench.backends import BACKENDS
from kdcompress.bench.runners import Runner
from kdcompress.errors import KDCompressError, lookup
from kdcompress.export.onnx import onnx_bytes
from kdcompress.job import Job
from kdcompress.models.load import Teacher
from kdcompress.models.probe import ProxyBatch, proxy_batches
from kdcompress.models.pruning import PRUNED_FAMILY, PruningSource
from kdcompress.models.students import build_student
from kdcompress.profiles import Profile
from kdcompress.records import Scored, TeacherRecord
from kdcompress.run import Progress
from kdcompress.search.latency_store import LatencyStore, graph_key, measurement_key
from kdcompress.search.proxies import PROXIES, TEACHER_PROXIES, count_flops, score_batches
from kdcompress.search.space import Candidate

# Quick timing of each candidate beside the reference; the bench stage measures the shipped artifacts properly.
SEARCH_TIMING = {"warmup": 10, "iters": 40, "repeats": 3}
# The reference's ratio to the teacher is measured once per search, at length.
REFERENCE_TIMING = {"warmup": 50, "iters": 100, "repeats": 5}
REFERENCE_GENES = {"stem": 16, "stem_stride": 1, "widths": [16, 32, 64], "depths": [1, 1, 1]}
# Before paying for a latency measurement, reject candidates whose FLOPs exceed the latency budget's share of the
# teacher's FLOPs by this factor: passing would need them to run that much more efficiently per FLOP than the
# teacher, and smaller networks are less efficient per FLOP, not more.
FLOPS_SLACK = 2.0


@dataclass
class SearchContext:
    """Everything fixed for one search: the scoring batches with the teacher's signals, budget and backend."""

    batches: list[ProxyBatch]
    in_channels: int
    num_classes: int
    max_params: float | None
    max_flops: float | None
    max_latency_ratio: float | None
    backend: str
    threads: int
    batch: int
    proxy: str  # ranks the candidates
    seed: int
    reference_onnx: bytes
    reference_ratio: float  # reference p50 / teacher p50, measured when the search started
    also_score: list[str] = field(default_factory=list)  # reported beside ``proxy``, for comparison
    spaces: list[str] = field(default_factory=list)
    pruning: PruningSource | None = None  # the teacher, when the pruned-teacher space is searched
    max_train_flops: float | None = None  # budget.flops_ratio: the bound on distillation cost
    latency_cache: dict[str, tuple[float, float]] = field(default_factory=dict)  # candidate key -> (p50, ratio)
    score_cache: dict[str, dict[str, float]] = field(default_factory=dict)  # candidate key -> proxy -> score
    journal: Path | None = None  # where the parent records each measurement (kdcompress.search.journal)
    journaled: dict[str, str] = field(default_factory=dict, repr=False)  # key -> its entry in the journal
    latency_store: LatencyStore | None = None  # this machine's measurements across searches (search.latency_cache)
    reference_key: str = ""  # the reference's graph, part of every stored measurement's key
    _reference: tuple[int, Runner] | None = field(default=None, repr=False)

    @property
    def x(self) -> torch.Tensor:
        return self.batches[0].x

    def __getstate__(self) -> dict:
        """For a spawned worker: everything but the reference's inference session, which each process makes anew."""
        return {**self.__dict__, "_reference": None}

    def reference_runner(self) -> Runner:
        """The reference's runner in this process (worker processes make their own: sessions do not fork)."""
        if self._reference is None or self._reference[0] != os.getpid():
            self._reference = (os.getpid(), BACKENDS[self.backend](self.reference_onnx, threads=self.threads))
        return self._reference[1]


def relative_latency(artifact: bytes, ctx: SearchContext) -> tuple[float, float]:
    """(p50 ms, p50 / teacher p50) of an ONNX model, timed interleaved with the reference on the search backend —
    or as this machine measured the same graph before (:mod:`kdcompress.search.latency_store`)."""
    key = None
    if ctx.latency_store is not None:
        key = measurement_key("candidate", graph_key(artifact), ctx.reference_key, ctx.backend, ctx.threads, ctx.batch)
        if (known := ctx.latency_store.get(key)) is not None:
            return known[0], known[1] * ctx.reference_ratio
    runner = BACKENDS[ctx.backend](artifact, threads=ctx.threads)
    x = np.zeros((ctx.batch, *ctx.x.shape[1:]), dtype=np.float32)
    lat = interleaved_latency({"reference": ctx.reference_runner(), "candidate": runner}, x, **SEARCH_TIMING)
    p50, to_reference = lat["candidate"].p50, lat["candidate"].p50 / lat["reference"].p50
    if key is not None:
        ctx.latency_store.put(key, [p50, to_reference])
    return p50, to_reference * ctx.reference_ratio


def within_share(cand: Candidate, ctx: SearchContext) -> bool:
    """Whether ``cand`` meets the size bounds and, on a CPU backend, its FLOPs are within the latency budget's share
    of the teacher's (``max_flops / FLOPS_SLACK``): checked without timing, so that sampling can shrink a candidate
    into the budget first (``benchmarks/search_sampling.py`` counts how many candidates above that share met the
    budget on onnxruntime CPU). On a GPU a small network's latency follows its depth and launches more than its
    FLOPs, so there the share is not applied. A candidate that cannot be built counts as within: :func:`evaluate`
    says why."""
    try:
        student = build_student(cand.family, cand.as_dict(), ctx.in_channels, ctx.num_classes, ctx.pruning).eval()
    except KDCompressError:
        return True
    on_cpu = BACKENDS[ctx.backend].device == "cpu"
    share = ctx.max_flops / FLOPS_SLACK if on_cpu and ctx.max_flops is not None else None
    n_params = sum(p.numel() for p in student.parameters())
    return size_reason(n_params, count_flops(student, ctx.x[:1]), ctx, share) is None


def size_reason(n_params: int, n_flops: int, ctx: SearchContext, max_flops: float | None) -> str | None:
    """Why a student of ``n_params`` parameters and ``n_flops`` FLOPs is out of ``ctx``'s size bounds (parameters,
    distillation FLOPs, then ``max_flops``), or None when it is within them."""
    if ctx.max_params is not None and n_params > ctx.max_params:
        return f"params {n_params} > {ctx.max_params:.0f}"
    if ctx.max_train_flops is not None and n_flops > ctx.max_train_flops:
        return f"flops {n_flops} > {ctx.max_train_flops:.0f} (budget.flops_ratio: distillation cost)"
    if max_flops is not None and n_flops > max_flops:
        return f"flops {n_flops} > {max_flops:.0f} (pre-filter, latency not measured)"
    return None


def evaluate(cand: Candidate, ctx: SearchContext) -> Scored:
    """Size and latency constraints first (cheap to expensive), then the proxy scores of a feasible candidate."""
    torch.manual_seed(ctx.seed)
    genes = cand.as_dict()
    try:
        student = build_student(cand.family, genes, ctx.in_channels, ctx.num_classes, ctx.pruning).eval()
    except KDCompressError as e:  # e.g. a pruning criterion that finds nothing to cut at these genes
        return Scored(cand.family, genes, 0, 0, None, None, False, str(e))
    n_params = sum(p.numel() for p in student.parameters())
    n_flops = count_flops(student, ctx.x[:1])
    if (reason := size_reason(n_params, n_flops, ctx, ctx.max_flops)) is not None:
        return Scored(cand.family, genes, n_params, n_flops, None, None, False, reason)
    if cand.key not in ctx.latency_cache:
        ctx.latency_cache[cand.key] = relative_latency(onnx_bytes(student, ctx.x[:1]), ctx)
    latency, ratio = ctx.latency_cache[cand.key]
    if ctx.max_latency_ratio is not None and ratio > ctx.max_latency_ratio:
        return Scored(cand.family, genes, n_params, n_flops, latency, ratio, False,
                      f"latency ratio {ratio:.3f} > {ctx.max_latency_ratio}")
    known = ctx.score_cache.get(cand.key, {})
    scores = {  # every proxy sees the same students, at the init it asks for
        name: known[name] if name in known else
        score_batches(name, ctx.batches, cand.family, genes, ctx.in_channels, ctx.num_classes, ctx.pruning)
        for name in [ctx.proxy, *ctx.also_score]
    }
    ctx.score_cache[cand.key] = {**known, **scores}
    return Scored(cand.family, genes, n_params, n_flops, latency, ratio, True, scores=scores)


def pruning_source(teacher: Teacher, example: torch.Tensor, progress: Progress) -> PruningSource | None:
    """The teacher as a pruning source, or None (with one line saying why) when DepGraph cannot prune it."""
    try:
        source = teacher.pruning_source(example)
        source.build({"ratio": 0.5, "importance": "l1", "global": 0})  # fails here, once, if it fails at all
        return source
    except KDCompressError as e:
        progress.note(f"pruned-teacher space skipped: {e}")
        return None


def reference_ratio(reference: bytes, teacher_artifact: Path, backend: str, threads: int, x: np.ndarray,
                    store: LatencyStore | None = None) -> float:
    """Reference p50 / teacher p50 on the search backend, timed interleaved (or as ``store`` holds it)."""
    key = None
    if store is not None:
        key = measurement_key("reference", graph_key(reference), graph_key(teacher_artifact.read_bytes()), backend,
                              threads, list(x.shape))
        if (known := store.get(key)) is not None:
            return known[0]
    runners = {"teacher": BACKENDS[backend](teacher_artifact, threads=threads),
               "reference": BACKENDS[backend](reference, threads=threads)}
    lat = interleaved_latency(runners, x, **REFERENCE_TIMING)
    ratio = lat["reference"].p50 / lat["teacher"].p50
    if key is not None:
        store.put(key, [ratio])
    return ratio


def prepare_context(job: Job, profile: Profile, teacher_record: TeacherRecord, backend: str,
                    progress: Progress | None = None) -> SearchContext:
    """The fixed inputs of one search: scoring batches with the teacher's signals, the budget in absolute terms,
    the reference student's ratio to the teacher on ``backend``."""
    teacher, data, prep, seed = job.teacher, job.data, job.prep, job.seed
    teacher_artifact, teacher_params, teacher_flops = Path(teacher_record.artifact), teacher_record.params, \
        teacher_record.flops
    cfg = profile.search
    lookup(PROXIES, cfg.proxy, "proxy")
    spaces, pruning = list(cfg.space), None
    if PRUNED_FAMILY in spaces:
        pruning = pruning_source(teacher, prep(data.x_train[:2]), progress or Progress())
        if pruning is None:
            spaces.remove(PRUNED_FAMILY)
            if not spaces:
                raise KDCompressError("the only search space, pruned-teacher, cannot be used with this teacher",
                                      "add a student family: --set search.space=[resnet,mobilenetv2,vgg]")
    also_score = [p for p in cfg.also_score if p != cfg.proxy]
    if profile.budget.flops_ratio and not teacher_flops:
        (progress or Progress()).note("budget.flops_ratio not applied: the teacher's FLOPs could not be counted")
    if teacher.kind == "onnx":  # logits only: no graph to probe for DisWOT's signals
        if cfg.proxy in TEACHER_PROXIES:
            raise KDCompressError(f"proxy {cfg.proxy} needs the teacher in PyTorch and this one is an ONNX file",
                                  "use --proxy synflow (the default), or give the teacher as .pt2/TorchScript/state_dict")
        dropped = sorted(set(also_score) & TEACHER_PROXIES)
        if dropped:
            (progress or Progress()).note(f"not scored with an ONNX teacher (they need it in PyTorch): "
                                          f"{', '.join(dropped)}")
            also_score = [p for p in also_score if p not in TEACHER_PROXIES]
    batches = proxy_batches(
        teacher, data.x_train, data.y_train, prep, cfg.proxy_batches, cfg.proxy_batch, cfg.teacher_init, seed,
        with_teacher=bool(TEACHER_PROXIES & {cfg.proxy, *also_score}),
    )
    in_channels, num_classes = data.input_shape[0], data.num_classes
    reference = onnx_bytes(build_student("resnet", REFERENCE_GENES, in_channels, num_classes).eval(), batches[0].x[:1])
    x_timing = np.zeros((profile.target.batch, *data.input_shape), dtype=np.float32)
    store = LatencyStore.open() if cfg.latency_cache else None
    budget = profile.budget
    return SearchContext(
        batches=batches, in_channels=in_channels, num_classes=num_classes,
        max_params=budget.params_ratio * teacher_params if budget.params_ratio else None,
        # teacher_flops is 0 when the teacher's FLOPs could not be counted: then no pre-filter
        max_flops=FLOPS_SLACK * budget.loosest * teacher_flops if budget.loosest and teacher_flops else None,
        max_latency_ratio=budget.loosest,
        max_train_flops=budget.flops_ratio * teacher_flops if budget.flops_ratio and teacher_flops else None,
        backend=backend, threads=profile.target.threads, batch=profile.target.batch, proxy=cfg.proxy, seed=seed,
        reference_onnx=reference,
        reference_ratio=reference_ratio(reference, teacher_artifact, backend, profile.target.threads, x_timing, store),
        also_score=also_score, spaces=spaces, pruning=pruning,
        latency_store=store, reference_key=graph_key(reference) if store is not None else "",
    )
