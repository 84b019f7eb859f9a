import pytest
import torch

from locality_lib import OptimalDenoiser, ddim_sample


class Constant:
    """A denoiser that always predicts the image ``c``."""

    def __init__(self, c):
        self.c, self.calls = c, []

    def __call__(self, x, t):
        self.calls.append(t)
        return self.c.expand_as(x).clone()


def test_ddim_update_by_hand(schedule):
    c = torch.full((1, 1, 2, 2), 0.25)
    xT = torch.randn(2, 1, 2, 2)
    den = Constant(c)
    res = ddim_sample(den, xT, schedule, num_steps=2)
    assert res.timesteps == [500, 0] and den.calls == [500, 0]
    a5, a0 = schedule.abar(500), schedule.abar(0)
    eps = (xT - a5**0.5 * c) / (1 - a5) ** 0.5
    x_next = a0**0.5 * c + (1 - a0) ** 0.5 * eps
    assert torch.allclose(res.xt[1], x_next, atol=1e-6)
    assert torch.allclose(res.images, c.expand_as(xT))
    assert res.xt.shape == res.x0.shape == (2, 2, 1, 2, 2)


def test_clipping_applies_to_x0_but_eps_comes_from_the_raw_estimate(schedule):
    c = torch.full((1, 1, 2, 2), 3.0)
    xT = torch.randn(1, 1, 2, 2)
    res = ddim_sample(Constant(c), xT, schedule, num_steps=2)
    assert torch.allclose(res.images, torch.ones_like(xT))
    a5, a0 = schedule.abar(500), schedule.abar(0)
    eps = (xT - a5**0.5 * 3.0) / (1 - a5) ** 0.5
    assert torch.allclose(res.xt[1], a0**0.5 * 1.0 + (1 - a0) ** 0.5 * eps, atol=1e-6)
    unclipped = ddim_sample(Constant(c), xT, schedule, num_steps=2, clip=False)
    assert torch.allclose(unclipped.images, torch.full_like(xT, 3.0))


def test_ddim_with_the_optimal_denoiser_reproduces_training_images(schedule):
    g = torch.Generator().manual_seed(0)
    train = torch.rand(3, 1, 6, 6, generator=g) * 2 - 1
    den = OptimalDenoiser(train, schedule)
    res = ddim_sample(den, torch.randn(8, 1, 6, 6, generator=g), schedule, num_steps=10)
    d = ((res.images[:, None] - train[None]) ** 2).flatten(2).sum(-1).min(1).values
    assert d.max() < 1e-6


def test_callback_sees_every_step(schedule):
    seen = []
    ddim_sample(Constant(torch.zeros(1, 1, 2, 2)), torch.randn(1, 1, 2, 2), schedule, num_steps=4,
                callback=lambda k, t, x, x0: seen.append((k, t)))
    assert seen == [(0, 750), (1, 500), (2, 250), (3, 0)]


def test_bad_timesteps_rejected(schedule):
    with pytest.raises(ValueError, match="decreasing"):
        ddim_sample(Constant(torch.zeros(1, 1, 2, 2)), torch.randn(1, 1, 2, 2), schedule, timesteps=[0, 500])
