"""The pruned-teacher space on a teacher whose architecture no student family has (two concatenated branches)."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

from kdcompress.job import Job
from kdcompress.data import Preprocess, load_data
from kdcompress.distill.trainer import distill, load_student
from kdcompress.errors import KDCompressError
from kdcompress.models.load import load_teacher
from kdcompress.models.pruning import PruningSource, check_prunable
from kdcompress.profiles import load_profile

from .conftest import train_briefly

CONCAT_ARCH = '''
import torch
from torch import nn


class ConcatNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 24, 3, padding=1), nn.BatchNorm2d(24), nn.ReLU())
        self.branch_a = nn.Sequential(nn.Conv2d(24, 16, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.branch_b = nn.Sequential(nn.Conv2d(24, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.mix = nn.Sequential(nn.Conv2d(32, 48, 3, stride=2, padding=1), nn.BatchNorm2d(48), nn.ReLU())
        self.fc = nn.Linear(48, 4)

    def forward(self, x):
        h = self.stem(x)
        h = self.mix(torch.cat([self.branch_a(h), self.branch_b(h)], dim=1))
        return self.fc(h.mean(dim=(2, 3)))
'''


@pytest.fixture(scope="module")
def concat_teacher(tmp_path_factory):
    d = tmp_path_factory.mktemp("concat")
    (d / "concat_arch.py").write_text(CONCAT_ARCH)
    ns: dict = {}
    exec(CONCAT_ARCH, ns)  # the same class the CLI will import from the file
    torch.manual_seed(0)
    torch.save(train_briefly(ns["ConcatNet"]()).state_dict(), d / "concat_sd.pt")  # a teacher beats chance
    return d / "concat_sd.pt", f"{d / 'concat_arch.py'}:ConcatNet"


def test_pruning_cuts_channels_through_the_concatenation(concat_teacher):
    teacher = load_teacher(concat_teacher[0], arch=concat_teacher[1])
    source = PruningSource(teacher.module, torch.zeros(2, 1, 12, 12))
    full = sum(p.numel() for p in teacher.module.parameters())
    sizes = [sum(p.numel() for p in source.build({"ratio": r, "importance": "l1", "global": 0}).parameters())
             for r in (0.3, 0.5, 0.8)]
    assert full > sizes[0] > sizes[1] > sizes[2]
    pruned = source.build({"ratio": 0.5, "importance": "l2", "global": 0})
    assert type(pruned).__name__ == "ConcatNet"  # its own architecture, not a student family
    assert pruned.mix[0].in_channels == pruned.branch_a[0].out_channels + pruned.branch_b[0].out_channels
    assert pruned(torch.rand(3, 1, 12, 12)).shape == (3, 4)  # every class kept
    again = source.build({"ratio": 0.5, "importance": "l2", "global": 0})
    x = torch.rand(3, 1, 12, 12)
    torch.testing.assert_close(pruned.eval()(x), again.eval()(x))  # same genes, same student


def test_exported_and_torchscript_teachers_are_refused_in_one_line(teacher_files):
    for fmt in ("pt2", "ts"):
        t = load_teacher(teacher_files[fmt])
        with pytest.raises(KDCompressError, match="needs an nn.Module teacher"):
            check_prunable(t.module, t.kind)


def test_search_yields_pruned_candidates_and_shrink_distills_one(concat_teacher, tiny_npz, tiny_profile, tmp_path,
                                                               cli_cmd):
    sd, arch = concat_teacher
    out = tmp_path / "run"
    r = subprocess.run([*cli_cmd, "search", str(sd), "--arch", arch, "--data", str(tiny_npz), "--profile",
                        str(tiny_profile), "--set", "search.space=[pruned-teacher,vgg]", "--iterations", "6",
                        "--proxy", "all", "--out", str(out), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (out / "search" / "candidates.jsonl").read_text().splitlines()]
    pruned = [c for c in rows if c["space"] == "pruned-teacher" and c["feasible"]]
    assert pruned and all(c["params"] <= 0.8 * 18388 for c in pruned)  # ConcatNet(4 classes) has 18,388
    assert all(c["scores"]["zen"] == float("-inf") for c in pruned)  # zen is undefined there, and says so

    # the trainer rebuilds a pruned student from the teacher, and load_student gets the same network back
    teacher = load_teacher(sd, arch=arch)
    data = load_data(str(tiny_npz))
    profile = load_profile(tiny_profile, {"distill.epochs": 1})
    from kdcompress.records import StudentSpec

    spec = StudentSpec("pruned-teacher", pruned[0]["genes"], 1, 4)
    distill(Job(teacher, data, Preprocess(), tmp_path / "logits.pt"), spec, profile.distill, tmp_path / "s0")
    source = PruningSource(teacher.module, torch.zeros(2, 1, 12, 12))
    model = load_student(tmp_path / "s0", source)
    assert sum(p.numel() for p in model.parameters()) == pruned[0]["params"]


def test_search_skips_pruning_a_torchscript_teacher_and_cuts_a_pt2_through_its_graph(
        teacher_files, tiny_npz, tiny_profile, tmp_path, cli_cmd):
    common = [*cli_cmd, "search", str(teacher_files["ts"]), "--data", str(tiny_npz), "--profile", str(tiny_profile),
              "--iterations", "2"]
    r = subprocess.run([*common, "--set", "search.space=[pruned-teacher,resnet]", "--out", str(tmp_path / "a")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "pruned-teacher space skipped" in r.stderr
    r = subprocess.run([*common, "--set", "search.space=[pruned-teacher]", "--out", str(tmp_path / "b")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "pruned-teacher, cannot be used with this teacher" in r.stderr
    # a .pt2 program is cut through its own graph (kdcompress.models.graph_layers): the space is searched
    r = subprocess.run([*common[:4], str(teacher_files["pt2"]), *common[5:], "--set", "search.space=[pruned-teacher]",
                        "--out", str(tmp_path / "c")], capture_output=True, text=True)
    assert r.returncode == 0 and "space skipped" not in r.stderr, r.stderr[-2000:]
    top = json.loads((tmp_path / "c" / "search" / "top.json").read_text())
    assert {p["space"] for p in top["top"]} == {"pruned-teacher"}


def _resnet_teacher():
    from kdcompress.models.students import build_resnet

    torch.manual_seed(0)
    return build_resnet({"stem": 16, "widths": [16, 24], "depths": [2, 2]}, 1, 5).eval()


def test_downsample_doubles_the_first_stride_and_keeps_every_weight():
    from kdcompress.search.proxies import count_flops

    teacher, x = _resnet_teacher(), torch.rand(2, 1, 16, 16)
    source = PruningSource(teacher, x)
    cut = source.build({"ratio": 0.0, "importance": "l2", "global": 0, "downsample": 1, "drop_blocks": 0})
    assert cut.stem[0].stride == (2, 2) and teacher.stem[0].stride == (1, 1)  # the teacher itself is untouched
    assert cut(x).shape == (2, 5)
    assert count_flops(cut, x[:1]) < 0.3 * count_flops(teacher, x[:1])  # a quarter of the pixels downstream
    for (name, a), b in zip(teacher.state_dict().items(), cut.state_dict().values()):
        assert torch.equal(a, b), name  # same weights: only the stride changed


def test_downsample_is_refused_where_the_output_depends_on_resolution():
    flat = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3))
    with pytest.raises(KDCompressError, match="depends on the input resolution"):
        PruningSource(flat, torch.zeros(2, 1, 8, 8)).build({"ratio": 0.0, "importance": "l2", "global": 0,
                                                            "downsample": 1})


def test_drop_blocks_removes_the_deepest_shape_preserving_blocks_first():
    teacher, x = _resnet_teacher(), torch.rand(2, 1, 16, 16)
    source = PruningSource(teacher, x)
    kinds = lambda net: [type(b).__name__ for b in net.stages]
    # stages: [16->16, 16->16, 16->24 stride 2, 24->24]: the shape-preserving ones are 0, 1 and 3
    genes = {"ratio": 0.0, "importance": "l2", "global": 0, "downsample": 0}
    assert kinds(source.build({**genes, "drop_blocks": 1})) == ["BasicBlock"] * 3 + ["Identity"]
    two = source.build({**genes, "drop_blocks": 2})
    assert kinds(two) == ["BasicBlock", "Identity", "BasicBlock", "Identity"]
    torch.testing.assert_close(two.stages[2].conv1.weight, teacher.stages[2].conv1.weight)  # survivors keep weights
    assert kinds(source.build({**genes, "drop_blocks": 3})) == ["Identity", "Identity", "BasicBlock", "Identity"]
    with pytest.raises(KDCompressError, match="3 shape-preserving block"):
        source.build({**genes, "drop_blocks": 4})
    with pytest.raises(KDCompressError, match="leave the teacher as it is"):
        source.build({**genes, "drop_blocks": 0})
    # every cut at once, channels last: the result runs, and the same genes give the same student
    both = {"ratio": 0.5, "importance": "l2", "global": 0, "downsample": 1, "drop_blocks": 2}
    a, b = source.build(both), source.build(both)
    assert kinds(a) == kinds(two) and a.stem[0].stride == (2, 2) and a.stem[0].out_channels < 16
    torch.testing.assert_close(a(x), b(x))


def test_pruned_space_shrink_cuts_more():
    import random

    from kdcompress.search.proxies import count_flops
    from kdcompress.search.space import SPACES

    space, rng, x = SPACES["pruned-teacher"], random.Random(0), torch.zeros(1, 1, 16, 16)
    source = PruningSource(_resnet_teacher(), torch.rand(2, 1, 16, 16))
    for _ in range(8):
        cand = space.sample(rng)
        smaller = space.shrink(cand, rng)
        try:
            big, small = source.build(cand.as_dict()), source.build(smaller.as_dict())
        except KDCompressError:  # e.g. drop_blocks 4 on a net with 3 droppable blocks: not a candidate
            continue
        assert count_flops(small, x) <= count_flops(big, x)


def test_round_to_keeps_every_pruned_width_a_multiple_and_old_genes_build_as_before():
    from kdcompress.search.cuts import channel_multiple

    source = PruningSource(_resnet_teacher(), torch.rand(2, 1, 16, 16))
    widths = lambda net: [m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    genes = {"ratio": 0.3, "importance": "l2", "global": 0, "downsample": 0, "drop_blocks": 0}
    free, old = source.build({**genes, "round_to": 1}), source.build(genes)
    assert widths(free) == widths(old) and any(w % 8 for w in widths(free))  # DepGraph's own counts
    rounded = source.build({**genes, "round_to": 8})
    assert all(w % 8 == 0 for w in widths(rounded)) and widths(rounded) != widths(free)
    # the sweep rounds to what the target computes in one block
    assert channel_multiple("cpu", {"avx2", "avx512f"}) == 16
    assert channel_multiple("cpu", {"avx2"}) == channel_multiple("cuda", {"avx512f"}) == 8
