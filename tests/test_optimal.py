import pytest
import torch

from locality_lib import NearestDenoiser, OptimalDenoiser, WienerDenoiser
from reference import optimal_dense

TS = [999, 900, 500, 100, 10, 1, 0]


@pytest.mark.parametrize("t", TS)
def test_optimal_matches_the_float64_dense_reference(schedule, mnist_small, mnist_queries, t):
    den = OptimalDenoiser(mnist_small, schedule, chunk_size=128)
    x = schedule.add_noise(mnist_queries, t, torch.randn_like(mnist_queries))
    assert torch.allclose(den(x, t), optimal_dense(mnist_small, x, t, schedule).float(), atol=1e-4)


def test_near_t0_between_two_training_images(schedule, mnist_small):
    """Near t = 0 the logits are ~1e4 times the distances: a query midway between two training images
    gets a sensitive mixture that a float32 expanded square would get wrong."""
    y = mnist_small[:2]
    ab = schedule.abar(0)
    x = ab**0.5 * (0.5 * y[0:1] + 0.5 * y[1:2]) + 1e-6 * torch.randn(1, 1, 28, 28)
    ref = optimal_dense(mnist_small, x, 0, schedule)
    out = OptimalDenoiser(mnist_small, schedule)(x, 0)
    assert torch.allclose(out, ref.float(), atol=1e-4)


def test_chunking_and_training_order_do_not_change_the_answer(schedule, mnist_small, mnist_queries):
    x = schedule.add_noise(mnist_queries, 300, torch.randn_like(mnist_queries))
    a = OptimalDenoiser(mnist_small, schedule, chunk_size=7)(x, 300)
    b = OptimalDenoiser(mnist_small[torch.randperm(300)], schedule, chunk_size=4096)(x, 300)
    assert torch.allclose(a, b, atol=1e-5)


def test_top_k_limits(schedule, mnist_small, mnist_queries):
    x = schedule.add_noise(mnist_queries, 600, torch.randn_like(mnist_queries))
    exact = OptimalDenoiser(mnist_small, schedule)(x, 600)
    assert torch.allclose(OptimalDenoiser(mnist_small, schedule, top_k=300, chunk_size=50)(x, 600), exact, atol=1e-5)
    one = OptimalDenoiser(mnist_small, schedule, top_k=1, chunk_size=50)(x, 600)
    assert torch.equal(one, NearestDenoiser(mnist_small, schedule)(x, 600))
    k10 = OptimalDenoiser(mnist_small, schedule, top_k=10, chunk_size=50)(x, 600)
    assert not torch.allclose(k10, exact, atol=1e-3)  # at t = 600 many images contribute


def test_high_temperature_gives_the_training_mean(schedule, mnist_small, mnist_queries):
    x = schedule.add_noise(mnist_queries, 100, torch.randn_like(mnist_queries))
    out = OptimalDenoiser(mnist_small, schedule, temperature=1e9)(x, 100)
    assert torch.allclose(out, mnist_small.mean(0, keepdim=True).expand_as(out), atol=1e-4)


def test_optimal_approaches_wiener_on_gaussian_data(schedule):
    """For Gaussian data the posterior mean is linear: the empirical optimal denoiser tends to the Wiener filter."""
    g = torch.Generator().manual_seed(0)
    A = torch.randn(4, 4, generator=g) * 0.3
    def sample(n):
        return (torch.randn(n, 4, generator=g) @ A.T + 0.1).reshape(n, 4, 1, 1)
    x0 = sample(64)
    t = 400
    x = schedule.add_noise(x0, t, torch.randn(x0.shape, generator=g))
    errs = []
    for n in (100, 40000):
        train = sample(n)
        errs.append((OptimalDenoiser(train, schedule)(x, t) - WienerDenoiser(train, schedule)(x, t)).abs().max().item())
    assert errs[1] < 0.3 * errs[0] and errs[1] < 0.02


def test_nearest_returns_the_closest_training_image(schedule, mnist_small):
    x = schedule.add_noise(mnist_small[5:9], 50, 0.1 * torch.randn(4, 1, 28, 28))
    assert torch.equal(NearestDenoiser(mnist_small, schedule, chunk_size=64)(x, 50), mnist_small[5:9])
