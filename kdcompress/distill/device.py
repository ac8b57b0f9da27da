"""Where the student trains and in which precision (``distill.device``, ``distill.amp``).

The student (and the feature losses' adapters) train on the chosen device; the teacher stays where it was loaded
(the CPU: an ONNX or TorchScript teacher cannot move) and its outputs move to the student — cached once on the
un-augmented data, so on a GPU the teacher's cost is paid once, not every step. Mixed precision is PyTorch's
automatic mixed precision: ``torch.autocast`` around the forward pass and the losses, and for fp16 a
``torch.amp.GradScaler`` (checkpointed, so a resumed run scales as the uninterrupted one would).
"""

from __future__ import annotations

import os

import torch

from kdcompress.errors import KDCompressError

AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def training_device(name: str) -> torch.device:
    """``auto``: the GPU when PyTorch sees one, else the CPU; ``cuda`` without a GPU is the user's to fix. Under
    torchrun each process takes the GPU of its ``LOCAL_RANK``."""
    has_cuda = torch.cuda.is_available()
    if name == "cuda" and not has_cuda:
        raise KDCompressError("distill.device is cuda but PyTorch sees no GPU (a CPU build, or no driver)",
                              "use --set distill.device=auto (or cpu), or install a CUDA build of torch")
    if name == "cpu" or not has_cuda:
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def amp_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32: ``auto`` is fp16 on a GPU and fp32 on the CPU (where fp16 and
    bf16 run only as fast as the CPU's instructions allow; ask for them by name)."""
    if name == "auto":
        return torch.float16 if device.type == "cuda" else None
    return AMP_DTYPES.get(name)
