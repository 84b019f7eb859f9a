"""The paper's data-driven analytical denoiser ("pca_locality"; Lukoianov et al. 2025, Sec. 4).

1. Wiener matrix ``W_t = U diag(lambda / (lambda + sigma_t^2)) U^T`` (float64, see ``statistics``).
2. Normalize: divide row n by ``W[n, n]``; binarize with a global threshold:
   ``B[n, m] = |W[n, m] / W[n, n]| > tau * max |W / diag W|``.
3. Output pixel m takes a softmax over training images ``y_i`` of
   ``-sum_n M_m[n] (x_t[n] - sqrt(abar_t) y_i[n])^2 / (2 (1 - abar_t) T)`` and averages ``y_i[m]``.

Mask conventions: ``"column"`` (the paper's code): pixel m's mask is column m of B;
``"row"``: row m. Softmax: ``"exact"`` (streaming log-sum-exp, the default) or ``"batchwise"``
(the paper code's per-batch softmax averaged over batches of ``batch_size``).
"""
from __future__ import annotations

import torch

from ._checks import check_choice, check_positive
from .base import TrainingSetDenoiser, exact_dtype
from .softmax import make_softmax_accumulator
from .statistics import DataStatistics

__all__ = ["LocalityDenoiser", "PAPER_THRESHOLDS", "locality_masks"]

#: The global thresholds tau used by the paper's code, per dataset.
PAPER_THRESHOLDS = {"mnist": 0.005, "fashion_mnist": 0.005, "cifar10": 0.05, "celeba_hq": 0.02, "afhq": 0.02}


def locality_masks(W: torch.Tensor, threshold: float, convention: str = "column") -> torch.Tensor:
    """Binarized masks from a Wiener matrix ``W [D, D]`` (float64).

    Returns ``mask [D, D]`` bool with ``mask[m, n]`` True when output pixel m looks at input pixel n.
    Rows n with ``W[n, n] = 0`` (dead pixels) are zero after normalization.
    """
    diag = W.diagonal()
    Wn = torch.where(diag[:, None] > 0, W / diag.clamp_min(torch.finfo(W.dtype).tiny)[:, None], torch.zeros_like(W))
    A = Wn.abs()
    B = A > threshold * A.max()
    return B.T.contiguous() if convention == "column" else B


class LocalityDenoiser(TrainingSetDenoiser):
    """``LocalityDenoiser(train, schedule, threshold=0.005, temperature=1.0, mask_convention="column",
    softmax="exact", batch_size=512)``; ``den(x_t, t)`` -> ``[B, C, H, W]``.

    Masks are computed once per t and cached; ``.mask(t)`` returns them (``[D, D]`` bool,
    row m = the input pixels output pixel m sees; channels are part of D = C*H*W).
    """

    def __init__(
        self,
        train,
        schedule=None,
        threshold: float = 0.005,
        temperature: float = 1.0,
        mask_convention: str = "column",
        softmax: str = "exact",
        batch_size: int = 512,
        stats: DataStatistics | None = None,
    ):
        super().__init__(train, schedule, chunk_size=batch_size)
        self.threshold = check_positive(threshold, "threshold", allow_zero=True)
        if self.threshold >= 1:
            raise ValueError(f"threshold is a fraction of the largest normalized entry and must be < 1, got {threshold}")
        self.temperature = check_positive(temperature, "temperature")
        self.mask_convention = check_choice(mask_convention, "mask_convention", ("column", "row"))
        self.softmax = check_choice(softmax, "softmax", ("exact", "batchwise"))
        self.batch_size = batch_size
        self.stats = stats if stats is not None else DataStatistics(self.train)
        self._masks: dict = {}

    def mask(self, t: int) -> torch.Tensor:
        """``[D, D]`` bool: ``mask[m, n]`` True when output pixel m's softmax uses input pixel n (cached per t)."""
        if t not in self._masks:
            ab = self.schedule.abar(t)
            W = self.stats.wiener_matrix((1 - ab) / ab)
            self._masks[t] = locality_masks(W, self.threshold, self.mask_convention)
        return self._masks[t]

    def _denoise(self, x_t, t):
        ab = self.schedule.abar(t)
        dt = exact_dtype(x_t.device)
        x = x_t.reshape(x_t.shape[0], -1).to(dt)
        y_all = self.train_on(x_t.device).reshape(self.num_train, -1)
        Mt = self.mask(t).T.to(x_t.device, dt)  # [D_in, D_out]
        coef = -1.0 / (2 * (1 - ab) * self.temperature)
        acc = make_softmax_accumulator(self.softmax)
        for i in range(0, self.num_train, self.batch_size):
            y = y_all[i : i + self.batch_size].to(dt)
            sq = (x[:, None, :] - ab**0.5 * y[None]) ** 2  # [B, K, D]
            acc.update(coef * (sq @ Mt), y)  # logits [B, K, D]
        return acc.result().reshape(x_t.shape)
