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
