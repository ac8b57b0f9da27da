"""DisWOT terms: invariants that a wrong formula would break, and hand-computed golden values."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from kdcompress.models.students import build_resnet
from kdcompress.models.probe import Signals, gaussian_init_, student_signals
from kdcompress.search.proxies import (
    PROXIES,
    class_semantic,
    diswot,
    diswot_code_score,
    diswot_score,
    ickd_semantic,
    sp_relation,
    sp_relation_sample0,
)

torch.manual_seed(0)


def test_sp_relation_zero_for_identical_and_positive_otherwise():
    f = torch.randn(8, 4, 3, 3)
    assert float(sp_relation(f, f)) == pytest.approx(0.0, abs=1e-7)
    assert float(sp_relation(f, torch.randn(8, 4, 3, 3))) > 1e-4


def test_sp_relation_ignores_batch_order_and_feature_scale():
    f_t, f_s = torch.randn(8, 6, 2, 2), torch.randn(8, 3, 4, 4)
    base = sp_relation(f_t, f_s)
    perm = torch.randperm(8)
    torch.testing.assert_close(sp_relation(f_t[perm], f_s[perm]), base)
    torch.testing.assert_close(sp_relation(7.5 * f_t, 0.01 * f_s), base)


def test_sp_relation_golden_value():
    # N = 2 samples, 1-D features: A_t = [[1, 0], [0, 1]] -> G_t = I; A_s = [[1, 1], [1, 1]] -> G_s rows [1,1]/sqrt2.
    f_t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    f_s = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    r = 1 / 2**0.5
    expected = ((1 - r) ** 2 + r**2) * 2 / 4
    assert float(sp_relation(f_t, f_s)) == pytest.approx(expected, rel=1e-6)


def test_class_semantic_width_independent_and_scale_invariant():
    w_t, w_s = torch.randn(10, 64), torch.randn(10, 16)
    base = class_semantic(w_t, w_s)
    assert base > 0
    torch.testing.assert_close(class_semantic(3.0 * w_t, 0.5 * w_s), base)
    assert float(class_semantic(w_t, w_t)) == pytest.approx(0.0, abs=1e-7)


def test_class_semantic_golden_value():
    # K = 2 classes. W_t rows orthogonal -> G_t = I; W_s rows equal -> G_s rows [1, 1]/sqrt2.
    w_t = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    w_s = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    r = 1 / 2**0.5
    assert float(class_semantic(w_t, w_s)) == pytest.approx(((1 - r) ** 2 + r**2) * 2 / 4, rel=1e-6)


def test_ickd_semantic_matches_a_literal_reading_of_the_authors_code():
    w_t, w_s = torch.randn(5, 7), torch.randn(5, 7)
    w_t[0, 2] = w_s[1, :3] = 0.0  # zero gradients: rows the normalisation leaves at zero
    k, c = w_t.shape
    total = 0.0
    for i in range(k):
        g_t = torch.outer(w_t[i], w_t[i])
        g_s = torch.outer(w_s[i], w_s[i])
        total += float(((F.normalize(g_t, dim=1) - F.normalize(g_s, dim=1)) ** 2).sum())
    assert float(ickd_semantic(w_t, w_s)) == pytest.approx(total / (c * k), rel=1e-5)
    with pytest.raises(ValueError):
        ickd_semantic(w_t, torch.randn(5, 8))


def test_identical_networks_score_the_best_possible():
    """A student identical to the (random) teacher gets score 0, the maximum of -(M_s + M_r)."""
    gen = torch.Generator().manual_seed(0)
    net = build_resnet({"stem": 8, "widths": [8, 16, 16], "depths": [1, 1, 1]}, 1, 5)
    gaussian_init_(net, gen)
    x, y = torch.rand(12, 1, 10, 10), torch.randint(0, 5, (12,))
    teacher = student_signals(copy.deepcopy(net), x, y)
    assert diswot(teacher, net, x, y) == pytest.approx(0.0, abs=1e-6)
    other = build_resnet({"stem": 16, "widths": [8, 8, 32], "depths": [1, 2, 1]}, 1, 5)
    gaussian_init_(other, gen)
    assert diswot(teacher, other, x, y) < -1e-4


def _similarity_loss(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """The authors' ``Similarity.similarity_loss`` (distiller_zoo/SP.py), re-typed line by line."""
    bsz = f_s.shape[0]
    f_s, f_t = f_s.view(bsz, -1), f_t.view(bsz, -1)
    g_s = F.normalize(torch.mm(f_s, torch.t(f_s)))
    g_t = F.normalize(torch.mm(f_t, torch.t(f_t)))
    return ((g_t - g_s) * (g_t - g_s)).view(-1, 1).sum(0) / (bsz * bsz)


def test_sp_relation_is_the_authors_similarity_loss_on_a_batch():
    f_t, f_s = torch.randn(6, 4, 3, 3), torch.randn(6, 7, 2, 2)
    assert float(sp_relation(f_t, f_s)) == pytest.approx(float(_similarity_loss(f_s, f_t)), rel=1e-5)


