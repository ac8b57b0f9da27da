"""Distillation losses against the papers' own equations and hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kdcompress.distill.losses import LOSSES, kd_loss


def test_alpha_zero_is_cross_entropy():
    s, t, y = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    torch.testing.assert_close(kd_loss(s, t, y, T=4.0, alpha=0.0), F.cross_entropy(s, y))


def test_soft_term_is_zero_when_student_matches_teacher():
    z = torch.randn(5, 6)
    assert float(kd_loss(z, z.clone(), torch.zeros(5, dtype=torch.long), T=3.0, alpha=1.0)) == pytest.approx(0, abs=1e-6)


def test_golden_value():
    # One sample, two classes, T = 2: p_t = softmax([2, 0] / 2), p_s = softmax([0, 0] / 2) = [0.5, 0.5].
    s, t, y = torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 0.0]]), torch.tensor([0])
    p1 = math.exp(1) / (math.exp(1) + 1)
    kl = p1 * math.log(p1 / 0.5) + (1 - p1) * math.log((1 - p1) / 0.5)
    ce = math.log(2)
    expected = 0.7 * 4 * kl + 0.3 * ce
    assert float(kd_loss(s, t, y, T=2.0, alpha=0.7)) == pytest.approx(expected, rel=1e-6)


def test_registry():
    assert LOSSES["kd"].fn is kd_loss


def _dkd_with_masks(s, t, y, T, alpha, beta):
    """DKD as the authors' code computes it (probabilities summed under masks, the target logit pushed down by
    1000 for the non-target part), written from their formulas independently of ours; the mean over the batch."""
    gt = torch.zeros_like(s).scatter_(1, y[:, None], 1).bool()
    p_s, p_t = F.softmax(s / T, dim=1), F.softmax(t / T, dim=1)
    b_s = torch.cat([(p_s * gt).sum(1, keepdim=True), (p_s * ~gt).sum(1, keepdim=True)], 1)
    b_t = torch.cat([(p_t * gt).sum(1, keepdim=True), (p_t * ~gt).sum(1, keepdim=True)], 1)
    tckd = (b_t * (b_t.log() - b_s.log())).sum() * T**2 / len(y)
    q_t = F.softmax(t / T - 1000.0 * gt, dim=1)
    log_q_s = F.log_softmax(s / T - 1000.0 * gt, dim=1)
    nckd = F.kl_div(log_q_s, q_t, reduction="sum") * T**2 / len(y)
    return alpha * tckd + beta * nckd


def test_dkd_matches_the_authors_formulation():
    from kdcompress.distill.losses import dkd_loss

    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(16, 10, generator=g) * 3, torch.randn(16, 10, generator=g) * 3
    y = torch.randint(0, 10, (16,), generator=g)
    for T, alpha, beta in ((4.0, 1.0, 8.0), (1.0, 0.5, 2.0), (2.0, 0.0, 1.0)):
        ours = dkd_loss(s, t, y, T=T, alpha=alpha, beta=beta, ce=0.0)
        torch.testing.assert_close(ours, _dkd_with_masks(s, t, y, T, alpha, beta), rtol=1e-5, atol=1e-6)
    with_ce = dkd_loss(s, t, y, ce=1.0, ramp=0.25)
    torch.testing.assert_close(with_ce, 0.25 * _dkd_with_masks(s, t, y, 4.0, 1.0, 8.0) + F.cross_entropy(s, y))


def test_kd_decomposes_into_tckd_and_weighted_nckd():
    """The paper's Eq. 1: KD = TCKD + (1 − p_gt of the teacher) · NCKD, sample by sample."""
    from kdcompress.distill.losses import dkd_parts

    g = torch.Generator().manual_seed(1)
    s, t, y = torch.randn(8, 7, generator=g), torch.randn(8, 7, generator=g), torch.randint(0, 7, (8,), generator=g)
    T = 3.0
    tckd, nckd = dkd_parts(s, t, y, T)
    p_t = F.softmax(t / T, dim=1)
    kd = (p_t * (F.log_softmax(t / T, dim=1) - F.log_softmax(s / T, dim=1))).sum(1) * T * T
    torch.testing.assert_close(kd, tckd + (1 - p_t[torch.arange(8), y]) * nckd)
    # and it vanishes when the student equals the teacher; its gradient reaches the student only
    same_t, same_n = dkd_parts(t.clone(), t, y, T)
    assert float(same_t.abs().max()) < 1e-6 and float(same_n.abs().max()) < 1e-6
    s_req, t_req = s.clone().requires_grad_(), t.clone().requires_grad_()
    sum(dkd_parts(s_req, t_req.detach(), y, T)).sum().backward()
    assert s_req.grad is not None and float(s_req.grad.abs().sum()) > 0 and t_req.grad is None


