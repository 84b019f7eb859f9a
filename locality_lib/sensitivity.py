"""Sensitivity fields: rows of a denoiser's Jacobian, ``d x0_hat[m] / d x_t`` (Kadkhodaie et al. 2024;
the locality paper, Sec. 4), the map of input pixels an output pixel ``m`` listens to.

* ``sensitivity_field(den, x_t, t, pixels)`` -- by autograd, for any differentiable denoiser
  (UNet, Wiener, optimal, ...); input dependent in general.
* ``wiener_sensitivity_field(wiener, t, pixels)`` -- closed form for the Wiener filter: rows of
  ``W_t / sqrt(abar_t)``, the same for every input.

``pixels`` is an int or a sequence of flat indices into ``C*H*W`` (``m = (c*H + h)*W + w``), a
sequence of ``(c, h, w)`` tuples, or a 1-D integer tensor; ``P`` is their number.
"""
from __future__ import annotations

import torch

from ._checks import check_images, check_timestep

__all__ = ["sensitivity_field", "wiener_sensitivity_field", "pixel_indices"]


def pixel_indices(pixels, shape: tuple[int, int, int]) -> torch.Tensor:
    """Flat indices ``[P]`` (long) into ``C*H*W`` for ``pixels`` (see the module docstring); ``ValueError`` if out of range."""
    c, h, w = shape
    d = c * h * w
    if isinstance(pixels, torch.Tensor):
        if pixels.dtype.is_floating_point or pixels.dtype == torch.bool or pixels.ndim != 1:
            raise ValueError(f"pixels as a tensor must be a 1-D integer tensor, got {pixels.dtype} shape {tuple(pixels.shape)}")
        items = pixels.tolist()
    elif isinstance(pixels, int) and not isinstance(pixels, bool):
        items = [pixels]
    else:
        try:
            items = list(pixels)
        except TypeError:
            raise ValueError(f"pixels must be an int, a sequence of ints or (c, h, w) tuples, got {pixels!r}") from None
    if not items:
        raise ValueError("pixels is empty; give at least one pixel")
    flat = []
    for p in items:
        if isinstance(p, (tuple, list)):
            if len(p) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in p):
                raise ValueError(f"a pixel tuple must be (c, h, w) ints, got {p!r}")
            if not (0 <= p[0] < c and 0 <= p[1] < h and 0 <= p[2] < w):
                raise ValueError(f"pixel {tuple(p)} is outside the image shape (C, H, W) = {shape}")
            flat.append((p[0] * h + p[1]) * w + p[2])
        elif isinstance(p, int) and not isinstance(p, bool):
            if not 0 <= p < d:
                raise ValueError(f"flat pixel index {p} is outside 0..{d - 1} (C*H*W for {shape})")
            flat.append(p)
        else:
            raise ValueError(f"each pixel must be a flat int index or a (c, h, w) tuple, got {p!r}")
    return torch.tensor(flat, dtype=torch.long)


def sensitivity_field(denoiser, x_t: torch.Tensor, t, pixels) -> torch.Tensor:
    """Jacobian rows ``J[b, p] = d x0_hat(x_t)[b, m_p] / d x_t[b]`` by reverse-mode autograd.

    x_t: ``[B, C, H, W]``; t: an int (or a ``[B]`` long tensor); returns ``[B, P, C, H, W]`` in the dtype
    of ``x_t`` (use float64 for checks). One backward pass per pixel, all ``B`` images at once: it
    assumes the denoiser treats the images of a batch independently (true of every model here; a
    net with batch statistics would not be). Needs a denoiser built from differentiable torch ops.
    """
    check_images(x_t, "x_t", getattr(denoiser, "shape", None))
    check_timestep(t)
    idx = pixel_indices(pixels, tuple(x_t.shape[1:]))
    x = x_t.detach().requires_grad_(True)
    with torch.enable_grad():
        out = denoiser(x, t).reshape(x.shape[0], -1)[:, idx.to(x.device)]  # [B, P]
        if not out.requires_grad:
            raise ValueError(f"{type(denoiser).__name__} is not differentiable: its output does not depend on x_t "
                             f"through autograd (is it wrapped in torch.no_grad?)")
        rows = []
        for p in range(idx.numel()):
            (g,) = torch.autograd.grad(out[:, p].sum(), x, retain_graph=p + 1 < idx.numel(), allow_unused=True)
            rows.append(torch.zeros_like(x) if g is None else g)
    return torch.stack(rows, dim=1)


def wiener_sensitivity_field(wiener, t: int, pixels) -> torch.Tensor:
    """Closed form for a ``WienerDenoiser``: rows ``m_p`` of ``d x0_hat / d x_t = W_t / sqrt(abar_t)``.

    Returns ``[P, C, H, W]`` float64 (the same for every input ``x_t``).
    """
    from .wiener import WienerDenoiser

    if not isinstance(wiener, WienerDenoiser):
        raise ValueError(f"wiener_sensitivity_field needs a WienerDenoiser, got {type(wiener).__name__}; "
                         f"use sensitivity_field for other denoisers")
    check_timestep(t, wiener.schedule.num_steps)
    idx = pixel_indices(pixels, wiener.shape)
    return wiener.jacobian(int(t))[idx].reshape(idx.numel(), *wiener.shape)