def test_sp_relation_sample0_is_what_the_authors_nb201_call_computes():
    """``Similarity()(tfeature[-1], sfeature[-1])[0]`` on the pooled N×D features, tensors where lists are expected:
    forward zips over the batch, so the loss sees one sample's D-vector as a 'batch' of D rows, and [0] keeps
    sample 0."""
    f_t, f_s = torch.randn(5, 6, 3, 3), torch.randn(5, 6, 2, 2)
    pooled_t, pooled_s = f_t.mean((2, 3)), f_s.mean((2, 3))  # the NAS-Bench-201 models' features[-1]
    as_called = [_similarity_loss(a, b) for a, b in zip(pooled_t, pooled_s)][0]  # noqa: RUF015 — as the authors index it
    assert float(sp_relation_sample0(f_t, f_s)) == pytest.approx(float(as_called), rel=1e-5)
    changed = f_t.clone()
    changed[1:] = torch.randn(4, 6, 3, 3)  # only sample 0 counts
    assert float(sp_relation_sample0(changed, f_s)) == pytest.approx(float(as_called), rel=1e-6)
    with pytest.raises(ValueError):
        sp_relation_sample0(f_t, torch.randn(5, 4, 3, 3))


def test_diswot_is_the_papers_sum_where_widths_match_and_the_relation_alone_where_they_differ():
    t = Signals(torch.randn(6, 4, 2, 2), torch.randn(3, 4))
    same = Signals(torch.randn(6, 4, 1, 1), torch.randn(3, 4))
    wider = Signals(torch.randn(6, 8, 1, 1), torch.randn(3, 8))
    m_s = float(ickd_semantic(t.classifier_grad, same.classifier_grad))
    assert m_s > 0
    assert diswot_score(t, same) == pytest.approx(-(m_s + float(sp_relation(t.features, same.features))), rel=1e-6)
    assert diswot_score(t, wider) == pytest.approx(-float(sp_relation(t.features, wider.features)), rel=1e-6)
    # the code variant swaps the relation term where widths match, and is SP alone (evo_search_zen) where not
    code = -(m_s + float(sp_relation_sample0(t.features, same.features)))
    assert diswot_code_score(t, same) == pytest.approx(code, rel=1e-6)
    assert diswot_code_score(t, wider) == pytest.approx(diswot_score(t, wider), rel=1e-6)


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_every_proxy_runs_on_a_small_pair(name):
    net = build_resnet({"stem": 8, "widths": [8, 16, 16], "depths": [1, 1, 1]}, 1, 5)
    x, y = torch.rand(8, 1, 10, 10), torch.randint(0, 5, (8,))
    teacher = student_signals(copy.deepcopy(net), x, y)
    value = PROXIES[name](teacher, net, x, y)
    assert isinstance(value, float) and not math.isnan(value)


def test_diswot_variants_are_their_terms():
    """The ablations are single terms of the same distances; the log variant is -(log M_s + log M_r)."""
    gen = torch.Generator().manual_seed(1)
    t_net = build_resnet({"stem": 8, "widths": [8, 16, 16], "depths": [1, 1, 1]}, 1, 5)
    s_net = build_resnet({"stem": 16, "widths": [8, 8, 32], "depths": [1, 2, 1]}, 1, 5)
    gaussian_init_(t_net, gen)
    gaussian_init_(s_net, gen)
    x, y = torch.rand(12, 1, 10, 10), torch.randint(0, 5, (12,))
    teacher = student_signals(t_net, x, y)
    s = student_signals(copy.deepcopy(s_net), x, y)
    m_s, m_r = float(class_semantic(teacher.classifier_grad, s.classifier_grad)), float(sp_relation(teacher.features, s.features))
    assert PROXIES["diswot_kxk"](teacher, copy.deepcopy(s_net), x, y) == pytest.approx(-(m_s + m_r), rel=1e-5)
    assert PROXIES["diswot_kxk_semantic"](teacher, copy.deepcopy(s_net), x, y) == pytest.approx(-m_s, rel=1e-5)
    assert PROXIES["diswot_relation"](teacher, copy.deepcopy(s_net), x, y) == pytest.approx(-m_r, rel=1e-5)
    assert PROXIES["diswot_kxk_log"](teacher, copy.deepcopy(s_net), x, y) == pytest.approx(-(math.log(m_s) + math.log(m_r)), rel=1e-5)
    # widths 16 vs 32: the published score is the relation alone
    assert PROXIES["diswot"](teacher, copy.deepcopy(s_net), x, y) == pytest.approx(-m_r, rel=1e-5)


def test_combo_is_the_weighted_sum_of_its_transformed_components(monkeypatch):
    """combo = Σ w · transform(component), each component scoring the student at the init it asks for."""
    from kdcompress.search import combo as combo_mod
    from kdcompress.search.proxies import score_student

    weights = {"params": 0.5, "synflow": -0.25, "diswot_relation": 2.0}
    monkeypatch.setattr(combo_mod, "shipped_weights", lambda: weights)
    genes = {"stem": 8, "widths": [8, 16, 16], "depths": [1, 1, 1]}
    x, y = torch.rand(8, 1, 10, 10), torch.randint(0, 5, (8,))
    t_net = build_resnet(genes, 1, 5)
    gaussian_init_(t_net, torch.Generator().manual_seed(9))
    teacher = student_signals(t_net, x, y)
    expected = sum(w * combo_mod.TRANSFORMS.get(n, float)(score_student(n, teacher, "resnet", genes, 1, 5, x, y, seed=4))
                   for n, w in weights.items())
    assert score_student("combo", teacher, "resnet", genes, 1, 5, x, y, seed=4) == pytest.approx(expected, rel=1e-6)


def test_fit_combo_recovers_a_linear_ranking():
    import numpy as np

    from kdcompress.search.combo import fit_combo

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(40, 3)) * [1.0, 100.0, 0.01]
    truth = feats @ np.array([1.0, 0.0, -200.0])
    w = fit_combo(feats, truth, ridge=1e-6)
    assert np.corrcoef(feats @ w, truth)[0, 1] > 0.999
