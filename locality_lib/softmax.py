"""Softmax-weighted averages over a training set streamed in chunks (written once, used by every
softmax denoiser).

Given logits ``l_i`` and values ``y_i`` over training images ``i = 1..N`` arriving chunk by chunk,
``exact`` computes ``sum_i softmax(l)_i y_i`` with a running log-sum-exp (the same answer as the
full softmax, in bounded memory). ``batchwise`` reproduces the paper's code: a softmax inside each
batch, the batch averages then combined with weights ``n_b / N`` -- it depends on the batch size
and order, and equals ``exact`` when there is one batch.

Logits come as ``[B, K]`` (one weight per image, values ``[K, D]``: the optimal denoiser) or
``[B, K, D]`` (one weight per image and output pixel, values ``[K, D]``: patch and locality models).
"""
from __future__ import annotations

import torch

__all__ = ["StreamingSoftmax", "BatchwiseSoftmax", "make_softmax_accumulator"]


def _weighted(w: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``sum_k w[b, k(, d)] values[k, d]`` -> ``[B, D]``."""
    if w.ndim == 2:
        return w @ values
    return torch.einsum("bkd,kd->bd", w, values)


class StreamingSoftmax:
    """Exact softmax average by a running log-sum-exp: ``m = max l``, ``s = sum e^{l - m}``,
    ``a = sum e^{l - m} y``; result ``a / s``."""

    def __init__(self):
        self.m = self.s = self.a = None

    def update(self, logits: torch.Tensor, values: torch.Tensor) -> None:
        values = values.to(logits.dtype)
        m_chunk = logits.amax(dim=1)  # [B] or [B, D]
        if self.m is None:
            m_new = m_chunk
        else:
            m_new = torch.maximum(self.m, m_chunk)
        w = torch.exp(logits - m_new.unsqueeze(1))
        s_chunk = w.sum(dim=1)
        a_chunk = _weighted(w, values)
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

    def __init__(self):
        self.parts: list[tuple[int, torch.Tensor]] = []

    def update(self, logits: torch.Tensor, values: torch.Tensor) -> None:
        w = torch.softmax(logits, dim=1)
        self.parts.append((logits.shape[1], _weighted(w, values.to(logits.dtype))))

    def result(self) -> torch.Tensor:
        n = sum(k for k, _ in self.parts)
        return sum(part * (k / n) for k, part in self.parts)


def make_softmax_accumulator(mode: str):
    return StreamingSoftmax() if mode == "exact" else BatchwiseSoftmax()
