"""The paper's data-driven analytical denoiser ("pca_locality"; Lukoianov et al. 2025, Sec. 4).

1. Wiener matrix ``W_t = U diag(lambda / (lambda + sigma_t^2)) U^T`` (float64, see ``statistics``).
2. Normalize: divide row n by ``W[n, n]``; binarize with a global threshold:
   ``B[n, m] = |W[n, m] / W[n, n]| > tau * max |W / diag W|``.
3. Output pixel m takes a softmax over training images ``y_i`` of
   ``-sum_n M_m[n] (x_t[n] - sqrt(abar_t) y_i[n])^2 / (2 (1 - abar_t) T)`` and averages ``y_i[m]``.

Mask conventions: ``"column"`` (the paper's code): pixel m's mask is column m of B;
``"row"``: row m. Softmax: ``"exact"`` (streaming log-sum-exp, the default) or ``"batchwise"``
(the paper code's per-batch softmax averaged over batches of ``batch_size``).

Fast exact evaluation (``method="tiled"``, the default). The logits need
``d[i, m] = sum_n M[m, n] sq_i[n]`` with ``sq_i = (x_t - sqrt(abar_t) y_i)^2`` for every training
image i and output pixel m: ``M @ sq`` with ``sq [D, B*K]``, which the plain formulation
(``method="dense"``, kept as the reference) does as one dense product. Masks are mostly local, so
the output pixels of a band P of image rows together use only some input pixels U_P, and
``d[P] = M[P, U_P] @ sq[U_P]`` is a smaller dense product. The band height is chosen per t by
counting multiply-adds (thin products are charged extra). When all masks agree (all ones at
high noise) one logit per image ``M[0] @ sq`` serves every pixel. Same terms, same
``exact_dtype`` (float64 on CPU/CUDA) as the dense formulation.
"""
from __future__ import annotations

import torch

from ._checks import check_choice, check_positive
from .base import TrainingSetDenoiser, exact_dtype
from .softmax import make_softmax_accumulator
from .statistics import DataStatistics

__all__ = ["LocalityDenoiser", "PAPER_THRESHOLDS", "locality_masks"]

#: Band heights (image rows per band) the fast path chooses from, per t; plus the whole image.
_BAND_ROWS = (1, 2, 4, 8)
#: A product with k output rows on gathered columns costs like k + 128 dense rows (thin products
#: and gathers run slowly; measured on a 2-core CPU with MKL).
_ROW_OVERHEAD = 128
#: Rows of ``sq`` (queries x training images) per chunk in exact mode: ``2**23`` elements.
_CHUNK_ELEMENTS = 2**23

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


def _channels_last(shape: tuple[int, int, int]) -> torch.Tensor:
    """``[D]``: the flat ``(C, H, W)`` index of each pixel listed in ``(H, W, C)`` order."""
    C, H, W = shape
    return torch.arange(C * H * W).reshape(C, H, W).permute(1, 2, 0).flatten()


def _bands(shape: tuple[int, int, int], rows: int) -> list[torch.Tensor]:
    """Positions, in ``(H, W, C)`` order, of the pixels of each band of ``rows`` image rows."""
    C, H, W = shape
    return list(torch.arange(C * H * W).split(rows * W * C))


class _TiledLogits:
    """``d = M @ sq`` for one mask ``M [D, D]``, with pixels in ``(H, W, C)`` order (``sq [D, R]``).

    For a band P of image rows (output pixels) whose masks together use the input pixels U_P,
    ``d[P] = M[P, U_P] @ sq[U_P]``. Rows of d
    come in band order: row j is the pixel at ``(H, W, C)`` position ``positions[j]``. If every row of
    M is the same, ``d = M[0] @ sq`` (``[R]``).
    """

    def __init__(self, mask: torch.Tensor, shape: tuple[int, int, int], device, dtype):
        D = mask.shape[0]
        order = _channels_last(shape)
        mask = mask[order][:, order]
        self.common = mask[0].to(device, dtype) if bool((mask == mask[0]).all()) else None
        if self.common is not None:
            return
        best = None
        for rows in (*_BAND_ROWS, shape[1]):
            tiles, cost = [], 0
            for p in _bands(shape, rows):
                cols = mask[p].any(0).nonzero().squeeze(1)
                tiles.append((p, cols))
                cost += (len(p) + _ROW_OVERHEAD) * len(cols)
            if best is None or cost < best[0]:
                best = (cost, tiles)
        self.cost_fraction = best[0] / ((D + _ROW_OVERHEAD) * D)
        self.positions = torch.cat([p for p, _ in best[1]]).to(device)
        self.blocks, start = [], 0
        for p, cols in best[1]:
            full = len(cols) == D  # no gather needed
            self.blocks.append((start, start + len(p), None if full else cols.to(device), mask[p][:, cols].to(device, dtype)))
            start += len(p)

    def __call__(self, sq: torch.Tensor) -> torch.Tensor:
        if self.common is not None:
            return self.common @ sq
        d = sq.new_empty(sq.shape)
        for a, b, cols, part in self.blocks:
            d[a:b].addmm_(part, sq if cols is None else sq.index_select(0, cols), beta=0)
        return d


