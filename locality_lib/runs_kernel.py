"""A small compiled CPU kernel for the locality denoiser's exact prefix-sum path: every pass fused.

For a tile of ``TILE`` training images and one query ``x_b`` it computes, in float64 and in cache,
``sq[n, i] = (x_b[n] - sqrt(abar) y_i[n])^2``, the prefix sums ``P = cumsum_n sq``, the logits of each
distinct mask row ``r`` as the sparse sum ``l[r, i] = sum_j w_j [sq; P][col_j, i]`` (the runs of ones,
``coef`` folded into ``w``), and the streaming softmax state: per (row, query) the running maximum
``m`` and ``s = sum_i e^{l - m}``, per (pixel, query) ``a = sum_i e^{l - m} y_i[pixel]``. Pixels whose
masks are equal share one logit row and one exponential. Nothing of size ``B * N * D`` is stored.

The source is compiled once per machine (:mod:`locality_lib._compile`) and called through ctypes,
which releases the GIL, so Python threads can work on disjoint ranges of training images (``locality.denoise_fused`` merges their states by log-sum-exp). ``-ffast-math`` lets
the compiler use the C library's vector ``exp``; the code avoids infinities and the slow underflow path
(the initial maximum is ``-1e300``; exponents are clamped at -700, ``e^-700 < 1e-304``). Without a
working compiler ``load()`` warns and returns None, and the library uses its torch path.
"""
from __future__ import annotations

import ctypes

import torch

from ._compile import compile_kernel, ptr as _ptr

__all__ = ["load", "runs_softmax_state", "PHASES"]

#: Training images per tile: ``[2D, TILE]`` float64 of squares and prefix sums stay in the L2 cache.
TILE = 16

#: Independent partial sums per logit row in the sparse product.
CHAINS = 2

#: What the kernel's profile counters measure, in this order (CPU seconds, summed over threads).
PHASES = ("squared differences", "prefix sums", "sparse product", "softmax passes")

_SOURCE = r"""
#include <math.h>
#include <time.h>

#define TILE %(tile)d
#define CHAINS %(chains)d
#define NV (TILE / 8)
typedef double vd __attribute__((vector_size(64)));  /* 8 doubles: one AVX-512 register, or two AVX2 */

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

/* Training images y[:, 0:n] (pixel-major float32, row stride ldy), queries x [B][D] (float64).
   Mask rows r = 0..R-1 as CSR terms (crow, col, w) over the 2D rows of [sq; P]; row[p] is the mask row
   of pixel p. State, updated in place: mx, sm [B][R], ac [B][D]. Scratch, 64-byte aligned:
   yt [D][TILE], buf [2D][TILE], lg [R][TILE], mn, sc [R]. prof[4] += seconds per phase. */
void runs_softmax(int D, int B, int n, const double *x, const float *y, long ldy, double s,
                  int R, const int *crow, const int *col, const double *w, const int *row,
                  double *mx, double *sm, double *ac, double *yt, double *buf, double *lg, double *mn, double *sc,
                  double *prof)
{
    const vd *Y = (const vd *)yt;
    vd *Q = (vd *)buf, *P = (vd *)buf + (long)D * NV, *L = (vd *)lg;
    for (int i0 = 0; i0 < n; i0 += TILE) {
        int k = n - i0 < TILE ? n - i0 : TILE;
        for (int p = 0; p < D; ++p)
            for (int j = 0; j < TILE; ++j)
                yt[p * TILE + j] = j < k ? (double)y[p * ldy + i0 + j] : 0.0;
        for (int b = 0; b < B; ++b) {
            double t0 = now();
            for (int p = 0; p < D; ++p) {
                double xv = x[(long)b * D + p];
                for (int v = 0; v < NV; ++v) { vd d = xv - s * Y[p * NV + v]; Q[p * NV + v] = d * d; }
            }
            double t1 = now();
            for (int v = 0; v < NV; ++v) P[v] = Q[v];
            for (int p = 1; p < D; ++p)
                for (int v = 0; v < NV; ++v) P[p * NV + v] = P[(p - 1) * NV + v] + Q[p * NV + v];
            double t2 = now();
            for (int r = 0; r < R; ++r) {  /* CHAINS independent sums hide the latency of the adds */
                vd acc[CHAINS][NV];
                for (int c = 0; c < CHAINS; ++c)
                    for (int v = 0; v < NV; ++v) acc[c][v] = (vd){0};
                int q = crow[r];
                for (; q + CHAINS <= crow[r + 1]; q += CHAINS)
                    for (int c = 0; c < CHAINS; ++c) {
                        const vd *src = Q + (long)col[q + c] * NV; double wq = w[q + c];
                        for (int v = 0; v < NV; ++v) acc[c][v] += wq * src[v];
                    }
                for (; q < crow[r + 1]; ++q) {
                    const vd *src = Q + (long)col[q] * NV; double wq = w[q];
                    for (int v = 0; v < NV; ++v) acc[0][v] += wq * src[v];
                }
                for (int c = 1; c < CHAINS; ++c)
                    for (int v = 0; v < NV; ++v) acc[0][v] += acc[c][v];
                for (int v = 0; v < NV; ++v) L[r * NV + v] = acc[0][v];
            }
            double t3 = now();
            double *M = mx + (long)b * R, *S = sm + (long)b * R, *A = ac + (long)b * D;
            for (int r = 0; r < R; ++r) {  /* padding lanes of a last partial tile never win the maximum */
                for (int j = k; j < TILE; ++j) lg[r * TILE + j] = -1e300;
                double m = lg[r * TILE];
                for (int j = 1; j < TILE; ++j) m = lg[r * TILE + j] > m ? lg[r * TILE + j] : m;
                mn[r] = m > M[r] ? m : M[r];
            }
            for (int r = 0; r < R; ++r) {
                sc[r] = M[r] - mn[r];
                for (int v = 0; v < NV; ++v) L[r * NV + v] -= mn[r];
            }
            for (int r = 0; r < R; ++r) sc[r] = exp(sc[r]);
            for (long q = 0; q < (long)R * TILE; ++q)  /* e^-700 < 1e-304: below any sum, off the slow path */
                lg[q] = exp(lg[q] > -700.0 ? lg[q] : -700.0);
            for (int r = 0; r < R; ++r)
                for (int j = k; j < TILE; ++j) lg[r * TILE + j] = 0.0;
            for (int r = 0; r < R; ++r) {
                vd tot = L[r * NV];
                for (int v = 1; v < NV; ++v) tot += L[r * NV + v];
                double t = 0.0;
                for (int j = 0; j < 8; ++j) t += tot[j];
                S[r] = S[r] * sc[r] + t;
                M[r] = mn[r];
            }
            for (int p = 0; p < D; ++p) {
                const vd *e = L + row[p] * NV;
                vd acc = e[0] * Y[p * NV];
                for (int v = 1; v < NV; ++v) acc += e[v] * Y[p * NV + v];
                double t = 0.0;
                for (int j = 0; j < 8; ++j) t += acc[j];
                A[p] = A[p] * sc[row[p]] + t;
            }
            double t4 = now();
            prof[0] += t1 - t0; prof[1] += t2 - t1; prof[2] += t3 - t2; prof[3] += t4 - t3;
        }
    }
}
"""

