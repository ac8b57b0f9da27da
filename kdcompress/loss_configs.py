"""The profile's ``distill.loss``: one config class per loss of :data:`kdcompress.distill.losses.LOSSES`, each with
the paper's defaults; torch-free (validated with the profile)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KDLoss(_Strict):
    taps: ClassVar[str] = "logits"  # what the loss reads: the logits, or the last feature maps too
    T: float = Field(4.0, gt=0, description="softmax temperature")
    alpha: float = Field(0.9, ge=0, le=1, description="weight of the KD term; 1 - alpha weights cross-entropy")


class DKDLoss(_Strict):
    """Decoupled KD (Zhao et al., CVPR 2022); the defaults are their CIFAR recipe."""

    taps: ClassVar[str] = "logits"
    T: float = Field(4.0, gt=0, description="softmax temperature")
    alpha: float = Field(1.0, ge=0, description="weight of TCKD (target vs non-target mass)")
    beta: float = Field(8.0, ge=0, description="weight of NCKD (the distribution among non-target classes)")
    ce: float = Field(1.0, ge=0, description="weight of the cross-entropy with the labels")
    warmup: float = Field(1 / 12, ge=0, le=1, description="share of the epochs over which the distillation term "
                                                            "ramps up linearly (their recipe: 20 of 240)")


class FitNetLoss(_Strict):
    """FitNets hint (Romero et al., ICLR 2015) on the last feature map, through a learned 1x1 regressor."""

    taps: ClassVar[str] = "maps"
    weight: float = Field(100.0, ge=0, description="weight of the hint loss (CRD's benchmark uses 100)")


class SPLoss(_Strict):
    """Similarity-Preserving KD (Tung & Mori, ICCV 2019) on the last feature map."""

    taps: ClassVar[str] = "maps"
    weight: float = Field(3000.0, ge=0, description="weight of the SP loss (the paper's 3000)")


class ICKDLoss(_Strict):
    """Inter-Channel Correlation KD (Liu et al., ICCV 2021) on the last feature map (a learned 1x1 embedding where
    the channel counts differ)."""

    taps: ClassVar[str] = "maps"
    weight: float = Field(1.0, ge=0, description="weight of the ICKD loss (ours: not tuned)")


class RKDLoss(_Strict):
    """Relational KD (Park et al., CVPR 2019) on the pooled embedding."""

    taps: ClassVar[str] = "maps"
    distance: float = Field(25.0, ge=0, description="weight of the distance term (the paper's 25)")
    angle: float = Field(50.0, ge=0, description="weight of the angle term (the paper's 50)")


class NDLoss(_Strict):
    """ND loss (Wang et al., NeurIPS 2023) on the pooled embedding (a learned linear map where the widths differ)."""

    taps: ClassVar[str] = "maps"
    weight: float = Field(1.0, ge=0, description="weight of the ND loss (the authors' CIFAR default, 1)")


class CATLoss(_Strict):
    """Class Attention Transfer (Guo et al., CVPR 2023): the networks' class activation maps."""

    taps: ClassVar[str] = "maps"
    weight: float = Field(400.0, ge=0, description="weight of the CAT loss (400: their CIFAR config)")
    resolution: int = Field(2, ge=1, description="side the maps are pooled to before comparing")
    normalize: bool = Field(True, description="L2-normalise each map over its positions")


class MiniLMLoss(_Strict):
    """MiniLMv2's self-attention relation distillation (Wang et al., Findings of ACL 2021) on the last attention
    layer of a transformer student and teacher (Hugging Face ViT/DeiT/BERT-like layout)."""

    taps: ClassVar[str] = "tokens"
    weight: float = Field(1.0, ge=0, description="weight of the relation loss (the paper sums the three KLs, 1 each)")
    relation_heads: int = Field(12, ge=1, description="relation heads the queries, keys and values are split into "
                                "(the paper: 12 for base-size teachers); the largest count up to this that divides "
                                "both networks' widths is used")


class Losses(_Strict):
    """The distillation loss: the sum of the losses named here. Hinton KD is added unless a logit loss (kd or dkd)
    is named; the feature losses (fitnet, sp, ickd, rkd, nd, cat) and the transformer relation loss (minilm) come
    on top of it."""

    kd: KDLoss | None = None
    dkd: DKDLoss | None = None
    fitnet: FitNetLoss | None = None
    sp: SPLoss | None = None
    ickd: ICKDLoss | None = None
    rkd: RKDLoss | None = None
    nd: NDLoss | None = None
    cat: CATLoss | None = None
    minilm: MiniLMLoss | None = None

    @property
    def features(self) -> bool:
        """Whether a loss needs the networks' feature maps (not only their logits)."""
        return any(getattr(self, name) is not None for name in FEATURE_LOSSES)

    @property
    def tokens(self) -> bool:
        """Whether a loss reads the transformers' attention projections (not only their logits)."""
        return any(getattr(self, name) is not None for name in TOKEN_LOSSES)

    @model_validator(mode="after")
    def _one_kind_of_taps(self) -> Losses:
        if self.features and self.tokens:  # feature maps come from a CNN probe, relations from a transformer
            raise ValueError(f"{', '.join(n for n in TOKEN_LOSSES if getattr(self, n))} (transformers) cannot be "
                             f"combined with {', '.join(n for n in FEATURE_LOSSES if getattr(self, n))} (CNN feature "
                             "maps)")
        return self

    @model_validator(mode="before")
    @classmethod
    def _kd_by_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kd") is None and data.get("dkd") is None:
            return {**data, "kd": {}}
        return data


def _config(name: str) -> type[_Strict]:
    """The config class of ``Losses.<name>`` (its annotation is ``Config | None``)."""
    return next(a for a in Losses.model_fields[name].annotation.__args__ if a is not type(None))


LOSS_NAMES = tuple(Losses.model_fields)  # every loss a profile can name (kdcompress.names.LOSSES)
FEATURE_LOSSES = tuple(n for n in LOSS_NAMES if _config(n).taps == "maps")  # those that need feature maps too
TOKEN_LOSSES = tuple(n for n in LOSS_NAMES if _config(n).taps == "tokens")  # those that read attention projections