class LocalityDenoiser(TrainingSetDenoiser):
    """``LocalityDenoiser(train, schedule, threshold=0.005, temperature=1.0, mask_convention="column",
    softmax="exact", batch_size=512, method="tiled")``; ``den(x_t, t)`` -> ``[B, C, H, W]``.

    Masks are computed once per t and cached; ``.mask(t)`` returns them (``[D, D]`` bool,
    row m = the input pixels output pixel m sees; channels are part of D = C*H*W).
    ``method="dense"`` is the plain formulation (one ``[B*K, D] @ [D, D]`` product per batch), kept
    as the reference for the fast ``"tiled"`` path; both give the same answer.
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
        method: str = "tiled",
    ):
        super().__init__(train, schedule, chunk_size=batch_size)
        self.threshold = check_positive(threshold, "threshold", allow_zero=True)
        if self.threshold >= 1:
            raise ValueError(f"threshold is a fraction of the largest normalized entry and must be < 1, got {threshold}")
        self.temperature = check_positive(temperature, "temperature")
        self.mask_convention = check_choice(mask_convention, "mask_convention", ("column", "row"))
        self.softmax = check_choice(softmax, "softmax", ("exact", "batchwise"))
        self.method = check_choice(method, "method", ("tiled", "dense"))
        self.batch_size = batch_size
        self.stats = stats if stats is not None else DataStatistics(self.train)
        self._masks: dict = {}
        self._plans: dict = {}
        self._yT: dict = {}

    def mask(self, t: int) -> torch.Tensor:
        """``[D, D]`` bool: ``mask[m, n]`` True when output pixel m's softmax uses input pixel n (cached per t)."""
        if t not in self._masks:
            ab = self.schedule.abar(t)
            W = self.stats.wiener_matrix((1 - ab) / ab)
            self._masks[t] = locality_masks(W, self.threshold, self.mask_convention)
        return self._masks[t]

    def _plan(self, t: int, device, dtype) -> _TiledLogits:
        key = (t, torch.device(device), dtype)
        if key not in self._plans:
            self._plans[key] = _TiledLogits(self.mask(t), self.shape, device, dtype)
        return self._plans[key]

    def _denoise(self, x_t, t):
        ab = self.schedule.abar(t)
        dt = exact_dtype(x_t.device)
        B = x_t.shape[0]
        x = x_t.reshape(B, -1).to(dt)
        coef = -1.0 / (2 * (1 - ab) * self.temperature)
        acc = make_softmax_accumulator(self.softmax)
        if self.method == "dense":
            y_all = self.train_on(x_t.device).reshape(self.num_train, -1)
            Mt = self.mask(t).T.to(x_t.device, dt)  # [D_in, D_out]
            for i in range(0, self.num_train, self.batch_size):
                y = y_all[i : i + self.batch_size].to(dt)
                sq = (x[:, None, :] - ab**0.5 * y[None]) ** 2  # [B, K, D]
                acc.update(coef * (sq @ Mt), y)  # logits [B, K, D]
            return acc.result().reshape(x_t.shape)
        logits = self._plan(t, x_t.device, dt)
        order = _channels_last(self.shape).to(x_t.device)
        pos = None if logits.common is not None else logits.positions
        x = x[:, order]
        yT = self._pixel_major(x_t.device)
        K = self.batch_size if self.softmax == "batchwise" else max(self.batch_size, _CHUNK_ELEMENTS // (B * x.shape[1]))
        for i in range(0, self.num_train, K):
            y = yT[:, i : i + K].to(dt)  # [D, K]
            sq = (x.T[:, :, None] - ab**0.5 * y[:, None, :]).square_().reshape(x.shape[1], -1)  # [D, B*K]
            lg = logits(sq).mul_(coef)  # [D, B*K] in band order, or [B*K] when all masks agree
            k = y.shape[1]
            values = y.T if pos is None else y[pos].T  # [K, D] in the order of the logits
            acc.update(lg.reshape(B, k) if pos is None else lg.T.reshape(B, k, -1), values)
        out = acc.result()  # [B, D], pixels in the order of the logits
        out = torch.empty_like(out).index_copy_(1, order if pos is None else order[pos], out)
        return out.reshape(x_t.shape)

    def _pixel_major(self, device) -> torch.Tensor:
        """The training set as ``[D, N]`` (float32, pixels in ``(H, W, C)`` order) on ``device``, made once."""
        device = torch.device(device)
        if device not in self._yT:
            self._yT[device] = self.train_on(device).permute(2, 3, 1, 0).reshape(-1, self.num_train).contiguous()
        return self._yT[device]
