"""The paper's data-driven analytical denoiser ("pca_locality"; Lukoianov et al. 2025, Sec. 4).

1. Wiener matrix ``W_t = U diag(lambda / (lambda + sigma_t^2)) U^T`` (float64, see ``statistics``).
2. Normalize by the diagonal with the paper code's floor: ``d = diag(W_t)``, ``d[n] = 1`` where
   ``|d[n]| < diag_floor`` (1e-6, for images in [-1, 1]), ``W~ = W_t / d[:, None]``; binarize with a
   global threshold, ``B[n, m] = |W~[n, m]| >= tau * max |W~|``. At high noise ``W[n, n] ~ Var(n) / sigma_t^2``,
   so the rows of low-variance pixels stay un-normalized and tiny and cannot set the maximum.
   ``diag_floor=0`` divides every row by its own diagonal (the rule of earlier versions of this library,
   not the paper's): the faintest pixels then set the global maximum and the masks shrink.
3. Output pixel m takes a softmax over training images ``y_i`` of
   ``-sum_n M_m[n] (x_t[n] - sqrt(abar_t) y_i[n])^2 / (2 (1 - abar_t) T)`` and averages ``y_i[m]``.

Mask conventions: ``"column"`` (the paper's code): pixel m's mask is column m of B;
``"row"``: row m. Softmax: ``"exact"`` (streaming log-sum-exp, the default) or ``"batchwise"``
(the paper code's per-batch softmax averaged over batches of ``batch_size``).

Fast exact evaluation (``method="runs"``, the default). The logits need
``d[m, i] = sum_n M[m, n] sq_i[n]`` with ``sq_i = (x_t - sqrt(abar_t) y_i)^2`` for every training image
i (and query) and output pixel m; the plain formulation (``method="dense"``, kept as the reference)
does ``M @ sq`` as one dense product. The masks are binary, and in the flat ``(C, H, W)`` pixel order
each row of M is runs of consecutive ones (on MNIST about 30-45 runs of ~8 pixels at high noise). With
the inclusive prefix sums ``P = cumsum(sq)`` a run ``s..e`` sums to ``P[e] - P[s-1]``: two terms however
long it is. Each row uses runs of ones, or (when cheaper) the total ``P[D-1]`` minus the runs of its
complement, and short runs stay plain sums; the terms form a sparse (CSR) matrix applied to ``[sq; P]``.
When every mask is the same (all ones at high noise) one logit per image serves every pixel
(``denoise_shared_mask``). Otherwise, on the CPU, the compiled kernel of ``runs_kernel``
(``denoise_fused``) does it all per tile of 16 training images, in cache: the squares, the prefix sums,
the sparse sums of each *distinct* mask row (pixels with equal masks share one logit row and one
exponential) and the streaming softmax update; nothing of size ``B * N * D`` is stored. On CUDA, and on
a CPU without a C compiler, torch does the same in passes (``denoise_runs``: logits ``[D, B, K]``,
pixel-major, chunk by chunk). On MPS (no float64, no sparse products) the dense path runs in float32.

Precision. In float64 the differences of prefix sums lose about ``1e-16 * P[D-1]`` each: far below 1e-4.
float32 sums would not be: a logit error ``delta`` moves an output by up to ``4 max|delta|`` (pixels in
[-1, 1]), and a float32 prefix sum is off by up to ``6e-8 * P[D-1]`` (``P[D-1] ~ D`` at high noise),
times ``|coef|`` and ~60 terms per row on MNIST: ~1e-3 at t = 900 already, and ``|coef| = 1/(2(1 - abar_t))``
grows to 5000 at t = 0. So the kernel reads the float32 training set and sums in float64. (Expanding the
square does not help: the query-only term cancels in the softmax and the training-only term could be
cached per t, but the cross term ``sum_n M[m, n] x[n] y_i[n]`` needs the same sparse sums, and the
squares are a few per cent of the kernel's time; ``benchmarks/bench_locality.py`` prints the profile.)
"""
from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import torch

from . import runs_kernel
from ._checks import check_choice, check_positive
from .base import TrainingSetDenoiser, exact_dtype
from .softmax import make_softmax_accumulator
from .statistics import DataStatistics, dataset_statistics

__all__ = ["LocalityDenoiser", "PAPER_DIAG_FLOOR", "PAPER_THRESHOLDS", "locality_masks", "denoise_dense",
           "denoise_shared_mask", "denoise_runs", "denoise_fused"]

#: Elements of the ``[D, B, K]`` logits per chunk in exact mode (a few MB: the passes stay in cache).
_CHUNK_ELEMENTS = 2**19

