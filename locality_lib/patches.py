"""Expert-crafted locality: the LS and ELS machines of Kamb & Ganguli (ICML 2025), the patch
posterior mean of Niedoba et al. (2025), and a per-timestep patch-size calibration.

Notation: ``P`` an odd patch size, ``r = P // 2``, ``s = sqrt(abar_t)``, ``y_i`` the training images.
``P_m(x)`` is the ``C x P x P`` patch (all channels) centred at pixel ``m`` of ``x`` zero-padded by
``r`` on every side; ``d(a, b) = ||a - s b||^2 / (2 (1 - abar_t))``.

* **LS** (local score machine): output pixel m is a softmax over training images at the same place,
  ``x0_hat[:, m] = sum_i softmax_i(-d(P_m(x_t), P_m(y_i))) y_i[:, m]``. Both patches are padded at
  the same positions, so padding contributes 0 to the distance.
* **ELS** (equivariant local score machine): the softmax runs over every patch of every training image,
  ``x0_hat[:, m] = sum_{i, l} softmax_{(i, l)}(-d(P_m(x_t), P_l(y_i))) y_i[:, l]`` over all ``H W``
  centres l. Boundary convention (a zero-padded CNN's): query and training images are both zero-padded
  and full ``P x P`` patches are compared, padding included. A padded query position counts
  ``(0 - s y)^2`` against an interior training patch, so pixels near a border prefer training
  patches from the same border. Consequence (translation equivariance): the output at m depends only
  on ``P_m(x_t)``, so shifting the query (zero fill) shifts the output wherever the shifted patch lies
  inside the image.
* **Patch posterior mean** (Niedoba et al.): at every centre m the optimal denoiser of the patch,
  ``mu_m = sum_i softmax_i(-d(P_m(x_t), P_m(y_i))) P_m(y_i)`` (the LS weights); pixel n averages
  ``mu_m`` at n over the in-image centres m whose patch contains n.

A patch of size ``2 max(H, W) - 1`` covers the whole image from every centre: LS and the patch
posterior mean then equal the optimal denoiser. ``patch_size`` is an odd int, a dict ``{t: P}`` or a
callable ``t -> P`` (Kamb & Ganguli calibrate one size per step: :func:`calibrate_patch_sizes`).
Logits are float64 (``exact_dtype``): near t = 0 they scale like ``1 / (1 - abar_t) ~ 1e4``.
"""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F

from .base import TrainingSetDenoiser, exact_dtype
from .compare import Comparison, compare_models
from .schedule import DDPMSchedule
from .softmax import StreamingSoftmax

__all__ = ["LSDenoiser", "ELSDenoiser", "PatchPosteriorDenoiser", "calibrate_patch_sizes", "box_sum", "unique_rows"]


def _check_size(p, what: str = "patch_size") -> int:
    try:
        p_int = operator.index(p)
    except TypeError:
        raise ValueError(f"{what} must be an odd int >= 1, got {p!r}") from None
    if isinstance(p, bool) or p_int < 1 or p_int % 2 == 0:
        raise ValueError(f"{what} must be an odd int >= 1, got {p!r}")
    return p_int


def box_sum(a: torch.Tensor, size: int) -> torch.Tensor:
    """Sum of ``a [..., H, W]`` over the ``size x size`` window centred at each pixel, zero padded.

    Separable running sums: ``O(1)`` per pixel whatever the size. Returns ``[..., H, W]``.
    """
    r = size // 2
    for dim in (-2, -1):
        n = a.shape[dim]
        c = F.pad(a.cumsum(dim).movedim(dim, -1), (1, 0)).movedim(-1, dim)  # c[j] = sum a[:j]
        idx = torch.arange(n, device=a.device)
        hi, lo = (idx + r + 1).clamp(max=n), (idx - r).clamp(min=0)
        a = c.index_select(dim, hi) - c.index_select(dim, lo)
    return a


