"""The compiled CPU kernel of the boundary-broken ELS machine: patch distances by window sums, fused with
the streaming softmax, at a cost per candidate that does not depend on the patch size.

For a displacement ``delta`` between a query pixel ``m`` and a candidate ``l = m + delta``, the cross term
of every patch distance is one window sum of one product image:
``<P_m(x), P_{m+delta}(y)> = box_P(z)[m]`` with ``z[u] = sum_c x[c, u] y[c, u + delta]`` (zero where
``u + delta`` leaves the image: both images are zero-padded). The kernel takes, per tile of ``TILE``
training images and per query, each displacement of the plan (:func:`locality_lib.patches.els_plan`):
``z`` over the rows and columns that the plan's pixels need, its 2-D prefix sums, and for every valid
pixel ``m`` the logits of the tile's images,
``l = (sqrt(abar) box(z)[m] - abar box(|y|^2)[m + delta] / 2) / (1 - abar)``, which equal
``-||P_m(x) - sqrt(abar) P_l(y)||^2 / (2 (1 - abar))`` up to ``-||P_m(x)||^2 / (2 (1 - abar))``, the same for
every candidate of ``m`` (it cancels in the softmax). The streaming softmax state per (query, pixel) is
the running maximum ``M``, ``S = sum e^{l - M}`` and ``A[c] = sum e^{l - M} y[c, m + delta]``. Work per
candidate: four reads of the prefix sums, two multiply-adds and one exponential, whatever the patch size.

Float64 throughout. Compiled once per machine (:mod:`locality_lib._compile`); ``load()`` returns None
(with a warning) where no C compiler works, and the machine uses its torch path.
"""
from __future__ import annotations

import ctypes

import torch

from ._compile import compile_kernel, ptr

__all__ = ["load", "els_softmax_state", "TILE"]

#: Training images per tile, one vector of doubles per pixel.
TILE = 32

_SOURCE = r"""
#include <math.h>
#define TILE %(tile)d
typedef double vd __attribute__((vector_size(TILE * 8)));

/* Queries x [B][C][H][W] (float64), training images y [n][C][H][W] (float32). The plan: nd displacements
   (dy, dx), per displacement the box of pixels m to visit rect [nd][4] = (i0, i1, j0, j1), half-open, and
   valid [nd][H*W] (1 where m + delta is a candidate of m). Half width r. Coefficients k1 = sqrt(abar)/(1-abar),
   k2 = abar/(2 (1-abar)). State, updated in place: M, S [B][H*W], A [B][C][H*W]. Scratch (256-byte aligned):
   yt [C*H*W] vd, by [H*W] vd, ps [(H+1)*(W+1)] vd, lg, e [TILE] double. */
void els_softmax(int B, int C, int H, int W, int r, int n, const double *x, const float *y,
                 int nd, const int *dy, const int *dx, const int *rect, const unsigned char *valid,
                 double k1, double k2, double *M, double *S, double *A,
                 vd *yt, vd *by, vd *ps)
{
    const int D = H * W, W1 = W + 1;
    for (int i0 = 0; i0 < n; i0 += TILE) {
        int k = n - i0 < TILE ? n - i0 : TILE;
        /* the tile, pixel-major, and the window sums of its squared norms: by[p] = box(sum_c y^2)[p] */
        for (int q = 0; q < C * D; ++q)
            for (int j = 0; j < TILE; ++j)
                yt[q][j] = j < k ? (double)y[(long)(i0 + j) * C * D + q] : 0.0;
        for (int a = 0; a <= H; ++a) ps[a * W1] = (vd){0};
        for (int c = 0; c <= W; ++c) ps[c] = (vd){0};
        for (int a = 0; a < H; ++a)
            for (int c = 0; c < W; ++c) {
                vd v = (vd){0};
                for (int ch = 0; ch < C; ++ch) v += yt[ch * D + a * W + c] * yt[ch * D + a * W + c];
                ps[(a + 1) * W1 + c + 1] = v + ps[a * W1 + c + 1] + ps[(a + 1) * W1 + c] - ps[a * W1 + c];
            }
        for (int a = 0; a < H; ++a)
            for (int c = 0; c < W; ++c) {
                int a0 = a - r < 0 ? 0 : a - r, a1 = a + r + 1 > H ? H : a + r + 1;
                int c0 = c - r < 0 ? 0 : c - r, c1 = c + r + 1 > W ? W : c + r + 1;
                by[a * W + c] = ps[a1 * W1 + c1] - ps[a0 * W1 + c1] - ps[a1 * W1 + c0] + ps[a0 * W1 + c0];
            }
        for (int b = 0; b < B; ++b) {
            const double *xb = x + (long)b * C * D;
            double *Mb = M + (long)b * D, *Sb = S + (long)b * D, *Ab = A + (long)b * C * D;
            for (int d = 0; d < nd; ++d) {
                const int ddy = dy[d], ddx = dx[d], *rc = rect + 4 * d;
                const unsigned char *ok = valid + (long)d * D;
                /* the rows and columns of z that the windows of the box's pixels cover */
                int u0 = rc[0] - r < 0 ? 0 : rc[0] - r, u1 = rc[1] + r > H ? H : rc[1] + r;
                int v0 = rc[2] - r < 0 ? 0 : rc[2] - r, v1 = rc[3] + r > W ? W : rc[3] + r;
                int w1 = v1 - v0 + 1;
                for (int c = 0; c < w1; ++c) ps[c] = (vd){0};
                for (int a = u0; a < u1; ++a) {
                    vd *row = ps + (a - u0 + 1) * w1, *above = row - w1;
                    row[0] = (vd){0};
                    int ya = a + ddy;
                    vd run = (vd){0};
                    for (int c = v0; c < v1; ++c) {
                        int yc = c + ddx;
                        if (ya >= 0 && ya < H && yc >= 0 && yc < W)
                            for (int ch = 0; ch < C; ++ch)
                                run += xb[ch * D + a * W + c] * yt[ch * D + ya * W + yc];
                        row[c - v0 + 1] = above[c - v0 + 1] + run;
                    }
                }
                for (int a = rc[0]; a < rc[1]; ++a)
                    for (int c = rc[2]; c < rc[3]; ++c) {
                        int m = a * W + c;
                        if (!ok[m]) continue;
                        int a0 = (a - r < u0 ? u0 : a - r) - u0, a1 = (a + r + 1 > u1 ? u1 : a + r + 1) - u0;
                        int c0 = (c - r < v0 ? v0 : c - r) - v0, c1 = (c + r + 1 > v1 ? v1 : c + r + 1) - v0;
                        vd cross = ps[a1 * w1 + c1] - ps[a0 * w1 + c1] - ps[a1 * w1 + c0] + ps[a0 * w1 + c0];
                        int l = m + ddy * W + ddx;
                        vd lv = k1 * cross - k2 * by[l];
                        for (int j = k; j < TILE; ++j) lv[j] = -1e300;  /* lanes past a last partial tile never win */
                        double mx = lv[0];
                        for (int j = 1; j < TILE; ++j) mx = lv[j] > mx ? lv[j] : mx;
                        double Mo = Mb[m];
                        if (mx > Mo) {  /* a new maximum: rescale the sums */
                            double sc = exp(Mo - mx > -700.0 ? Mo - mx : -700.0);
                            Sb[m] *= sc;
                            for (int ch = 0; ch < C; ++ch) Ab[ch * D + m] *= sc;
                            Mb[m] = Mo = mx;
                        }
                        double e[TILE] __attribute__((aligned(64)));
                        *(vd *)e = lv - Mo;
                        for (int j = 0; j < TILE; ++j)  /* e^-700 < 1e-304: below any sum, off the slow path */
                            e[j] = exp(e[j] > -700.0 ? e[j] : -700.0);
                        vd ev = *(vd *)e;
                        double s = 0.0;
                        for (int j = 0; j < TILE; ++j) s += ev[j];
                        Sb[m] += s;
                        for (int ch = 0; ch < C; ++ch) {
                            vd w = ev * yt[ch * D + l];
                            double a = 0.0;
                            for (int j = 0; j < TILE; ++j) a += w[j];
                            Ab[ch * D + m] += a;
                        }
                    }
            }
        }
    }
}
"""

