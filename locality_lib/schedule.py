"""The DDPM variance-preserving noise schedule (Ho et al. 2020), as the paper uses it.

Forward process: ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` with pixels in [-1, 1],
``beta_t = linspace(1e-4, 0.02, 1000)`` (float32, as the paper's code) and
``abar_t = prod_{s <= t} (1 - beta_s)``. The equivalent noise level of ``x_t / sqrt(abar_t)``
is ``sigma_t^2 = (1 - abar_t) / abar_t``.
"""
from __future__ import annotations

import torch

from ._checks import check_timestep

__all__ = ["DDPMSchedule"]


class DDPMSchedule:
    """Linear-beta DDPM schedule.

    Attributes:
        betas: ``[num_steps]`` float32.
        alpha_bar: ``[num_steps]`` float32, ``abar_t = cumprod(1 - betas)[t]``.
    """

    def __init__(self, beta_start: float = 1e-4, beta_end: float = 0.02, num_steps: int = 1000):
        if not (isinstance(num_steps, int) and num_steps >= 2):
            raise ValueError(f"num_steps must be an int >= 2, got {num_steps!r}")
        if not (0.0 < beta_start <= beta_end < 1.0):
            raise ValueError(
                f"expected 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, beta_end={beta_end}"
            )
        self.beta_start, self.beta_end, self.num_steps = float(beta_start), float(beta_end), num_steps
        self.betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float32)
        self.alpha_bar = torch.cumprod(1.0 - self.betas, dim=0)

    def __repr__(self) -> str:
        return f"DDPMSchedule(beta_start={self.beta_start}, beta_end={self.beta_end}, num_steps={self.num_steps})"

    def abar(self, t: int) -> float:
        """``abar_t`` as a Python float (float64) for one integer timestep."""
        return float(self.alpha_bar[check_timestep(t, self.num_steps)])

    def sigma(self, t):
        """Noise level ``sigma_t = sqrt((1 - abar_t) / abar_t)``; ``t`` an int (returns a float) or a tensor."""
        if isinstance(t, torch.Tensor):
            check_timestep(t, self.num_steps)
            ab = self.alpha_bar.to(t.device)[t].double()
            return ((1 - ab) / ab).sqrt()
        ab = self.abar(t)
        return ((1.0 - ab) / ab) ** 0.5

    def add_noise(self, x0: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
        """``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise``.

        x0, noise: ``[B, C, H, W]``; t: an int or a ``[B]`` long tensor. Returns ``[B, C, H, W]``.
        """
        if x0.shape != noise.shape:
            raise ValueError(f"x0 and noise must have the same shape, got {tuple(x0.shape)} and {tuple(noise.shape)}")
        if isinstance(t, torch.Tensor) and t.ndim == 1:
            check_timestep(t, self.num_steps)
            if t.shape[0] != x0.shape[0]:
                raise ValueError(f"t has {t.shape[0]} entries but x0 has batch size {x0.shape[0]}")
            ab = self.alpha_bar.to(x0.device)[t.to(x0.device)].to(x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
            return ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        ab = self.abar(t)
        return ab**0.5 * x0 + (1.0 - ab) ** 0.5 * noise

    def ddim_timesteps(self, num_steps: int, spacing: str = "leading") -> list[int]:
        """Decreasing DDIM timesteps.

        ``"leading"`` (the paper, diffusers' default): ``k * (T // n)`` for k = n-1..0, e.g. 900, 800, ..., 0.
        ``"trailing"``: ``round(T - k T / n) - 1`` for k = 0..n-1, e.g. 999, 899, ..., 99.
        """
        if not (isinstance(num_steps, int) and 1 <= num_steps <= self.num_steps):
            raise ValueError(f"num_steps must be an int in 1..{self.num_steps}, got {num_steps!r}")
        T = self.num_steps
        if spacing == "leading":
            step = T // num_steps
            return [k * step for k in range(num_steps - 1, -1, -1)]
        if spacing == "trailing":
            return [round(T - k * T / num_steps) - 1 for k in range(num_steps)]
        raise ValueError(f"spacing must be 'leading' or 'trailing', got {spacing!r}")