class _PatchDenoiser(TrainingSetDenoiser):
    """Shared by the patch models: the patch-size schedule and the chunk budget."""

    def __init__(self, train, schedule=None, patch_size=3, chunk_elements: int = 2**20):
        super().__init__(train, schedule)
        if not (isinstance(chunk_elements, int) and chunk_elements >= 1):
            raise ValueError(f"chunk_elements must be a positive int, got {chunk_elements!r}")
        self.chunk_elements = chunk_elements
        if isinstance(patch_size, dict):
            self._sizes = {}
            for t, p in patch_size.items():
                if not (isinstance(t, int) and 0 <= t < self.schedule.num_steps):
                    raise ValueError(
                        f"patch_size dict keys must be timesteps in 0..{self.schedule.num_steps - 1}, got {t!r}"
                    )
                self._sizes[t] = _check_size(p, f"patch_size[{t}]")
        elif callable(patch_size):
            self._sizes = patch_size
        else:
            self._sizes = _check_size(patch_size)
        self.patch_size = patch_size

    def patch_size_at(self, t: int) -> int:
        """The (odd) patch size used at timestep ``t``."""
        if isinstance(self._sizes, int):
            return self._sizes
        if isinstance(self._sizes, dict):
            if t not in self._sizes:
                raise ValueError(f"the patch_size schedule has no size for t = {t} (it covers {sorted(self._sizes)})")
            return self._sizes[t]
        return _check_size(self._sizes(t), f"patch_size({t})")

    def _ls_logits(self, x: torch.Tensor, y: torch.Tensor, t: int, size: int) -> torch.Tensor:
        """``-d(P_m(x_b), P_m(y_k))`` for ``x [B, C, H, W]``, ``y [K, C, H, W]`` (float64) -> ``[B, K, H, W]``."""
        ab = self.schedule.abar(t)
        sq = (x[:, None] - ab**0.5 * y[None]).pow_(2).sum(2)  # [B, K, H, W]
        return box_sum(sq, size).mul_(-1.0 / (2 * (1 - ab)))

    def _images_per_chunk(self, per_image: int) -> int:
        return max(1, self.chunk_elements // per_image)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(N={self.num_train}, shape={self.shape}, patch_size={self.patch_size!r})"


class LSDenoiser(_PatchDenoiser):
    """``LSDenoiser(train, schedule, patch_size, chunk_elements=2**20)``; ``den(x_t, t)`` -> ``[B, C, H, W]``.

    ``x0_hat[:, m] = sum_i softmax_i(-||P_m(x_t) - s P_m(y_i)||^2 / (2 (1 - abar_t))) y_i[:, m]`` (module
    docstring). Streams over chunks of training images holding at most ``chunk_elements`` float64 numbers
    of squared differences ``[B, K, C, H, W]``.
    """

    def _denoise(self, x_t, t):
        size = self.patch_size_at(t)
        dt = exact_dtype(x_t.device)
        x = x_t.to(dt)
        B, C, H, W = x.shape
        y_all = self.train_on(x_t.device)
        k = self._images_per_chunk(B * C * H * W)
        acc = StreamingSoftmax()
        for i in range(0, self.num_train, k):
            y = y_all[i : i + k].to(dt)
            logits = self._ls_logits(x, y, t, size).reshape(B, y.shape[0], 1, H * W)
            acc.update(logits.expand(-1, -1, C, -1).reshape(B, y.shape[0], C * H * W), y.reshape(y.shape[0], -1))
        return acc.result().reshape(x_t.shape)


class PatchPosteriorDenoiser(_PatchDenoiser):
    """``PatchPosteriorDenoiser(train, schedule, patch_size, chunk_elements=2**20)`` (Niedoba et al. 2025).

    ``mu_m = sum_i softmax_i(-||P_m(x_t) - s P_m(y_i)||^2 / (2 (1 - abar_t))) P_m(y_i)`` ``[C P^2]`` at
    every centre m; ``x0_hat[:, n] = mean over centres m with n in patch(m) of mu_m at n``. Costs about
    ``P^2`` times the LS machine (every patch carries ``C P^2`` values).
    """

    def _denoise(self, x_t, t):
        size = self.patch_size_at(t)
        r = size // 2
        dt = exact_dtype(x_t.device)
        x = x_t.to(dt)
        B, C, H, W = x.shape
        cpp = C * size * size
        y_all = self.train_on(x_t.device)
        k = self._images_per_chunk(B * cpp * H * W)
        acc = StreamingSoftmax()
        for i in range(0, self.num_train, k):
            y = y_all[i : i + k].to(dt)
            K = y.shape[0]
            logits = self._ls_logits(x, y, t, size).reshape(B, K, 1, H * W).expand(-1, -1, cpp, -1)
            patches = F.unfold(y, size, padding=r)  # [K, C P^2, H W]
            acc.update(logits.reshape(B, K, cpp * H * W), patches.reshape(K, -1))
        means = acc.result().reshape(B, cpp, H * W)  # mu_m, one column per centre m
        count = F.fold(torch.ones_like(means[:1]), (H, W), size, padding=r)  # centres covering each pixel
        return F.fold(means, (H, W), size, padding=r) / count


def unique_rows(Y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct rows of ``Y [K, D]`` and their counts: ``(U [M, D], counts [M])``, exactly.

    Rows are grouped by a random projection ``Y v`` (one sort of K numbers instead of a
    lexicographic sort); every group is checked to hold equal rows, falling back to
    ``torch.unique(dim=0)`` if two different rows ever share a projection.
    """
    g = torch.Generator().manual_seed(0)
    v = torch.randn(Y.shape[1], generator=g, dtype=torch.float64).to(Y.device, Y.dtype)
    _, inv, counts = torch.unique(Y @ v, return_inverse=True, return_counts=True)
    first = torch.full((counts.shape[0],), Y.shape[0], device=Y.device)
    first.scatter_reduce_(0, inv, torch.arange(Y.shape[0], device=Y.device), "amin")
    U = Y[first]
    if not torch.equal(U[inv], Y):
        U, counts = torch.unique(Y, dim=0, return_counts=True)
    return U, counts


class ELSDenoiser(_PatchDenoiser):
    """``ELSDenoiser(train, schedule, patch_size, chunk_elements=2**20)``; ``den(x_t, t)`` -> ``[B, C, H, W]``.

    ``x0_hat[:, m] = sum_{i, l} softmax_{(i, l)}(-||P_m(x_t) - s P_l(y_i)||^2 / (2 (1 - abar_t))) y_i[:, l]``
    over all ``N H W`` training patches, query and training images zero-padded alike (module docstring).

    Computation: the optimal denoiser of the patch set, query patch by query patch. With
    ``X = unfold(x_t)`` ``[B H W, C P^2]`` and training patches ``Y_k`` ``[C P^2]``,
    ``-||X_q - s Y_k||^2 / (2 (1 - abar)) = (s X_q . Y_k - abar ||Y_k||^2 / 2) / (1 - abar) + const_q``;
    the per-query constant cancels in the softmax and is dropped, leaving one float64 ``addmm`` per chunk.
    Identical training patches (the blank background of digits: most of MNIST's small patches)
    are merged exactly: one patch with count c gets logit ``+ log c``. Chunks of logits
    ``[rows, cols]`` and of unfolded training images hold at most ``chunk_elements`` numbers (but at
    least 256 columns and one image). Cost
    ``O(B H W x distinct patches x C P^2)``: see ``benchmarks/bench_els.py``.
    """

    def _denoise(self, x_t, t):
        size = self.patch_size_at(t)
        r = size // 2
        ab = self.schedule.abar(t)
        dt = exact_dtype(x_t.device)
        B, C, H, W = x_t.shape
        L, cpp = H * W, C * size * size
        centre = [c * size * size + r * size + r for c in range(C)]  # the centre pixel's columns in a patch
        X = F.unfold(x_t.to(dt), size, padding=r).transpose(1, 2).reshape(B * L, cpp)
        rows = max(1, min(B * L, self.chunk_elements // 256))  # at least 256 columns per chunk
        cols = max(1, self.chunk_elements // rows)
        accs = [StreamingSoftmax() for _ in range(0, B * L, rows)]
        y_all = self.train_on(x_t.device)
        k = self._images_per_chunk(L * cpp)
        for i in range(0, self.num_train, k):
            y = y_all[i : i + k].to(dt)
            Y, counts = unique_rows(F.unfold(y, size, padding=r).transpose(1, 2).reshape(-1, cpp))
            bias = (-ab / (2 * (1 - ab))) * Y.pow(2).sum(1) + counts.to(dt).log()
            for j in range(0, Y.shape[0], cols):
                Yj, values = Y[j : j + cols], Y[j : j + cols, centre]
                for acc, q in zip(accs, range(0, B * L, rows)):
                    acc.update(torch.addmm(bias[j : j + cols], X[q : q + rows], Yj.T, alpha=ab**0.5 / (1 - ab)), values)
        out = torch.cat([acc.result() for acc in accs])  # [B L, C]
        return out.reshape(B, H, W, C).permute(0, 3, 1, 2)


def calibrate_patch_sizes(
    model,
    train: torch.Tensor,
    reference,
    x_T: torch.Tensor,
    sizes,
    schedule: DDPMSchedule | None = None,
    metric: str = "r2",
    num_steps: int = 10,
    spacing: str = "leading",
    timesteps: list[int] | None = None,
) -> tuple[dict[int, int], Comparison]:
    """Kamb & Ganguli's calibration: per DDIM step, the patch size whose model best matches ``reference``.

    ``model``: a class or factory called as ``model(train, schedule, P)`` (``LSDenoiser``, ``ELSDenoiser``,
    ``PatchPosteriorDenoiser``); ``sizes``: the candidate odd sizes. The reference samples from
    ``x_T [B, C, H, W]`` (``ddim_sample(reference, x_T, schedule, num_steps, spacing, timesteps=timesteps)``);
    at each of its inputs ``x_t`` every candidate is compared with ``reference(x_t, t)`` by ``metric``
    (``"r2"``, ``"pearson_r"`` or ``"mse"``, via :func:`compare.compare_models`, protocol ``"trajectory"``).
    Returns ``(best, comparison)``: ``best = {t: P}`` (pass it as ``patch_size``; ties go to the first
    size listed) and the :class:`Comparison` whose models are named ``"P = 3"`` etc. (``.table(metric)``).
    """
    sizes = [_check_size(p, "each size") for p in sizes]
    if not sizes or len(set(sizes)) != len(sizes):
        raise ValueError(f"sizes must be a non-empty list of distinct odd ints, got {sizes}")
    schedule = DDPMSchedule() if schedule is None else schedule
    names = {f"P = {p}": p for p in sizes}
    models = {name: model(train, schedule, p) for name, p in names.items()}
    comp = compare_models(models, reference, schedule=schedule, timesteps=timesteps, protocol="trajectory",
                          num_steps=num_steps, spacing=spacing, x_T=x_T)
    best = {t: names[name] for t, name in zip(comp.timesteps, comp.best(metric))}
    return best, comp