_lib = None


def load():
    """The compiled kernel (a ctypes function), compiled on first use; None (with a warning) when that fails."""
    global _lib
    if _lib is None:
        _lib = compile_kernel("runs_kernel", _SOURCE % {"tile": TILE, "chains": CHAINS}, "runs_softmax",
                              "LocalityDenoiser") or False
    return _lib or None


def runs_softmax_state(x, yT, s: float, crow, col, w, row, lo: int, hi: int, profile: torch.Tensor):
    """Streaming-softmax state over training images ``lo..hi-1``: ``(m [B, R], s [B, R], a [B, D])``.

    ``x [B, D]`` float64, ``yT [D, N]`` float32 (rows contiguous); the mask rows as CSR terms
    ``crow [R+1]``, ``col`` (int32, into the ``2D`` rows of ``[sq; P]``), ``w`` (float64, ``coef`` folded
    in); ``row [D]`` (int32) the mask row of each pixel. ``profile [4]`` (float64) accumulates the
    seconds of the four ``PHASES``.
    """
    if x.dtype != torch.float64 or not x.is_contiguous() or yT.dtype != torch.float32 or yT.stride(1) != 1:
        raise ValueError(f"runs_softmax_state needs x [B, D] contiguous float64 and yT [D, N] float32 with "
                         f"contiguous rows, got {x.dtype} {tuple(x.stride())} and {yT.dtype} {tuple(yT.stride())}")
    fn = load()
    B, D = x.shape
    R = crow.shape[0] - 1
    f64 = dict(dtype=torch.float64)
    m, sm, ac = torch.full((B, R), -1e300, **f64), torch.zeros(B, R, **f64), torch.zeros(B, D, **f64)
    scratch = [torch.empty(size, **f64) for size in (D * TILE, 2 * D * TILE, R * TILE, R, R)]
    fn(ctypes.c_int(D), ctypes.c_int(B), ctypes.c_int(hi - lo), _ptr(x), _ptr(yT[:, lo:]), ctypes.c_long(yT.stride(0)),
       ctypes.c_double(s), ctypes.c_int(R), _ptr(crow), _ptr(col), _ptr(w), _ptr(row),
       _ptr(m), _ptr(sm), _ptr(ac), *map(_ptr, scratch), _ptr(profile))
    return m, sm, ac
