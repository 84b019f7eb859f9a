"""Plain float64 reference implementations, written for clarity, not speed (the tests' ground truth)."""
from __future__ import annotations

import torch


def abar64(schedule, t: int) -> float:
    return float(schedule.alpha_bar[t].double())


def optimal_dense(train: torch.Tensor, x_t: torch.Tensor, t: int, schedule, temperature: float = 1.0) -> torch.Tensor:
    """``sum_i softmax_i(-||x - sqrt(ab) y_i||^2 / (2 (1 - ab) T)) y_i`` with direct differences, float64."""
    ab = abar64(schedule, t)
    y = train.reshape(train.shape[0], -1).double()
    x = x_t.reshape(x_t.shape[0], -1).double()
    d = ((x[:, None, :] - ab**0.5 * y[None]) ** 2).sum(-1)  # [B, N]
    w = torch.softmax(-d / (2 * (1 - ab) * temperature), dim=1)
    return (w @ y).reshape(x_t.shape)


def wiener_dense(train: torch.Tensor, x_t: torch.Tensor, t: int, schedule) -> torch.Tensor:
    """``mu + Sigma (Sigma + sigma^2 I)^{-1} (x/sqrt(ab) - mu)`` by a linear solve, float64."""
    ab = abar64(schedule, t)
    y = train.reshape(train.shape[0], -1).double()
    mu = y.mean(0)
    cov = torch.cov(y.T)
    s2 = (1 - ab) / ab
    z = x_t.reshape(x_t.shape[0], -1).double() / ab**0.5 - mu
    A = cov + s2 * torch.eye(cov.shape[0], dtype=torch.float64)
    return (mu + z @ torch.linalg.solve(A, cov)).reshape(x_t.shape)  # Sigma A^-1 is symmetric


def locality_dense(train, x_t, t, schedule, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per-pixel softmax with ``mask [D, D]`` (row m = inputs of output m), global softmax, float64."""
    ab = abar64(schedule, t)
    y = train.reshape(train.shape[0], -1).double()
    x = x_t.reshape(x_t.shape[0], -1).double()
    sq = (x[:, None, :] - ab**0.5 * y[None]) ** 2  # [B, N, D]
    logits = -(sq @ mask.double().T) / (2 * (1 - ab) * temperature)  # [B, N, D_out]
    w = torch.softmax(logits, dim=1)
    return (w * y[None]).sum(1).reshape(x_t.shape)


def locality_batchwise_dense(train, x_t, t, schedule, mask, batch_size: int, temperature: float = 1.0):
    """The paper code's batchwise softmax: per-batch softmax averages combined with weights n_b / N."""
    n = train.shape[0]
    out = 0
    for i in range(0, n, batch_size):
        part = train[i : i + batch_size]
        out = out + locality_dense(part, x_t, t, schedule, mask, temperature) * (part.shape[0] / n)
    return out


def paper_masks(W: torch.Tensor, tau: float, convention: str = "column", floor: float = 1e-6) -> torch.Tensor:
    """The paper's mask rule, row by row: ``W~[n] = W[n] / W[n, n]`` unless ``|W[n, n]| < floor``
    (then ``W~[n] = W[n]``); keep ``|W~| >= tau * max|W~|``; output m's mask is column m (or row m)."""
    D = W.shape[0]
    Wn = torch.empty_like(W)
    for n in range(D):
        d = float(W[n, n])
        Wn[n] = W[n] if abs(d) < floor else W[n] / d
    keep = Wn.abs() >= tau * Wn.abs().max()
    return keep.T.clone() if convention == "column" else keep