def test_the_profile_names_the_losses_that_are_summed():
    from kdcompress.distill.losses import Taps, dkd_loss, total_loss
    from kdcompress.profiles import Losses

    def distillation_loss(cfg, epoch, epochs):
        return lambda s, t, y: total_loss(cfg, Taps(s, t, [(1.0, y)], epoch, epochs))

    s, t, y = torch.randn(6, 5), torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    assert Losses().kd is not None and Losses().dkd is None  # Hinton KD when nothing is named
    only_dkd = Losses.model_validate({"dkd": {"warmup": 0.5}})
    assert only_dkd.kd is None
    # epoch 0 of 4 with a warm-up over half of them: the distillation term at half weight, the CE in full
    torch.testing.assert_close(distillation_loss(only_dkd, 0, 4)(s, t, y), dkd_loss(s, t, y, ramp=0.5))
    torch.testing.assert_close(distillation_loss(only_dkd, 3, 4)(s, t, y), dkd_loss(s, t, y, ramp=1.0))
    both = Losses.model_validate({"kd": {"T": 2.0, "alpha": 0.5}, "dkd": {"beta": 2.0, "ce": 0.0, "warmup": 0}})
    torch.testing.assert_close(distillation_loss(both, 0, 4)(s, t, y),
                               kd_loss(s, t, y, T=2.0, alpha=0.5) + dkd_loss(s, t, y, beta=2.0, ce=0.0))


# --- feature losses: golden values from each paper's reference code, written here from its formulas as loops and
# elementwise sums (not the matrix forms of kdcompress.distill.losses), then the invariances the papers state.

def _sp_reference(fs, ft):
    """SP as CRD/torchdistill compute it: G = Q Q^T row-normalised, sum of squared differences / b^2."""
    b = fs.shape[0]
    total = 0.0
    rows = []
    for f in (fs, ft):
        q = f.reshape(b, -1)
        g = torch.tensor([[float((q[i] * q[j]).sum()) for j in range(b)] for i in range(b)], dtype=torch.float64)
        rows.append(g / g.norm(dim=1, keepdim=True))
    for i in range(b):
        for j in range(b):
            total += float(rows[0][i, j] - rows[1][i, j]) ** 2
    return total / b**2


def _ickd_reference(fs, ft):
    """ICKD as the DisWOT authors' distiller_zoo/ICKD.py computes it, one sample and one channel row at a time."""
    b, c = ft.shape[:2]
    total = 0.0
    for n in range(b):
        grams = []
        for f in (fs[n].reshape(c, -1).double(), ft[n].reshape(c, -1).double()):
            g = torch.stack([torch.stack([(f[i] * f[j]).sum() for j in range(c)]) for i in range(c)])
            grams.append(g / g.norm(dim=1, keepdim=True))
        total += float(((grams[0] - grams[1]) ** 2).sum())
    return total / (c * b)


