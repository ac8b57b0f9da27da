"""Born-Again (``shrink --student same``): the teacher's own architecture, freshly initialised, distilled."""

from __future__ import annotations

import json

import torch

from kdcompress.models.pruning import BORN_AGAIN, PruningSource
from kdcompress.models.students import build_student
from tests.conftest import N_CLASSES, SIDE
from tests.test_cli import assert_user_error, run


def test_a_born_again_student_is_the_teachers_architecture_with_fresh_weights(tiny_module):
    before = {k: v.clone() for k, v in tiny_module.state_dict().items()}
    torch.manual_seed(0)
    student = build_student(BORN_AGAIN, {}, 1, N_CLASSES, PruningSource(tiny_module, torch.zeros(2, 1, SIDE, SIDE)))
    ours = student.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in before.items()}
    # not the teacher's trained weights: every parameter drawn anew (buffers: fresh normalisation statistics)
    params = dict(student.named_parameters())
    assert params and all(not torch.equal(p, before[k]) for k, p in params.items())
    assert all(torch.equal(v, tiny_module.state_dict()[k]) for k, v in before.items())  # the teacher is untouched
    torch.manual_seed(0)
    again = build_student(BORN_AGAIN, {}, 1, N_CLASSES, PruningSource(tiny_module, torch.zeros(2, 1, SIDE, SIDE)))
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in ours.items())  # seeded


def test_shrink_student_same_distils_the_teachers_architecture(cli_cmd, teacher_files, tiny_npz, tiny_profile,
                                                              tmp_path):
    out = tmp_path / "ban"
    proc = run(cli_cmd, "shrink", teacher_files["sd"], "--arch", f"{teacher_files['arch']}:TinyNet", "--profile",
               tiny_profile, "--data", tiny_npz, "--out", out, "--student", "same", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    spaces = {row["space"] for row in result["students"]}
    assert spaces == {BORN_AGAIN}
    assert {row["params"] for row in result["students"]} == {result["teacher"]["params"]}
    trained = torch.load(out / "students" / f"s0-{BORN_AGAIN}" / "model.pt", weights_only=True)
    teacher = torch.load(teacher_files["sd"], weights_only=True)
    assert {k: v.shape for k, v in trained.items()} == {k: v.shape for k, v in teacher.items()}
    assert not (out / "search" / "candidates.jsonl").exists()  # nothing was searched


def test_student_same_needs_a_teacher_it_can_rebuild(cli_cmd, teacher_files, tiny_npz, tiny_profile, tmp_path):
    proc = run(cli_cmd, "shrink", teacher_files["ts"], "--profile", tiny_profile, "--data", tiny_npz,
               "--out", tmp_path / "ts", "--student", "same")
    assert_user_error(proc, "--student same (Born-Again) needs an nn.Module teacher", "torchscript graph", "--arch")


def test_reinitialising_reaches_parameters_no_layer_resets_and_unfreezes_them():
    from torch import nn

    from kdcompress.models.pruning import reinitialise_

    class WithToken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.token = nn.Parameter(torch.ones(1, 4))
            self.attn = nn.MultiheadAttention(4, 2)
            self.head = nn.Linear(4, 2)

    net = WithToken()
    for p in net.parameters():
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    reinitialise_(net)
    after = net.state_dict()
    assert all(not torch.equal(after[k], before[k]) for k in ("token", "attn.in_proj_weight", "head.weight"))
    assert all(p.requires_grad for p in net.parameters())


def test_search_alone_says_there_is_nothing_to_search(cli_cmd, teacher_files, tiny_npz, tiny_profile, tmp_path):
    proc = run(cli_cmd, "search", teacher_files["pt2"], "--profile", tiny_profile, "--data", tiny_npz,
               "--out", tmp_path / "s", "--set", "search.student=same")
    assert_user_error(proc, "Born-Again", "there is no search to run")
