"""Data loaders: IDX, .npz, ImageFolder, splits, preprocessing and augmentation."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from kdcompress.data import Preprocess, load_data
from kdcompress.data.augment import random_crop_flip
from kdcompress.data.splits import _read_idx
from kdcompress.errors import KDCompressError


def test_npz_splits_and_val_carving(tiny_npz):
    d = load_data(str(tiny_npz), val_fraction=0.25, seed=0)
    assert d.input_shape == (1, 12, 12) and d.num_classes == 4
    assert len(d.y_train) == 300 and len(d.y_val) == 100 and len(d.y_test) == 120
    again = load_data(str(tiny_npz), val_fraction=0.25, seed=0)
    assert torch.equal(d.y_val, again.y_val)  # seeded


def test_npz_missing_arrays(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, x_train=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(KDCompressError, match="missing arrays"):
        load_data(str(p))


def test_missing_dataset_is_clear(tmp_path):
    with pytest.raises(KDCompressError, match="dataset not found"):
        load_data(str(tmp_path / "nothing.npz"))


def test_fashion_mnist_missing_is_clear(monkeypatch, tmp_path):
    import kdcompress.data.splits as splits

    monkeypatch.setattr(splits, "FASHION_MNIST_DIRS", (tmp_path,))
    monkeypatch.delenv("KDCOMPRESS_FASHION_MNIST", raising=False)
    with pytest.raises(KDCompressError, match="apt-get install dataset-fashion-mnist"):
        load_data("fashion-mnist")


def test_idx_reader(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    p = tmp_path / "a-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(header + arr.tobytes()))
    assert np.array_equal(_read_idx(p), arr)
    p.write_bytes(gzip.compress(header + arr.tobytes()[:-3]))
    with pytest.raises(KDCompressError, match="truncated"):
        _read_idx(p)


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    d = load_data(str(tmp_path), val_fraction=0.2)
    assert d.classes == ["cat", "dog"] and d.input_shape == (1, 8, 8)
    assert len(d.y_test) == 4 and len(d.y_train) + len(d.y_val) == 6


def test_preprocess_scales_then_normalises():
    x = torch.full((1, 2, 1, 1), 255, dtype=torch.uint8)
    out = Preprocess(mean=(0.5, 0.0), std=(0.5, 2.0))(x)
    assert out.flatten().tolist() == pytest.approx([1.0, 0.5])


def test_crop_flip_keeps_shape_and_only_moves_pixels():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.uint8).reshape(2, 1, 6, 6)
    out = random_crop_flip(x, pad=0, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for i in range(2):  # with no padding, each image is itself or its mirror
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(2))
    shifted = random_crop_flip(x, pad=2, generator=torch.Generator().manual_seed(1))
    assert shifted.shape == x.shape


def _save(path, x_train, x_test=None):
    n = len(x_train)
    np.savez(path, x_train=x_train, y_train=np.arange(n) % 2, x_test=x_train[:4] if x_test is None else x_test,
             y_test=np.arange(4) % 2)
    return path


def test_float_images_become_pixels_or_are_refused_never_rounded_into_garbage(tmp_path):
    rng = np.random.default_rng(0)
    unit = rng.random((8, 1, 6, 6)).astype(np.float32)
    d = load_data(str(_save(tmp_path / "unit.npz", unit)))  # floats in [0, 1]: scaled by 255
    assert d.x_test.dtype == torch.uint8 and int(d.x_test.max()) > 200
    torch.testing.assert_close(d.x_test.float(), torch.from_numpy(np.rint(unit[:4] * 255)), atol=0, rtol=0)
    d = load_data(str(_save(tmp_path / "bytes.npz", (unit * 255).astype(np.float64))))  # floats in [0, 255]: kept
    assert int(d.x_test.max()) > 200
    normalised = (unit - 0.2860) / 0.3530  # Fashion-MNIST-normalised: values in about [-0.8, 2.0]
    with pytest.raises(KDCompressError, match=r"looks normalised.*--mean/--std"):
        load_data(str(_save(tmp_path / "norm.npz", normalised)))
    nan = unit.copy()
    nan[3, 0, 2, 2] = np.nan
    with pytest.raises(KDCompressError, match="1 image\\(s\\) hold NaN"):
        load_data(str(_save(tmp_path / "nan.npz", nan)))


def test_mixup_and_cutmix_mix_what_they_say_with_the_weight_they_report():
    from kdcompress.data.augment import cutmix, mixup

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(8, 1, 10, 10), torch.arange(8)
    m = mixup(x, y, 0.4, g)
    partner = m.y_b  # labels are the sample indices here, so y_b names each image's partner
    torch.testing.assert_close(m.x, m.lam * x + (1 - m.lam) * x[partner])
    assert 0 < m.lam < 1 and torch.equal(m.y_a, y)
    c = cutmix(x, y, 1.0, g)
    pasted = (c.x != x).any(1)  # pixels that came from the partner (random images: every pasted pixel differs)
    assert torch.equal(c.x[pasted[:, None]], x[c.y_b][pasted[:, None]])
    inside = pasted[c.y_b != y]
    assert float(inside.float().mean(dim=(1, 2)).max()) == pytest.approx(1 - c.lam)  # lam: the share left
    assert bool((inside.sum(dim=(1, 2)) == inside[0].sum()).all())  # one box for the whole batch
    # the same generator state draws the same mix: a resumed run sees the batches the straight run saw
    a, b = (cutmix(x, y, 0.2, torch.Generator().manual_seed(5)) for _ in range(2))
    assert torch.equal(a.x, b.x) and a.lam == b.lam


def test_beta_draws_have_the_beta_mean_and_spread():
    from kdcompress.data.augment import _beta

    g = torch.Generator().manual_seed(0)
    for alpha in (0.2, 1.0, 2.0):
        draws = torch.tensor([_beta(alpha, g) for _ in range(4000)])
        assert float(draws.mean()) == pytest.approx(0.5, abs=0.02)
        assert float(draws.var()) == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.1)  # Var of Beta(a, a)


def test_cutmix_pick_keeps_the_mixes_the_teacher_is_least_sure_of():
    from kdcompress.data.augment import cutmix, cutmix_pick

    x, y = torch.rand(6, 1, 8, 8), torch.arange(6)
    teacher = lambda batch: torch.stack([batch.mean(dim=(1, 2, 3)) * 20, torch.zeros(len(batch))], 1)
    m = cutmix_pick(x, y, 1.0, torch.Generator().manual_seed(0), teacher, pool=3)
    assert len(m.x) == 6 and torch.equal(m.teacher_logits, teacher(m.x))
    entropy = lambda lg: -(lg.softmax(1) * lg.log_softmax(1)).sum(1)
    # the pool is the CutMix the same generator draws with three partners: the kept six are its most uncertain
    pool = cutmix(x, y, 1.0, torch.Generator().manual_seed(0), partners=3)
    dropped = entropy(teacher(pool.x)).sort().values[: len(pool.x) - 6]
    assert float(entropy(m.teacher_logits).min()) >= float(dropped.max())


def test_the_validation_carve_does_not_move_with_the_training_seed(tiny_npz, tmp_path):
    """Runs of several seeds choose on the same validation images (profile data.split_seed, not --seed)."""
    from kdcompress.profiles import load_profile
    from kdcompress.run import RunDir
    from kdcompress.session import Inputs, Session

    def val_labels(seed: int, split_seed: int = 0) -> torch.Tensor:
        profile = load_profile("ci", {"data.split_seed": split_seed})
        inputs = Inputs(str(tmp_path / "t.pt2"), str(tiny_npz), profile, seed=seed)
        return Session(RunDir(tmp_path, {"inputs": inputs.to_json()})).data.y_val

    assert torch.equal(val_labels(0), val_labels(1)) and torch.equal(val_labels(2), val_labels(0))
    assert not torch.equal(val_labels(0), val_labels(0, split_seed=1))
