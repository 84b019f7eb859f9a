"""Device follows the inputs: every denoiser gives the same answer for the same queries on CPU and on an accelerator.

Builds each model once from CPU training data (MNIST, N = 2,000), asks it for the same 4 noisy queries
as CPU tensors and as tensors on the accelerator (CUDA, else MPS, or ``$LOCALITY_CHECK_DEVICE``), and
prints the max absolute difference per model and timestep. Usage: ``LOCALITY_DATA_DIR=... python benchmarks/check_device.py`` on a machine with a GPU.
"""
from __future__ import annotations

import os
import time

import torch

from locality_lib import (DDPMSchedule, ELSDenoiser, LocalityDenoiser, LSDenoiser, NearestDenoiser,
                          OptimalDenoiser, WienerDenoiser, load_dataset)
from locality_lib.epsilon import UNetDenoiser


def main():
    device = os.environ.get("LOCALITY_CHECK_DEVICE") or (
        "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else None)
    if device is None:
        raise SystemExit("no CUDA or MPS device here: nothing to compare")
    name = torch.cuda.get_device_name(0) if device == "cuda" else device
    print(f"device: {name}, torch {torch.__version__}")
    train = load_dataset("mnist", n=2000)
    schedule = DDPMSchedule()
    x0 = load_dataset("mnist", split="test", n=4, seed=1)
    g = torch.Generator().manual_seed(0)
    models = {
        "optimal": OptimalDenoiser(train, schedule),
        "nearest": NearestDenoiser(train, schedule),
        "wiener": WienerDenoiser(train, schedule),
        "locality (runs)": LocalityDenoiser(train, schedule, threshold=0.02),
        "locality (dense)": LocalityDenoiser(train, schedule, threshold=0.02, method="dense"),
        "LS (P=5)": LSDenoiser(train[:500], schedule, patch_size=5),
        "ELS (P=5)": ELSDenoiser(train[:200], schedule, patch_size=5),
        "unet": UNetDenoiser.from_pretrained("mnist"),
    }
    worst = 0.0
    for t in (999, 500, 100, 0):
        x_t = schedule.add_noise(x0, t, torch.randn(x0.shape, generator=g))
        for label, model in models.items():
            start = time.perf_counter()
            cpu = model(x_t, t)
            on_dev = model(x_t.to(device), t)
            assert on_dev.device.type == device, f"{label} returned a {on_dev.device} tensor"
            diff = float((on_dev.cpu() - cpu).abs().max())
            worst = max(worst, diff) if label != "unet" else worst
            print(f"t={t:4d} {label:18s} max|gpu - cpu| = {diff:.2e}  ({time.perf_counter() - start:.2f} s)")
    print(f"worst difference over the analytical models: {worst:.2e}")


if __name__ == "__main__":
    main()
