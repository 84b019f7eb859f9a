"""The book's figure style: figures drawn for the page that shows them.

A figure in the built book is a PNG saved at :data:`DPI` and shown at its own pixel size, or shrunk
to the content column (:data:`CONTENT_PX` CSS px at a 1440-px window) when it is wider. What a reader
sees of a font of ``s`` points is therefore ``s * DPI / 72 * min(1, CONTENT_PX / width_px)`` px;
:func:`displayed_px` computes it and :func:`smallest_text_px` finds a figure's smallest text.

The helpers below each fix one thing a reader trips over:

- :func:`apply` sets the rcParams (``setup()`` calls it): no text under :data:`MIN_TEXT_PX` as shown;
- :func:`legend_outside` puts a legend beside (or under) the axes, off the data;
- :func:`level_colors` gives ``k`` steps of a sequential colour map that can be told apart;
- :func:`field_imshow` shows a field (a sensitivity map, a mask) always with its colour bar;
- :func:`mark_pixel` outlines one pixel and leaves its value visible.
"""
from __future__ import annotations

import io

import matplotlib as mpl
import numpy as np
from matplotlib import patheffects
from matplotlib.patches import Circle, Rectangle
from matplotlib.text import Text

__all__ = ["DPI", "CONTENT_PX", "MIN_TEXT_PX", "PAGE_WIDTH_IN", "RC", "apply", "displayed_px",
           "saved_width_px", "smallest_text_px", "legend_outside", "level_colors", "min_color_distance", "field_imshow",
           "mark_pixel"]

#: Dots per inch of every saved figure (inline PNGs and ``to_jshtml`` frames use ``figure.dpi``).
DPI = 100
#: Width in CSS px of the book's content column in a 1440-px window (sphinx-book-theme: the page is
#: at most 88rem, less the 20 % left sidebar, the 17rem right sidebar and 2rem of padding each side).
CONTENT_PX = 790
#: The smallest text a figure may show, in CSS px as displayed (the body text is 16 px).
MIN_TEXT_PX = 8.0
#: A figure this wide (inches) is shown at its own size and fills the content column.
PAGE_WIDTH_IN = CONTENT_PX / DPI

#: The book's rcParams: saved at :data:`DPI`; every font at least 8 pt (11 px at its own size).
RC = {
    "figure.dpi": DPI, "savefig.dpi": DPI, "figure.figsize": (6.4, 3.6),
    "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "xtick.labelsize": 9,
    "ytick.labelsize": 9, "legend.fontsize": 9, "legend.title_fontsize": 9, "figure.titlesize": 11,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    "image.cmap": "gray",
}


def apply() -> None:
    """Set the book's rcParams (:data:`RC`); ``locality_lib.chapter.setup()`` calls this."""
    mpl.rcParams.update(RC)


def displayed_px(points: float, width_in: float, dpi: float = DPI, content_px: float = CONTENT_PX) -> float:
    """The height in CSS px that a font of ``points`` has on the page, in a figure saved ``width_in``
    inches wide at ``dpi``: ``points * dpi / 72``, shrunk by ``content_px / (width_in * dpi)`` when
    the image is wider than the content column."""
    return points * dpi / 72 * min(1.0, content_px / (width_in * dpi))


