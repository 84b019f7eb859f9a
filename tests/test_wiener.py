import pytest
import torch

from locality_lib import DataStatistics, WienerDenoiser
from reference import wiener_dense


@pytest.mark.parametrize("t", [999, 500, 100, 0])
def test_wiener_matches_the_dense_solve(schedule, t):
    g = torch.Generator().manual_seed(0)
    train = torch.randn(500, 1, 4, 4, generator=g) @ torch.randn(4, 4, generator=g) * 0.3
    x = schedule.add_noise(train[:5], t, torch.randn(5, 1, 4, 4, generator=g))
    assert torch.allclose(WienerDenoiser(train, schedule)(x, t), wiener_dense(train, x, t, schedule).float(), atol=1e-4)


def test_jacobian_is_what_autograd_gives(schedule, mnist_small):
    den = WienerDenoiser(mnist_small, schedule)
    x = schedule.add_noise(mnist_small[:1], 300, torch.randn(1, 1, 28, 28)).double()
    J = torch.autograd.functional.jacobian(lambda v: den(v.reshape(1, 1, 28, 28), 300).reshape(-1), x.reshape(-1))
    assert torch.allclose(J, den.jacobian(300), atol=1e-10)


def test_dead_pixels_stay_at_their_constant(schedule, mnist_small):
    stats = DataStatistics(mnist_small)
    dead = (~stats.live).nonzero().squeeze(1)
    assert len(dead) > 0  # MNIST corners are never written
    den = WienerDenoiser(mnist_small, schedule, stats=stats)
    x = torch.randn(3, 1, 28, 28)
    out = den(x, 200).reshape(3, -1)
    assert torch.allclose(out[:, dead], mnist_small.reshape(300, -1)[0, dead].expand(3, -1))
    J = den.jacobian(200)
    assert (J[dead] == 0).all() and (J[:, dead] == 0).all()


def test_limits_in_t(schedule):
    g = torch.Generator().manual_seed(1)
    train = torch.randn(2000, 2, 3, 3, generator=g) * 0.5
    den = WienerDenoiser(train, schedule)
    x = torch.randn(4, 2, 3, 3, generator=g)
    mu = train.mean(0, keepdim=True)
    assert torch.allclose(den(x, 999), mu.expand_as(x), atol=1e-2)  # sigma^2 ~ 2.5e4: the mean (x / sqrt(abar) ~ 150)
    ab = schedule.abar(0)
    assert torch.allclose(den(x, 0), x / ab**0.5, atol=2e-3)  # sigma^2 ~ 1e-4: the identity


def test_statistics_match_torch(mnist_small):
    stats = DataStatistics(mnist_small, chunk_size=77)
    y = mnist_small.reshape(300, -1).double()
    assert torch.allclose(stats.mean, y.mean(0))
    assert torch.allclose(stats.covariance, torch.cov(y.T), atol=1e-12)
    U, lam = stats.eigenvectors, stats.eigenvalues
    assert torch.allclose((U * lam) @ U.T, stats.covariance, atol=1e-10)
    assert (lam[:-1] >= lam[1:]).all()
