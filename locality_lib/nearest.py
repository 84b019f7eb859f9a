"""The nearest-neighbour denoiser: the training image closest to ``x_t / sqrt(abar_t)``.

``x0_hat(x_t) = y_{i*}``, ``i* = argmin_i ||x_t - sqrt(abar_t) y_i||`` -- the zero-temperature
limit of the optimal denoiser.
"""
from __future__ import annotations

import torch

from .optimal import OptimalDenoiser

__all__ = ["NearestDenoiser"]


class NearestDenoiser(OptimalDenoiser):
    """``NearestDenoiser(train, schedule, chunk_size=4096)``; ``.nearest_index(x_t, t)`` gives the indices ``[B]``.

    The optimal denoiser's logits (the same chunked distances), keeping only the largest one.
    """

    def __init__(self, train, schedule=None, chunk_size: int = 4096):
        super().__init__(train, schedule, chunk_size=chunk_size)

    def nearest_index(self, x_t: torch.Tensor, t: int) -> torch.Tensor:
        best_l = best_i = None
        for start, (lg, _) in zip(range(0, self.num_train, self.chunk_size), self.logits(x_t, t)):
            val, pos = lg.max(dim=1)
            pos = pos + start
            if best_l is None:
                best_l, best_i = val, pos
            else:
                better = val > best_l
                best_l, best_i = torch.where(better, val, best_l), torch.where(better, pos, best_i)
        return best_i

    def _denoise(self, x_t, t):
        return self.train_on(x_t.device)[self.nearest_index(x_t, t)]
