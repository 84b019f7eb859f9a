"""Expert-crafted locality: the LS and ELS machines of Kamb & Ganguli (ICML 2025), the patch
posterior mean of Niedoba et al. (2025), and a per-timestep patch-size calibration.

Notation: ``P`` an odd patch size, ``r = P // 2``, ``s = sqrt(abar_t)``, ``y_i`` the training images.
``P_m(x)`` is the ``C x P x P`` patch (all channels) centred at pixel ``m`` of ``x`` zero-padded by
``r`` on every side; ``d(a, b) = ||a - s b||^2 / (2 (1 - abar_t))``.

* **LS** (local score machine): output pixel m is a softmax over training images at the same place,
  ``x0_hat[:, m] = sum_i softmax_i(-d(P_m(x_t), P_m(y_i))) y_i[:, m]``. Both patches are padded at
  the same positions, so padding contributes 0 to the distance.
* **ELS** (equivariant local score machine), as Kamb & Ganguli's code runs it against zero-padded networks
  (the *boundary-broken* machine, ``ELSDenoiser``): output pixel m is a softmax over training patches
  ``P_l(y_i)`` whose centre ``l`` lies in m's candidate set,
  ``x0_hat[:, m] = sum_{i, l in L(m)} softmax_{(i, l)}(-d(P_m(x_t), P_l(y_i))) y_i[:, l]``. With the interior
  the pixels at least ``r`` from every border: an interior m takes every interior l (patches wholly inside
  the image); a pixel of the top or bottom band (``i < r`` or ``i >= H - r``, not a corner) takes the interior
  l of its own row; left and right bands alike with columns; a corner (within ``r`` of two borders) takes
  ``l = m`` only. For ``P >= H`` every pixel is a corner: the LS machine. Both images are zero-padded, so a
  band pixel's patch and its candidates have their padding in the same rows (or columns).
* **Padded ELS** (``PaddedELSDenoiser``, fully translation-equivariant): every patch of every zero-padded
  training image competes for every query pixel, padding included; a padded query position counts
  ``(0 - s y)^2`` against an interior patch, so position enters only through that penalty, which scales like
  ``abar / (1 - abar)`` (about 1e-4 at t = 900, when the output is a flat grey). Consequence: the output at m
  depends only on ``P_m(x_t)``, so shifting the query (zero fill) shifts the output wherever the shifted
  patch lies inside the image.
* **Patch posterior mean** (Niedoba et al.): at every centre m the optimal denoiser of the patch,
  ``mu_m = sum_i softmax_i(-d(P_m(x_t), P_m(y_i))) P_m(y_i)`` (the LS weights); pixel n averages
  ``mu_m`` at n over the in-image centres m whose patch contains n.

A patch of size ``2 max(H, W) - 1`` covers the whole image from every centre: LS and the patch
posterior mean then equal the optimal denoiser. ``patch_size`` is an odd int, a dict ``{t: P}`` or a
callable ``t -> P`` (Kamb & Ganguli calibrate one size per step: :func:`calibrate_patch_sizes`).
Logits are float64 (``exact_dtype``): near t = 0 they scale like ``1 / (1 - abar_t) ~ 1e4``.
"""
from __future__ import annotations

import functools
import operator
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

from . import els_kernel
from .base import TrainingSetDenoiser, exact_dtype
from .compare import Comparison, compare_models
from .schedule import DDPMSchedule
from .softmax import StreamingSoftmax

__all__ = ["LSDenoiser", "ELSDenoiser", "PaddedELSDenoiser", "PatchPosteriorDenoiser", "calibrate_patch_sizes",
           "calibrate_by_score", "els_plan", "box_sum", "unique_rows"]


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


