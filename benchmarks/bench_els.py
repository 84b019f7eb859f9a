"""Cost of one denoising step of the patch machines (LS, ELS) against the training-set size N.

MNIST, 8 test queries forward-noised at t = 500, patch sizes 3, 7 and 11 (the range ELS's own calibration
picks, chapter 7), N = 25 ... 400 training images for ELS (LS: the same N; it scans only one patch per image).
ELS compares every query patch with every distinct training patch (``O(B H W x patches x P^2)``), LS only
with the patches at the same place (``O(B N H W)``, independent of P). ELS rows stop once the next N is
projected (linear in N) to take the ELS total past ``--budget`` seconds; those cells read "skipped".
Each cell is "wall s / CPU s" of the best of the runs: on a shared machine the process CPU time (one
thread by default) is the honest figure; on an idle core the two agree.

The paper's protocol (chapter 7) runs 128 seeds through 10 DDIM steps: a cell times 16 x 10 = 160 is
what one model's headline costs at that N and P (the cost is linear in the batch).

Usage: ``LOCALITY_DATA_DIR=... python benchmarks/bench_els.py [--budget 150] [--threads T]``.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from locality_lib import DDPMSchedule, ELSDenoiser, LSDenoiser, load_dataset
from locality_lib.compare import markdown_table

SIZES_N = [25, 50, 100, 200, 400]
PATCH = [3, 7, 11]
T = 500


def seconds(den, x, t, repeat=1):
    """Best ``(wall, cpu)`` seconds of ``repeat`` calls ``den(x, t)``."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        den(x, t)
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=150.0, help="seconds for all ELS runs together")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    schedule = DDPMSchedule()
    train = load_dataset("mnist", n=max(SIZES_N), seed=0)
    q = load_dataset("mnist", split="test", n=8, seed=1)
    x = schedule.add_noise(q, T, torch.randn(q.shape, generator=torch.Generator().manual_seed(0)))
    print(f"MNIST, B = {x.shape[0]} queries, t = {T}, torch threads = {torch.get_num_threads()}, "
          f"load average = {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    rows, els_total = [], 0.0
    for size in PATCH:
        ls = [seconds(LSDenoiser(train[:n], schedule, size), x, T, repeat=3) for n in SIZES_N]
        rows.append([f"LS, P = {size}"] + [f"{w:.2f} / {c:.2f}" for w, c in ls])
        cells, last = [], None
        for n in SIZES_N:
            projected = last * n / prev_n if last is not None else 0.0
            if els_total + projected > args.budget:
                cells.append(f"skipped (~{projected:.0f})")
                continue
            (last, cpu), prev_n = seconds(ELSDenoiser(train[:n], schedule, size), x, T), n
            els_total += last
            cells.append(f"{last:.2f} / {cpu:.2f}")
        rows.append([f"ELS, P = {size}"] + cells)
    print("\nSeconds per denoising step, wall / CPU (8 queries, 28 x 28):\n")
    print(markdown_table(["model"] + [f"N = {n}" for n in SIZES_N], rows))


if __name__ == "__main__":
    main()
