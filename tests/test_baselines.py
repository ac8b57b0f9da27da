"""The recipes users would use instead, run beside ours (`shrink --baselines`), and a graph teacher made prunable
by the recipe file beside it."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import torch

from kdcompress.baselines import beaten_by
from kdcompress.models.load import load_teacher
from tests.conftest import N_CLASSES, SIDE, TINY_GENES


def run(cmd, *args):
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=900)


def test_beaten_by_needs_both_as_fast_and_as_accurate():
    rec = {"latency_ms": {"p50": 1.0}, "accuracy": 90.0}
    ours = [{"id": "fast_bad", "latency_ms": {"p50": 0.5}, "accuracy": 89.9},
            {"id": "slow_good", "latency_ms": {"p50": 1.1}, "accuracy": 95.0},
            {"id": "tie", "latency_ms": {"p50": 1.0}, "accuracy": 90.0},
            {"id": "win", "latency_ms": {"p50": 0.7}, "accuracy": 91.0}]
    assert beaten_by(rec, ours) == "win"  # the fastest that is at least as good on both
    assert beaten_by(rec, ours[:2]) is None
    assert beaten_by(rec, ours[:3]) == "tie"


def test_shrink_with_baselines(cli_cmd, teacher_files, tiny_npz, tiny_profile, tmp_path):
    out = tmp_path / "run"
    proc = run(cli_cmd, "shrink", teacher_files["sd"], "--arch", f"{teacher_files['arch']}:TinyNet", "--profile",
               tiny_profile, "--data", tiny_npz, "--out", out, "--baselines", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    recipes = {r["name"]: r for r in result["baselines"]}
    assert set(recipes) == {"teacher-int8", "tp50-ft", "tp50-ft-int8", "tp75-kd"}
    assert recipes["teacher-int8"]["precision"] == "int8" and recipes["tp50-ft-int8"]["precision"] == "int8"
    assert recipes["tp50-ft"]["artifact"].endswith("b-tp50-ft.onnx")
    # each recipe measured as itself: int8 accuracy is its own, not the float model's copied over
    assert all(r["accuracy"] > 0 and r["latency_ms"]["p50"] > 0 for r in recipes.values())
    spec50 = json.loads((out / "students" / "b-tp50-ft" / "spec.json").read_text())
    spec75 = json.loads((out / "students" / "b-tp75-kd" / "spec.json").read_text())
    assert spec50["genes"] == {"ratio": 0.5, "importance": "l2", "global": 0} and spec75["genes"]["ratio"] == 0.75
    ours = result["students"]
    for r in recipes.values():
        wins = [s for s in ours if s["latency_ms"]["p50"] <= r["latency_ms"]["p50"] and s["accuracy"] >= r["accuracy"]]
        assert (r["beaten_by"] is None) == (not wins)
    assert result["beats_all_baselines"] == all(r["beaten_by"] for r in recipes.values())
    assert "recipe:tp75-kd" in (out / "report.md").read_text() and "recipe:teacher-int8" in (out / "report.html").read_text()


def test_graph_teacher_without_recipe_runs_teacher_int8_only(cli_cmd, teacher_files, tiny_npz, tiny_profile, tmp_path):
    proc = run(cli_cmd, "shrink", teacher_files["ts"], "--profile", tiny_profile, "--data", tiny_npz,
               "--out", tmp_path / "r", "--baselines", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "Torch-Pruning recipes are skipped" in proc.stderr
    assert [r["name"] for r in json.loads(proc.stdout)["baselines"]] == ["teacher-int8"]


def test_a_recipe_file_makes_an_exported_teacher_prunable(teacher_files, tmp_path):
    pt2 = tmp_path / "teacher.pt2"
    shutil.copy(teacher_files["pt2"], pt2)
    assert load_teacher(pt2).eager is None  # no recipe: a graph, not prunable
    recipe = {"arch": "kdcompress.models.students.ResNet", "genes": TINY_GENES, "input_shape": [1, SIDE, SIDE],
              "num_classes": N_CLASSES}
    pt2.with_suffix(".json").write_text(json.dumps(recipe))
    t = load_teacher(pt2)
    x = torch.rand(3, 1, SIDE, SIDE)
    torch.testing.assert_close(t.eager(x), t.module(x))
    cut = t.pruning_source(x[:2]).build({"ratio": 0.5, "importance": "l2", "global": 0})
    assert sum(p.numel() for p in cut.parameters()) < sum(p.numel() for p in t.eager.parameters())
    # a recipe that does not describe this network is ignored, never trusted
    pt2.with_suffix(".json").write_text(json.dumps({**recipe, "genes": {**TINY_GENES, "widths": [8, 8, 8]}}))
    assert load_teacher(pt2).eager is None
    from kdcompress.errors import KDCompressError

    with pytest.raises(KDCompressError, match="exported graph"):
        load_teacher(pt2).pruning_source(x[:2])
