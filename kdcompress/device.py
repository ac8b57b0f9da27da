"""Where the student trains and in which precision (``distill.device``, ``distill.amp``).

The student (and the feature losses' adapters) train on the chosen device; the teacher stays where it was loaded
(the CPU: an ONNX or TorchScript teacher cannot move) and its outputs move to the student. Without augmentation
they are cached once, so on a GPU the teacher is paid for once; with augmentation or mixing it runs on the CPU for
every batch the per-batch cache has not seen (the first student of a run), which a GPU will wait for. Mixed
precision is PyTorch's automatic mixed precision (Micikevicius et al., "Mixed Precision Training", ICLR 2018):
``torch.autocast`` around the student's forward pass, the losses in fp32, and for fp16 a ``torch.amp.GradScaler``
(checkpointed, so a resumed run scales as the uninterrupted one would). Exact resume holds on the CPU; on a GPU
some kernels are not deterministic.
"""

from __future__ import annotations

import os

import torch

from kdcompress.errors import KDCompressError

AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def check_device(name: str) -> None:
    """``cuda`` without a GPU is the user's to fix (checked when the profile is read, and again here)."""
    if name == "cuda" and not torch.cuda.is_available():
        raise KDCompressError("distill.device is cuda but PyTorch sees no GPU (a CPU build, or no driver)",
                              "use --set distill.device=auto (or cpu), or install a CUDA build of torch")


def training_device(name: str) -> torch.device:
    """``auto``: the GPU when PyTorch sees one, else the CPU; ``cuda`` without a GPU is the user's to fix. Under
    torchrun each process takes the GPU of its ``LOCAL_RANK``."""
    check_device(name)
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    index = int(os.environ.get("LOCAL_RANK", "0"))
    if index >= torch.cuda.device_count():
        raise KDCompressError(f"this process is local rank {index} but PyTorch sees {torch.cuda.device_count()} GPU(s)",
                              "start at most one process per GPU (torchrun --nproc-per-node)")
    torch.cuda.set_device(index)  # NCCL's collectives (the barriers, rank 0's broadcasts) run on the current device
    return torch.device("cuda", index)


def amp_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32: ``auto`` is fp16 on a GPU and fp32 on the CPU (where fp16 and
    bf16 run only as fast as the CPU's instructions allow; ask for them by name)."""
    if name == "auto":
        return torch.float16 if device.type == "cuda" else None
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise KDCompressError("distill.amp is bf16 but this GPU has no bfloat16 arithmetic",
                              "use --set distill.amp=fp16 (or auto)")
    return AMP_DTYPES.get(name)
