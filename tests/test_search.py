"""Search space mutation, aging evolution under a budget, determinism, and the teacher probe."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from kdcompress.job import Job
from kdcompress.records import TeacherRecord
from kdcompress.data import Preprocess, load_data
from kdcompress.errors import KDCompressError
from kdcompress.export import to_onnx
from kdcompress.models.load import load_teacher
from kdcompress.profiles import load_profile
from kdcompress.search import evolution
from kdcompress.search.cuts import channel_multiple, sized_cuts
from kdcompress.search.evolution import search
from kdcompress.models.probe import TeacherProbe


def test_probe_finds_prepool_features_for_every_kind(teacher_files):
    x, y = torch.rand(6, 1, 12, 12), torch.randint(0, 4, (6,))
    for fmt in ("pt2", "ts", "pickle"):
        t = load_teacher(teacher_files[fmt], trust_pickle=True)
        before = t.logits(x)
        trained = TeacherProbe(t, x[:2]).signals(x, y)
        probe = TeacherProbe(t, x[:2], batch_stats=True)
        probe.reinit_(torch.Generator().manual_seed(0))
        s = probe.signals(x, y)
        assert s.features.shape == (6, 32, 3, 3) and s.classifier_grad.shape == (4, 32)
        assert not torch.allclose(s.features, trained.features)  # re-initialised
        again = TeacherProbe(t, x[:2], batch_stats=True)
        again.reinit_(torch.Generator().manual_seed(0))
        torch.testing.assert_close(again.signals(x, y).features, s.features)  # seeded
        # with batch statistics, the output for a sample depends on the rest of the batch
        assert not torch.allclose(probe.signals(x[:3], y[:3]).features, s.features[:3])
        torch.testing.assert_close(t.logits(x), before)  # the probe never touches the teacher itself



def search_with(teacher, data, profile, out, onnx_path, params, flops, seed=0, progress=None):
    """The search stage's function on a teacher and its ONNX file, as the pipeline calls it."""
    record = TeacherRecord(str(onnx_path), "pt2", "", params, flops, data.num_classes, str(onnx_path), "test", {})
    job = Job(teacher, data, Preprocess(), out / "teacher_logits.pt", seed)
    return search(job, profile, record, "onnxruntime-cpu", out, progress)

def _search(teacher_files, tiny_npz, tiny_profile, out, seed, **overrides):
    profile = load_profile(tiny_profile, {"search.iterations": 3, **overrides})
    t = load_teacher(teacher_files["pt2"])
    data = load_data(str(tiny_npz))
    teacher_params = sum(p.numel() for p in t.module.parameters())
    onnx_path = out.parent / "teacher.onnx"
    if not onnx_path.exists():
        to_onnx(t.module, torch.zeros(1, 1, 12, 12), onnx_path)
    top = search_with(t, data, profile, out, onnx_path, teacher_params, 10**7, seed)
    return top, teacher_params, [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]


def test_evolution_respects_budget_and_is_deterministic(teacher_files, tiny_npz, tiny_profile, tmp_path):
    top1, teacher_params, log1 = _search(teacher_files, tiny_npz, tiny_profile, tmp_path / "a", seed=3)
    top2, _, log2 = _search(teacher_files, tiny_npz, tiny_profile, tmp_path / "b", seed=3)
    budget = 0.8 * teacher_params
    assert all(c["params"] <= budget for c in log1 if c["feasible"])
    assert all(c["latency_ratio"] <= 5.0 for c in log1 if c["feasible"])  # the tiny profile's latency budget
    assert any(not c["feasible"] for c in log1)  # the budget did bite
    assert [c.genes for c in top1.top] == [c.genes for c in top2.top]
    strip = lambda log: [(c["genes"], c["feasible"], c["scores"]) for c in log]
    assert strip(log1) == strip(log2)
    assert top1.top[0].scores["diswot"] == max(c["scores"]["diswot"] for c in log1 if c["feasible"])


