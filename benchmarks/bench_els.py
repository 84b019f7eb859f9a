"""Cost of one denoising step of the boundary-broken ELS machine against the training-set size N and the patch size P.

MNIST, 8 test queries forward-noised at t = 500. For each P, the work is the number of (query pixel, training
patch) pairs that the border classes allow, ``B x N x pairs(P)`` with ``pairs(P) = sum_m |L(m)|`` (``els_plan``):
about ``(H - P + 1)^4`` interior pairs plus the bands and corners, so it *falls* as P grows. The compiled kernel
does the same work per pair whatever P is (four reads of the window sums, two multiply-adds, one exponential),
so the column "ns per pair" should be flat in P and in N. For contrast, the padded machine (``PaddedELSDenoiser``,
every patch of every image for every pixel, ``O(B H W x distinct patches x P^2)``) at one N.

Peak memory: the process's peak resident set (``ru_maxrss``), printed at the end; the kernel itself holds
``B (C + 2) H W`` float64 of softmax state per thread and ``(C + 2) (H + 1) (W + 1) x 32`` float64 of scratch.

Usage: ``LOCALITY_DATA_DIR=... python benchmarks/bench_els.py [--threads T] [--n 250 500 1000 2000]``.
"""
from __future__ import annotations

import argparse
import os
import resource
import time

import torch

from locality_lib import DDPMSchedule, ELSDenoiser, PaddedELSDenoiser, load_dataset
from locality_lib.compare import markdown_table
from locality_lib.patches import els_plan

PATCH = [3, 5, 9, 13, 17, 21, 25, 27, 29]
T = 500


def seconds(den, x, t):
    """``(wall, cpu)`` seconds of one call ``den(x, t)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    den(x, t)
    return time.perf_counter() - wall, time.process_time() - cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the kernel runs one per thread)")
    ap.add_argument("--n", type=int, nargs="+", default=[250, 500, 1000, 2000], help="training-set sizes")
    ap.add_argument("--padded-n", type=int, default=25, help="N of the padded machine's row (0: skip it)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    schedule = DDPMSchedule()
    train = load_dataset("mnist", n=max(args.n), seed=0)
    q = load_dataset("mnist", split="test", n=8, seed=1)
    x = schedule.add_noise(q, T, torch.randn(q.shape, generator=torch.Generator().manual_seed(0)))
    B, C, H, W = x.shape
    print(f"MNIST, B = {B} queries, t = {T}, threads = {torch.get_num_threads()}, "
          f"load average = {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    rows = []
    for size in PATCH:
        pairs = int(els_plan(H, W, size // 2)[3].sum())
        cells = []
        for n in args.n:
            wall, cpu = seconds(ELSDenoiser(train[:n], schedule, size), x, T)
            cells.append(f"{wall:.2f} s ({1e9 * wall / (B * n * pairs):.2f} ns)")
        padded = ""
        if args.padded_n:
            wall, _ = seconds(PaddedELSDenoiser(train[: args.padded_n], schedule, size), x, T)
            padded = f"{wall:.2f} s"
        rows.append([f"P = {size}", f"{pairs:,}"] + cells + ([padded] if args.padded_n else []))
    print("\nOne denoising step, wall seconds (ns per pair = wall / (B N pairs)):\n")
    print(markdown_table(["patch", "pairs per image"] + [f"N = {n}" for n in args.n]
                         + ([f"padded, N = {args.padded_n}"] if args.padded_n else []), rows))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
