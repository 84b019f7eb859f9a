"""How the ELS machine's agreement with the UNet changes with its training-set size N.

The paper's protocol (``locality_lib.compare.paper_protocol``: shared initial noise per seed, 10-step
DDIM, final-sample r2 to the UNet) on the first ``--seeds`` test seeds, for ELS machines on the first N
images of the chapter's training order (``load_dataset(name, n=N, seed=0)``), all with the patch sizes
that ``benchmarks/paper_protocol.py`` used for that machine (so run that first). ``--machine els`` (the
boundary-broken machine, ``ELSDenoiser``) writes ``locality_lib/results/els_scan_<dataset>.json``;
``--machine els_padded`` (``PaddedELSDenoiser``) ``els_padded_scan_<dataset>.json``; after each N:
``{N: {"seeds", "final_r2", "seconds", "patch_sizes"}}``.

Usage: ``LOCALITY_DATA_DIR=... python benchmarks/els_scan.py mnist [--n 2000 5000 10000] [--threads 2]``.
"""
from __future__ import annotations

import argparse
import json
import os

import torch

from locality_lib import DDPMSchedule, ELSDenoiser, PaddedELSDenoiser, load_dataset
from locality_lib.compare import RESULTS_DIR, paper_protocol
from locality_lib.epsilon import UNetDenoiser


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", choices=["mnist", "fashion_mnist"])
    ap.add_argument("--n", type=int, nargs="+", default=[2000, 5000, 10000])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--machine", choices=["els", "els_padded"], default="els")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    machine = {"els": ELSDenoiser, "els_padded": PaddedELSDenoiser}[args.machine]
    schedule = DDPMSchedule()
    src = json.loads((RESULTS_DIR / f"paper_protocol_{args.dataset}.json").read_text())
    if args.machine not in src["patch_sizes"]:
        raise SystemExit(f"no {args.machine} patch sizes yet: run benchmarks/paper_protocol.py first")
    sizes = {int(t): p for t, p in src["patch_sizes"][args.machine].items()}
    unet = UNetDenoiser.from_pretrained(args.dataset)
    path = RESULTS_DIR / f"{args.machine}_scan_{args.dataset}.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    for n in args.n:
        if str(n) in data and len(data[str(n)]["seeds"]) == args.seeds:
            continue
        train = load_dataset(args.dataset, "train", n=n, seed=0)
        res = paper_protocol({"els": machine(train, schedule, sizes)}, unet, schedule, tuple(train.shape[1:]),
                             seeds=args.seeds)
        data[str(n)] = {"seeds": res.seeds["els"], "final_r2": res.final_r2["els"].tolist(),
                        "seconds": res.seconds["els"], "patch_sizes": src["patch_sizes"][args.machine]}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
        print(f"{args.dataset} {args.machine} N = {n}: mean final r2 {res.final_r2['els'].mean():.3f} "
              f"({args.seeds} seeds), {res.seconds['els']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