def test_several_latency_targets_give_a_student_each(teacher_files, tiny_npz, tiny_profile, tmp_path):
    _, _, log = _search(teacher_files, tiny_npz, tiny_profile, tmp_path / "f", seed=1,
                          **{"budget.latency_ratio": [2.0, 5.0], "search.proxy": "params"})
    picked = json.loads((tmp_path / "f" / "top.json").read_text())
    assert picked["targets"] == [5.0, 2.0]  # loosest first
    assert [p["target"] for p in picked["top"]] == [5.0, 2.0]  # one student per target (top_k 1)
    assert len({json.dumps(p["genes"], sort_keys=True) for p in picked["top"]}) == 2  # never the same student twice
    taken: list[dict] = []
    for p in picked["top"]:
        assert p["latency_ratio"] <= p["target"]
        # each pick is the best-scoring feasible candidate of its own target's evolution, not already taken
        own = [c for c in log if c["target"] == p["target"] and c["feasible"] and c["genes"] not in taken]
        assert p["scores"]["params"] == max(c["scores"]["params"] for c in own)
        taken.append(p["genes"])
    assert {c["target"] for c in log} == {5.0, 2.0}


def test_an_unreachable_target_is_skipped_when_another_is_met(teacher_files, tiny_npz, tiny_profile, tmp_path):
    from kdcompress.run import Progress

    class Notes(Progress):
        def __init__(self) -> None:
            self.lines: list[str] = []

        def note(self, message: str) -> None:
            self.lines.append(message)

    notes = Notes()
    profile = load_profile(tiny_profile, {"search.iterations": 0, "search.population": 2, "search.proxy": "params",
                                          "budget.latency_ratio": [5.0, 1e-4]})
    t = load_teacher(teacher_files["pt2"])
    onnx_path = tmp_path / "teacher.onnx"
    to_onnx(t.module, torch.zeros(1, 1, 12, 12), onnx_path)
    top = search_with(t, load_data(str(tiny_npz)), profile, tmp_path / "s", onnx_path,
                 sum(p.numel() for p in t.module.parameters()), 10**7, 0, notes)
    assert len(top.top) == 1 and any("latency target was skipped" in n and "0.0001" in n for n in notes.lines)


def test_latency_targets_are_validated(tiny_profile):
    import pytest

    from kdcompress.errors import KDCompressError

    for bad, needle in (([], "empty list"), ([0.2, -0.1], "must be > 0")):
        with pytest.raises(KDCompressError, match=needle):
            load_profile(tiny_profile, {"budget.latency_ratio": bad})
    assert load_profile(tiny_profile, {"budget.latency_ratio": [0.1, 0.3, 0.1]}).budget.targets == [0.3, 0.1]