class PaddedELSDenoiser(_PatchDenoiser):
    """``PaddedELSDenoiser(train, schedule, patch_size, chunk_elements=2**20)``; ``den(x_t, t)`` -> ``[B, C, H, W]``.

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


@functools.lru_cache(maxsize=64)
def els_plan(H: int, W: int, r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The candidates of the boundary-broken ELS machine (module docstring), grouped by displacement.

    For every displacement ``delta = l - m`` that some pixel uses: ``dy, dx [nd]`` (int32), ``valid [nd, H W]``
    (uint8: 1 where ``m + delta`` is a candidate of m) and ``rect [nd, 4]`` (int32, the half-open box
    ``i0, i1, j0, j1`` holding those m). ``delta = 0`` comes first: it is a candidate of every pixel.
    """
    rows_in = torch.zeros(H, dtype=torch.bool)
    rows_in[r : H - r] = True
    cols_in = torch.zeros(W, dtype=torch.bool)
    cols_in[r : W - r] = True
    Lh, Lw = int(rows_in.sum()), int(cols_in.sum())
    ii, jj = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    ri, ci = rows_in[ii], cols_in[jj]
    interior, row_band, col_band = ri & ci, ~ri & ci, ri & ~ci
    deltas = [(0, 0)] + [(a, b) for a in range(-max(Lh - 1, 0), max(Lh, 1)) for b in range(-max(Lw - 1, 0), max(Lw, 1))
                         if (a, b) != (0, 0)]
    dys, dxs, rects, valids = [], [], [], []
    for a, b in deltas:
        ti, tj = ii + a, jj + b
        inside = (ti >= 0) & (ti < H) & (tj >= 0) & (tj < W)
        t_row_in = rows_in[ti.clamp(0, H - 1)] & inside
        t_col_in = cols_in[tj.clamp(0, W - 1)] & inside
        ok = interior & t_row_in & t_col_in
        if a == 0:
            ok |= row_band & t_col_in
        if b == 0:
            ok |= col_band & t_row_in
        if a == 0 and b == 0:
            ok |= ~ri & ~ci  # corners: l = m only
        if not ok.any():
            continue
        rs, cs = ok.any(1).nonzero().flatten(), ok.any(0).nonzero().flatten()
        dys.append(a), dxs.append(b), valids.append(ok.flatten())
        rects.append([int(rs[0]), int(rs[-1]) + 1, int(cs[0]), int(cs[-1]) + 1])
    i32 = dict(dtype=torch.int32)
    return (torch.tensor(dys, **i32), torch.tensor(dxs, **i32), torch.tensor(rects, **i32),
            torch.stack(valids).to(torch.uint8).contiguous())