def _rkd_reference(es, et, wd=25.0, wa=50.0):
    """RKD (Park et al.): Huber on mean-normalised distances over ordered pairs (diagonal included as 0, as their
    code does) and on the cosines of every (i, j, k) triplet's angle at j."""
    n = len(es)

    def dist(e):
        d = torch.tensor([[float((e[i] - e[j]).norm()) for j in range(n)] for i in range(n)], dtype=torch.float64)
        return d / d[d > 0].mean()

    def cosines(e):
        out = []
        for i in range(n):
            for j in range(n):
                for k in range(n):
                    u, v = e[i] - e[j], e[k] - e[j]
                    nu, nv = max(float(u.norm()), 1e-12), max(float(v.norm()), 1e-12)
                    out.append(float((u * v).sum()) / (nu * nv))
        return torch.tensor(out, dtype=torch.float64)

    def huber(a, b):
        d = (a - b).abs()
        return float(torch.where(d < 1, 0.5 * d**2, d - 0.5).mean())

    return wd * huber(dist(es), dist(et)) + wa * huber(cosines(es), cosines(et))


def test_sp_ickd_rkd_match_the_reference_formulas():
    from kdcompress.distill.losses import ickd_loss, rkd_loss, sp_loss

    g = torch.Generator().manual_seed(0)
    fs, ft = torch.randn(5, 3, 4, 4, generator=g), torch.randn(5, 6, 2, 2, generator=g)
    assert float(sp_loss(fs, ft)) == pytest.approx(_sp_reference(fs, ft), rel=1e-5)
    fs6 = torch.randn(5, 6, 3, 3, generator=g)
    assert float(ickd_loss(fs6, ft)) == pytest.approx(_ickd_reference(fs6, ft), rel=1e-5)
    es, et = torch.randn(6, 4, generator=g), torch.randn(6, 8, generator=g)
    assert float(rkd_loss(es, et)) == pytest.approx(_rkd_reference(es, et), rel=1e-4)


def test_feature_losses_vanish_where_the_papers_say_they_should():
    from kdcompress.distill.losses import fitnet_loss, ickd_loss, rkd_loss, sp_loss

    g = torch.Generator().manual_seed(1)
    f = torch.randn(4, 6, 3, 3, generator=g)
    for loss in (fitnet_loss, sp_loss, ickd_loss, rkd_loss):
        assert float(loss(f, f.clone())) == pytest.approx(0, abs=1e-6), loss.__name__
    # SP compares samples with samples: the channel count and a scale do not matter (twice the channels, same rows)
    assert float(sp_loss(torch.cat([f, f], 1) * 3, f)) == pytest.approx(0, abs=1e-6)
    # ICKD compares channels over positions: the spatial size does not matter (each pixel repeated 2 x 2)
    assert float(ickd_loss(F.interpolate(f, scale_factor=2.0, mode="nearest"), f)) == pytest.approx(0, abs=1e-6)
    # RKD's relations survive scaling, rotating and shifting the embedding
    e = torch.randn(6, 4, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    assert float(rkd_loss(2.5 * e @ q + 1.0, e)) == pytest.approx(0, abs=1e-9)
    # and none is blind: a different student costs something
    other = torch.randn(4, 6, 3, 3, generator=g)
    assert min(float(loss(other, f)) for loss in (fitnet_loss, sp_loss, ickd_loss, rkd_loss)) > 1e-3


def test_rkd_sends_gradients_to_the_student_only():
    from kdcompress.distill.losses import rkd_loss

    s, t = torch.randn(5, 4, requires_grad=True), torch.randn(5, 4, requires_grad=True)
    rkd_loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None


def test_nd_and_cat_kd_match_the_authors_code_written_as_loops():
    from kdcompress.distill.losses import cat_kd_loss, nd_loss

    g = torch.Generator().manual_seed(2)
    s, t, means, y = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g), torch.randn(3, 4, generator=g), \
        torch.tensor([0, 2, 1, 2, 0])
    expected = sum(1 - float(s[i] @ (means[y[i]] / means[y[i]].norm())) / max(float(s[i].norm()), float(t[i].norm()))
                   for i in range(5)) / 5  # DirectNormLoss.project_center, divided by the batch size
    assert float(nd_loss(s, t, means, y)) == pytest.approx(expected, rel=1e-5)
    cs, ct = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 6, 6, generator=g)

    def pool2(c):  # average over each quadrant, the 2 x 2 adaptive pooling of an even-sided map
        h, w = c.shape[2] // 2, c.shape[3] // 2
        out = torch.zeros(c.shape[0], c.shape[1], 2, 2)
        for i in range(2):
            for j in range(2):
                out[:, :, i, j] = c[:, :, i * h:(i + 1) * h, j * w:(j + 1) * w].mean(dim=(2, 3))
        return out

    pooled = [pool2(cs), pool2(ct)]
    normed = [p / p.pow(2).sum(dim=(2, 3), keepdim=True).sqrt() for p in pooled]
    assert float(cat_kd_loss(cs, ct)) == pytest.approx(float((normed[0] - normed[1]).pow(2).mean()), rel=1e-5)
    assert float(cat_kd_loss(cs, ct, normalize=False)) == pytest.approx(float((pooled[0] - pooled[1]).pow(2).mean()),
                                                                        rel=1e-5)


