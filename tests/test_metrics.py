import pytest
import torch

from locality_lib import mse, pearson_r, r2


def test_metrics_of_a_perfect_prediction():
    y = torch.randn(5, 1, 6, 6)
    assert r2(y, y) == pytest.approx(1.0)
    assert pearson_r(y, y) == pytest.approx(1.0)
    assert mse(y, y) == 0.0


def test_r2_of_the_per_image_mean_is_zero_and_pearson_is_affine_invariant():
    y = torch.randn(5, 2, 4, 4)
    mean_img = y.mean(dim=(1, 2, 3), keepdim=True).expand_as(y)
    assert r2(mean_img, y) == pytest.approx(0.0, abs=1e-12)
    assert pearson_r(3 * y + 2, y) == pytest.approx(1.0)
    assert pearson_r(-y, y) == pytest.approx(-1.0)


def test_r2_is_the_papers_per_image_average():
    y = torch.tensor([[0.0, 2.0], [0.0, 4.0]]).reshape(2, 1, 1, 2)
    p = torch.tensor([[1.0, 2.0], [0.0, 4.0]]).reshape(2, 1, 1, 2)
    # image 1: ||p-y||^2 = 1, D Var = 2 * 1 -> 0.5; image 2: 1 -> mean 0.75
    assert r2(p, y) == pytest.approx(0.75)
    assert mse(p, y) == pytest.approx(0.25)


def test_bad_metric_input():
    with pytest.raises(ValueError, match="same shape"):
        r2(torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 3))
    with pytest.raises(ValueError, match="constant"):
        r2(torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 2))


def test_nearest_train_finds_copies_at_distance_zero_across_chunks():
    from locality_lib import nearest_train

    g = torch.Generator().manual_seed(0)
    train = torch.rand(50, 1, 4, 4, generator=g) * 2 - 1
    x = torch.stack([train[3], train[47], train[20] + 0.1])
    d, idx = nearest_train(x, train, chunk=7)  # copies sit in different chunks
    assert idx.tolist() == [3, 47, 20]
    assert d[0] == 0 and d[1] == 0
    assert torch.isclose(d[2], torch.tensor(0.1 * 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="same image shape"):
        nearest_train(x, train[:, :, :3])


def test_pearson_per_image_of_a_constant_image():
    """Undefined for a constant image: an error by default, not-a-number (and the other images' values) on request."""
    from locality_lib.metrics import pearson_per_image

    g = torch.Generator().manual_seed(0)
    ref = torch.randn(3, 1, 4, 4, generator=g)
    pred = 2 * ref + 1
    pred[1] = 0.5
    with pytest.raises(ValueError, match="constant"):
        pearson_per_image(pred, ref)
    r = pearson_per_image(pred, ref, constant="undefined")
    assert torch.isnan(r[1]) and torch.allclose(r[[0, 2]], torch.ones(2, dtype=torch.float64))
