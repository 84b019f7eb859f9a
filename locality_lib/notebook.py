"""Set-up for the book's chapters: seeds, plot style, device, fast mode, one colour per model."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["setup", "fast_mode", "MODEL_COLORS", "pick"]

#: The same colour for the same model in every figure of the book.
MODEL_COLORS = {
    "unet": "#222222",
    "optimal": "#d62728",
    "nearest": "#ff9896",
    "wiener": "#1f77b4",
    "locality": "#2ca02c",
    "ls": "#9467bd",
    "els": "#8c564b",
    "patch": "#e377c2",
    "data": "#7f7f7f",
}


def fast_mode() -> bool:
    """True when ``LOCALITY_FAST=1``: chapters shrink their work so the test suite can run them all."""
    return os.environ.get("LOCALITY_FAST", "0") not in ("", "0", "false", "False")


def pick(full, fast):
    """``fast`` in fast mode, else ``full`` (e.g. ``N = pick(60_000, 2_000)``)."""
    return fast if fast_mode() else full


def setup(seed: int = 0, device: str | None = None) -> torch.device:
    """Seed Python, NumPy and torch; set the book's plot style; return the device to use
    (``device`` if given, else CUDA, then MPS, else CPU)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    import matplotlib as mpl

    mpl.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 100, "figure.figsize": (6.4, 3.6), "axes.spines.top": False,
        "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3, "font.size": 10,
        "image.cmap": "gray", "axes.titlesize": 10,
    })
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
