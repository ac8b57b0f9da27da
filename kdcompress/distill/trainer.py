"""The distillation trainer: plain PyTorch, cosine LR, a checkpoint every epoch and exact resume (DESIGN §5).

Outputs under the student's folder: ``model.pt`` (best-on-validation state_dict, loadable with
``weights_only=True``), ``spec.json`` (family + genes to rebuild it), ``ckpt.pt`` (resume state) and
``history.jsonl`` (one line per epoch).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from kdcompress.data import Preprocess
from kdcompress.data.augment import MIXES, Mixed, cutmix_pick, random_crop_flip
from kdcompress.data.splits import Images, batches, take
from kdcompress.device import amp_dtype, training_device
from kdcompress.distill.distributed import barrier, from_rank0, rank0_first, rank_and_world
from kdcompress.distill.features import FeatureDistiller
from kdcompress.distill.losses import Taps, total_loss
from kdcompress.distill.teacher_cache import ViewCache, save_torch, teacher_logits_cached
from kdcompress.distill.tokens import TokenTaps
from kdcompress.errors import KDCompressError
from kdcompress.job import Job
from kdcompress.models.graph_layers import GraphLayers
from kdcompress.models.load import Teacher
from kdcompress.models.pruning import TEACHER_FAMILIES, PruningSource
from kdcompress.models.students import build_student, inherit_weights, logits_and_features
from kdcompress.profiles import Distill
from kdcompress.records import StudentSpec
from kdcompress.run import Progress, atomic_write, write_json

# a spec's ``init``: start from the teacher's weights, blocks it lacks as the identity (Net2Net) or fresh (what
# benchmarks/depth_space.py compares it with); see :func:`inherit_weights`
TEACHER_INITS = {"teacher": "identity", "teacher_fresh": "fresh"}


@dataclass
class DistillResult:
    student_dir: Path
    best_val_accuracy: float
    epochs_run: int
    seconds: float


@torch.no_grad()
def evaluate(model: nn.Module, x: Images, y: torch.Tensor, prep: Preprocess, batch: int = 1000) -> float:
    model.eval()
    device = next(model.parameters()).device
    correct = sum(int((model(prep(xb).to(device)).argmax(1).cpu() == yb).sum()) for _, xb, yb in batches(x, y, batch))
    return 100.0 * correct / max(1, len(y))


class StudentTaps(nn.Module):
    """The student as trained: ``(logits, last feature map or None)``, the learned adapters of the feature losses
    held beside it so that DDP averages their gradients too."""

    def __init__(self, student: nn.Module, features: FeatureDistiller | None) -> None:
        super().__init__()
        self.student = student
        self.adapters = nn.ModuleList([m for _, m in features.adapters()]) if features is not None else None
        self.taps = features is not None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return logits_and_features(self.student, x) if self.taps else (self.student(x), None)


@dataclass
class TeacherOutputs:
    """Where a batch's teacher logits (and last feature map, for the feature losses) come from: the caches, made
    once on the un-augmented training set, or the teacher itself."""

    teacher: Teacher
    features: FeatureDistiller | None
    logits: torch.Tensor | None = None
    maps: torch.Tensor | None = None
    views: ViewCache | None = None  # the teacher's logits on augmented batches, replayed where seen before
    live_only: bool = False  # the relation losses read the teacher's attention on this very batch: no cache

    def live(self, x: torch.Tensor) -> torch.Tensor:
        return self.views(x) if self.views is not None else self.teacher.module(x)

    @torch.no_grad()
    def __call__(self, idx: torch.Tensor, x: torch.Tensor, mixed: Mixed | None) -> tuple[torch.Tensor,
                                                                                        torch.Tensor | None]:
        if self.live_only:
            return self.teacher.module(x), None
        if self.logits is not None:
            return self.logits[idx], None if self.maps is None else self.maps[idx].float()
        if self.features is not None:
            return self.features.teacher(x)
        if mixed is not None and mixed.teacher_logits is not None:  # CutMixPick ran the teacher already
            return mixed.teacher_logits, None
        return self.live(x), None


def mix_batch(cfg: Distill, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
              teacher: Callable[[torch.Tensor], torch.Tensor]) -> Mixed:
    """``distill.mix`` applied to a normalised batch (CutMixPick asks ``teacher`` which mixes to keep)."""
    if cfg.mix == "cutmix_pick":
        return cutmix_pick(x, y, cfg.mix_alpha, generator, teacher)
    return MIXES[cfg.mix](x, y, cfg.mix_alpha, generator)


def load_student(student_dir: Path, pruning: PruningSource | None = None) -> nn.Module:
    """Rebuild a trained student from ``spec.json`` + ``model.pt`` (no pickle executed); a pruned-teacher student
    is re-cut from its teacher (``pruning``) first."""
    spec = StudentSpec.from_json(json.loads((student_dir / "spec.json").read_text()), str(student_dir / "spec.json"))
    model = build_student(spec.space, spec.genes, spec.in_channels, spec.num_classes, pruning)
    model.load_state_dict(torch.load(student_dir / "model.pt", map_location="cpu", weights_only=True))
    return model.eval()


def distill(job: Job, spec: StudentSpec, cfg: Distill, student_dir: Path,
            progress: Progress | None = None) -> DistillResult:
    """Distil the student ``spec`` describes; resume from ``ckpt.pt`` when present.
    Under torchrun, data-parallel over its processes (:mod:`kdcompress.distill.distributed`)."""
    teacher, data, prep, logit_cache, seed = job.teacher, job.data, job.prep, job.logit_cache, job.seed
    rank, world = rank_and_world()
    device = training_device(cfg.device)  # before any work: a device that is not there is the user's to fix
    amp = amp_dtype(cfg.amp, device)
    progress = (progress or Progress()) if rank == 0 else Progress()
    t_start = time.time()
    torch.manual_seed(seed)
    pruning = teacher.pruning_source(prep(data.x_train[:2])) if spec.space in TEACHER_FAMILIES else None
    model = build_student(spec.space, spec.genes, spec.in_channels, spec.num_classes, pruning)
    if spec.init in TEACHER_INITS:  # a family student with the teacher's names: start from what it shares
        # the teacher's own parameter names: a recipe's network keeps them, a rewritten graph's layers do not
        eager = teacher.eager if not isinstance(teacher.eager, GraphLayers) else None
        source = eager if eager is not None else teacher.module
        if not inherit_weights(model, source, TEACHER_INITS[spec.init]):
            raise KDCompressError("the student shares no weight (same name and shape) with the teacher",
                                  "drop init: teacher from the student's spec")
    ckpt_path, history_path, spec_path = student_dir / "ckpt.pt", student_dir / "history.jsonl", student_dir / "spec.json"
    if rank == 0:
        if spec_path.exists() and json.loads(spec_path.read_text()) != spec.to_json():
            ckpt_path.unlink(missing_ok=True)  # a checkpoint of another student: never resume from it
        write_json(spec_path, spec.to_json())
    barrier()  # the others look for a checkpoint only once rank 0 has judged it
    x, y = data.x_train, data.y_train
    if cfg.train_samples is not None:
        x, y = take(x, slice(0, cfg.train_samples)), y[: cfg.train_samples]
    # feature losses need the teacher's last map too: cached beside its logits, or the teacher runs on every batch
    features = FeatureDistiller(cfg.loss, teacher, model, prep(x[:2])) if cfg.loss.features else None
    # the relation losses read the teacher's attention on each batch: the teacher runs on every batch
    if cfg.loss.tokens:
        TokenTaps(model, teacher.module).remove()  # a network without attention: one line, before any work
    outputs = TeacherOutputs(teacher, features, live_only=cfg.loss.tokens)
    cache = cfg.cache_teacher_logits and not cfg.loss.tokens
    if cache and cfg.aug == "none" and cfg.mix == "none":
        if features is not None:
            outputs.logits, outputs.maps = rank0_first(lambda: features.teacher_cached(
                x, prep, logit_cache.with_name("teacher_features_train.pt")))
        else:
            outputs.logits = rank0_first(lambda: teacher_logits_cached(teacher, x, prep, logit_cache))
    elif cache and features is None and world == 1:  # per-batch entries: one process's
        outputs.views = ViewCache(logit_cache.with_name("teacher_views"), teacher)
    if features is not None and features.needs_class_means:
        features.fit_class_means(x, y, prep, outputs.maps)

    net: nn.Module = StudentTaps(model, features).to(device)  # the student and the adapters
    if world > 1:  # DDP averages their gradients over the processes
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)  # fp16 needs its loss scaled
    params = [p for p in model.parameters() if p.requires_grad]
    params += features.adapter_parameters() if features is not None else []
    if cfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
        )
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(y) / cfg.batch)
    # cosine annealing to zero over every step of the schedule, stepped once a batch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    # weight averaging (distill.ema): validation, the saved student and so the export use the average
    ema = (torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema),
                                               use_buffers=True) if cfg.ema else None)
    gen = torch.Generator().manual_seed(seed)
    start_epoch, best_acc, stale, seconds_before = 0, -1.0, 0, 0.0
    history: list[dict] = []
    finished = False
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        if ema is not None:
            ema.load_state_dict(ck["ema"])
        if "scaler" in ck:
            scaler.load_state_dict(ck["scaler"])
        if features is not None:
            features.load_adapter_state(ck["adapters"])
        gen.set_state(ck["generator"])
        torch.set_rng_state(ck["torch_rng"])
        start_epoch, best_acc, stale = ck["epoch"], ck["best_acc"], ck["stale"]
        seconds_before, finished = ck.get("seconds", 0.0), ck.get("finished", False)
        history = [json.loads(line) for line in history_path.read_text().splitlines()] if history_path.exists() else []
        history = history[:start_epoch]

    resumed = f" (resumed after epoch {start_epoch}/{cfg.epochs})" if start_epoch and not finished else ""
    progress.start(f"distill {student_dir.name}{resumed}", cfg.epochs * steps_per_epoch)
    progress.advance(start_epoch * steps_per_epoch)
    teacher.set_eval()
    # hooks on both networks' last attention layer, put on after the average's copy (which would carry them along)
    tokens = TokenTaps(model, teacher.module) if cfg.loss.tokens else None
    try:
        for epoch in range(start_epoch, cfg.epochs if not finished else start_epoch):
            t0 = time.time()
            model.train()
            if features is not None:
                features.train()
            total, n = 0.0, 0
            if outputs.views is not None:
                outputs.views.start_epoch(epoch)
            # random_resized_crop: a crop per (seed, epoch, image), decoded from each file where x is a folder
            crops = seed * 1_000_003 + epoch if cfg.aug == "random_resized_crop" else None
            for idx, xb, yb in batches(x, y, cfg.batch, shuffle=True, generator=gen, augment_seed=crops,
                                       scale=cfg.rrc_scale):
                if cfg.aug == "crop_flip":
                    xb = random_crop_flip(xb, generator=gen)
                inp = prep(xb)
                mixed = mix_batch(cfg, inp, yb, gen, outputs.live) if cfg.mix != "none" else None
                if mixed is not None:
                    inp = mixed.x
                if world > 1:  # every process drew the whole batch (same generator); each trains on its share
                    share = slice(rank, None, world)
                    idx, inp, yb = idx[share], inp[share], yb[share]
                    mixed = None if mixed is None else mixed.share(share)
                t_logits, t_maps = outputs(idx, inp, mixed)  # where the teacher is (the CPU), then to the student
                inp, yb, t_logits = inp.to(device), yb.to(device), t_logits.to(device)
                t_maps = None if t_maps is None else t_maps.to(device)
                labels = [(1.0, yb)] if mixed is None else [(mixed.lam, mixed.y_a.to(device)),
                                                            (1 - mixed.lam, mixed.y_b.to(device))]
                with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                    s_logits, s_maps = net(inp)
                # the losses in fp32: SP's and ICKD's Gram matrices sum thousands of products, past fp16's range
                s_logits, s_maps = s_logits.float(), None if s_maps is None else s_maps.float()
                taps = (features.taps(s_logits, t_logits, s_maps, t_maps, model, labels, epoch, cfg.epochs)
                        if features is not None else Taps(s_logits, t_logits, labels, epoch, cfg.epochs))
                if tokens is not None:
                    s_tokens, t_tokens = tokens.take()
                    taps.s_tokens, taps.t_tokens = s_tokens, tuple(t.to(device) for t in t_tokens)
                loss = total_loss(cfg.loss, taps)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                sched.step()
                if ema is not None:
                    ema.update_parameters(model)
                total += float(loss.detach()) * len(yb)
                n += len(yb)
                progress.advance(note=f"epoch {epoch + 1}/{cfg.epochs} loss {total / n:.3f}")
            if outputs.views is not None:
                outputs.views.save()
            kept = model if ema is None else ema.module
            val_acc = from_rank0(evaluate(kept, data.x_val, data.y_val, prep) if rank == 0 else 0.0)
            improved = val_acc > best_acc
            if improved:
                best_acc, stale = val_acc, 0
                if rank == 0:
                    save_torch(student_dir / "model.pt", {k: v.detach().cpu() for k, v in kept.state_dict().items()})
            else:
                stale += 1
            early_stop = cfg.patience is not None and stale >= cfg.patience
            history.append({"epoch": epoch + 1, "loss": total / max(1, n), "val_accuracy": val_acc,
                            "lr": sched.get_last_lr()[0], "seconds": round(time.time() - t0, 2)})
            if rank == 0:
                atomic_write(history_path, "".join(json.dumps(h) + "\n" for h in history))
                save_torch(ckpt_path, {
                    "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "epoch": epoch + 1,
                    "best_acc": best_acc, "stale": stale, "seconds": seconds_before + time.time() - t_start,
                    "finished": epoch + 1 == cfg.epochs or early_stop,
                    **({"ema": ema.state_dict()} if ema is not None else {}),
                    **({"scaler": scaler.state_dict()} if scaler.is_enabled() else {}),
                    **({"adapters": features.adapter_state()} if features is not None else {}),
                })
            if early_stop:
                break
        progress.stop()
    finally:
        if tokens is not None:
            tokens.remove()
    barrier()  # the others return once rank 0 has written the last checkpoint
    return DistillResult(student_dir, best_acc, len(history), seconds_before + time.time() - t_start)
