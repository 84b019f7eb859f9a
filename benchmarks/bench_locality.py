"""The exact fast paths against what the paper's users run: its float32 dense formulation, same inputs, one process.

Baseline ("the paper's float32 path"): for each chunk of 512 training images, ``delta = x - sqrt(abar) y``,
its square, one einsum with the ``D x D`` float32 mask, then the softmax update (masks built before the
clock). Fast: ``LocalityDenoiser`` (default ``method="runs"``: the compiled kernel on the CPU, float64),
its per-t plan built inside the clock. Exactness: the float64 dense path (``method="dense"``).
The same for the optimal denoiser: ``OptimalDenoiser`` (float64, expanded square by GEMM) against the
direct float32 differences per chunk of 512, with the float64 direct differences as the reference.

Sets: MNIST (N = 60,000, t = 900, 800, ..., 0, tau = 0.005) and natural_patches 3x32x32 (N = 10,000,
t = 900, 500, 100, tau = 0.05), 8 test queries. Each set runs in its own subprocess (its own peak RSS);
each of ``--repeats`` rounds times the fast path at every t, then the baseline at every t; the tables give
the best round and the spread (max / min - 1) of each, and the total's ratio per round. Per step, where the kernel's time goes (its threads' seconds per phase).

Usage: ``python benchmarks/bench_locality.py [--threads 2] [--repeats 2] [--no-reference] [--only mnist]``;
``LOCALITY_BENCH_N_MNIST`` / ``LOCALITY_BENCH_N_PATCHES`` shrink N for a quick run.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch

CONFIGS = {
    "mnist": dict(n=int(os.environ.get("LOCALITY_BENCH_N_MNIST", 60000)), threshold=0.005, ts=list(range(900, -1, -100))),
    "natural_patches": dict(n=int(os.environ.get("LOCALITY_BENCH_N_PATCHES", 10000)), threshold=0.05, ts=[900, 500, 100]),
    "optimal": dict(data="mnist", n=int(os.environ.get("LOCALITY_BENCH_N_MNIST", 60000)), ts=list(range(900, -1, -100))),
}
CHUNK = 512


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def paper_locality(x, y, M, ab: float, coef: float, dtype):
    """The paper's formulation: per chunk of 512 images ``coef * einsum(delta^2, M)``, streaming softmax.
    ``x [B, D]``, ``y [N, D]``, ``M [D, D]`` already in ``dtype`` on the device."""
    from locality_lib.softmax import StreamingSoftmax

    acc = StreamingSoftmax()
    for i in range(0, y.shape[0], CHUNK):
        yb = y[i : i + CHUNK]
        delta = x[:, None, :] - ab**0.5 * yb[None]  # [B, K, D]
        acc.update(coef * torch.einsum("bkn,mn->bkm", delta * delta, M), yb)
    return acc.result()


def direct_optimal(x, y, ab: float, coef: float):
    """``softmax_i(coef ||x - sqrt(ab) y_i||^2)`` from direct differences per chunk of 512, in the dtype of x."""
    from locality_lib.softmax import StreamingSoftmax

    acc = StreamingSoftmax()
    for i in range(0, y.shape[0], CHUNK):
        yb = y[i : i + CHUNK]
        delta = x[:, None, :] - ab**0.5 * yb[None]
        acc.update(coef * (delta * delta).sum(-1), yb)
    return acc.result()


def run(name: str, repeats: int, reference: bool, threads: int) -> dict:
    from locality_lib import DDPMSchedule, LocalityDenoiser, OptimalDenoiser, load_dataset, runs_kernel

    torch.set_num_threads(threads)
    cfg = CONFIGS[name]
    device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    data = cfg.get("data", name)
    train = load_dataset(data, n=cfg["n"]).to(device)
    schedule = DDPMSchedule()
    g = torch.Generator().manual_seed(0)
    x0 = load_dataset(data, split="test", n=8, seed=1)
    xs = {t: schedule.add_noise(x0, t, torch.randn(x0.shape, generator=g)).to(device) for t in cfg["ts"]}
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    f32 = torch.float32
    y32 = train.reshape(train.shape[0], -1)
    ab_, coef_ = schedule.abar, lambda t: -1.0 / (2 * (1 - schedule.abar(t)))

    def clock(fn):
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        return time.perf_counter() - t0, out

    if name == "optimal":
        fast_den = OptimalDenoiser(train, schedule)
        fast = lambda t: fast_den(xs[t], t)  # noqa: E731
        base = lambda t: direct_optimal(xs[t].reshape(8, -1).to(f32), y32, ab_(t), coef_(t))  # noqa: E731
        ref = lambda t: direct_optimal(xs[t].reshape(8, -1).double(), y32.double(), ab_(t), coef_(t))  # noqa: E731
        rows = {t: dict(t=t) for t in cfg["ts"]}
        kernel = None
    else:
        fast_den = LocalityDenoiser(train, schedule, threshold=cfg["threshold"])
        dense = LocalityDenoiser(train, schedule, threshold=cfg["threshold"], stats=fast_den.stats, method="dense")
        masks = {t: fast_den.mask(t) for t in cfg["ts"]}
        dense._masks = masks  # the same masks, built once
        masks32 = {t: m.to(device, f32) for t, m in masks.items()}
        fast_den._pixel_major(device)  # the training set made pixel-major once per denoiser, like the masks
        fast = lambda t: fast_den(xs[t], t)  # noqa: E731
        base = lambda t: paper_locality(xs[t].reshape(8, -1).to(f32), y32, masks32[t], ab_(t), coef_(t), f32)  # noqa: E731
        ref = lambda t: dense(xs[t], t).reshape(8, -1)  # noqa: E731
        rows = {t: dict(t=t, mask_px=float(masks[t].sum(1).double().mean())) for t in cfg["ts"]}
        kernel = runs_kernel.load() is not None and device == "cpu"
    outs, base_outs = {}, {}
    for rep in range(repeats):
        for t in cfg["ts"]:
            if name != "optimal":
                fast_den._plans.clear()  # every round builds its plans inside the clock
                before = fast_den.profile.clone()
            sec, outs[t] = clock(lambda: fast(t))
            rows[t].setdefault("fast", []).append(sec)
            if name != "optimal":
                rows[t]["profile"] = (fast_den.profile - before).tolist()
        if rep == 0:
            rss_fast = peak_rss_gb()
        for t in cfg["ts"]:
            sec, base_outs[t] = clock(lambda: base(t))
            rows[t].setdefault("base", []).append(sec)
            print(f"{name} round {rep} t={t}: fast {rows[t]['fast'][-1]:.2f} s, paper f32 {sec:.2f} s",
                  file=sys.stderr, flush=True)
    for t in cfg["ts"]:
        if reference:  # float64 inputs for the comparison: float32 outputs would hide differences below 1e-7
            xs[t] = xs[t].double()
            r = fast(t).reshape(8, -1).cpu()
            sec, exact = clock(lambda: ref(t))
            exact = exact.double().cpu()
            rows[t].update(ref=sec, max_diff=float((r - exact).abs().max()),
                           base_diff=float((base_outs[t].double().cpu() - exact).abs().max()))
            print(f"{name} t={t}: reference done", file=sys.stderr, flush=True)
    return dict(name=name, n=cfg["n"], device=device, threads=torch.get_num_threads(), kernel=kernel,
                rows=list(rows.values()), peak_rss_fast_gb=rss_fast, peak_rss_gb=peak_rss_gb())


def report(res: dict) -> None:
    from locality_lib.runs_kernel import PHASES

    what = "OptimalDenoiser" if res["name"] == "optimal" else "LocalityDenoiser"
    data = "mnist" if res["name"] == "optimal" else res["name"]
    path = "compiled kernel" if res["kernel"] else "torch"
    print(f"\n{what}, {data}: N = {res['n']}, 8 queries, device {res['device']}, {res['threads']} threads"
          + ("" if res["name"] == "optimal" else f", fast path: {path}"))
    rows = res["rows"]
    spread = lambda v: max(v) / min(v) - 1  # noqa: E731
    has_ref = "max_diff" in rows[0]
    head = ["t"] + (["mask px"] if "mask_px" in rows[0] else []) + ["fast s", "spread", "paper f32 s", "spread", "ratio"]
    head += ["f64 ref s", "fast - ref", "f32 - ref"] if has_ref else []
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        cells = [str(r["t"])] + ([f"{r['mask_px']:.0f}"] if "mask_px" in r else [])
        cells += [f"{min(r['fast']):.2f}", f"{100 * spread(r['fast']):.0f}%", f"{min(r['base']):.2f}",
                  f"{100 * spread(r['base']):.0f}%", f"{min(r['base']) / min(r['fast']):.1f}x"]
        if has_ref:
            cells += [f"{r['ref']:.2f}", f"{r['max_diff']:.1e}", f"{r['base_diff']:.1e}"]
        print("| " + " | ".join(cells) + " |")
    fast, base = sum(min(r["fast"]) for r in rows), sum(min(r["base"]) for r in rows)
    rounds = len(rows[0]["fast"])
    fast_rounds = [sum(r["fast"][k] for r in rows) for k in range(rounds)]
    base_rounds = [sum(r["base"][k] for r in rows) for k in range(rounds)]
    ratios = [b / f for b, f in zip(base_rounds, fast_rounds)]
    print(f"total: fast {fast:.1f} s, paper's float32 {base:.1f} s, ratio {base / fast:.1f}x "
          f"(per round: {', '.join(f'{q:.1f}x' for q in ratios)})"
          + (f"; max |fast - float64 ref| {max(r['max_diff'] for r in rows):.1e}" if has_ref else "")
          + f"; peak RSS {res['peak_rss_fast_gb']:.2f} GB (fast path), {res['peak_rss_gb']:.2f} GB (all)")
    if res.get("kernel"):
        print("\nwhere the kernel's time goes (threads' seconds per phase, last round):")
        print("| t | " + " | ".join(PHASES) + " |\n|" + "---|" * (len(PHASES) + 1))
        for r in rows:
            tot = sum(r["profile"]) or 1.0
            print(f"| {r['t']} | " + " | ".join(f"{v:.2f} ({100 * v / tot:.0f}%)" for v in r["profile"]) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (and kernel threads)")
    ap.add_argument("--repeats", type=int, default=2, help="rounds of fast and baseline per set")
    ap.add_argument("--no-reference", action="store_true", help="skip the float64 exactness reference")
    ap.add_argument("--only", choices=list(CONFIGS), action="append", help="run only these sets")
    ap.add_argument("--json", help="also write the raw results to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run(args.child, args.repeats, not args.no_reference, args.threads)))
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    results = []
    for name in args.only or list(CONFIGS):
        cmd = [sys.executable, __file__, "--child", name, "--repeats", str(args.repeats), "--threads", str(args.threads)]
        cmd += ["--no-reference"] if args.no_reference else []
        results.append(json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout))
        report(results[-1])
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