def test_nd_is_zero_for_a_long_student_along_the_class_centre_and_cams_average_to_the_logits():
    from kdcompress.distill.losses import cat_kd_loss, class_activation_maps, nd_loss
    from kdcompress.models.students import build_student

    means, y = torch.randn(3, 4), torch.tensor([1, 0])
    t = torch.randn(2, 4)
    s = F.normalize(means[y], dim=1) * (t.norm(dim=1, keepdim=True) * 2)  # the centre's direction, longer than t
    assert float(nd_loss(s, t, means, y)) == pytest.approx(0, abs=1e-6)
    assert float(nd_loss(s / 4, t, means, y)) > 0.4  # shorter than the teacher's: penalised
    net = build_student("resnet", {"stem": 8, "widths": [8, 16, 16], "depths": [1, 1, 1], "stem_stride": 1}, 1, 5)
    x = torch.randn(3, 1, 12, 12)
    net.eval()
    with torch.no_grad():
        cams = class_activation_maps(net.forward_features(x), net.head.weight)
        torch.testing.assert_close(cams.mean(dim=(2, 3)) + net.head.bias, net(x))
    assert float(cat_kd_loss(cams * 5, cams)) == pytest.approx(0, abs=1e-6)  # normalised: a scale does not matter


def _minilm_as_written(student, teacher, heads: int) -> torch.Tensor:
    """MiniLMv2 §3.1 written out: per Q/K/V and relation head r, R = softmax(A_r A_rᵀ / √d_r) row by row, the KL
    KL(R_T ‖ R_S) of every token's row, averaged over batch, heads and tokens; the three summed."""
    total = 0.0
    for a_s, a_t in zip(student, teacher):
        b, n = a_s.shape[:2]
        rows = []
        for r in range(heads):
            for bi in range(b):
                parts = []
                for a in (a_s, a_t):
                    d = a.shape[-1] // heads
                    chunk = a[bi, :, r * d:(r + 1) * d]
                    parts.append(torch.softmax(chunk @ chunk.T / math.sqrt(d), dim=-1))
                p_s, p_t = parts
                rows += [(p_t[i] * (p_t[i].log() - p_s[i].log())).sum() for i in range(n)]
        total = total + torch.stack(rows).mean()
    return total


def test_minilm_matches_the_paper_written_as_loops_and_frees_widths_and_heads():
    from kdcompress.distill.losses import minilm_relation_loss, relation_heads

    g = torch.Generator().manual_seed(0)
    student = tuple(torch.randn(2, 5, 48, generator=g) for _ in range(3))  # 3 heads of 16 left of the teacher's 4
    teacher = tuple(torch.randn(2, 5, 64, generator=g) for _ in range(3))
    assert relation_heads((48, 64), 12) == 8  # the largest count up to 12 that divides both widths
    torch.testing.assert_close(minilm_relation_loss(student, teacher, 12), _minilm_as_written(student, teacher, 8))
    same = minilm_relation_loss(teacher, teacher, 12)
    assert float(same) == pytest.approx(0.0, abs=1e-6)  # identical relations: nothing to transfer
    assert LOSSES["minilm"].fn is minilm_relation_loss
