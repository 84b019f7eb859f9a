"""How the ELS machine's agreement with the UNet changes with its training-set size N.

The paper's protocol (``locality_lib.compare.paper_protocol``: shared initial noise per seed, 10-step
DDIM, final-sample r2 to the UNet) on the first ``--seeds`` test seeds, for ELS machines on the first N
images of the chapter's training order (``load_dataset(name, n=N, seed=0)``), all with the patch sizes
that ``benchmarks/paper_protocol.py`` calibrated for ELS (so run that first). Writes
``locality_lib/results/els_scan_<dataset>.json`` after each N: ``{N: {"seeds", "final_r2", "seconds"}}``.

Usage: ``LOCALITY_DATA_DIR=... OMP_NUM_THREADS=1 python benchmarks/els_scan.py mnist [--n 25 50 100 200]``.
"""
from __future__ import annotations

import argparse
import json
import os

import torch

from locality_lib import DDPMSchedule, ELSDenoiser, load_dataset
from locality_lib.compare import RESULTS_DIR, paper_protocol
from locality_lib.epsilon import UNetDenoiser


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", choices=["mnist", "fashion_mnist"])
    ap.add_argument("--n", type=int, nargs="+", default=[25, 50, 100, 200])
    ap.add_argument("--seeds", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    schedule = DDPMSchedule()
    src = json.loads((RESULTS_DIR / f"paper_protocol_{args.dataset}.json").read_text())
    if "els" not in src["patch_sizes"]:
        raise SystemExit("no ELS calibration yet: run benchmarks/paper_protocol.py first")
    sizes = {int(t): p for t, p in src["patch_sizes"]["els"].items()}
    unet = UNetDenoiser.from_pretrained(args.dataset)
    path = RESULTS_DIR / f"els_scan_{args.dataset}.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    for n in args.n:
        if str(n) in data and len(data[str(n)]["seeds"]) == args.seeds:
            continue
        train = load_dataset(args.dataset, "train", n=n, seed=0)
        res = paper_protocol({"els": ELSDenoiser(train, schedule, sizes)}, unet, schedule, tuple(train.shape[1:]),
                             seeds=args.seeds)
        data[str(n)] = {"seeds": res.seeds["els"], "final_r2": res.final_r2["els"].tolist(),
                        "seconds": res.seconds["els"], "patch_sizes": src["patch_sizes"]["els"]}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
        print(f"{args.dataset} ELS N = {n}: mean final r2 {res.final_r2['els'].mean():.3f} "
              f"({args.seeds} seeds), {res.seconds['els']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
