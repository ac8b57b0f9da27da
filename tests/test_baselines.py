"""The recipes users would use instead, run beside ours (`shrink --baselines`), and a graph teacher made prunable
by the recipe file beside it."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import torch

from kdcompress.models.load import load_teacher
from kdcompress.models.students import ResNet
from kdcompress.records import RecipeRow, ResultRow
from kdcompress.report.result import beaten_by
from tests.conftest import N_CLASSES, SIDE, TINY_GENES


def run(cmd, *args):
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=900)


def test_beaten_by_needs_both_faster_and_more_accurate():
    def recipe(p50: float, acc: float) -> RecipeRow:
        return RecipeRow("recipe:r", "r", None, "fp32", "onnx", {"p50": p50}, acc, 1.0, 0.0, None, "r.onnx", {})

    def ours_row(name: str, p50: float, acc: float) -> ResultRow:
        return ResultRow(name, name, "fp32", "onnx", "resnet", {}, 1, 1, {}, {"p50": p50}, acc, 1.0, 0.0, "a.onnx",
                         {}, None, 1.0, None, True, None, True, True, True, False, [])

    rec = recipe(1.0, 90.0)
    ours = [ours_row("fast_bad", 0.5, 89.9), ours_row("slow_good", 1.1, 95.0), ours_row("tie", 1.0, 90.0),
            ours_row("win", 0.7, 91.0)]
    assert beaten_by(rec, ours) == "win"  # the fastest that is better on both
    assert beaten_by(rec, ours[:2]) is None
    assert beaten_by(rec, ours[:3]) is None  # as fast and as accurate is a tie, not a win (issue 29)


def test_shrink_with_baselines(cli_cmd, teacher_files, tiny_npz, tiny_profile, tmp_path):
    out = tmp_path / "run"
    proc = run(cli_cmd, "shrink", teacher_files["sd"], "--arch", f"{teacher_files['arch']}:TinyNet", "--profile",
               tiny_profile, "--data", tiny_npz, "--out", out, "--baselines", "--json",
               "--set", "distill.loss={dkd: {}}")  # ours with DKD; the recipes keep Hinton KD / cross-entropy
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    recipes = {r["name"]: r for r in result["baselines"]}
    assert set(recipes) == {"teacher-int8", "tp50-ft", "tp50-ft-int8", "tp50-kd", "tp50-kd-int8", "tp75-kd",
                            "tp75-kd-int8", "teacher-kd", "teacher-kd-int8"}
    assert recipes["teacher-int8"]["precision"] == "int8" and recipes["tp50-ft-int8"]["precision"] == "int8"
    assert recipes["tp50-ft"]["artifact"].endswith("b-tp50-ft.onnx")
    assert recipes["tp50-ft-int8"]["artifact"].endswith("b-tp50-ft.int8.onnx")
    assert recipes["teacher-int8"]["artifact"].endswith("teacher.int8.onnx")
    # recipes never pass for ours: not in the students, never best; the front spans everything measured
    assert not any(s["id"].startswith("recipe:") or s["student"].startswith("b-") for s in result["students"])
    assert result["best"] in {s["id"] for s in result["students"]}
    points = {"teacher": (result["teacher"]["latency_ms"]["p50"], result["teacher"]["accuracy"])}
    points.update({r["id"]: (r["latency_ms"]["p50"], r["accuracy"]) for r in [*result["students"], *recipes.values()]})
    for name, (lat, acc) in points.items():
        dominated = any(l2 <= lat and a2 >= acc and (l2, a2) != (lat, acc) for l2, a2 in points.values())
        assert (name in result["frontier"]) == (not dominated)
    # each recipe measured as itself: int8 accuracy is its own, not the float model's copied over
    assert all(r["accuracy"] > 0 and r["latency_ms"]["p50"] > 0 for r in recipes.values())
    spec50 = json.loads((out / "students" / "b-tp50-ft" / "spec.json").read_text())
    spec75 = json.loads((out / "students" / "b-tp75-kd" / "spec.json").read_text())
    assert spec50["genes"] == {"ratio": 0.5, "importance": "l2", "global": 0} and spec75["genes"]["ratio"] == 0.75
    # teacher-kd: the teacher's own architecture, started from its weights (what extra epochs alone buy)
    self_kd = json.loads((out / "students" / "b-teacher-kd" / "spec.json").read_text())
    assert self_kd["space"] == "born-again" and self_kd["init"] == "teacher"
    trained_on = torch.load(out / "students" / "b-teacher-kd" / "model.pt", weights_only=True)
    teacher_sd = torch.load(teacher_files["sd"], weights_only=True)
    assert {k: v.shape for k, v in trained_on.items()} == {k: v.shape for k, v in teacher_sd.items()}
    ours = [s for s in result["students"] if not any("not faster" in f for f in s["flags"])]
    for r in recipes.values():
        wins = [s for s in ours if s["latency_ms"]["p50"] < r["latency_ms"]["p50"] and s["accuracy"] > r["accuracy"]]
        assert (r["beaten_by"] is None) == (not wins)
    assert result["beats_all_baselines"] == all(r["beaten_by"] for r in recipes.values())
    assert "recipe:tp75-kd" in (out / "report.md").read_text() and "recipe:teacher-int8" in (out / "report.html").read_text()


@pytest.mark.slow  # ~15 s whole run; test_shrink_with_baselines runs every recipe in the fast suite
def test_graph_teacher_without_recipe_runs_teacher_int8_only(cli_cmd, teacher_files, tiny_npz, tiny_profile, tmp_path):
    proc = run(cli_cmd, "shrink", teacher_files["ts"], "--profile", tiny_profile, "--data", tiny_npz,
               "--out", tmp_path / "r", "--baselines", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "Torch-Pruning recipes are skipped" in proc.stderr
    assert [r["name"] for r in json.loads(proc.stdout)["baselines"]] == ["teacher-int8"]


def test_a_recipe_file_makes_an_exported_teacher_prunable(teacher_files, tmp_path):
    pt2 = tmp_path / "teacher.pt2"
    shutil.copy(teacher_files["pt2"], pt2)
    # no recipe: the graph's layers as modules (kdcompress.models.graph_layers), not a family network
    assert load_teacher(pt2).eager is not None and not isinstance(load_teacher(pt2).eager, ResNet)
    recipe = {"arch": "kdcompress.models.students.ResNet", "genes": TINY_GENES, "input_shape": [1, SIDE, SIDE],
              "num_classes": N_CLASSES}
    pt2.with_suffix(".json").write_text(json.dumps(recipe))
    t = load_teacher(pt2)
    x = torch.rand(3, 1, SIDE, SIDE)
    assert isinstance(t.eager, ResNet)
    torch.testing.assert_close(t.eager(x), t.module(x))
    cut = t.pruning_source(x[:2]).build({"ratio": 0.5, "importance": "l2", "global": 0})
    assert sum(p.numel() for p in cut.parameters()) < sum(p.numel() for p in t.eager.parameters())
    # a recipe that does not describe this network is ignored, never trusted (the graph's own layers are used)
    pt2.with_suffix(".json").write_text(json.dumps({**recipe, "genes": {**TINY_GENES, "widths": [8, 8, 8]}}))
    assert not isinstance(load_teacher(pt2).eager, ResNet)
    # nor one whose input shape the program refuses (it raises inside torch.export's guards)
    pt2.with_suffix(".json").write_text(json.dumps({**recipe, "input_shape": [1, 64, 64]}))
    assert not isinstance(load_teacher(pt2).eager, ResNet)
    torch.testing.assert_close(load_teacher(pt2).eager(x), t.module(x))


def test_nearest_miss_and_the_budget_line():
    from types import SimpleNamespace

    from kdcompress.report.result import nearest_miss
    from kdcompress.report.table import budget_line

    budget = {"latency_ratio": [0.2, 0.1], "max_accuracy_drop": 1.0}
    rows = [SimpleNamespace(id="slow", speedup=2.5, accuracy_drop=0.2),  # needs 5x: shortfall 1.0
            SimpleNamespace(id="close", speedup=4.5, accuracy_drop=1.1),  # 0.11 + 0.1
            SimpleNamespace(id="bad", speedup=9.0, accuracy_drop=3.0)]  # 0 + 2.0
    assert nearest_miss(rows, budget) == "close"
    by_id = {r.id: r for r in rows}
    result = SimpleNamespace(budget=budget, budget_met=False, nearest_miss="close", row=by_id.get)
    line = budget_line(result)
    assert "≥ 5.00× faster" in line and "≤ 1.0 points" in line and "close at 4.50×, -1.10 points" in line
    result.budget_met = True
    assert budget_line(result) is None