@pytest.mark.slow  # ~30 s: two searches; teacher-first picking is also run by every pruned-teacher shrink test
def test_pick_keeps_the_teachers_cuts_apart_from_family_students(tiny_npz, tiny_profile, tmp_path):
    """teacher-first distils cuts of the teacher when one fits; per-origin the best of each kind; proxy ranks all."""
    from kdcompress.models.students import build_resnet

    torch.manual_seed(0)
    module = build_resnet({"stem": 16, "widths": [16, 32], "depths": [2, 2]}, 1, 4).eval()
    sd = tmp_path / "teacher_sd.pt"
    torch.save(module.state_dict(), sd)
    arch = tmp_path / "arch.py"
    arch.write_text("from kdcompress.models.students import ResNet\n\n\nclass Teacher(ResNet):\n"
                    "    def __init__(self):\n        super().__init__(1, 4, [16, 32], [2, 2], 16)\n")
    t = load_teacher(sd, arch=f"{arch}:Teacher")
    data = load_data(str(tiny_npz))
    onnx_path = tmp_path / "teacher.onnx"
    to_onnx(t.module, torch.zeros(1, 1, 12, 12), onnx_path)
    params = sum(p.numel() for p in t.module.parameters())
    spaces = {}
    for pick in ("teacher-first", "per-origin", "proxy"):
        profile = load_profile(tiny_profile, {"search.iterations": 3, "search.proxy": "synflow",
                                              "search.space": ["pruned-teacher", "vgg"], "search.pick": pick,
                                              "search.cut_rank": "params"})
        top = search_with(t, data, profile, tmp_path / pick, onnx_path, params, 10**7)
        spaces[pick] = [s.space for s in top.top]
        log = [json.loads(line) for line in (tmp_path / pick / "candidates.jsonl").read_text().splitlines()]
        if pick == "teacher-first":  # a cut fitted, so the family students were not even searched
            assert {c["space"] for c in log} == {"pruned-teacher"}
            # cuts are ranked by the weights of the teacher they keep, measured largest first until one fits: every
            # larger cut of the sweep was measured and did not fit; the search proxy is still scored beside
            assert [c["params"] for c in log] == sorted((c["params"] for c in log), reverse=True)
            assert [c["feasible"] for c in log] == [False] * (len(log) - 1) + [True]
            assert top.top[0].params == log[-1]["params"] and "synflow" in log[-1]["scores"]
            sizes = [n for n, _ in sized_cuts(t.pruning_source(torch.zeros(2, 1, 12, 12)), channel_multiple("cpu"))]
            assert sum(n > top.top[0].params for n in sizes) == len(log) - 1
    assert spaces["teacher-first"] == ["pruned-teacher"]
    assert sorted(spaces["per-origin"]) == ["pruned-teacher", "vgg"]
    assert len(spaces["proxy"]) == 1
    # ranked by fidelity (the default), the sweep measures the cuts closest to the teacher first, and two targets
    # never distil the same cut twice: the tighter one takes the best cut not already picked
    profile = load_profile(tiny_profile, {"search.space": ["pruned-teacher"], "budget.latency_ratio": [5.0, 4.0]})
    two = search_with(t, data, profile, tmp_path / "two", onnx_path, params, 10**7).top
    assert len(two) == 2 and two[0].genes != two[1].genes
    assert two[0].scores["fidelity"] >= two[1].scores["fidelity"]
    log = [json.loads(line) for line in (tmp_path / "two" / "candidates.jsonl").read_text().splitlines()]
    first = [c["scores"]["fidelity"] for c in log if c["target"] == 5.0]
    assert first == sorted(first, reverse=True) and two[0].scores["fidelity"] == max(first)


def test_fidelity_scores_the_uncut_teacher_near_zero_and_a_deep_cut_lower(teacher_files, tiny_npz):
    from kdcompress.search.fidelity import FidelityProbe

    t = load_teacher(teacher_files["sd"], arch=f"{teacher_files['arch']}:TinyNet")
    data = load_data(str(tiny_npz))
    probe = FidelityProbe.of(t.logits, data.x_train, Preprocess(), n=128)
    source = t.pruning_source(torch.zeros(2, 1, 12, 12))
    same = probe.score(copy.deepcopy(t.module))
    cut = probe.score(source.build({"ratio": 0.75, "importance": "l2", "global": 0}))
    # the tiny teacher's running statistics come from a few training steps, so re-estimating them moves it a little
    assert -0.2 < same <= 1e-6 and cut < same - 0.1, (same, cut)


def test_flops_ratio_bounds_what_a_student_costs_to_distil(teacher_files, tiny_npz, tiny_profile, tmp_path):
    _, _, log = _search(teacher_files, tiny_npz, tiny_profile, tmp_path / "a", seed=0,
                        **{"budget.flops_ratio": 0.2, "budget.params_ratio": None, "search.iterations": 6})
    bound = 0.2 * 10**7  # _search gives the teacher 10^7 FLOPs
    assert all(c["flops"] <= bound for c in log if c["feasible"])
    over = [c for c in log if c["flops"] > bound]
    assert over and not any(c["feasible"] for c in over)
    assert any("distillation cost" in c["reason"] for c in over)


