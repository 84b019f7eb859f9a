"""Fast (``method="runs"``, the default) vs plain dense ``LocalityDenoiser`` on the same inputs, in one process.

MNIST: 8 queries, the 10 DDIM steps t = 900, ..., 0, threshold 0.005 (paper setting, N = 60,000).
natural_patches (3x32x32): t = 900, 500, 100, threshold 0.05, N = 10,000.
Each configuration runs in its own subprocess so that its peak RSS (``ru_maxrss``) is its own.
Masks are built before timing for both methods. ``LOCALITY_BENCH_N_MNIST`` / ``LOCALITY_BENCH_N_PATCHES``
shrink N for a quick run (ratios, not absolute times, are what compares).
"""
import json
import os
import platform
import resource
import subprocess
import sys
import time

CONFIGS = {
    "mnist": dict(n=int(os.environ.get("LOCALITY_BENCH_N_MNIST", 60000)), threshold=0.005, ts=list(range(900, -1, -100))),
    "natural_patches": dict(n=int(os.environ.get("LOCALITY_BENCH_N_PATCHES", 10000)), threshold=0.05, ts=[900, 500, 100]),
}


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def run(name: str) -> dict:
    import torch

    from locality_lib import DDPMSchedule, LocalityDenoiser, load_dataset

    cfg = CONFIGS[name]
    device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    train = load_dataset(name, n=cfg["n"]).to(device)
    schedule = DDPMSchedule()
    g = torch.Generator().manual_seed(0)
    x0 = load_dataset(name, split="test", n=8, seed=1)
    xs = {t: schedule.add_noise(x0, t, torch.randn(x0.shape, generator=g)).to(device) for t in cfg["ts"]}
    fast = LocalityDenoiser(train, schedule, threshold=cfg["threshold"])
    dense = LocalityDenoiser(train, schedule, threshold=cfg["threshold"], stats=fast.stats, method="dense")
    for t in cfg["ts"]:
        fast.mask(t), dense.mask(t)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rows, outs = [], {}
    for t in cfg["ts"]:
        sync()
        t0 = time.perf_counter()
        outs[t] = fast(xs[t], t)
        sync()
        rows.append(dict(t=t, fast=time.perf_counter() - t0, mask_fraction=float(fast.mask(t).double().mean())))
    rss_fast = peak_rss_gb()
    for row in rows:
        sync()
        t0 = time.perf_counter()
        ref = dense(xs[row["t"]], row["t"])
        sync()
        row["dense"] = time.perf_counter() - t0
        row["max_diff"] = float((outs[row["t"]] - ref).abs().max())
    return dict(name=name, n=cfg["n"], device=str(device), threads=torch.get_num_threads(), rows=rows,
                peak_rss_fast_gb=rss_fast, peak_rss_gb=peak_rss_gb())


def main():
    if len(sys.argv) == 2:
        print(json.dumps(run(sys.argv[1])))
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    for name in CONFIGS:
        res = json.loads(subprocess.run([sys.executable, __file__, name], check=True, capture_output=True, text=True).stdout)
        print(f"\n{name}: N = {res['n']}, 8 queries, device {res['device']}, {res['threads']} threads")
        print(f"{'t':>5} {'mask %':>7} {'runs s':>8} {'dense s':>8} {'ratio':>6} {'max diff':>9}")
        for r in res["rows"]:
            print(f"{r['t']:>5} {100 * r['mask_fraction']:>7.1f} {r['fast']:>8.2f} {r['dense']:>8.2f} "
                  f"{r['dense'] / r['fast']:>6.2f} {r['max_diff']:>9.1e}")
        fast, dense = sum(r["fast"] for r in res["rows"]), sum(r["dense"] for r in res["rows"])
        print(f"total: runs {fast:.1f} s ({fast / len(res['rows']):.2f} s/step), dense {dense:.1f} s "
              f"({dense / len(res['rows']):.2f} s/step), ratio {dense / fast:.2f}; "
              f"max diff {max(r['max_diff'] for r in res['rows']):.1e}; "
              f"peak RSS {res['peak_rss_fast_gb']:.2f} GB (runs), {res['peak_rss_gb']:.2f} GB (both)")


if __name__ == "__main__":
    main()
