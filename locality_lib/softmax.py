"""Softmax-weighted averages over a training set streamed in chunks (written once, used by every
softmax denoiser).

Given logits ``l_i`` and values ``y_i`` over training images ``i = 1..N`` arriving chunk by chunk,
``exact`` computes ``sum_i softmax(l)_i y_i`` with a running log-sum-exp (the same answer as the
full softmax, in bounded memory). ``batchwise`` reproduces the paper's code: a softmax inside each
batch, the batch averages then combined with weights ``n_b / N`` -- it depends on the batch size
and order, and equals ``exact`` when there is one batch.

Logits come as ``[B, K]`` (one weight per image, values ``[K, D]``: the optimal denoiser) or
``[B, K, D]`` (one weight per image and output pixel, values ``[K, D]``: patch and locality models),
with the training images on ``dim=1``; or pixel-major, ``dim=2``: ``[D, B, K]`` with values ``[D, K]``
(the fast locality path), giving ``[D, B]``.
"""
from __future__ import annotations

import torch

__all__ = ["StreamingSoftmax", "BatchwiseSoftmax", "make_softmax_accumulator"]


def _weighted(w: torch.Tensor, values: torch.Tensor, dim: int) -> torch.Tensor:
    """``sum_k w[b, k(, d)] values[k, d]`` -> ``[B, D]``; for ``dim=2``: ``sum_k w[d, b, k] values[d, k]`` -> ``[D, B]``."""
    if dim == 2:
        return torch.bmm(w, values.unsqueeze(2)).squeeze(2)
    if w.ndim == 2:
        return w @ values
    return torch.einsum("bkd,kd->bd", w, values)


class StreamingSoftmax:
    """Exact softmax average by a running log-sum-exp: ``m = max l``, ``s = sum e^{l - m}``,
    ``a = sum e^{l - m} y``; result ``a / s``."""

    def __init__(self, dim: int = 1):
        self.dim = dim
        self.m = self.s = self.a = None

    def update(self, logits: torch.Tensor, values: torch.Tensor) -> None:
        values = values.to(logits.dtype)
        m_chunk = logits.amax(dim=self.dim)  # [B], [B, D] or [D, B]
        if self.m is None:
            m_new = m_chunk
        else:
            m_new = torch.maximum(self.m, m_chunk)
        w = (logits - m_new.unsqueeze(self.dim)).exp_()
        s_chunk = w.sum(dim=self.dim)
        a_chunk = _weighted(w, values, self.dim)
        if self.m is None:
            self.s, self.a = s_chunk, a_chunk
        else:
            scale = torch.exp(self.m - m_new)
            self.s = self.s * scale + s_chunk
            self.a = self.a * (scale if scale.ndim == 2 else scale.unsqueeze(1)) + a_chunk
        self.m = m_new

    def result(self) -> torch.Tensor:
        s = self.s if self.s.ndim == 2 else self.s.unsqueeze(1)
        return self.a / s


class BatchwiseSoftmax:
    """The paper code's approximation: ``sum_b (n_b / N) sum_{i in b} softmax_b(l)_i y_i``."""

    def __init__(self, dim: int = 1):
        self.dim = dim
        self.parts: list[tuple[int, torch.Tensor]] = []

    def update(self, logits: torch.Tensor, values: torch.Tensor) -> None:
        w = torch.softmax(logits, dim=self.dim)
        self.parts.append((logits.shape[self.dim], _weighted(w, values.to(logits.dtype), self.dim)))

    def result(self) -> torch.Tensor:
        n = sum(k for k, _ in self.parts)
        return sum(part * (k / n) for k, part in self.parts)


def make_softmax_accumulator(mode: str, dim: int = 1):
    """``"exact"`` -> :class:`StreamingSoftmax`, ``"batchwise"`` -> :class:`BatchwiseSoftmax`, over ``dim``."""
    return StreamingSoftmax(dim) if mode == "exact" else BatchwiseSoftmax(dim)
