import pytest
import torch

from locality_lib import DataStatistics, LocalityDenoiser, OptimalDenoiser, locality_masks
from reference import locality_batchwise_dense, locality_dense

TS = [999, 700, 300, 50, 0]


@pytest.fixture(scope="module")
def stats(mnist_small):
    return DataStatistics(mnist_small)


@pytest.mark.parametrize("convention", ["column", "row"])
@pytest.mark.parametrize("t", TS)
def test_exact_softmax_matches_the_dense_reference(schedule, mnist_small, mnist_queries, stats, convention, t):
    den = LocalityDenoiser(mnist_small, schedule, threshold=0.02, mask_convention=convention, batch_size=128, stats=stats)
    x = schedule.add_noise(mnist_queries, t, torch.randn_like(mnist_queries))
    ref = locality_dense(mnist_small, x, t, schedule, den.mask(t))
    assert torch.allclose(den(x, t), ref.float(), atol=1e-4)


@pytest.mark.parametrize("batch_size", [300, 128, 7])
def test_batchwise_softmax_is_the_paper_codes_average_and_exact_with_one_batch(
    schedule, mnist_small, mnist_queries, stats, batch_size
):
    t = 200
    x = schedule.add_noise(mnist_queries, t, torch.randn_like(mnist_queries))
    bw = LocalityDenoiser(mnist_small, schedule, threshold=0.02, softmax="batchwise", batch_size=batch_size, stats=stats)
    ref = locality_batchwise_dense(mnist_small, x, t, schedule, bw.mask(t), batch_size)
    assert torch.allclose(bw(x, t), ref.float(), atol=1e-4)
    exact = LocalityDenoiser(mnist_small, schedule, threshold=0.02, stats=stats)(x, t)
    if batch_size >= 300:
        assert torch.allclose(bw(x, t), exact, atol=1e-5)
    elif batch_size == 7:
        assert (bw(x, t) - exact).abs().max() > 1e-3  # with small batches the approximation really differs


def test_all_ones_mask_gives_the_optimal_denoiser(schedule):
    g = torch.Generator().manual_seed(0)
    train = torch.rand(200, 1, 5, 5, generator=g) * 2 - 1
    den = LocalityDenoiser(train, schedule, threshold=0.0)
    x = schedule.add_noise(train[:3], 300, torch.randn(3, 1, 5, 5, generator=g))
    assert den.mask(300).all()
    assert torch.allclose(den(x, 300), OptimalDenoiser(train, schedule)(x, 300), atol=1e-5)


def test_permuting_pixels_permutes_every_output(schedule, mnist_small, mnist_queries):
    perm = torch.randperm(784, generator=torch.Generator().manual_seed(3))
    def shuffle(v):
        return v.reshape(v.shape[0], -1)[:, perm].reshape(v.shape)
    t = 150
    x = schedule.add_noise(mnist_queries, t, torch.randn_like(mnist_queries))
    a = LocalityDenoiser(mnist_small, schedule)(x, t)
    den_p = LocalityDenoiser(shuffle(mnist_small), schedule)
    b = den_p(shuffle(x), t)
    assert torch.allclose(shuffle(a), b, atol=1e-5)
    assert torch.equal(den_p.mask(t), LocalityDenoiser(mnist_small, schedule).mask(t)[perm][:, perm])


def test_mask_conventions_are_transposes(schedule, mnist_small, stats):
    col = LocalityDenoiser(mnist_small, schedule, mask_convention="column", stats=stats).mask(400)
    row = LocalityDenoiser(mnist_small, schedule, mask_convention="row", stats=stats).mask(400)
    assert torch.equal(col, row.T)
    assert not row[~stats.live].any()  # dead pixels have zero rows


def test_masks_grow_with_noise(schedule, mnist_small, stats):
    den = LocalityDenoiser(mnist_small, schedule, stats=stats)
    sizes = [den.mask(t).sum(1).double().mean().item() for t in (50, 300, 900)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_locality_masks_rejects_nothing_silently():
    W = torch.tensor([[2.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    for floor in (1e-6, 0.0):
        m = locality_masks(W, 0.1, "row", diag_floor=floor)
        assert m.tolist() == [[True, True], [True, False]]  # zero diagonal -> row left as it is, not inf
    with pytest.raises(ValueError, match="convention"):
        locality_masks(W, 0.1, "diagonal")
    with pytest.raises(ValueError, match="diag_floor"):
        locality_masks(W, 0.1, diag_floor=-1.0)
    with pytest.raises(ValueError, match="diag_floor"):
        LocalityDenoiser(torch.zeros(3, 1, 2, 2), diag_floor=float("nan"))


def test_timestep_tensor_groups(schedule, mnist_small, mnist_queries, stats):
    den = LocalityDenoiser(mnist_small, schedule, stats=stats)
    t = torch.tensor([10, 500, 10, 900])
    x = schedule.add_noise(mnist_queries, t, torch.randn_like(mnist_queries))
    out = den(x, t)
    for k in range(4):
        assert torch.allclose(out[k], den(x[k : k + 1], int(t[k]))[0], atol=1e-6)
