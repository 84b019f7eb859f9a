"""Figures for the book: image grids, sensitivity fields, and sliders with a static fallback."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["to_numpy_image", "image_grid", "show_images", "field_image", "explore"]


def to_numpy_image(x: torch.Tensor) -> np.ndarray:
    """``[C, H, W]`` in [-1, 1] -> ``[H, W]`` (C = 1) or ``[H, W, 3]`` in [0, 1] for ``imshow``."""
    x = x.detach().float().cpu().clamp(-1, 1)
    x = (x + 1) / 2
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def image_grid(x: torch.Tensor, nrow: int = 8, pad: int = 1) -> np.ndarray:
    """Tile ``[B, C, H, W]`` images in [-1, 1] into one array (rows of ``nrow``), white padding."""
    b, c, h, w = x.shape
    ncol = min(nrow, b)
    nr = (b + ncol - 1) // ncol
    grid = torch.ones(c, nr * (h + pad) + pad, ncol * (w + pad) + pad)
    for k in range(b):
        r, q = divmod(k, ncol)
        grid[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = x[k].detach().float().cpu().clamp(-1, 1)
    return to_numpy_image(grid)


def show_images(x: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None):
    """Show ``[B, C, H, W]`` images in [-1, 1] as one grid; returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(min(1.0 * min(nrow, x.shape[0]), 10), 1.0 * ((x.shape[0] + nrow - 1) // nrow) + 0.3))
    ax.imshow(image_grid(x, nrow), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def field_image(field: torch.Tensor, shape, ax=None, title: str | None = None, symmetric: bool = True):
    """Show a sensitivity field or mask (a vector of ``C*H*W`` values) as an image with a diverging colour map."""
    f = torch.as_tensor(field).detach().double().cpu().reshape(shape)
    f = f.abs().sum(0) if f.shape[0] > 1 else f[0]  # channels: total magnitude
    if ax is None:
        _, ax = plt.subplots(figsize=(2.2, 2.2))
    if symmetric and (f < 0).any():
        v = float(f.abs().max()) or 1.0
        im = ax.imshow(f.numpy(), cmap="RdBu_r", vmin=-v, vmax=v, interpolation="nearest")
    else:
        im = ax.imshow(f.numpy(), cmap="viridis", interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return im


def explore(draw, values, label: str = "t", interval: int = 600):
    """An interactive slider over ``values`` that redraws with ``draw(value, fig)``, with a static fallback.

    Returns an HTML animation (``to_jshtml``: one frame per value, with its own slider and
    buttons) that works in the rendered book without a kernel. In a live notebook, pass the same
    ``draw`` to ``ipywidgets.interact`` for a live slider.
    """
    from matplotlib import animation
    from IPython.display import HTML

    values = list(values)
    fig = plt.figure(figsize=(6.4, 2.6))

    def frame(k):
        fig.clear()
        draw(values[k], fig)
        fig.suptitle(f"{label} = {values[k]}", fontsize=10)

    anim = animation.FuncAnimation(fig, frame, frames=len(values), interval=interval)
    html = HTML(anim.to_jshtml(default_mode="once"))
    plt.close(fig)
    return html
