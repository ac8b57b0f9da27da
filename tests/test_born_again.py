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
    convs = [k for k, v in before.items() if v.ndim == 4]
    assert convs and all(not torch.equal(ours[k], before[k]) for k in convs)  # not the teacher's trained weights
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
