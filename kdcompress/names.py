"""The registries' names, torch-free: what a profile is validated against without importing the registries (which
load torch). ``tests/test_registries.py`` checks that each list equals its registry's names."""

from __future__ import annotations

from kdcompress.loss_configs import LOSS_NAMES

SPACES = ("resnet", "mobilenetv2", "vgg", "pruned-teacher")  # kdcompress.search.space.SPACES
PROXIES = ("diswot", "diswot_code", "diswot_relation", "diswot_kxk", "diswot_kxk_semantic", "diswot_kxk_log",
           "params", "flops", "grad_norm", "snip", "synflow", "nwot", "zen", "combo")  # kdcompress.search.proxies
LOSSES = LOSS_NAMES  # kdcompress.distill.losses.LOSSES: the profile's loss sections, one per loss
BACKENDS = ("onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt", "aoti-cpu",
            "aoti-cuda")  # kdcompress.bench.backends.BACKENDS