#: The global thresholds tau used by the paper's code, per dataset.
PAPER_THRESHOLDS = {"mnist": 0.005, "fashion_mnist": 0.005, "cifar10": 0.05, "celeba_hq": 0.02, "afhq": 0.02}


#: The paper code's floor on the Wiener diagonal (images in [-1, 1]): rows with ``|W[n, n]| < 1e-6``
#: are not normalized.
PAPER_DIAG_FLOOR = 1e-6


def _check_diag_floor(diag_floor) -> float:
    if not diag_floor >= 0:  # also refuses NaN
        raise ValueError(f"diag_floor must be >= 0 (the paper uses {PAPER_DIAG_FLOOR}), got {diag_floor}")
    return float(diag_floor)


def locality_masks(W: torch.Tensor, threshold: float, convention: str = "column",
                   diag_floor: float = PAPER_DIAG_FLOOR) -> torch.Tensor:
    """Binarized masks from a Wiener matrix ``W [D, D]`` (float64), by the paper's rule.

    ``d = diag(W)``; ``d[n] = 1`` where ``|d[n]| < diag_floor`` or ``d[n] = 0``; ``W~ = W / d[:, None]``;
    ``B = |W~| >= threshold * max|W~|``. ``diag_floor=1e-6`` is the paper's; ``diag_floor=0`` divides
    every row by its own diagonal (a zero diagonal means a zero row, left as it is).
    Returns ``mask [D, D]`` bool, ``mask[m, n]`` True when output pixel m looks at input pixel n:
    column m of ``B`` (``convention="column"``, the paper's code) or row m (``"row"``).
    """
    check_choice(convention, "convention", ("column", "row"))
    _check_diag_floor(diag_floor)
    d = W.diagonal()
    d = torch.where((d.abs() < diag_floor) | (d == 0), torch.ones_like(d), d)
    A = (W / d[:, None]).abs()
    B = A >= threshold * A.max()
    return B.T.contiguous() if convention == "column" else B


def _runs(mask: torch.Tensor):
    """Runs of ones in each row of ``mask [R, D]``: ``(row, start, end)`` (inclusive), each ``[runs]``."""
    m = mask.to(torch.int8)
    edge = torch.diff(m, dim=1, prepend=torch.zeros_like(m[:, :1]), append=torch.zeros_like(m[:, :1]))
    row_s, start = (edge == 1).nonzero(as_tuple=True)  # row-major order: starts and ends pair up
    end = (edge == -1).nonzero(as_tuple=True)[1] - 1
    return row_s, start, end


def _run_terms(mask: torch.Tensor, sign: float):
    """Terms ``(row, column of [sq; P], weight)`` summing the runs of ``mask [R, D]``, and each row's count.

    A run ``s..e`` is ``P[e] - P[s-1]`` (``P[e]`` when ``s = 0``) when that is fewer terms than the
    plain sum ``sq[s] + ... + sq[e]``.
    """
    R, D = mask.shape
    row, s, e = _runs(mask)
    length = e - s + 1
    prefix = length > torch.where(s == 0, 1, 2)
    inner = prefix & (s > 0)  # prefix runs that also subtract P[s-1]
    terms = [(row[prefix], D + e[prefix], torch.full_like(s[prefix], 1)),
             (row[inner], D + s[inner] - 1, torch.full_like(s[inner], -1))]
    run_id = torch.repeat_interleave(torch.arange(len(s)), length)  # the run of each one, in row-major order
    rows_1, cols_1 = mask.nonzero(as_tuple=True)
    keep = ~prefix[run_id]
    terms.append((rows_1[keep], cols_1[keep], torch.ones_like(cols_1[keep])))
    row, col, w = (torch.cat(part) for part in zip(*terms))
    return row, col, sign * w.double(), torch.bincount(row, minlength=R)


