"""How low can a learned denoiser get at one high noise level? A probe for the UNet's t = 600 gap.

At t = 600 the shipped UNets are 1.8 % (MNIST) and 3.5 % (Fashion-MNIST) behind the optimal
(memorizing) denoiser. This script asks whether that is the UNet's convolutional design or a limit of
learning from 60,000 images: it trains a plain fully connected network for that one timestep only,
``x0_hat = mu + MLP(x_t)`` (three hidden layers of ``--width`` SiLU units, no locality, no weight
sharing), on the x0-regression loss ``||x0_hat(x_t) - x0||^2`` with fresh noise every step (Adam,
batch 256, cosine learning rate from 1e-3 to 5e-5, EMA 0.998). Every ``--every`` steps it prints the
EMA network's MSE on the 256 held-out queries of ``evaluate_unet.py`` (same images, same noise) and
on 256 noised training images (one well below the held-out figure would mean it memorizes), then a
table next to the shipped UNet and the optimal denoiser on the same queries.

Usage: ``LOCALITY_DATA_DIR=... python benchmarks/probe_high_noise.py [--datasets mnist fashion_mnist]
[--t 600] [--steps 8000]`` (about 9 minutes per dataset on one CPU core with the defaults, plus a
minute for the optimal denoiser).
"""
from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn
from tqdm.auto import tqdm

from common import TIMESTEPS, held_out, noised_training
from locality_lib import DDPMSchedule, OptimalDenoiser, load_dataset, mse
from locality_lib.epsilon import UNetDenoiser


def mlp(dim: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                         nn.Linear(width, width), nn.SiLU(), nn.Linear(width, dim))


def probe(dataset: str, t: int, steps: int, width: int, every: int, n_test: int = 256, seed: int = 0):
    schedule = DDPMSchedule()
    train = load_dataset(dataset, "train")
    test, noisy, _ = held_out(dataset, n_test, sorted({*TIMESTEPS, t}), seed)
    x_test = noisy[t]
    seen, x_seen = noised_training(train, n_test, t, seed)
    flat = train.reshape(train.shape[0], -1)
    mu = flat.mean(0)
    torch.manual_seed(seed)
    net = mlp(flat.shape[1], width)
    ema = mlp(flat.shape[1], width).requires_grad_(False)
    ema.load_state_dict(net.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed + 2)

    def x0_hat(model, x):
        return (mu + model(x.reshape(x.shape[0], -1))).reshape(x.shape)

    print(f"\n## {dataset}, t = {t}: MLP with {sum(p.numel() for p in net.parameters()):,} parameters, {steps} steps")
    print("| step | held-out MSE | training-image MSE |\n|---|---|---|")
    start = time.time()
    for step in tqdm(range(1, steps + 1), desc=f"{dataset} MLP at t={t}", mininterval=5):
        x0 = flat[torch.randint(0, flat.shape[0], (256,), generator=gen)]
        x = schedule.add_noise(x0, t, torch.randn(x0.shape, generator=gen))
        for group in opt.param_groups:
            group["lr"] = 1e-3 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        loss = (mu + net(x) - x0).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), net.parameters()):
                e.lerp_(p, 0.002)
        if step % every == 0 or step == steps:
            with torch.no_grad():
                tqdm.write(f"| {step} | {mse(x0_hat(ema, x_test), test):.4f} | {mse(x0_hat(ema, x_seen), seen):.4f} |")
    minutes = (time.time() - start) / 60
    with torch.no_grad():
        rows = {f"MLP for t = {t} only ({minutes:.0f} min)": x0_hat(ema, x_test),
                "shipped UNet": UNetDenoiser.from_pretrained(dataset)(x_test, t),
                "optimal denoiser (60,000 images)": OptimalDenoiser(train, schedule)(x_test, t)}
    print(f"\n| model | held-out MSE at t = {t} |\n|---|---|")
    for name, est in rows.items():
        print(f"| {name} | {mse(est, test):.4f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist"])
    p.add_argument("--t", type=int, default=600)
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--every", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on a shared machine)")
    a = p.parse_args()
    if not 0 <= a.t < DDPMSchedule().num_steps:
        raise SystemExit(f"--t must lie in [0, {DDPMSchedule().num_steps - 1}], got {a.t}")
    torch.set_num_threads(a.threads)
    for name in a.datasets:
        probe(name, a.t, a.steps, a.width, a.every)


if __name__ == "__main__":
    main()
