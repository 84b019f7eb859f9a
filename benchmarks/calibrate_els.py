"""Kamb & Ganguli's calibration of the ELS machine's patch sizes against a trained network, as their code does it.

Along the network's own 10-step DDIM trajectory (leading spacing) from ``--samples`` calibration seeds
(20000, 20001, ...: disjoint from the protocol's test seeds 0..127 and from the LS calibration seeds), every
candidate size's boundary-broken ELS machine (``ELSDenoiser``, ``--n`` training images, seed-0 subset) and the
network give scores ``(sqrt(abar) x0_hat - x_t) / (1 - abar)``; per sample the size with the largest cosine
wins, and each step's size is the median of the winners (``locality_lib.calibrate_by_score``). Candidates:
every odd size from 3 to H - 1 and H + 1 (every pixel a corner: the LS machine with that patch).

Writes ``locality_lib/results/els_calibration_<dataset>.json``: the sizes per step, the winners per sample,
the median cosine per size and step, the r2 of each size along the same trajectory (for comparison), the
settings and the seconds. ``benchmarks/paper_protocol.py`` reads the sizes from it.

Usage (about 30 min per dataset on this project's 2-core CPU)::

    LOCALITY_DATA_DIR=... python benchmarks/calibrate_els.py mnist [--referee unet/mnist]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from locality_lib import DDPMSchedule, ELSDenoiser, calibrate_by_score, load_dataset, pretrained
from locality_lib.compare import RESULTS_DIR, paper_noise

#: Kamb & Ganguli's shipped schedule for their MNIST UNet (files/scales_MNIST_UNet_zeros.pt, 20 cosine-schedule
#: steps), mapped by abar to this book's 10 DDIM steps t = 900 ... 0 (DESIGN.md).
AUTHORS_MNIST = {900: 27, 800: 27, 700: 27, 600: 25, 500: 23, 400: 17, 300: 11, 200: 9, 100: 5, 0: 3}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", choices=["mnist", "fashion_mnist"])
    ap.add_argument("--referee", default=None, help="a pretrained network's name (default: unet/<dataset>)")
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--n", type=int, default=5000, help="training images of the candidate machines")
    args = ap.parse_args()
    referee = args.referee or f"unet/{args.dataset}"
    net = pretrained(referee)
    train = load_dataset(args.dataset, "train", n=args.n, seed=0)
    H = train.shape[-1]
    sizes = list(range(3, H, 2)) + [H + 1 if H % 2 == 0 else H]
    seeds = list(range(20_000, 20_000 + args.samples))
    x_T = paper_noise(seeds, tuple(train.shape[1:]))
    start = time.perf_counter()
    best, cos, comp = calibrate_by_score(ELSDenoiser, train, net, x_T, sizes, DDPMSchedule(), num_steps=10)
    seconds = time.perf_counter() - start
    winners = torch.tensor(sizes)[cos.argmax(1)]
    out = {
        "dataset": args.dataset, "referee": referee, "n_train": args.n, "seeds": seeds, "sizes": sizes,
        "timesteps": comp.timesteps, "best": {str(t): p for t, p in best.items()},
        "winners": {str(t): winners[k].tolist() for k, t in enumerate(comp.timesteps)},
        "median_cosine": {str(t): cos[k].median(1).values.tolist() for k, t in enumerate(comp.timesteps)},
        "mean_r2": {str(t): [float(comp.metrics["r2"][f"P = {p}"][k]) for p in sizes]
                    for k, t in enumerate(comp.timesteps)},
        "authors_mnist_unet": {str(t): p for t, p in AUTHORS_MNIST.items()},
        "seconds": round(seconds, 1),
    }
    name = "" if referee == f"unet/{args.dataset}" else "_" + referee.replace("/", "_")
    path = RESULTS_DIR / f"els_calibration_{args.dataset}{name}.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"{args.dataset} against {referee}: {best} ({seconds:.0f} s) -> {path}")
    print("authors' MNIST UNet schedule:", AUTHORS_MNIST)


if __name__ == "__main__":
    main()
