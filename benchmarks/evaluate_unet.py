"""Evaluate the shipped UNet baselines against the Wiener filter and the optimal (memorizing) denoiser.

1. Denoising: 256 held-out test images, forward-noised at t = 200, 400, 600 (the same noise for
   every model); MSE of each model's x0-estimate to the clean image. Wiener and optimal denoisers are
   built on the full training split.
2. Generation: DDIM samples from the same starting noise (UNet with 10 and 100 steps, optimal
   denoiser with 10 steps); for each sample the L2 distance to its nearest training image, next to
   the same distance for held-out test images (what "new but typical" looks like). A PNG grid of
   samples and their nearest training images goes to ``runs/unet_samples_<dataset>.png``.

3. With ``--headroom``, at the largest timestep: the UNet's MSE on training images next to held-out
   ones (equal: it underfits there; lower: it memorizes), and the optimal denoiser built on the first
   N training images for N = 3,750 ... 60,000 (how far below the full-set optimal denoiser the true
   posterior mean lies, and which N the UNet is worth).

Usage: ``LOCALITY_DATA_DIR=... python benchmarks/evaluate_unet.py [--datasets mnist fashion_mnist]
[--checkpoints DIR] [--headroom] [--no-samples]`` (about 10 minutes per dataset on one busy CPU core,
most of it the optimal denoiser). ``--checkpoints DIR`` evaluates ``DIR/<dataset>.pt`` instead of the
shipped networks.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from locality_lib import DDPMSchedule, OptimalDenoiser, WienerDenoiser, ddim_sample, load_dataset, mse, nearest_train
from locality_lib.epsilon import UNetDenoiser

from common import TIMESTEPS, held_out, noised_training

ROOT = Path(__file__).resolve().parents[1]


def save_grid(path: Path, rows: list[tuple[str, torch.Tensor]], ncol: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(ncol * 0.6, len(rows) * 0.95))
    for ax, (title, imgs) in zip(axes, rows):
        strip = torch.cat([im[0] for im in imgs[:ncol]], dim=1)  # [H, ncol * W]
        ax.imshow(strip.clamp(-1, 1).numpy(), cmap="gray", vmin=-1, vmax=1)
        ax.set_title(title, fontsize=8, loc="left")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate(dataset: str, n_test: int, n_samples: int, timesteps, seed: int = 0, checkpoints=None,
             headroom: bool = False):
    schedule = DDPMSchedule()
    if checkpoints is None:
        unet = UNetDenoiser.from_pretrained(dataset)
    else:
        unet = UNetDenoiser.from_checkpoint(Path(checkpoints) / f"{dataset}.pt", dataset=dataset)
    meta = unet.meta
    print(f"\n## {dataset}: {unet!r}, {meta['epochs']} epochs, {meta['steps']} steps, "
          f"{meta['train_seconds'] / 60:.0f} min, final loss {meta['final_loss']}")
    train = load_dataset(dataset, "train")
    test, noisy, g = held_out(dataset, n_test, timesteps, seed)
    wiener = WienerDenoiser(train, schedule)
    optimal = OptimalDenoiser(train, schedule)
    models = {"UNet": unet, "Wiener": wiener, "Optimal": optimal}

    print(f"\nDenoising MSE to the clean image ({n_test} held-out test images, pixels in [-1, 1])\n")
    print("| t | sigma_t | " + " | ".join(models) + " |")
    print("|---|---|" + "---|" * len(models))
    for t in timesteps:
        x_t = noisy[t]
        with torch.no_grad():
            errs = [mse(m(x_t, t), test) for m in models.values()]
        print(f"| {t} | {schedule.sigma(t):.2f} | " + " | ".join(f"{e:.4f}" for e in errs) + " |")
    if headroom:
        t = max(timesteps)
        x_t = noisy[t]
        seen, x_seen = noised_training(train, n_test, t, seed)
        with torch.no_grad():
            print(f"\nt = {t}: UNet MSE on {n_test} training images {mse(unet(x_seen, t), seen):.4f} "
                  f"(held-out: {mse(unet(x_t, t), test):.4f})")
        print("optimal denoiser on the first N training images, same held-out queries:")
        n = train.shape[0]
        sizes = sorted({max(1, n // 2**k) for k in range(5)})
        for size in sizes:
            print(f"  N = {size:6d}: {mse(OptimalDenoiser(train[:size], schedule)(x_t, t), test):.4f}")
    if n_samples == 0:
        return

    x_T = torch.randn(n_samples, *test.shape[1:], generator=g)
    runs = {"UNet, 10 DDIM steps": (unet, 10), "UNet, 100 DDIM steps": (unet, 100), "Optimal, 10 DDIM steps": (optimal, 10)}
    samples = {}
    for name, (model, steps) in runs.items():
        t0 = time.time()
        samples[name] = ddim_sample(model, x_T, schedule, num_steps=steps).images
        print(f"  sampled {name} in {time.time() - t0:.0f} s")
    samples_test = test[:n_samples]
    print(f"\nL2 distance to the nearest of {train.shape[0]} training images ({n_samples} images each)\n")
    print("| images | median | 10th pct | min | share < 1.0 |")
    print("|---|---|---|---|---|")
    rows = []
    for name, x in list(samples.items()) + [("Held-out test images", samples_test)]:
        d, idx = nearest_train(x, train)
        q = torch.quantile(d, torch.tensor([0.5, 0.1], dtype=torch.float64))
        print(f"| {name} | {q[0]:.2f} | {q[1]:.2f} | {d.min():.2f} | {(d < 1.0).double().mean():.2f} |")
        rows += [(name, x), (f"  nearest training image (L2 {d[:16].mean():.2f} on average)", train[idx])]
    out = ROOT / "runs" / f"unet_samples_{dataset}.png"
    out.parent.mkdir(exist_ok=True)
    save_grid(out, rows, ncol=16)
    print(f"\nsamples and nearest neighbours: {out}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist"])
    p.add_argument("--n-test", type=int, default=256)
    p.add_argument("--n-samples", type=int, default=64)
    p.add_argument("--timesteps", type=int, nargs="+", default=list(TIMESTEPS))
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on a shared machine)")
    p.add_argument("--checkpoints", default=None, help="folder with <dataset>.pt to evaluate instead of the shipped ones")
    p.add_argument("--headroom", action="store_true", help="train-vs-test UNet error and optimal denoiser vs N")
    p.add_argument("--no-samples", action="store_true", help="denoising only (no DDIM sampling)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    for name in a.datasets:
        evaluate(name, a.n_test, 0 if a.no_samples else a.n_samples, a.timesteps, checkpoints=a.checkpoints,
                 headroom=a.headroom)


if __name__ == "__main__":
    main()
