"""Every registry drives the code through one :class:`~kdcompress.registry.Registry`: unknown names fail in one line
with a suggestion, and the torch-free name index the profiles are validated against matches each registry."""

from __future__ import annotations

import pytest

from kdcompress import names
from kdcompress.bench.backends import BACKENDS
from kdcompress.distill.losses import LOSSES
from kdcompress.errors import KDCompressError
from kdcompress.models.students import STUDENTS
from kdcompress.registry import Registry
from kdcompress.search.proxies import PROXIES
from kdcompress.search.space import SPACES

REGISTRIES = {"spaces": (SPACES, names.SPACES), "proxies": (PROXIES, names.PROXIES), "losses": (LOSSES, names.LOSSES),
              "backends": (BACKENDS, names.BACKENDS)}


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_the_name_index_matches_the_registry(kind):
    registry, index = REGISTRIES[kind]
    assert isinstance(registry, Registry)
    assert sorted(index) == registry.names()


@pytest.mark.parametrize("registry", [SPACES, PROXIES, LOSSES, BACKENDS, STUDENTS], ids=lambda r: r.kind)
def test_an_unknown_name_suggests_the_closest(registry):
    name = registry.names()[0]
    with pytest.raises(KDCompressError, match=f"did you mean {name!r}") as e:
        registry[name + "x"]
    assert "\n" not in str(e.value) and registry.kind in str(e.value)


def test_every_space_can_build_its_students():
    """The spaces of the search and the student builders are one set of names: a space without a builder (or the
    reverse) would fail only when the search first samples it."""
    assert set(SPACES) <= set(STUDENTS)


def test_register_refuses_a_name_twice():
    reg: Registry[int] = Registry("thing")
    reg.register("a")(1)
    with pytest.raises(ValueError, match="twice"):
        reg.register("a")(2)
    assert reg["a"] == 1 and reg.get("b") is None and "b" not in reg


def test_every_loss_has_its_profile_section_and_its_term_runs():
    """A loss is one registered entry: its config class is the profile's ``distill.loss.<name>`` section, the
    torch-free list of feature losses names exactly those that tap feature maps, and its term is a finite scalar on
    a batch that trains the student through it."""
    import torch

    from kdcompress.distill.losses import Taps, embedding, total_loss
    from kdcompress.loss_configs import FEATURE_LOSSES, Losses

    assert set(Losses.model_fields) == set(LOSSES)
    assert set(FEATURE_LOSSES) == {n for n, e in LOSSES.items() if e.taps == "maps"}
    g = torch.Generator().manual_seed(0)
    s_maps = torch.randn(6, 8, 4, 4, generator=g, requires_grad=True)
    t_maps = torch.randn(6, 12, 2, 2, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    for name, entry in LOSSES.items():
        section = entry.config()
        assert Losses.model_fields[name].annotation == entry.config | None
        adapters = {name: entry.adapter(8, 12)} if entry.adapter is not None else {}
        s_logits = embedding(s_maps)[:, :3] * 2
        taps = Taps(s_logits, torch.randn(6, 3, generator=g), [(1.0, y)], 0, 4, s_maps, t_maps, adapters,
                    torch.randn(3, 8, generator=g), torch.randn(3, 12, generator=g), torch.randn(3, 12, generator=g),
                    # a transformer's last attention layer: queries, keys, values of 16 tokens, other widths
                    tuple(s_maps.flatten(2).transpose(1, 2) * (i + 1) for i in range(3)),
                    tuple(torch.randn(6, 16, 12, generator=g) for _ in range(3)))
        value = entry.term(section, taps)
        assert value.ndim == 0 and torch.isfinite(value), name
        s_maps.grad = None
        value.backward()
        assert s_maps.grad is not None and float(s_maps.grad.abs().sum()) > 0, name
        only = Losses.model_validate({name: {}} if entry.taps == "logits" else {"kd": {"alpha": 1.0}, name: {}})
        assert only.features == (entry.taps == "maps") and only.tokens == (entry.taps == "tokens"), name
        assert getattr(only, name) == section  # the profile's section is the entry's config with its defaults
    torch.testing.assert_close(total_loss(Losses(), taps), LOSSES["kd"].term(Losses().kd, taps))


def test_each_backend_entry_holds_its_fallbacks_and_its_status_probe():
    """The fallback order a profile target gets (once a hand table in bench/backends.py), and the status each
    backend's own probe gives on a machine without a GPU and on one with everything."""
    from kdcompress.bench.backends import Machine, backend_status, target_chain

    assert {(d, b): target_chain(d, b) for d in ("cpu", "cuda")
            for b in ("onnxruntime", "onnxruntime-tensorrt", "tensorrt", "aoti")} == {
        ("cpu", "onnxruntime"): ["onnxruntime-cpu"],
        ("cuda", "onnxruntime"): ["onnxruntime-cuda", "aoti-cuda", "onnxruntime-cpu"],
        ("cuda", "onnxruntime-tensorrt"): ["onnxruntime-tensorrt", "tensorrt", "aoti-cuda", "onnxruntime-cpu"],
        ("cuda", "tensorrt"): ["tensorrt", "onnxruntime-tensorrt", "aoti-cuda", "onnxruntime-cpu"],
        ("cuda", "aoti"): ["aoti-cuda", "onnxruntime-cpu"],
        ("cpu", "aoti"): ["aoti-cpu", "onnxruntime-cpu"],
        ("cpu", "tensorrt"): ["tensorrt", "onnxruntime-cpu"],
        ("cpu", "onnxruntime-tensorrt"): ["onnxruntime-tensorrt", "onnxruntime-cpu"],
    }
    cpu_only = Machine(("CPUExecutionProvider",), "1.23", False, "", False, False, "/usr/bin/g++", "2.13.0")
    status = backend_status(cpu_only)
    assert set(status) == set(BACKENDS)
    assert {n for n, s in status.items() if s.startswith("available")} == {"onnxruntime-cpu", "aoti-cpu"}
    assert status["tensorrt"] == "unavailable: TensorRT is not installed (NVIDIA's pip index or container); needs a CUDA GPU too"
    gpu = Machine(("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"), "1.23", True,
                  " on H200", True, True, "/usr/bin/g++", "2.13.0")
    assert all(s.startswith("available") for s in backend_status(gpu).values())
    assert backend_status(gpu)["tensorrt"] == "available on H200"