def _shift(a: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``out[..., i, j] = a[..., i + dy, j + dx]``, zero where that leaves the image."""
    H, W = a.shape[-2:]
    out = torch.zeros_like(a)
    out[..., max(0, -dy) : H - max(0, dy), max(0, -dx) : W - max(0, dx)] = \
        a[..., max(0, dy) : H - max(0, -dy), max(0, dx) : W - max(0, -dx)]
    return out


def _merge(states):
    """Log-sum-exp merge of streaming-softmax states ``(M [B, D], S [B, D], A [B, C, D])`` over disjoint image sets."""
    M = torch.stack([m for m, _, _ in states]).amax(0)
    S = sum(s * (m - M).exp() for m, s, _ in states)
    A = sum(a * (m - M).exp().unsqueeze(1) for m, _, a in states)
    return M, S, A


class ELSDenoiser(_PatchDenoiser):
    """``ELSDenoiser(train, schedule, patch_size, chunk_elements=2**20)``: Kamb & Ganguli's ELS machine with
    the border classes of their code for zero-padded networks (the boundary-broken machine).

    ``x0_hat[:, m] = sum_{i, l in L(m)} softmax_{(i, l)}(-||P_m(x_t) - s P_l(y_i)||^2 / (2 (1 - abar_t))) y_i[:, l]``
    with the candidate sets ``L(m)`` of the module docstring (:func:`els_plan`); ``P >= H``: the LS machine.

    Computation: per displacement ``delta = l - m``, the cross terms of all pixels are one window sum
    (:func:`box_sum`) of ``x_t * shift_delta(y_i)``, so the work per candidate does not depend on ``P``. On
    the CPU a compiled kernel fuses it with the streaming softmax (:mod:`locality_lib.els_kernel`, threads
    over training images); elsewhere (or without a C compiler) the same sums run in torch, chunked so that
    ``[B, K, H, W]`` tensors hold at most ``chunk_elements`` numbers. Float64.
    """

    def _denoise(self, x_t, t):
        size = self.patch_size_at(t)
        r = size // 2
        ab = self.schedule.abar(t)
        k1, k2 = ab**0.5 / (1 - ab), ab / (2 * (1 - ab))
        B, C, H, W = x_t.shape
        plan = els_plan(H, W, r)
        if x_t.device.type == "cpu" and els_kernel.load() is not None:
            M, S, A = self._kernel_state(x_t, r, plan, k1, k2)
        else:
            M, S, A = self._torch_state(x_t, size, plan, k1, k2)
        return (A / S.unsqueeze(1)).reshape(B, C, H, W).to(x_t.dtype)

    def _kernel_state(self, x_t, r, plan, k1, k2):
        x = x_t.to(torch.float64).contiguous()
        y = self.train_on(x_t.device)
        n_threads = max(1, min(torch.get_num_threads(), self.num_train // els_kernel.TILE))
        bounds = [self.num_train * k // n_threads for k in range(n_threads + 1)]
        parts = [(bounds[k], bounds[k + 1]) for k in range(n_threads)]
        if n_threads == 1:
            return els_kernel.els_softmax_state(x, y, r, plan, k1, k2)
        with ThreadPoolExecutor(n_threads) as pool:
            states = list(pool.map(lambda ab: els_kernel.els_softmax_state(x, y[ab[0] : ab[1]], r, plan, k1, k2), parts))
        return _merge(states)

    def _torch_state(self, x_t, size, plan, k1, k2):
        dt = exact_dtype(x_t.device)
        x = x_t.to(dt)
        B, C, H, W = x.shape
        dy, dx, _, valid = (p.to(x_t.device) for p in plan)
        valid = valid.bool().reshape(-1, H, W)
        y_all = self.train_on(x_t.device)
        k = self._images_per_chunk(B * H * W)
        states = []
        for i in range(0, self.num_train, k):
            y = y_all[i : i + k].to(dt)
            by = box_sum(y.pow(2).sum(1), size)  # [K, H, W]
            acc = StreamingSoftmax()
            for d in range(dy.shape[0]):  # delta = 0 first: every pixel has a candidate before any mask
                a, b = int(dy[d]), int(dx[d])
                ys = _shift(y, a, b)
                cross = box_sum((x[:, None] * ys[None]).sum(2), size)  # [B, K, H, W]
                logits = (k1 * cross - k2 * _shift(by, a, b)).masked_fill_(~valid[d], -1e300)
                acc.update(logits.reshape(B, -1, 1, H * W).expand(-1, -1, C, -1).reshape(B, ys.shape[0], C * H * W),
                           ys.reshape(ys.shape[0], -1))
            states.append((acc.m.reshape(B, C, H * W)[:, 0], acc.s.reshape(B, C, H * W)[:, 0],
                           acc.a.reshape(B, C, H * W)))
        return _merge(states)


def _candidate_machines(model, train, schedule, sizes) -> tuple[list[int], dict]:
    """The checked candidate ``sizes`` and ``{"P = p": model(train, schedule, p)}``, for the calibrations."""
    sizes = [_check_size(p, "each size") for p in sizes]
    if not sizes or len(set(sizes)) != len(sizes):
        raise ValueError(f"sizes must be a non-empty list of distinct odd ints, got {sizes}")
    return sizes, {f"P = {p}": model(train, schedule, p) for p in sizes}


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
    schedule = DDPMSchedule() if schedule is None else schedule
    sizes, models = _candidate_machines(model, train, schedule, sizes)
    names = dict(zip(models, sizes))
    comp = compare_models(models, reference, schedule=schedule, timesteps=timesteps, protocol="trajectory",
                          num_steps=num_steps, spacing=spacing, x_T=x_T)
    best = {t: names[name] for t, name in zip(comp.timesteps, comp.best(metric))}
    return best, comp


def calibrate_by_score(
    model,
    train: torch.Tensor,
    reference,
    x_T: torch.Tensor,
    sizes,
    schedule: DDPMSchedule | None = None,
    num_steps: int = 10,
    spacing: str = "leading",
) -> tuple[dict[int, int], torch.Tensor, Comparison]:
    """Kamb & Ganguli's own calibration: the score cosine along the reference's trajectory, best per sample, median.

    The reference samples from ``x_T [B, C, H, W]`` with its own DDIM (``num_steps``, ``spacing``); at each of
    its inputs ``x_t`` every candidate ``model(train, schedule, P)`` (``P`` in ``sizes``) and the reference give
    scores ``s(x_t) = (sqrt(abar_t) x0_hat - x_t) / (1 - abar_t)``; per sample b the size with the largest cosine
    ``<s_P, s_ref> / (|s_P| |s_ref|)`` wins, and the step's size is the median of the B winners (the lower
    median for even B, so it is one of the candidates). Returns ``(best {t: P}, cosines [T, len(sizes), B],
    comparison)`` (float64 cosines; the :class:`Comparison` also holds r2, Pearson r and MSE per size).
    """
    schedule = DDPMSchedule() if schedule is None else schedule
    sizes, models = _candidate_machines(model, train, schedule, sizes)
    comp = compare_models(models, reference, schedule=schedule, protocol="trajectory", num_steps=num_steps,
                          spacing=spacing, x_T=x_T)
    cos = torch.empty(len(comp.timesteps), len(sizes), x_T.shape[0], dtype=torch.float64)
    for k, t in enumerate(comp.timesteps):
        ab = schedule.abar(t)
        x = comp.inputs[k].double().flatten(1)
        s_ref = ab**0.5 * comp.reference[k].double().flatten(1) - x  # the factor 1 / (1 - abar) cancels
        for j, name in enumerate(models):
            s_p = ab**0.5 * comp.predictions[name][k].double().flatten(1) - x
            cos[k, j] = torch.nn.functional.cosine_similarity(s_p, s_ref, dim=1)
    winners = torch.tensor(sizes)[cos.argmax(1)]  # [T, B]
    best = {t: int(winners[k].median()) for k, t in enumerate(comp.timesteps)}
    return best, cos, comp