class _RunLogits:
    """``coef * M @ sq`` (``[R, C]``) for one mask ``M [R, D]`` from the buffer ``[sq; cumsum(sq)]``
    (``[2D, C]``; ``[D, C]`` when ``needs_prefix`` is False)."""

    def __init__(self, mask: torch.Tensor, coef: float, device, dtype):
        R, D = mask.shape
        direct = _run_terms(mask, 1.0)
        comp = _run_terms(~mask, -1.0)
        use_comp = comp[3] + 1 < direct[3]  # total P[D-1] minus the complement's runs
        parts = [tuple(v[~use_comp[direct[0]]] for v in direct[:3]), tuple(v[use_comp[comp[0]]] for v in comp[:3])]
        total_rows = use_comp.nonzero().squeeze(1)
        parts.append((total_rows, torch.full_like(total_rows, 2 * D - 1), torch.ones(len(total_rows), dtype=torch.float64)))
        row, col, w = (torch.cat(p) for p in zip(*parts))
        order = torch.argsort(row * (2 * D) + col)  # CSR: by row, then column
        counts = torch.bincount(row, minlength=R)
        self.num_terms = len(row)
        self.needs_prefix = bool((col >= D).any())
        crow = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        with warnings.catch_warnings():  # torch calls its sparse CSR support "beta"
            warnings.simplefilter("ignore")
            self.terms = torch.sparse_csr_tensor(crow, col[order], coef * w[order],
                                                 (R, 2 * D if self.needs_prefix else D)).to(device, dtype)

    def __call__(self, buf: torch.Tensor) -> torch.Tensor:
        return self.terms @ buf


def denoise_dense(x, y, mask, ab: float, coef: float, softmax: str = "exact", batch_size: int = 512):
    """The reference: ``x0[b, m] = sum_i softmax_i(coef * sum_n M[m, n] (x[b, n] - sqrt(ab) y_i[n])^2) y_i[m]``.

    ``x [B, D]``, ``y [N, D]``, ``mask [D, D]`` (row m = inputs of output m); one dense
    ``[B, K, D] @ [D, D]`` product per batch of ``batch_size`` training images. Returns ``[B, D]``.
    """
    dt = x.dtype
    acc = make_softmax_accumulator(softmax)
    Mt = mask.T.to(x.device, dt)  # [D_in, D_out]
    for i in range(0, y.shape[0], batch_size):
        yb = y[i : i + batch_size].to(dt)
        sq = (x[:, None, :] - ab**0.5 * yb[None]) ** 2  # [B, K, D]
        acc.update(coef * (sq @ Mt), yb)  # logits [B, K, D]
    return acc.result()


def denoise_shared_mask(x, yT, m, ab: float, coef: float, softmax: str = "exact", batch_size: int = 512):
    """One mask ``m [D]`` for every output pixel: one logit per image, ``coef * |m (x - sqrt(ab) y_i)|^2``,
    by two products, ``-2 sqrt(ab) (m x) . y_i + ab m . y_i^2`` (the query-only term cancels in the softmax).

    ``x [B, D]``, ``yT [D, N]`` (pixel-major). Returns ``[B, D]``.
    """
    dt = x.dtype
    acc = make_softmax_accumulator(softmax)
    m = m.to(x.device, dt)
    xm = x * m  # [B, D]
    K = batch_size if softmax == "batchwise" else 4096
    for i in range(0, yT.shape[1], K):
        y = yT[:, i : i + K].to(dt)  # [D, k]
        lg = torch.addmm((m @ y.square()).mul_(ab * coef)[None], xm, y, alpha=-2 * ab**0.5 * coef)
        acc.update(lg, y.T)  # logits [B, k], values [k, D]
    return acc.result()


