"""Profiles: the shipped ones validate; mistakes are reported in the user's words."""

from __future__ import annotations

import pytest

from kdcompress.errors import KDCompressError
from kdcompress.profiles import available_profiles, load_profile


@pytest.mark.parametrize("name", ["ci", "cpu", "demo", "edge", "front", "server"])
def test_shipped_profiles_load(name):
    assert name in available_profiles()
    p = load_profile(name)
    assert p.name == name


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsearch: {populaton: 3}\n")
    with pytest.raises(KDCompressError) as e:
        load_profile(bad)
    assert "search.populaton: unknown key" in str(e.value)
    assert "did you mean 'population'" in str(e.value)


def test_bad_value_names_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndistill: {epochs: 0}\n")
    with pytest.raises(KDCompressError, match="distill.epochs"):
        load_profile(bad)


def test_unknown_profile_name_suggests():
    with pytest.raises(KDCompressError, match="did you mean 'edge'"):
        load_profile("edg")


def test_overrides_apply_and_validate():
    assert load_profile("ci", {"distill.epochs": 3}).distill.epochs == 3
    with pytest.raises(KDCompressError, match="unknown key"):
        load_profile("ci", {"distill.epoch": 3})
    # a field that takes one value or a list: the error names the key, not pydantic's union member (`….float`)
    with pytest.raises(KDCompressError, match=r"^--set budget\.latency_ratio: Input should be a valid number"):
        load_profile("ci", {"budget.latency_ratio": "abc"})


def test_amp_off_as_yaml_writes_it_and_a_missing_gpu_fails_when_the_profile_is_read(monkeypatch):
    import torch

    from kdcompress.profiles import parse_overrides

    # YAML 1.1 reads an unquoted off as false; the README tells users to write distill.amp: off
    assert load_profile("ci", parse_overrides(["distill.amp=off"])).distill.amp == "off"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(KDCompressError, match="PyTorch sees no GPU"):  # before the search, not after it
        load_profile("ci", parse_overrides(["distill.device=cuda"]))


def test_a_gpu_profile_on_a_cpu_says_what_distilling_will_cost(monkeypatch, tmp_path):
    """`--profile edge` where PyTorch sees no GPU: one note before the work, with the hours it will take here."""
    import torch

    from kdcompress.stages.load import cpu_cost_note

    class Data:
        x_train = torch.rand(40, 1, 8, 8)
        y_train = torch.zeros(1000, dtype=torch.long)

    class Teacher:
        module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))

        def set_eval(self):
            self.module.eval()

    class S:
        profile = load_profile("edge")
        data, teacher = Data(), Teacher()

        @staticmethod
        def prep(x):
            return x

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    note = cpu_cost_note(S())
    assert note is not None and "PyTorch sees none" in note and "--profile cpu" in note
    assert "2 student(s) x 30 epochs x 1,000 images" in note, note
    S.profile = load_profile("cpu")
    assert cpu_cost_note(S()) is None
