"""The Wiener filter: the best linear denoiser (Wang & Vastola 2024; Lukoianov et al. 2025, Sec. 3).

With data mean ``mu`` and covariance ``Sigma = U diag(lambda) U^T``,
``x0_hat = mu + U diag(lambda / (lambda + sigma_t^2)) U^T (x_t / sqrt(abar_t) - mu)``, applied
in the PCA basis. Its Jacobian ``d x0_hat / d x_t = W_t / sqrt(abar_t)`` does not depend on the input.
"""
from __future__ import annotations

import torch

from .base import TrainingSetDenoiser, exact_dtype
from .statistics import DataStatistics

__all__ = ["WienerDenoiser"]


class WienerDenoiser(TrainingSetDenoiser):
    """``WienerDenoiser(train, schedule)``; ``den(x_t, t)`` -> ``[B, C, H, W]``.

    Statistics (float64) are computed once at construction; ``.stats`` exposes them.
    """

    def __init__(self, train, schedule=None, stats: DataStatistics | None = None):
        super().__init__(train, schedule)
        self.stats = stats if stats is not None else DataStatistics(self.train)
        self._dev: dict = {}

    def _tensors(self, device):
        device = torch.device(device)
        if device not in self._dev:
            dt = exact_dtype(device)
            self._dev[device] = (self.stats.mean.to(device, dt), self.stats.eigenvectors.to(device, dt))
        return self._dev[device]

    def _denoise(self, x_t, t):
        mu, U = self._tensors(x_t.device)
        ab = self.schedule.abar(t)
        s = self.stats.shrinkage((1 - ab) / ab).to(x_t.device, mu.dtype)
        z = x_t.reshape(x_t.shape[0], -1).to(mu.dtype) / ab**0.5 - mu  # [B, D]
        out = mu + ((z @ U) * s) @ U.T
        return out.reshape(x_t.shape)

    def matrix(self, t: int) -> torch.Tensor:
        """The Wiener matrix ``W_t = U diag(lambda/(lambda+sigma_t^2)) U^T``, ``[D, D]`` float64."""
        ab = self.schedule.abar(t)
        return self.stats.wiener_matrix((1 - ab) / ab)

    def jacobian(self, t: int) -> torch.Tensor:
        """``d x0_hat / d x_t = W_t / sqrt(abar_t)``, ``[D, D]`` float64; row m is output pixel m's sensitivity field."""
        return self.matrix(t) / self.schedule.abar(t) ** 0.5
