"""Sensitivity fields: rows of a denoiser's Jacobian, ``d x0_hat[m] / d x_t`` (Kadkhodaie et al. 2024;
the locality paper, Sec. 4), the map of input pixels an output pixel ``m`` listens to.

* ``sensitivity_field(den, x_t, t, pixels)`` -- by autograd, for any differentiable denoiser
  (UNet, Wiener, optimal, ...); input dependent in general.
* ``wiener_sensitivity_field(wiener, t, pixels)`` -- closed form for the Wiener filter: rows of
  ``W_t / sqrt(abar_t)``, the same for every input.
* ``field_agreement(den, wiener, x0, timesteps, pixels)`` -- how closely a network's fields follow the
  Wiener filter's: cosines, widths (``field_width``) and, for a planted pattern, the share of each field
  on the pattern (``mask_share``), over many held-out inputs.

``pixels`` is an int or a sequence of flat indices into ``C*H*W`` (``m = (c*H + h)*W + w``), a
sequence of ``(c, h, w)`` tuples, or a 1-D integer tensor; ``P`` is their number.
"""
from __future__ import annotations

import torch

from ._checks import check_images, check_timestep
from .base import denoiser_label

__all__ = ["sensitivity_field", "wiener_sensitivity_field", "pixel_indices", "field_width", "mask_share",
           "field_agreement"]


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


def _offsets(pixels, shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column offsets ``[P, D]`` of every input pixel ``n`` from each output pixel ``m_p``
    (channels share a position)."""
    c, h, w = shape
    idx = pixel_indices(pixels, shape)
    n = torch.arange(c * h * w)
    return (n % (h * w)) // w - ((idx % (h * w)) // w)[:, None], n % w - (idx % w)[:, None]


def _rows(fields: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Fields ``[..., P, C*H*W]`` or ``[..., P, C, H, W]`` as float64 rows ``[..., P, C*H*W]``."""
    lead = fields.shape[: fields.ndim - (3 if fields.shape[-3:] == shape else 1)]
    return fields.reshape(*lead, -1).double()


def field_width(fields: torch.Tensor, pixels, shape: tuple[int, int, int]) -> torch.Tensor:
    """RMS distance of each field from its output pixel: ``sqrt(sum_n |r_n - r_m|^2 F_n^2 / sum_n F_n^2)``.

    fields: ``[..., P, C*H*W]`` (or ``[..., P, C, H, W]``), row ``p`` the field of pixel ``m_p``; ``r_n`` is
    the ``(h, w)`` position of input pixel ``n`` (channels share it). Returns ``[..., P]`` float64, in pixels.
    """
    dr, dc = _offsets(pixels, shape)
    r2 = (dr**2 + dc**2).double()  # [P, D]
    f2 = _rows(fields, shape).pow(2)
    return ((f2 * r2.to(f2.device)).sum(-1) / f2.sum(-1)).sqrt()


def mask_share(fields: torch.Tensor, pixels, shape: tuple[int, int, int], mask: torch.Tensor, near: int = 1):
    """Share of ``|F|`` on the ``mask`` pixels farther than ``near`` (Chebyshev) from the output pixel.

    ``sum_{n in mask, max(|dr|, |dc|) > near} |F_n| / sum_n |F_n|`` for fields ``[..., P, C*H*W]``
    (or ``[..., P, C, H, W]``) and a 0/1 ``mask [C, H, W]``; returns ``[..., P]`` float64. It measures
    how much of a field sits on a far-away planted pattern rather than around its own pixel.
    """
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"mask has shape {tuple(mask.shape)}, expected the image shape {tuple(shape)}")
    dr, dc = _offsets(pixels, shape)
    far = torch.maximum(dr.abs(), dc.abs()) > near  # [P, D]
    keep = (far & (mask.reshape(-1)[None] > 0)).double()
    a = _rows(fields, shape).abs()
    return (a * keep.to(a.device)).sum(-1) / a.sum(-1)


