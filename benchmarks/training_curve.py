"""How long is enough? Held-out denoising error and field agreement of a network along its training run.

    python benchmarks/training_curve.py runs/snap_dit_mnist [more folders or checkpoint files] [--n 128]

For every checkpoint (the ``--snapshot-every`` files that ``python -m locality_lib.train`` writes, in step
order, or checkpoint files given directly): the MSE on held-out test images (transformed as its training
data, noised with one fixed draw) at t = 200 and 400 next to the Wiener filter of its own training data,
the cosine between its sensitivity fields and the Wiener filter's (``field_agreement``) at three
noise levels, and the share of the W pixel (2, 5)'s field on the far part of the W (``mask_share``; the
planted networks' measure, a baseline for the others). Prints one row per checkpoint; locality_lib/checkpoints/README.md quotes the runs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from locality_lib import DDPMSchedule, EpsilonDenoiser, WienerDenoiser, load_dataset, mse, on_grid
from locality_lib.data import make_transform, w_mask
from locality_lib.sensitivity import field_agreement

MSE_T = (200, 400)
FIELD_T = (100, 400, 700)
PIXELS = [(0, 14, 14), (0, 9, 18), (0, 2, 5)]  # centre, off-centre, a pixel of the W (planted data)


def checkpoints(paths):
    for p in map(Path, paths):
        yield from sorted(p.glob("*.pt")) if p.is_dir() else [p]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--n", type=int, default=128, help="held-out images for the MSE")
    ap.add_argument("--n-fields", type=int, default=16, help="held-out inputs for the field cosines")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    schedule, wieners = DDPMSchedule(), {}
    print(f"{'checkpoint':40s} {'step':>5s} " + " ".join(f"mse{t} (W)".rjust(15) for t in MSE_T)
          + " " + " ".join(f"cos{t}".rjust(7) for t in FIELD_T) + " " + " ".join(f"W{t}".rjust(6) for t in FIELD_T),
          flush=True)
    for path in checkpoints(a.paths):
        den = net = EpsilonDenoiser.from_checkpoint(path)
        transform = net.transform
        if (den.meta.get("transform") or {}).get("name") == "shuffled":  # read it on the grid (same MSE)
            den, transform = on_grid(den), make_transform(None)
        key = (net.dataset, repr(transform))
        if key not in wieners:
            wieners[key] = WienerDenoiser(transform(load_dataset(net.dataset, "train")), schedule)
        wiener = wieners[key]
        test = transform(load_dataset(net.dataset, "test", n=a.n, seed=1))
        noise = torch.randn(test.shape, generator=torch.Generator().manual_seed(0))
        cells = []
        for t in MSE_T:
            x_t = schedule.add_noise(test, t, noise)
            with torch.no_grad():
                cells.append(f"{mse(den(x_t, t), test):.4f} ({mse(wiener(x_t, t), test):.4f})")
        fa = field_agreement(den, wiener, test[: a.n_fields], FIELD_T, PIXELS, mask=w_mask(), progress=False)
        cos = " ".join(f"{c:7.3f}" for c in fa["cosine"].mean(1).tolist())
        share = " ".join(f"{c:6.3f}" for c in fa["mask_share"][:, 2].tolist())  # the W pixel's field on the W
        print(f"{str(path)[-40:]:40s} {net.meta['steps']:5d} " + " ".join(c.rjust(15) for c in cells) + " " + cos
              + " " + share, flush=True)


if __name__ == "__main__":
    sys.exit(main())
