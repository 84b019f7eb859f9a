"""Deterministic DDIM sampling (Song et al. 2021, eta = 0), as the paper runs it.

For each timestep t_k (decreasing) and the next one t_{k+1} (``abar = 1`` after the last):
``x0 = D(x_t, t_k)``, ``eps = (x_t - sqrt(abar_k) x0) / sqrt(1 - abar_k)`` (from the unclipped
estimate), ``x0 <- clip(x0, -1, 1)`` when ``clip``, then
``x_{t_{k+1}} = sqrt(abar_{k+1}) x0 + sqrt(1 - abar_{k+1}) eps``. The returned images are the
last (clipped) x0-estimate.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ._checks import check_images
from .schedule import DDPMSchedule

__all__ = ["ddim_sample", "DDIMResult"]


@dataclass
class DDIMResult:
    """``images [B, C, H, W]``; ``xt`` and ``x0``: ``[S, B, C, H, W]`` inputs and x0-estimates per step;
    ``timesteps``: the S timesteps."""

    images: torch.Tensor
    xt: torch.Tensor
    x0: torch.Tensor
    timesteps: list[int]


@torch.no_grad()
def ddim_sample(
    denoiser,
    x_T: torch.Tensor,
    schedule: DDPMSchedule,
    num_steps: int = 10,
    spacing: str = "leading",
    clip: bool = True,
    callback=None,
    progress: bool = False,
    timesteps: list[int] | None = None,
) -> DDIMResult:
    """Run DDIM from ``x_T [B, C, H, W]`` (standard normal noise) with ``denoiser(x_t, t) -> x0``.

    ``timesteps`` overrides ``schedule.ddim_timesteps(num_steps, spacing)``. ``callback(step, t, x_t, x0)``
    is called after each denoiser evaluation. ``progress`` shows a progress bar.
    """
    check_images(x_T, "x_T")
    ts = list(timesteps) if timesteps is not None else schedule.ddim_timesteps(num_steps, spacing)
    if any(b >= a for a, b in zip(ts, ts[1:])):
        raise ValueError(f"timesteps must be strictly decreasing, got {ts}")
    abar = schedule.alpha_bar.double()
    x = x_T
    xs, x0s = [], []
    steps = ts
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(ts, desc="DDIM", leave=False)
    for k, t in enumerate(steps):
        ab = float(abar[t])
        ab_next = float(abar[ts[k + 1]]) if k + 1 < len(ts) else 1.0
        x0 = denoiser(x, t)
        eps = (x - ab**0.5 * x0) / (1 - ab) ** 0.5
        if clip:
            x0 = x0.clamp(-1, 1)
        xs.append(x)
        x0s.append(x0)
        if callback is not None:
            callback(k, t, x, x0)
        x = ab_next**0.5 * x0 + (1 - ab_next) ** 0.5 * eps
    return DDIMResult(images=x0s[-1], xt=torch.stack(xs), x0=torch.stack(x0s), timesteps=ts)