def field_agreement(denoiser, wiener, x0: torch.Tensor, timesteps, pixels, mask: torch.Tensor | None = None,
                    near: int = 1, seed: int = 0, progress: bool = True) -> dict:
    """How closely a denoiser's sensitivity fields follow the Wiener filter's, across noise levels.

    For each ``t`` in ``timesteps`` the held-out images ``x0 [B, C, H, W]`` are noised with one fixed draw
    (generator ``seed``; the same draw at every t), ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``, and
    for every output pixel ``m_p`` in ``pixels``: the network's field ``J[b, p]`` (autograd, one backward
    pass per pixel over the batch) and the Wiener field ``F[p]`` (closed form, the same for every input).
    Returns float64 tensors (``T`` timesteps, ``P`` pixels, means over the ``B`` inputs):

    * ``"t"`` ``[T]``; ``"cosine"`` ``[T, P]``: mean over b of ``<J[b,p], F[p]> / (|J[b,p]| |F[p]|)``;
      ``"cosine_all"`` ``[T, B, P]`` before the mean;
    * ``"width"`` / ``"wiener_width"`` ``[T, P]``: :func:`field_width` of ``J`` (mean over b) and of ``F``;
      ``"width_all"`` ``[T, B, P]`` before the mean;
    * the one-pixel baseline, the cosine of each field with the field ``e_m`` that is 1 at its own pixel
      and 0 elsewhere (what a denoiser that only copies the pixel would score): ``"pixel_cosine_all"``
      ``[T, B, P]`` ``= J[b,p,m_p] / |J[b,p]|`` and ``"wiener_pixel_cosine"`` ``[T, P]`` ``= F[p,m_p] / |F[p]|``,
      which is also the cosine with the Wiener field of a one-pixel field;
    * with ``mask``: ``"mask_share"`` / ``"wiener_mask_share"`` ``[T, P]``: :func:`mask_share`.

    ``wiener`` must be built on the denoiser's own training data (same transform). The paper's protocol
    uses many held-out inputs; pass at least 64 for the book's numbers.
    """
    from tqdm.auto import tqdm

    shape = tuple(x0.shape[1:])
    ts = [int(check_timestep(t)) for t in timesteps]
    if not ts:
        raise ValueError("timesteps is empty; give at least one t")
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(int(seed)), dtype=x0.dtype)
    own = pixel_indices(pixels, shape)
    diag = torch.arange(own.numel())
    keys = ("cosine_all", "width_all", "wiener_width", "pixel_cosine_all", "wiener_pixel_cosine", "mask_share",
            "wiener_mask_share")
    out = {k: [] for k in keys}
    for t in tqdm(ts, desc=f"fields of {denoiser_label(denoiser)}", disable=not progress):
        x_t = wiener.schedule.add_noise(x0, t, eps)
        j = sensitivity_field(denoiser, x_t, t, pixels).flatten(2).double()  # [B, P, D]
        f = wiener_sensitivity_field(wiener, t, pixels).flatten(1)  # [P, D]
        out["cosine_all"].append((j * f).sum(-1) / (j.norm(dim=-1) * f.norm(dim=-1)))
        out["width_all"].append(field_width(j, pixels, shape))
        out["wiener_width"].append(field_width(f, pixels, shape))
        out["pixel_cosine_all"].append(j[:, diag, own] / j.norm(dim=-1))
        out["wiener_pixel_cosine"].append(f[diag, own] / f.norm(dim=-1))
        if mask is not None:
            out["mask_share"].append(mask_share(j, pixels, shape, mask, near).mean(0))
            out["wiener_mask_share"].append(mask_share(f, pixels, shape, mask, near))
    res = {k: torch.stack(v) for k, v in out.items() if v}
    res["cosine"] = res["cosine_all"].mean(1)
    res["width"] = res["width_all"].mean(1)
    res["t"] = torch.tensor(ts)
    return res
