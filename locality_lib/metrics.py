"""Agreement metrics between a model's x0-estimate ``pred`` and a reference ``ref`` (both ``[B, C, H, W]``).

* ``r2`` -- the locality paper's: per image ``1 - ||pred - ref||^2 / (D Var(ref))``, averaged over images
  (``r2_per_image`` gives the ``[B]`` values; ``unbiased=True`` is the variance of the paper's code).
* ``pearson_r`` -- per-image Pearson correlation over pixels, averaged (Kamb & Ganguli's code).
* ``mse`` -- mean squared error over all pixels (Niedoba et al.).

``nearest_train(x, train)`` -- the distance of each image to its nearest training image (memorization).
"""
from __future__ import annotations

import torch

__all__ = ["r2", "r2_per_image", "pearson_r", "pearson_per_image", "mse", "nearest_train"]


def _flat(pred, ref):
    if not (isinstance(pred, torch.Tensor) and isinstance(ref, torch.Tensor)):
        raise ValueError("pred and ref must be torch tensors")
    if pred.shape != ref.shape:
        raise ValueError(f"pred and ref must have the same shape, got {tuple(pred.shape)} and {tuple(ref.shape)}")
    if pred.ndim < 2:
        raise ValueError(f"expected a batch of images [B, ...], got shape {tuple(pred.shape)}")
    return pred.reshape(pred.shape[0], -1).double(), ref.reshape(ref.shape[0], -1).double()


def r2_per_image(pred: torch.Tensor, ref: torch.Tensor, unbiased: bool = False) -> torch.Tensor:
    """``1 - ||pred_b - ref_b||^2 / (D Var(ref_b))`` for each image b -> ``[B]`` float64; Var over the D
    pixels, divided by ``D - 1`` when ``unbiased`` (the paper's final-sample r2), else by ``D``."""
    p, r = _flat(pred, ref)
    var = r.var(dim=1, unbiased=unbiased)
    if (var == 0).any():
        raise ValueError("r2 is undefined for a constant reference image (zero variance); use mse")
    return 1 - ((p - r) ** 2).mean(1) / var


def r2(pred: torch.Tensor, ref: torch.Tensor) -> float:
    """``mean_b [1 - ||pred_b - ref_b||^2 / (D Var(ref_b))]`` (Var over pixels, population)."""
    return float(r2_per_image(pred, ref).mean())


def pearson_per_image(pred: torch.Tensor, ref: torch.Tensor, constant: str = "raise") -> torch.Tensor:
    """``<p_b - mean p_b, r_b - mean r_b> / (|p_b - mean p_b| |r_b - mean r_b|)`` for each image b -> ``[B]`` float64:
    the Pearson correlation of the pixels (the measure Kamb & Ganguli's code reports, not squared). It is
    undefined where an image is constant: ``constant="raise"`` raises ``ValueError`` there, ``"undefined"`` returns
    not-a-number there (``torch.isnan`` finds it)."""
    if constant not in ("raise", "undefined"):
        raise ValueError(f"constant must be 'raise' or 'undefined', got {constant!r}")
    p, r = _flat(pred, ref)
    p = p - p.mean(1, keepdim=True)
    r = r - r.mean(1, keepdim=True)
    den = p.norm(dim=1) * r.norm(dim=1)
    if constant == "raise" and (den == 0).any():
        raise ValueError("pearson_r is undefined for a constant image (zero variance)")
    return torch.where(den > 0, (p * r).sum(1) / den.clamp_min(1e-300), torch.nan)


def pearson_r(pred: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean over images of the Pearson correlation between pixels of ``pred_b`` and ``ref_b``."""
    return float(pearson_per_image(pred, ref).mean())


def mse(pred: torch.Tensor, ref: torch.Tensor) -> float:
    """``mean (pred - ref)^2`` over all images and pixels."""
    p, r = _flat(pred, ref)
    return float(((p - r) ** 2).mean())


def nearest_train(x: torch.Tensor, train: torch.Tensor, chunk: int = 8192):
    """Nearest training image of each ``x [B, C, H, W]`` in ``train [N, C, H, W]``, by L2 over pixels
    (float64, streamed over chunks of ``chunk`` training images).

    Returns ``(distance [B] float64, index [B] long)``; distance 0 means ``x`` is a copy of ``train[index]``.
    """
    if x.ndim < 2 or train.ndim != x.ndim or x.shape[1:] != train.shape[1:]:
        raise ValueError(f"x [B, C, H, W] and train [N, C, H, W] must have the same image shape, "
                         f"got {tuple(x.shape)} and {tuple(train.shape)}")
    q = x.reshape(x.shape[0], -1).double()
    best = torch.full((q.shape[0],), float("inf"), dtype=torch.float64, device=q.device)
    idx = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    for i in range(0, train.shape[0], chunk):
        d = torch.cdist(q, train[i : i + chunk].reshape(-1, q.shape[1]).to(q.device, torch.float64),
                        compute_mode="donot_use_mm_for_euclid_dist")  # exact 0 for a copy
        v, j = d.min(1)
        better = v < best
        best = torch.where(better, v, best)
        idx = torch.where(better, j + i, idx)
    return best, idx