def denoise_runs(x, yT, plan: "_RunLogits", ab: float, softmax: str = "exact", batch_size: int = 512):
    """Prefix-sum runs: ``coef * M @ sq`` as a sparse product with ``[sq; cumsum(sq)]`` (``plan`` holds the
    terms, coef folded in), ``sq [D, B, k] = (x - sqrt(ab) y)^2`` pixel-major; softmax over k per (pixel, query).

    ``x [B, D]``, ``yT [D, N]``. Returns ``[B, D]``.
    """
    B, D = x.shape
    dt = x.dtype
    acc = make_softmax_accumulator(softmax, dim=2)
    xT = x.T.contiguous()  # [D, B]
    K = batch_size if softmax == "batchwise" else max(16, _CHUNK_ELEMENTS // (B * D))
    for i in range(0, yT.shape[1], K):
        y = yT[:, i : i + K].to(dt)  # [D, k]
        k = y.shape[1]
        buf = xT.new_empty(2 * D if plan.needs_prefix else D, B * k)  # [sq; cumsum(sq)]
        sq = buf[:D].view(D, B, k)
        torch.sub(xT[:, :, None], (ab**0.5 * y)[:, None, :], out=sq).square_()
        if plan.needs_prefix:
            torch.cumsum(buf[:D], dim=0, out=buf[D:])
        acc.update(plan(buf).view(D, B, k), y)  # logits [D, B, k], values [D, k]
    return acc.result().T  # [D, B] -> [B, D]


class _FusedPlan:
    """The compiled kernel's plan for one mask ``M [D, D]``: its distinct rows as CSR terms over the rows
    of ``[sq; P]`` (``coef`` folded in; ``crow``, ``col`` int32, ``w`` float64) and ``row [D]`` (int32),
    the distinct row of each pixel (pixels with equal masks share one logit row)."""

    def __init__(self, mask: torch.Tensor, coef: float):
        rows, row = torch.unique(mask, dim=0, return_inverse=True)
        terms = _RunLogits(rows, coef, "cpu", torch.float64).terms
        self.crow, self.col = terms.crow_indices().int(), terms.col_indices().int()
        self.w, self.row = terms.values().contiguous(), row.int()
        self.num_rows, self.num_terms = rows.shape[0], self.col.shape[0]


def denoise_fused(x, yT, plan: _FusedPlan, ab: float, softmax: str = "exact", batch_size: int = 512,
                  threads: int | None = None, profile: torch.Tensor | None = None):
    """The runs formula of ``denoise_runs`` in the compiled CPU kernel (``runs_kernel``), float64, every pass
    fused: per tile of training images ``sq``, ``P = cumsum(sq)``, the sparse sums, the softmax update.

    ``x [B, D]`` float64, ``yT [D, N]`` float32. ``threads`` (default ``torch.get_num_threads()``) threads
    take disjoint ranges of training images (exact: one range each, merged by log-sum-exp; batchwise:
    whole batches). ``profile [4]`` float64, when given, accumulates the threads' seconds per
    ``runs_kernel.PHASES``. Returns ``[B, D]``.
    """
    B, D = x.shape
    N = yT.shape[1]
    threads = threads or torch.get_num_threads()
    x = x.contiguous()
    if softmax == "batchwise":
        ranges = [(i, min(i + batch_size, N)) for i in range(0, N, batch_size)]
    else:
        cuts = [N * j // threads for j in range(threads + 1)]
        ranges = [(lo, hi) for lo, hi in zip(cuts, cuts[1:]) if hi > lo]
    profs = [torch.zeros(4, dtype=torch.float64) for _ in ranges]

    def state(j):
        lo, hi = ranges[j]
        return runs_kernel.runs_softmax_state(x, yT, ab**0.5, plan.crow, plan.col, plan.w, plan.row, lo, hi, profs[j])

    with ThreadPoolExecutor(threads) as pool:
        states = list(pool.map(state, range(len(ranges))))
    if profile is not None:
        profile += sum(profs)
    row = plan.row.long()
    if softmax == "batchwise":  # sum_b (n_b / N) a_b / s_b
        return sum(a / s[:, row] * ((hi - lo) / N) for (_, s, a), (lo, hi) in zip(states, ranges))
    m = torch.stack([st[0] for st in states]).amax(0)  # [B, R]
    s = sum(st[1] * torch.exp(st[0] - m) for st in states)
    a = sum(st[2] * torch.exp(st[0] - m)[:, row] for st in states)
    return a / s[:, row]


class LocalityDenoiser(TrainingSetDenoiser):
    """``LocalityDenoiser(train, schedule, threshold=0.005, temperature=1.0, mask_convention="column",
    softmax="exact", batch_size=512, method="runs", diag_floor=1e-6)``; ``den(x_t, t)`` -> ``[B, C, H, W]``.

    The masks follow the paper's rule (``locality_masks``; ``diag_floor=0`` gives the unfloored rule).

    Masks are computed once per t and cached; ``.mask(t)`` returns them (``[D, D]`` bool,
    row m = the input pixels output pixel m sees; channels are part of D = C*H*W).
    ``method="dense"`` is the plain formulation (one ``[B*K, D] @ [D, D]`` product per batch), kept
    as the reference for the fast ``"runs"`` path; both give the same answer. On MPS (no float64,
    no sparse products) the dense path is used. ``.profile`` (``[4]`` float64) accumulates the seconds
    the compiled kernel's threads spend in each of ``runs_kernel.PHASES``.

    ``stats`` (default: ``DataStatistics(train)``) gives the Wiener matrices the masks come from. Even
    under the paper's rule the masks depend strongly on how many images the statistics see (on MNIST at
    t = 200: 21 px from 1,000 images, 84 px from all 60,000; at t = 900 they agree), so to softmax over a
    subset, use the whole set's statistics: ``LocalityDenoiser.from_dataset("mnist", n=3000)`` does.
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
        method: str = "runs",
        diag_floor: float = PAPER_DIAG_FLOOR,
    ):
        super().__init__(train, schedule, chunk_size=batch_size)
        self.threshold = check_positive(threshold, "threshold", allow_zero=True)
        if self.threshold >= 1:
            raise ValueError(f"threshold is a fraction of the largest normalized entry and must be < 1, got {threshold}")
        self.temperature = check_positive(temperature, "temperature")
        self.mask_convention = check_choice(mask_convention, "mask_convention", ("column", "row"))
        self.softmax = check_choice(softmax, "softmax", ("exact", "batchwise"))
        self.method = check_choice(method, "method", ("runs", "dense"))
        self.batch_size = batch_size
        self.diag_floor = _check_diag_floor(diag_floor)
        self.stats = stats if stats is not None else DataStatistics(self.train)
        self._masks: dict = {}
        self._plans: dict = {}
        self.profile = torch.zeros(len(runs_kernel.PHASES), dtype=torch.float64)
        self._yT: dict = {}

    @classmethod
    def from_dataset(cls, name: str, n: int | None = None, seed: int = 0, schedule=None, **options):
        """The model on ``n`` images of dataset ``name`` (``load_dataset(name, n=n, seed=seed)``) with masks
        from the statistics of the WHOLE training split (``dataset_statistics(name)``, cached) and the
        paper's threshold for that dataset (``PAPER_THRESHOLDS``, 0.005 otherwise) unless ``threshold=`` is given."""
        from .data import load_dataset

        options.setdefault("threshold", PAPER_THRESHOLDS.get(name, 0.005))
        train = load_dataset(name, n=n, seed=seed)
        return cls(train, schedule, stats=dataset_statistics(name), **options)

    def mask(self, t: int) -> torch.Tensor:
        """``[D, D]`` bool: ``mask[m, n]`` True when output pixel m's softmax uses input pixel n (cached per t)."""
        if t not in self._masks:
            ab = self.schedule.abar(t)
            W = self.stats.wiener_matrix((1 - ab) / ab)
            self._masks[t] = locality_masks(W, self.threshold, self.mask_convention, self.diag_floor)
        return self._masks[t]

    def _plan(self, t: int, device, dtype):
        """Per (t, device, dtype): the shared mask row ``[D]`` when every mask is the same; else, on the CPU
        in float64 with the compiled kernel, a ``_FusedPlan``; else a ``_RunLogits`` (the logits' factor
        ``-1 / (2 (1 - abar_t) T)`` folded into both)."""
        key = (t, torch.device(device), dtype)
        if key not in self._plans:
            M = self.mask(t)
            if bool((M == M[0]).all()):
                self._plans[key] = M[0].to(device, dtype)
            elif key[1].type == "cpu" and dtype == torch.float64 and runs_kernel.load() is not None:
                self._plans[key] = _FusedPlan(M, self._logit_scale(t))
            else:
                self._plans[key] = _RunLogits(M, self._logit_scale(t), device, dtype)
        return self._plans[key]

    def _logit_scale(self, t: int) -> float:
        """``-1 / (2 (1 - abar_t) T)``: logits are this times the masked squared distance."""
        return -1.0 / (2 * (1 - self.schedule.abar(t)) * self.temperature)

    def _denoise(self, x_t, t):
        """Dispatch to one of four evaluations of the same formula (``[B, D]`` in, ``[B, D]`` out)."""
        ab, coef = self.schedule.abar(t), self._logit_scale(t)
        dt = exact_dtype(x_t.device)
        x = x_t.reshape(x_t.shape[0], -1).to(dt)
        if self.method == "dense" or x_t.device.type == "mps":
            y = self.train_on(x_t.device).reshape(self.num_train, -1)
            out = denoise_dense(x, y, self.mask(t), ab, coef, self.softmax, self.batch_size)
        else:
            plan = self._plan(t, x_t.device, dt)
            yT = self._pixel_major(x_t.device)
            if isinstance(plan, torch.Tensor):
                out = denoise_shared_mask(x, yT, plan, ab, coef, self.softmax, self.batch_size)
            elif isinstance(plan, _FusedPlan):
                out = denoise_fused(x, yT, plan, ab, self.softmax, self.batch_size, profile=self.profile)
            else:
                out = denoise_runs(x, yT, plan, ab, self.softmax, self.batch_size)
        return out.reshape(x_t.shape)

    def _pixel_major(self, device) -> torch.Tensor:
        """The training set as ``[D, N]`` (float32) on ``device``, made once."""
        device = torch.device(device)
        if device not in self._yT:
            self._yT[device] = self.train_on(device).reshape(self.num_train, -1).T.contiguous()
        return self._yT[device]
