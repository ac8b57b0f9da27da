"""Profiles: the typed, validated description of a target and how to reach it (the shipped
``kdcompress/builtin_profiles/*.yaml``, also at ``profiles/``, or a user's YAML file).

Unknown keys are errors that name the key and suggest the closest valid one.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kdcompress.errors import KDCompressError, did_you_mean, first_line
from kdcompress.data_config import DataCfg  # noqa: F401 — re-exported
from kdcompress.loss_configs import FEATURE_LOSSES, KDLoss, Losses  # noqa: F401 — re-exported
from kdcompress.names import PROXIES, SPACES

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Strict):
    device: Literal["cpu", "cuda"] = Field("cpu", description="where the artifact runs")
    backend: Literal["onnxruntime", "onnxruntime-tensorrt", "tensorrt", "aoti"] = Field(
        "onnxruntime", description="runtime that runs it (aoti: PyTorch AOTInductor package)")
    precision: Literal["fp32", "fp16", "int8"] = Field("fp32", description="numeric precision of the artifact")
    batch: int = Field(1, ge=1, description="batch size latency is measured at")
    threads: int = Field(1, ge=0, description="intra-op threads for CPU backends (0 = runtime default)")


class Budget(_Strict):
    latency_ratio: float | list[float] | None = Field(
        0.25, description="student latency / teacher latency must be <= this; a list of ratios makes a front: the "
                          "search picks students for each target")
    params_ratio: float | None = Field(None, gt=0, description="student params / teacher params must be <= this")
    flops_ratio: float | None = Field(
        None, gt=0, description="student FLOPs per image / teacher FLOPs must be <= this: bounds what distilling a "
        "student costs (a training step is about three forward passes), which latency at batch 1 does not")
    max_accuracy_drop: float = Field(1.0, ge=0, description="accuracy points the student may lose (reported)")

    @field_validator("latency_ratio")
    @classmethod
    def _positive_targets(cls, v: float | list[float] | None) -> float | list[float] | None:
        values = v if isinstance(v, list) else [v] if v is not None else []
        if isinstance(v, list) and not v:
            raise ValueError("an empty list of latency targets: give one ratio or several, e.g. [0.3, 0.15]")
        if any(x <= 0 for x in values):
            raise ValueError(f"latency ratios must be > 0, got {v}")
        return sorted(set(v), reverse=True) if isinstance(v, list) else v

    @property
    def targets(self) -> list[float | None]:
        """The latency targets, loosest first ([None] when latency is not budgeted)."""
        return latency_targets(self.latency_ratio)

    @property
    def loosest(self) -> float | None:
        return self.targets[0]


def latency_targets(latency_ratio: float | list[float] | None) -> list[float | None]:
    """``budget.latency_ratio`` (one value, a list, or None) as a list, loosest first."""
    if isinstance(latency_ratio, list):
        return sorted(latency_ratio, reverse=True)
    return [latency_ratio]


class Refine(_Strict):
    """Successive halving with short distillation runs over the top candidates of each target."""

    candidates: int = Field(4, ge=2, description="how many of the best-ranked feasible candidates of a target enter")
    epochs: int = Field(1, ge=1, description="distillation epochs of the first rung; each later rung doubles them "
                        "for the better half")
    samples: int = Field(10000, ge=100, description="training images the short runs use (the first N)")


class Search(_Strict):
    student: Literal["search", "same"] = Field(
        "search", description="search = find students within the budget; same = Born-Again (Furlanello et al., "
        "ICML 2018): no search, the teacher's own architecture freshly initialised and distilled from the teacher "
        "(the budget is then only reported)")
    space: list[str] = Field(["resnet"], description="student families to search")
    # synflow by evidence: the best Kendall τ with distilled accuracy of every proxy we measured, DisWOT's about 0
    # (benchmarks/results/search_correlation.json); diswot stays one --proxy away.
    proxy: str = Field("synflow", description="zero-cost proxy that ranks candidates")
    also_score: list[str] = Field([], description="more proxies to score every feasible candidate with, to compare")
    population: int = Field(16, ge=2, description="aging-evolution population size")
    iterations: int = Field(100, ge=0, description="candidates scored after the initial population")
    tournament: int = Field(4, ge=1, description="tournament size for parent selection")
    top_k: int = Field(1, ge=1, description="how many of the best candidates are distilled (per target, per origin)")
    # teacher-first by evidence: a student cut from the teacher keeps its trained weights, which no zero-cost proxy
    # sees, and after the ci schedule it ends ahead of every family student at equal latency (benchmarks/results/
    # frontier.json); per-origin distils both kinds and lets the measured front decide.
    pick: Literal["teacher-first", "per-origin", "proxy"] = Field(
        "teacher-first",
        description="which candidates are distilled: teacher-first = the best cuts of the teacher (pruned-teacher) "
        "when it can be cut and one fits, else the best family students; per-origin = the best of each; "
        "proxy = the best by the proxy over all spaces in one evolution",
    )
    cut_rank: Literal["fidelity", "params", "proxy"] = Field(
        "fidelity",
        description="how the teacher's cuts are ranked (pick teacher-first/per-origin): fidelity = the cut whose "
        "outputs stay closest to the teacher's (KL on training images, normalisation statistics re-estimated); "
        "params = the cut that keeps the most trained weights; proxy = the search proxy, which scores them "
        "re-initialised",
    )
    proxy_batch: int = Field(64, ge=2, description="mini-batch size the proxy scores on")
    proxy_batches: int = Field(1, ge=1, description="scores are averaged over this many batches and student inits")
    workers: int = Field(0, ge=0, description="processes that evaluate candidates; 0: cores / target threads")
    refine: Refine | None = Field(None, description="spend a small training budget on the top candidates before "
                                  "picking (successive halving with short distillation runs); null: rank alone")
    latency_cache: bool = Field(True, description="keep every latency measured on this machine (by graph, backend, "
                                "threads and batch; $KDCOMPRESS_CACHE_DIR, default ~/.cache/kdcompress) and reuse it: "
                                "a repeated search times nothing twice and makes the same pick")
    teacher_init: Literal["random", "trained"] = Field(
        "random", description="DisWOT scores against the teacher architecture re-initialised (paper) or as trained"
    )


    @field_validator("space")
    @classmethod
    def _known_spaces(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in SPACES:
                raise ValueError(f"unknown space {name!r}: {did_you_mean(name, SPACES)}")
        return v

    @field_validator("proxy", "also_score")
    @classmethod
    def _known_proxies(cls, v: str | list[str]) -> str | list[str]:
        for name in [v] if isinstance(v, str) else v:
            if name not in PROXIES:
                raise ValueError(f"unknown proxy {name!r}: {did_you_mean(name, PROXIES)}")
        return v


class Distill(_Strict):
    epochs: int = Field(30, ge=1)
    loss: Losses = Losses()
    aug: Literal["none", "crop_flip", "random_resized_crop"] = Field(
        "none", description="train-time augmentation: crop_flip (shift by up to 2 px + flip), random_resized_crop "
        "(RandomResizedCrop over rrc_scale of the area + flip; of an image folder, from each file itself)")
    rrc_scale: tuple[float, float] = Field((0.08, 1.0), description="area range of aug random_resized_crop "
                                           "(torchvision's default)")
    mix: Literal["none", "mixup", "cutmix", "cutmix_pick"] = Field(
        "none", description="mix pairs of training images (after aug): mixup, CutMix, or CutMixPick (of two CutMix "
        "mixes of each image, the half the teacher is least sure of)")
    mix_alpha: float = Field(1.0, gt=0, description="the mixing weight's Beta(alpha, alpha) parameter")
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0)
    weight_decay: float = Field(5e-4, ge=0)
    batch: int = Field(128, ge=1)
    train_samples: int | None = Field(None, ge=1, description="use only the first N training samples")
    patience: int | None = Field(None, ge=1, description="early stop after N epochs without val improvement")
    ema: float | None = Field(None, gt=0, lt=1, description="keep an exponential moving average of the weights "
                              "with this decay per step (e.g. 0.999): validation and the saved student use it")
    cache_teacher_logits: bool = Field(True, description="keep the teacher's outputs: on the un-augmented set, computed once; on augmented or mixed batches, "
        "each batch's (every student of a run sees the same batches, so only the first pays)")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where the student trains: auto = the GPU when PyTorch sees one, else the CPU (the "
        "teacher stays on the CPU; its outputs are cached)")
    amp: Literal["auto", "off", "fp16", "bf16"] = Field(
        "auto", description="automatic mixed precision: auto = fp16 (with loss scaling) on a GPU, off on the CPU")

    @field_validator("amp", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        """YAML 1.1 reads an unquoted ``off`` as false: ``amp: off`` means off."""
        return "off" if value is False else value

    @model_validator(mode="after")
    def _device_is_there(self) -> Distill:
        """``device: cuda`` without a GPU fails here, when the profile is read, not after the search."""
        if self.device == "cuda":
            from kdcompress.device import check_device  # torch: only for a cuda profile

            check_device(self.device)
        return self


class Export(_Strict):
    opset: int = Field(18, ge=13)
    dynamic_batch: bool = True
    int8: bool = Field(False, description="also build an int8 QDQ model (onnxruntime static quantization)")
    int8_scheme: Literal["auto", "u8s8", "s8s8", "u8u8"] = Field(
        "auto", description="activation/weight int8 types; auto: chosen from the CPU's instruction set or the GPU")
    reduce_range: bool | None = Field(None, description="7-bit weights; null: chosen with the scheme")
    calibration_method: Literal["minmax", "entropy", "percentile"] = Field("minmax", description="int8 calibration")
    calibration_samples: int = Field(512, ge=1, description="training images the int8 ranges are calibrated on")
    max_batch: int = Field(256, ge=1, description="largest batch a TensorRT engine / AOTInductor package accepts")
    parity_samples: int = Field(256, ge=1, description="inputs compared between PyTorch and the artifact")


class Bench(_Strict):
    warmup: int = Field(50, ge=0)
    iters: int = Field(300, ge=1)
    repeats: int = Field(5, ge=1)
    test_samples: int | None = Field(None, ge=1, description="measure accuracy on the first N test samples")
    throughput_batch: int | None = Field(
        None, ge=1, description="also measure every artifact at this batch (images/s); null: target.batch only")
    throughput_iters: int = Field(20, ge=1, description="timed runs per repeat at the throughput batch")


class Check(_Strict):
    """The CI regression gate (``kdcompress check``, DESIGN §7)."""

    max_slowdown: float = Field(0.10, gt=0, le=1, description="slowdown the gate must catch (0.10 = 10 %)")
    tolerance: float | None = Field(None, ge=0, description="slowdown never flagged: the test's null is 'slower by "
                                                            "at most this'; default half of max_slowdown")
    alpha: float = Field(0.01, gt=0, lt=0.5, description="false-alarm level of the one-sided test")
    max_accuracy_drop: float = Field(0.5, ge=0, description="accuracy points the artifact may lose to the baseline")
    repetitions: int = Field(30, ge=5, le=1000, description="shuffled candidate/control block pairs a check starts with")
    max_repetitions: int = Field(120, ge=5, le=1000, description="a check too noisy to decide doubles its "
                                                                 "repetitions up to this many")
    baseline_repetitions: int = Field(100, ge=5, le=1000, description="block pairs of `baseline save`")

    @field_validator("tolerance")
    @classmethod
    def _below_max(cls, v: float | None, info: Any) -> float | None:
        if v is not None and v >= info.data.get("max_slowdown", 1.0):
            raise ValueError(f"tolerance {v} must be below max_slowdown {info.data.get('max_slowdown')}")
        return v

    @property
    def null_slowdown(self) -> float:
        return self.tolerance if self.tolerance is not None else self.max_slowdown / 2

    @property
    def looks(self) -> int:
        """How many times a check may judge: at ``repetitions``, then after each doubling up to the maximum."""
        n, k = self.repetitions, 1
        while n < self.max_repetitions:
            n, k = min(2 * n, self.max_repetitions), k + 1
        return k

    @property
    def alpha_per_look(self) -> float:
        """Bonferroni: each look at α / looks, so that stopping at any of them keeps the false-alarm level α."""
        return self.alpha / self.looks


class Profile(_Strict):
    version: int = SCHEMA_VERSION
    name: str
    description: str = ""
    target: Target = Target()
    budget: Budget = Budget()
    search: Search = Search()
    distill: Distill = Distill()
    export: Export = Export()
    bench: Bench = Bench()
    check: Check = Check()
    data: DataCfg = DataCfg()


def available_profiles() -> dict[str, Traversable]:
    """The shipped profiles by name: package data (``kdcompress/builtin_profiles/*.yaml``, also ``profiles/``)."""
    folder = resources.files("kdcompress") / "builtin_profiles"
    return {p.name.removesuffix(".yaml"): p for p in sorted(folder.iterdir(), key=lambda p: p.name)
            if p.name.endswith(".yaml")}


def _field_names(model: type[BaseModel], loc: tuple) -> list[str]:
    """The valid keys at ``loc`` (a pydantic error location) inside ``model``."""
    for part in loc[:-1]:
        ann = model.model_fields[part].annotation
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


_TYPE_TAGS = frozenset({"float", "int", "str", "bool", "none"})


def _first_error(source: str, exc: ValidationError, overridden: frozenset[str] = frozenset()) -> KDCompressError:
    """The first validation error, in the user's words: blamed on ``--set key`` when the value came from there."""
    err = exc.errors()[0]
    # pydantic names the member of a union it tried (`latency_ratio.float`, `…list[float]`): not a key of ours
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (p in _TYPE_TAGS or "[" in p)))
    key = ".".join(str(p) for p in loc)
    # the value came from --set when that key, a section above it or a key below it was set there
    from_set = any(key == o or key.startswith(o + ".") or o.startswith(key + ".") for o in overridden)
    where = f"--set {key}" if from_set else f"{source}: {key}"
    if err["type"] == "extra_forbidden":
        return KDCompressError(f"{where}: unknown key", did_you_mean(str(loc[-1]), _field_names(Profile, loc)))
    if err["type"] == "value_error":  # our validators' messages already name the value and the fix
        return KDCompressError(f"{where}: {str(err['msg']).removeprefix('Value error, ')}")
    return KDCompressError(f"{where}: {err['msg']}", f"got {err.get('input')!r}")


def validate_profile(raw: Any, source: str, overridden: frozenset[str] = frozenset()) -> Profile:
    if not isinstance(raw, dict):
        raise KDCompressError(f"{source}: a profile must be a YAML mapping")
    try:
        return Profile.model_validate(raw)
    except ValidationError as e:
        raise _first_error(source, e, overridden) from None


def parse_overrides(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as ``{dotted key: YAML value}``, the form ``load_profile`` takes."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise KDCompressError(f"--set {pair!r}: expected KEY=VALUE", "e.g. --set distill.epochs=5")
        out[key] = yaml.safe_load(value)
    return out


def load_profile(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> Profile:
    """Load a shipped profile by name or a YAML file by path, apply dotted ``overrides``, validate."""
    profiles = available_profiles()
    path: Path | Traversable = Path(name_or_path)
    source = str(name_or_path)
    if str(name_or_path) in profiles:
        path = profiles[str(name_or_path)]
        source = path.name
    elif not Path(name_or_path).suffix or not Path(name_or_path).exists():
        raise KDCompressError(f"unknown profile {str(name_or_path)!r}", did_you_mean(str(name_or_path), profiles))
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise KDCompressError(f"{source}: invalid YAML ({first_line(e, None)})") from None
    raw = raw if raw is not None else {}
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise KDCompressError(f"--set {dotted}: {'.'.join(parents)} is not a section of the profile")
        node[leaf] = value
    return validate_profile(raw, source, frozenset(overrides or ()))