def saved_width_px(fig, dpi: float = DPI) -> int:
    """Width in px of the PNG the book saves for ``fig`` (``bbox_inches="tight"``, as the inline
    backend and :func:`locality_lib.plotting.interactive` do)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return int.from_bytes(buf.getvalue()[16:20], "big")  # the PNG header's IHDR width


def smallest_text_px(fig, dpi: float = DPI, content_px: float = CONTENT_PX):
    """``(px, text)`` of the smallest visible, non-empty text of ``fig`` as shown on the page
    (see :func:`displayed_px`), or ``(inf, "")`` for a figure without text."""
    width_in = saved_width_px(fig, dpi) / dpi  # (saving also lays the figure out)
    best = (float("inf"), "")
    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip():
            best = min(best, (displayed_px(t.get_fontsize(), width_in, dpi, content_px), t.get_text()))
    return best


def legend_outside(ax, where: str = "right", **kwargs):
    """A legend beside the axes (``where="right"``, top-aligned) or under them (``"below"``), so it
    never covers the curves it labels; no frame. ``kwargs`` go to ``ax.legend``. Returns the legend."""
    if where == "right":
        place = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    elif where == "below":
        place = dict(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=kwargs.pop("ncol", 4))
    else:
        raise ValueError(f"legend_outside: where must be 'right' or 'below', got {where!r}")
    return ax.legend(**{"borderaxespad": 0.0, "frameon": False, **place, **kwargs})


def level_colors(k: int, cmap: str = "viridis", lo: float = 0.0, hi: float = 0.85) -> list:
    """``k`` colours for ``k`` ordered levels (noise levels, sizes), evenly spaced along ``cmap``
    from ``lo`` to ``hi`` by rank, not by value, so that t = 10, 50 and 100 do not all land on the
    dark end. Viridis's lightness rises steadily; ``hi = 0.85`` stops before its pale yellow,
    which vanishes on white. Returns RGBA tuples."""
    if k < 1:
        raise ValueError(f"level_colors: k must be >= 1, got {k}")
    cm = mpl.colormaps[cmap]
    return [cm(v) for v in (np.linspace(lo, hi, k) if k > 1 else [lo])]


def _lab(rgb) -> np.ndarray:
    """sRGB in [0, 1] (``[..., 3]``) -> CIELAB (D65), the space where distance ~ visible difference."""
    rgb = np.asarray(rgb, dtype=float)[..., :3]
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = lin @ np.array([[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]])
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def min_color_distance(colors) -> float:
    """The smallest CIELAB distance (Delta E 1976) between two of ``colors`` (any matplotlib colours);
    about 2 is just noticeable, 10 or more tells lines apart at a glance."""
    lab = _lab(np.array([mpl.colors.to_rgb(c) for c in colors]))
    d = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
    return float(d[np.triu_indices(len(lab), 1)].min()) if len(lab) > 1 else float("inf")


def field_imshow(ax, field, *, symmetric: bool | None = None, cmap: str | None = None, label: str | None = None,
                 **kwargs):
    """Show a 2-D field ``[H, W]`` (array or tensor) with its colour bar, so the reader can read its
    values. A field with negative values (when ``symmetric`` is None) uses the diverging ``RdBu_r``
    on a range symmetric around 0, else ``viridis``. ``label`` names the colour bar; ``kwargs`` go to
    ``imshow``. Axes ticks are turned off. Returns the image; its colour bar is ``im.colorbar``."""
    f = np.asarray(field.detach().cpu() if hasattr(field, "detach") else field, dtype=float)
    if f.ndim != 2:
        raise ValueError(f"field_imshow: expected a 2-D field [H, W], got shape {f.shape}")
    if symmetric is None:
        symmetric = bool((f < 0).any())
    if symmetric:
        v = float(np.abs(f).max()) or 1.0
        kwargs = {"vmin": -v, "vmax": v, **kwargs}
    im = ax.imshow(f, cmap=cmap or ("RdBu_r" if symmetric else "viridis"),
                   **{"interpolation": "nearest", **kwargs})
    ax.set_axis_off()
    cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.ax.tick_params(labelsize=mpl.rcParams["ytick.labelsize"])
    if label:
        cb.set_label(label)
    return im


def mark_pixel(ax, i: int, j: int, color: str = "black", shape: str = "square", pad: float = 0.15):
    """Outline pixel (row ``i``, column ``j``) of an image on ``ax``: an unfilled square (or circle)
    just outside the pixel, with a white halo, so the mark shows on any colour map and the marked
    pixel's own value stays visible. Returns the patch (its face is not filled)."""
    half = 0.5 + pad
    if shape == "square":
        patch = Rectangle((j - half, i - half), 2 * half, 2 * half, fill=False, edgecolor=color, linewidth=1.5)
    elif shape == "circle":
        patch = Circle((j, i), half * 1.2, fill=False, edgecolor=color, linewidth=1.5)
    else:
        raise ValueError(f"mark_pixel: shape must be 'square' or 'circle', got {shape!r}")
    patch.set_path_effects([patheffects.withStroke(linewidth=3.0, foreground="white")])
    ax.add_patch(patch)
    return patch