def test_spawned_workers_search_as_forked_ones_do(teacher_files, tiny_npz, tiny_profile, tmp_path, monkeypatch):
    """On a machine with a CUDA GPU the search's workers are spawned (a forked child's backward fails there), so the
    context travels pickled, the teacher's cut source included: the same search gives the same candidates."""
    from kdcompress.search import evolution

    logs = {}
    for method in ("fork", "spawn"):
        monkeypatch.setattr(evolution, "start_method", lambda m=method: m)
        _, _, log = _search(teacher_files, tiny_npz, tiny_profile, tmp_path / method, seed=1,
                            **{"search.workers": 2, "search.space": ["resnet", "pruned-teacher"],
                               "search.pick": "per-origin"})
        logs[method] = [(c["genes"], c["feasible"], c["scores"]) for c in log]
    assert logs["fork"] == logs["spawn"] and len(logs["fork"]) > 4
    # a context that has timed a candidate holds an inference session, which does not pickle: a spawned worker gets
    # the context without it and makes its own
    import pickle

    from kdcompress.export.onnx import onnx_bytes
    from kdcompress.search.context import SearchContext

    reference = onnx_bytes(torch.nn.Conv2d(1, 2, 3).eval(), torch.zeros(1, 1, 12, 12))
    ctx = SearchContext([], 1, 4, None, None, None, "onnxruntime-cpu", 1, 1, "synflow", 0, reference, 1.0)
    ctx.reference_runner()
    assert pickle.loads(pickle.dumps(ctx))._reference is None


def test_when_no_student_meets_the_budget_the_error_names_the_nearest_miss(teacher_files, tiny_npz, tiny_profile,
                                                                             tmp_path):
    """A teacher already near the backend's latency floor: one line saying how close any student came, and how to
    relax the budget (tried as a new user would, with a small fast model of their own)."""
    import pytest

    profile = load_profile(tiny_profile, {"search.iterations": 0, "search.population": 2, "budget.latency_ratio": 1e-4})
    t = load_teacher(teacher_files["pt2"])
    onnx_path = tmp_path / "teacher.onnx"
    to_onnx(t.module, torch.zeros(1, 1, 12, 12), onnx_path)
    with pytest.raises(KDCompressError, match=r"no student meets latency ratio 0.0001 here: the fastest of the \d+ "
                                              r"candidates measured ran at [\d.]+× the teacher .* relax the budget"):
        search_with(t, load_data(str(tiny_npz)), profile, tmp_path / "s", onnx_path,
               sum(p.numel() for p in t.module.parameters()), 0)  # FLOPs unknown: every candidate gets timed


def test_a_graphs_latency_key_ignores_its_weights_but_not_its_shape():
    from kdcompress.export.onnx import onnx_bytes
    from kdcompress.models.students import build_resnet
    from kdcompress.search.latency_store import graph_key

    x = torch.zeros(1, 1, 12, 12)
    genes = {"stem": 8, "widths": [8, 16, 16], "depths": [1, 1, 1]}
    torch.manual_seed(0)
    a = onnx_bytes(build_resnet(genes, 1, 4).eval(), x)
    torch.manual_seed(1)
    b = onnx_bytes(build_resnet(genes, 1, 4).eval(), x)
    wider = onnx_bytes(build_resnet({**genes, "widths": [8, 16, 24]}, 1, 4).eval(), x)
    assert a != b and graph_key(a) == graph_key(b)
    assert graph_key(wider) != graph_key(a)


def test_a_repeated_search_times_nothing_and_makes_the_same_pick(teacher_files, tiny_npz, tiny_profile, tmp_path,
                                                                 monkeypatch):
    """search.latency_cache: every measurement is kept per machine; the same search again reads them all (timing
    is made to fail) and so accepts, rejects and picks exactly as the first did."""
    import pytest

    from kdcompress.search import context

    top1, _, log1 = _search(teacher_files, tiny_npz, tiny_profile, tmp_path / "a", seed=5)

    def no_timing(*args, **kwargs):
        raise AssertionError("timed again")

    monkeypatch.setattr(context, "interleaved_latency", no_timing)
    top2, _, log2 = _search(teacher_files, tiny_npz, tiny_profile, tmp_path / "b", seed=5)
    assert [c.genes for c in top1.top] == [c.genes for c in top2.top]
    assert [(c["genes"], c["latency_ratio"], c["feasible"]) for c in log1] == \
           [(c["genes"], c["latency_ratio"], c["feasible"]) for c in log2]
    with pytest.raises(AssertionError, match="timed again"):  # off: measured afresh
        _search(teacher_files, tiny_npz, tiny_profile, tmp_path / "c", seed=5, **{"search.latency_cache": False})


