"""The registries' names, torch-free: what a profile is validated against without importing the registries (which
load torch). ``tests/test_registries.py`` checks that each list equals its registry's names."""

from __future__ import annotations

SPACES = ("resnet", "mobilenetv2", "vgg", "pruned-teacher")  # kdcompress.search.space.SPACES
PROXIES = ("diswot", "diswot_code", "diswot_relation", "diswot_kxk", "diswot_kxk_semantic", "diswot_kxk_log",
           "params", "flops", "grad_norm", "snip", "synflow", "nwot", "zen", "combo")  # kdcompress.search.proxies
LOSSES = ("kd", "dkd", "fitnet", "sp", "ickd", "rkd", "nd", "cat")  # kdcompress.distill.losses.LOSSES
BACKENDS = ("onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt", "aoti-cpu",
            "aoti-cuda")  # kdcompress.bench.backends.BACKENDS
