"""The optimal (memorizing) denoiser: the exact posterior mean under the empirical training distribution.

``x0_hat(x_t) = sum_i softmax_i( -||x_t - sqrt(abar_t) y_i||^2 / (2 (1 - abar_t) T) ) y_i``
over the training images ``y_i`` (T = 1 is the exact posterior). Computed over the whole training
set with a streaming log-sum-exp; ``top_k`` reproduces the paper code's nearest-k shortcut.
"""
from __future__ import annotations

import torch

from ._checks import check_positive
from .base import TrainingSetDenoiser, exact_dtype
from .softmax import StreamingSoftmax

__all__ = ["OptimalDenoiser", "squared_distances"]


def squared_distances(x: torch.Tensor, y: torch.Tensor, y_sqnorm: torch.Tensor, scale: float) -> torch.Tensor:
    """``||x_b - scale * y_k||^2`` for ``x [B, D]``, ``y [K, D]`` -> ``[B, K]``.

    Uses the expanded square in the dtype of ``x`` (float64 on CPU/CUDA: the float32 expansion
    loses the answer near t = 0, where the logits scale like 1/(1 - abar) ~ 1e4). ``y_sqnorm``:
    ``||y_k||^2`` ``[K]`` in that dtype.
    """
    y = y.to(x.dtype)
    d = (x * x).sum(1, keepdim=True) - 2 * scale * (x @ y.T) + scale**2 * y_sqnorm
    return d.clamp_min_(0.0)


class OptimalDenoiser(TrainingSetDenoiser):
    """``OptimalDenoiser(train, schedule, temperature=1.0, top_k=None, chunk_size=4096)``.

    ``top_k=k`` keeps only the k nearest training images in the softmax (the paper code uses 200);
    ``None`` is exact. Memory is ``O(B * chunk_size)`` beyond the training set itself.
    """

    def __init__(self, train, schedule=None, temperature: float = 1.0, top_k: int | None = None, chunk_size: int = 4096):
        super().__init__(train, schedule, chunk_size)
        self.temperature = check_positive(temperature, "temperature")
        if top_k is not None and not (isinstance(top_k, int) and 1 <= top_k):
            raise ValueError(f"top_k must be None or a positive int, got {top_k!r}")
        self.top_k = top_k
        self._sqnorm: dict = {}

    def _norms(self, device):
        device = torch.device(device)
        if device not in self._sqnorm:
            y = self.train_on(device, exact_dtype(device)).reshape(self.num_train, -1)
            self._sqnorm[device] = y.pow(2).sum(1)
        return self._sqnorm[device]

    def logits(self, x_t: torch.Tensor, t: int):
        """Yield ``(logits [B, K], y [K, D])`` chunk by chunk over the training set."""
        ab = self.schedule.abar(t)
        dt = exact_dtype(x_t.device)
        x = x_t.reshape(x_t.shape[0], -1).to(dt)
        y_all = self.train_on(x_t.device, dt).reshape(self.num_train, -1)
        norms = self._norms(x_t.device)
        coef = -1.0 / (2 * (1 - ab) * self.temperature)
        for i in range(0, self.num_train, self.chunk_size):
            y = y_all[i : i + self.chunk_size]
            yield coef * squared_distances(x, y, norms[i : i + self.chunk_size], ab**0.5), y

    def _denoise(self, x_t, t):
        acc = StreamingSoftmax()
        if self.top_k is None:
            for lg, y in self.logits(x_t, t):
                acc.update(lg, y)
            return acc.result().reshape(x_t.shape)
        k = min(self.top_k, self.num_train)
        best_l = best_i = None
        for start, (lg, _) in zip(range(0, self.num_train, self.chunk_size), self.logits(x_t, t)):
            idx = torch.arange(start, start + lg.shape[1], device=lg.device).expand_as(lg)
            if best_l is not None:
                lg, idx = torch.cat([best_l, lg], 1), torch.cat([best_i, idx], 1)
            best_l, pos = lg.topk(min(k, lg.shape[1]), dim=1)
            best_i = idx.gather(1, pos)
        y_all = self.train_on(x_t.device, best_l.dtype).reshape(self.num_train, -1)
        w = torch.softmax(best_l, dim=1)  # [B, k]
        return torch.einsum("bk,bkd->bd", w, y_all[best_i]).reshape(x_t.shape)