def test_successive_halving_keeps_the_better_half_with_doubled_epochs():
    from kdcompress.search.refine import successive_halving

    # candidate i's short-run accuracy: what it would reach after e epochs (5 looks good early, 3 wins late)
    curves = {0: {1: 80, 2: 81}, 1: {1: 70}, 2: {1: 60}, 3: {1: 85, 2: 90, 4: 91}, 4: {1: 50}, 5: {1: 88, 2: 86, 4: 87}}
    calls = []

    def train(i, epochs):
        calls.append((i, epochs))
        return curves[i][epochs]

    h = successive_halving(list(range(6)), keep=1, epochs=1, train=train)
    # rung 1: six at 1 epoch, the best three (5, 3, 0) go on; rung 2: those at 2 epochs, the best two (3, 5);
    # rung 3: those at 4 epochs
    assert calls[:6] == [(i, 1) for i in range(6)]
    assert calls[6:9] == [(5, 2), (3, 2), (0, 2)]  # survivors train best first
    assert calls[9:] == [(3, 4), (5, 4)]
    assert h.order == [3, 5, 0, 1, 2, 4]  # the winner, then the later a candidate was dropped the earlier it comes
    assert h.epochs_spent() == 6 * 1 + 3 * 2 + 2 * 4


def test_refine_reorders_the_picks_by_short_distillation(teacher_files, tiny_npz, tiny_profile, tmp_path):
    """search.refine: the top candidates of the ranking are distilled briefly and the pick is the best of them on
    validation; top.json records the rungs and the cost in full distillations."""
    top, _, _ = _search(teacher_files, tiny_npz, tiny_profile, tmp_path / "r", seed=2,
                        **{"search.refine": {"candidates": 3, "epochs": 1, "samples": 200}})
    record = json.loads((tmp_path / "r" / "top.json").read_text())
    (refined,) = record["refine"]
    first = refined["rungs"][0]
    assert first["epochs"] == 1 and len(first["val_accuracy"]) == 3
    winner = refined["candidates"][refined["order"][0]]
    assert [top.top[0].space, top.top[0].genes] == [winner["space"], winner["genes"]]
    last = refined["rungs"][-1]["val_accuracy"]
    assert last[str(refined["order"][0])] == max(last.values())
    # 3 runs of 1 epoch + 2 of 2 epochs on 200 of the 360 training images, against 2 epochs on all 360
    assert refined["cost_in_distillations"] == pytest.approx((3 * 1 + 2 * 2) * 200 / (2 * 360))


@pytest.mark.slow  # ~20 s: two searches compared; the FLOPs pre-filter runs in every search of the fast suite
def test_the_population_is_sampled_into_the_flops_share_before_anything_is_timed(teacher_files, tiny_npz,
                                                                                   tiny_profile, tmp_path, monkeypatch):
    """Filling the population shrinks each sample, untimed, until its FLOPs are within the latency budget's share of
    the teacher's; only then is it timed (issue 13: 499 candidates timed to fill one population)."""
    _, _, log = _search(teacher_files, tiny_npz, tiny_profile, tmp_path / "a", seed=0,
                        **{"search.iterations": 0, "budget.latency_ratio": 0.6, "budget.params_ratio": None,
                           "search.population": 8})
    share = 0.6 * 10**7  # _search gives the teacher 10^7 FLOPs
    timed = [c for c in log if c["latency_ms"] is not None]
    assert timed and all(c["flops"] <= share for c in timed)
    assert sum(c["feasible"] for c in log) >= 8
    # the control: without the rule, the same samples are timed above the share (so the rule did the shrinking)
    monkeypatch.setattr(evolution, "within_share", lambda cand, ctx: True)
    _, _, log = _search(teacher_files, tiny_npz, tiny_profile, tmp_path / "b", seed=0,
                        **{"search.iterations": 0, "budget.latency_ratio": 0.6, "budget.params_ratio": None,
                           "search.population": 8, "search.workers": 1})
    assert any(c["flops"] > share for c in log if c["latency_ms"] is not None)


def test_the_fidelity_probe_is_sized_by_the_teachers_cost():
    from kdcompress.search.fidelity import probe_images

    assert probe_images(132_100_000) == probe_images(None) == 1024  # the shipped teacher: as before
    assert probe_images(1_800_000_000) == 128  # a ResNet-18 at 224 px
    assert 128 < probe_images(600_000_000) < 1024
