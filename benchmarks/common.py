"""Helpers the benchmark scripts share: the same held-out queries and noise for every script."""
from __future__ import annotations

import torch

from locality_lib import DDPMSchedule, load_dataset

#: Default noise levels of the held-out tables; the noise is drawn in this order.
TIMESTEPS = (200, 400, 600)


def held_out(dataset: str, n_test: int, timesteps, seed: int = 0):
    """The held-out test images ``[n_test, C, H, W]`` and, per timestep, their forward-noised copies: the
    noise is drawn in ``timesteps`` order from one seeded generator (every script sees the same queries)."""
    schedule = DDPMSchedule()
    test = load_dataset(dataset, "test", n=n_test, seed=seed)
    g = torch.Generator().manual_seed(seed)
    noisy = {t: schedule.add_noise(test, t, torch.randn(test.shape, generator=g)) for t in timesteps}
    return test, noisy, g


def noised_training(train: torch.Tensor, n: int, t: int, seed: int = 0):
    """The first ``n`` training images and their copies noised at ``t`` (generator ``seed + 1``): the
    training-side twin of :func:`held_out`, to tell memorizing (lower error here) from underfitting."""
    seen = train[:n]
    noise = torch.randn(seen.shape, generator=torch.Generator().manual_seed(seed + 1))
    return seen, DDPMSchedule().add_noise(seen, t, noise)
