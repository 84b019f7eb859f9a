"""Second-order statistics of a training set, in float64: mean, covariance, its eigendecomposition,
and the Wiener matrix ``W_sigma = U diag(lambda / (lambda + sigma^2)) U^T``.

Pixels that are constant over the whole training set ("dead" pixels, e.g. MNIST corners) are
kept out of the eigendecomposition: their rows and columns of W are exactly zero, so float
round-off in a null space cannot produce spurious entries (chapter 6 of the book: the fragile threshold).
"""
from __future__ import annotations

import functools

import torch

__all__ = ["DataStatistics", "dataset_statistics"]


class DataStatistics:
    """Mean ``mu [D]``, eigenvalues ``lam [L]`` (descending, clamped at 0) and eigenvectors
    ``U [D, L]`` (zero rows on the dead pixels) of the covariance of ``train [N, C, H, W]``,
    with ``D = C*H*W`` and ``L`` the number of live pixels. All float64 on the CPU."""

    def __init__(self, train: torch.Tensor, chunk_size: int = 8192):
        x = train.detach().reshape(train.shape[0], -1)
        n, d = x.shape
        self.num_pixels = d
        self.live = (x.amax(0) > x.amin(0)).cpu()  # [D] bool
        mean = torch.zeros(d, dtype=torch.float64)
        for i in range(0, n, chunk_size):
            mean += x[i : i + chunk_size].cpu().double().sum(0)
        mean /= n
        live_idx = self.live.nonzero().squeeze(1)
        cov = torch.zeros(len(live_idx), len(live_idx), dtype=torch.float64)
        for i in range(0, n, chunk_size):
            c = x[i : i + chunk_size].cpu().double()[:, live_idx] - mean[live_idx]
            cov += c.T @ c
        cov /= max(n - 1, 1)
        lam, vec = torch.linalg.eigh(cov)  # ascending
        self.mean = mean
        self.eigenvalues = lam.flip(0).clamp_min(0.0)
        self.eigenvectors = torch.zeros(d, len(live_idx), dtype=torch.float64)
        self.eigenvectors[live_idx] = vec.flip(1)
        self.covariance_live = cov

    @property
    def covariance(self) -> torch.Tensor:
        """Full ``[D, D]`` float64 covariance (zeros on dead pixels)."""
        live_idx = self.live.nonzero().squeeze(1)
        full = torch.zeros(self.num_pixels, self.num_pixels, dtype=torch.float64)
        full[live_idx[:, None], live_idx[None, :]] = self.covariance_live
        return full

    def shrinkage(self, sigma2: float) -> torch.Tensor:
        """Per-component Wiener gains ``lambda / (lambda + sigma^2)``, ``[L]`` float64."""
        return self.eigenvalues / (self.eigenvalues + sigma2)

    def wiener_matrix(self, sigma2: float) -> torch.Tensor:
        """``W = U diag(lambda / (lambda + sigma^2)) U^T``, ``[D, D]`` float64."""
        U = self.eigenvectors
        return (U * self.shrinkage(sigma2)) @ U.T


@functools.lru_cache(maxsize=4)
def dataset_statistics(name: str) -> DataStatistics:
    """``DataStatistics`` of the whole training split of ``load_dataset(name)``, computed once per process."""
    from .data import load_dataset

    return DataStatistics(load_dataset(name))
