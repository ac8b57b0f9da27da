"""Run directory: atomic writes, no clobbering, resume bookkeeping."""

from __future__ import annotations

import pytest

from kdcompress.errors import KDCompressError
from kdcompress.pipeline import open_run
from kdcompress.run import RunDir, atomic_path, atomic_write


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write(target, b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_run_refuses_to_clobber_and_resumes(tmp_path):
    run = open_run(tmp_path / "r")
    run.mark_done("load", 1.0)
    run.mark_done("search", 2.0)
    with pytest.raises(KDCompressError, match="--resume"):
        open_run(tmp_path / "r")
    again = open_run(tmp_path / "r", resume=True)
    assert again.done("load") and again.done("search")
    (tmp_path / "r" / "search").mkdir()
    (tmp_path / "r" / "search" / "top.json").write_text("{}")
    again.invalidate_from("search")
    assert again.done("load") and not open_run(tmp_path / "r", resume=True).done("search")
    assert not (tmp_path / "r" / "search").exists()  # the search stage's declared output went with it


def test_missing_run_for_stage_command(tmp_path):
    with pytest.raises(KDCompressError, match="no run here"):
        RunDir.open(tmp_path, must_exist=True)


def test_differences_name_every_changed_key():
    from kdcompress.run import differences

    old = {"seed": 0, "profile": {"distill": {"epochs": 2, "lr": 0.05}, "space": ["resnet"]}}
    new = {"seed": 0, "profile": {"distill": {"epochs": 3, "lr": 0.05}, "space": ["resnet", "vgg"], "pick": "x"}}
    assert differences(old, new) == ['profile.distill.epochs: 2 -> 3', 'profile.pick: (absent) -> "x"',
                                     'profile.space: ["resnet"] -> ["resnet", "vgg"]']
    assert differences(old, old) == []


def test_default_run_dir_never_reuses_a_taken_folder(tmp_path):
    from kdcompress.run import default_run_dir

    base = tmp_path / "runs" / "shrink"
    assert default_run_dir(base, resume=False) == base and default_run_dir(base, resume=True) == base
    base.mkdir(parents=True)
    assert default_run_dir(base, resume=False) == tmp_path / "runs" / "shrink2"
    (tmp_path / "runs" / "shrink2").mkdir()
    assert default_run_dir(base, resume=False) == tmp_path / "runs" / "shrink3"
    assert default_run_dir(base, resume=True) == tmp_path / "runs" / "shrink2"  # the newest