_lib = None


def load():
    """The compiled kernel (a ctypes function), compiled on first use; None (with a warning) when that fails."""
    global _lib
    if _lib is None:
        _lib = compile_kernel("els_kernel", _SOURCE % {"tile": TILE}, "els_softmax", "ELSDenoiser") or False
    return _lib or None


def els_softmax_state(x: torch.Tensor, y: torch.Tensor, r: int, plan, k1: float, k2: float):
    """Streaming-softmax state of the ELS machine over the training images ``y``: ``(M, S, A)``.

    ``x [B, C, H, W]`` float64 contiguous (queries), ``y [n, C, H, W]`` float32 contiguous; ``plan`` the
    tensors ``(dy, dx, rect, valid)`` of :func:`locality_lib.patches.els_plan` (int32, int32, int32 ``[nd, 4]``,
    uint8 ``[nd, H W]``). Returns ``M, S [B, H W]`` and ``A [B, C, H W]``, float64; the output is ``A / S``.
    """
    if x.dtype != torch.float64 or not x.is_contiguous() or y.dtype != torch.float32 or not y.is_contiguous():
        raise ValueError(f"els_softmax_state needs x float64 and y float32, both contiguous; got {x.dtype}, {y.dtype}")
    fn = load()
    B, C, H, W = x.shape
    dy, dx, rect, valid = plan
    f64 = dict(dtype=torch.float64)
    M, S, A = torch.full((B, H * W), -1e300, **f64), torch.zeros(B, H * W, **f64), torch.zeros(B, C, H * W, **f64)
    # vd scratch must be aligned to the vector size: allocate a little more and offset
    scratch = [_aligned(size * TILE) for size in (C * H * W, H * W, (H + 1) * (W + 1))]
    fn(ctypes.c_int(B), ctypes.c_int(C), ctypes.c_int(H), ctypes.c_int(W), ctypes.c_int(r), ctypes.c_int(y.shape[0]),
       ptr(x), ptr(y), ctypes.c_int(dy.shape[0]), ptr(dy), ptr(dx), ptr(rect), ptr(valid),
       ctypes.c_double(k1), ctypes.c_double(k2), ptr(M), ptr(S), ptr(A), *map(ptr, scratch))
    return M, S, A


def _aligned(n: int) -> torch.Tensor:
    """``n`` float64 whose first element sits on a 256-byte boundary (vectors of ``TILE`` doubles)."""
    buf = torch.empty(n + 32, dtype=torch.float64)
    off = (-buf.data_ptr() % 256) // 8
    return buf[off : off + n]
