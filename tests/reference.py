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


def els_candidates(H: int, W: int, r: int, i: int, j: int) -> list[tuple[int, int]]:
    """Kamb & Ganguli's candidate centres for query pixel ``(i, j)``, read off the rule one case at a time."""
    row_in = [r <= a < H - r for a in range(H)]
    col_in = [r <= b < W - r for b in range(W)]
    if row_in[i] and col_in[j]:  # interior: every interior position
        return [(a, b) for a in range(H) for b in range(W) if row_in[a] and col_in[b]]
    if col_in[j]:  # top or bottom band: interior positions of the same row
        return [(i, b) for b in range(W) if col_in[b]]
    if row_in[i]:  # left or right band: interior positions of the same column
        return [(a, j) for a in range(H) if row_in[a]]
    return [(i, j)]  # corner


def els_boundary_dense(train: torch.Tensor, x_t: torch.Tensor, times, schedule, size: int) -> torch.Tensor:
    """The boundary-broken ELS machine pixel by pixel at each t of ``times``: every zero-padded patch cut out
    explicitly, the candidates of each pixel from :func:`els_candidates`, one softmax per pixel over
    (image, candidate), float64. Returns ``[len(times), B, C, H, W]``."""
    r = size // 2
    B, C, H, W = x_t.shape
    N = train.shape[0]
    # the patch centred at every pixel: [.., C P^2, H, W] (unfold of the zero-padded image)
    xp = torch.nn.functional.unfold(x_t.double(), size, padding=r).reshape(B, -1, H, W)
    yp = torch.nn.functional.unfold(train.double(), size, padding=r).reshape(N, -1, H, W)
    out = torch.empty(len(times), B, C, H, W, dtype=torch.float64)
    for i in range(H):
        for j in range(W):
            rows, cols = torch.tensor(els_candidates(H, W, r, i, j)).T
            pats = yp[:, :, rows, cols]  # [N, C P^2, L]
            centres = train.double()[:, :, rows, cols].permute(0, 2, 1).reshape(-1, C)  # [N L, C]
            for k, t in enumerate(times):
                ab = abar64(schedule, t)
                d = ((xp[:, None, :, i, j, None] - ab**0.5 * pats[None]) ** 2).sum(2)  # [B, N, L]
                w = torch.softmax((-d / (2 * (1 - ab))).reshape(B, -1), dim=1)  # over (image, candidate)
                out[k, :, :, i, j] = w @ centres
    return out
