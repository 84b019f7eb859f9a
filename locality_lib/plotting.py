"""Figures for the book: image grids, sensitivity fields, and live controls with a static fallback.

The figure style's helpers (``legend_outside``, ``level_colors``, ``field_imshow``, ``mark_pixel``)
live in :mod:`locality_lib.style` and are importable from here too."""
from __future__ import annotations

import html
import io
import os
import re
import time
import traceback

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .style import field_imshow, legend_outside, level_colors, mark_pixel  # the book's figure style

__all__ = ["to_numpy_image", "image_grid", "show_images", "field_image", "explore", "interactive",
           "live_controls", "static_animation", "book_build", "BOOK_BUILD_ENV", "LIVE",
           "field_imshow", "legend_outside", "level_colors", "mark_pixel"]

#: Set to ``1`` by every book build (Makefile, tests/test_book.py, the publishing workflow):
#: :func:`interactive` then returns the static animation that the rendered page can show.
BOOK_BUILD_ENV = "LOCALITY_BOOK_BUILD"

#: Every box :func:`live_controls` has made in this process, oldest first (tests find a notebook's controls here).
LIVE: list = []


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


def field_image(field: torch.Tensor, shape, ax=None, title: str | None = None, symmetric: bool = True,
                label: str | None = None):
    """Show a sensitivity field or mask (a vector of ``C*H*W`` values) as an image with its colour bar
    (:func:`locality_lib.style.field_imshow`): diverging and symmetric around 0 when it has negative
    values and ``symmetric``, else ``viridis``. Channels are summed in magnitude. Returns the image."""
    f = torch.as_tensor(field).detach().double().cpu().reshape(shape)
    f = f.abs().sum(0) if f.shape[0] > 1 else f[0]  # channels: total magnitude
    if ax is None:
        _, ax = plt.subplots(figsize=(2.6, 2.2))
    im = field_imshow(ax, f.numpy(), symmetric=bool(symmetric and (f < 0).any()), label=label)
    if title:
        ax.set_title(title)
    return im


_NEW_ANIMATION = re.compile(r"(anim(\w+) = new Animation\([^;]*\);)")


def _first_frame(first_frame, n_frames: int) -> int:
    """``first_frame`` as an index in ``0..n_frames-1`` (negative counts from the end), else ValueError."""
    if not (_is_int(first_frame) and -n_frames <= first_frame < n_frames):
        raise ValueError(f"first_frame must be an int index into the {n_frames} frames, got {first_frame!r}")
    return int(first_frame) % n_frames


def _open_on(jshtml: str, first_frame: int, n_frames: int) -> str:
    """``to_jshtml`` output that opens on frame ``first_frame`` instead of frame 0 (matplotlib has no
    option for it: the animation object is told to show that frame right after it is made)."""
    first_frame = _first_frame(first_frame, n_frames)
    if first_frame == 0:
        return jshtml
    out, found = _NEW_ANIMATION.subn(rf"\1 anim\2.set_frame({first_frame});", jshtml, count=1)
    if not found:
        raise RuntimeError("to_jshtml output changed: no 'new Animation(...)' to set the first frame on")
    return out


def explore(draw, values, label: str = "t", interval: int = 600, first_frame: int = 0):
    """An interactive slider over ``values`` that redraws with ``draw(value, fig)``, with a static fallback.

    Returns an HTML animation (``to_jshtml``: one frame per value, with its own slider and
    buttons) that works in the rendered book without a kernel, also in a live notebook; for
    controls that recompute there, use :func:`interactive`. The page opens on frame ``first_frame``
    (an index into ``values``): choose the most telling one, since many readers never move the slider.
    """
    from matplotlib import animation
    from IPython.display import HTML

    values = list(values)
    _first_frame(first_frame, len(values))
    fig = plt.figure(figsize=(6.4, 2.6))

    def frame(k):
        fig.clear()
        draw(values[k], fig)
        fig.suptitle(f"{label} = {values[k]}", fontsize=10)

    anim = animation.FuncAnimation(fig, frame, frames=len(values), interval=interval)
    html = HTML(_open_on(anim.to_jshtml(default_mode="once"), first_frame, len(values)))
    plt.close(fig)
    return html


# ----------------------------------------------------------------------------- live controls


def book_build() -> bool:
    """True when ``LOCALITY_BOOK_BUILD=1`` (a book build), False when unset, empty or ``0``."""
    value = os.environ.get(BOOK_BUILD_ENV, "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(f"{BOOK_BUILD_ENV} must be 1 (book build: static figures) or 0/unset (live widgets), got {value!r}")
    return value == "1"


def _widget_kernel() -> bool:
    """True inside a Jupyter kernel (Jupyter, VS Code, Colab) with ipywidgets installed."""
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _check_controls(controls: dict) -> dict:
    """Validate ``name -> (lo, hi, step) | [choices]``; return ``name -> default value``."""
    if not controls:
        raise TypeError("interactive() needs at least one control, e.g. t=(0, 999, 1) or model=['wiener', 'unet']")
    defaults = {}
    for name, spec in controls.items():
        if isinstance(spec, list):
            if not spec:
                raise ValueError(f"control {name!r}: the list of choices is empty")
            defaults[name] = spec[0]
        elif isinstance(spec, tuple) and len(spec) == 3 and all(_is_number(v) for v in spec):
            lo, hi, step = spec
            if not (lo < hi and step > 0):
                raise ValueError(f"control {name!r}: expected (lo, hi, step) with lo < hi and step > 0, got {spec}")
            defaults[name] = lo
        else:
            raise TypeError(f"control {name!r}: expected (lo, hi, step) numbers for a slider or a list of choices "
                            f"for a dropdown, got {spec!r}")
    return defaults


def _check_value(name: str, spec, value) -> None:
    if isinstance(spec, list):
        if value not in spec:
            raise ValueError(f"static frame sets {name}={value!r}, which is not one of its choices {spec}")
        return
    lo, hi, _ = spec
    ints = all(_is_int(v) for v in spec)
    if not (_is_int(value) if ints else _is_number(value)) or not lo <= value <= hi:
        kind = "an int" if ints else "a number"
        raise ValueError(f"static frame sets {name}={value!r}; expected {kind} in [{lo}, {hi}]")


def _frames(static, controls: dict) -> list[dict]:
    """Complete each static frame with the controls' defaults (values of the first frame, else lo / the first
    choice) after checking it names only known controls with values in their range."""
    if isinstance(static, dict) or not static or not all(isinstance(f, dict) for f in static):
        raise TypeError("static must be a non-empty list of dicts of control values, e.g. [{'t': 100}, {'t': 500}]")
    defaults = _check_controls(controls)
    defaults.update({k: v for k, v in static[0].items() if k in controls})
    frames = []
    for frame in static:
        unknown = sorted(set(frame) - set(controls))
        if unknown:
            raise ValueError(f"static frame {frame} names {unknown}, which are not controls ({sorted(controls)})")
        for name, value in frame.items():
            _check_value(name, controls[name], value)
        frames.append({**defaults, **frame})
    return frames


def _label(values: dict) -> str:
    return ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}" for k, v in values.items())


def static_animation(draw, static, *, figsize=(6.4, 2.6), first_frame: int = 0, **controls):
    """The ``to_jshtml`` animation over the ``static`` frames (what the rendered book shows): one frame per
    dict, drawn by ``draw(fig, **values)``, titled with its values unless ``draw`` sets a suptitle; the page
    opens on frame ``first_frame`` (an index into ``static``)."""
    from IPython.display import HTML
    from matplotlib import animation

    frames = _frames(static, controls)
    fig = Figure(figsize=figsize)

    def frame(k):
        fig.clear()
        draw(fig, **frames[k])
        if fig._suptitle is None:  # draw did not title the figure
            fig.suptitle(_label(frames[k]), fontsize=10)

    _first_frame(first_frame, len(frames))  # (a bad index fails before the frames are drawn)
    anim = animation.FuncAnimation(fig, frame, frames=len(frames), init_func=lambda: [], interval=800)  # each frame drawn once
    return HTML(_open_on(anim.to_jshtml(default_mode="once"), first_frame, len(frames)))


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def live_controls(draw, static, *, figsize=(6.4, 2.6), first_frame: int = 0, **controls):
    """Live ipywidgets for ``controls`` that call ``draw(fig, **values)`` on every change (any value, not only
    the static frames); starts at static frame ``first_frame``. Returns an ``ipywidgets.VBox`` with attributes
    ``controls`` (name -> widget), ``status`` (``"computing..."`` while ``draw`` runs, then the time it took or
    the error), ``image`` (the figure as PNG bytes, an ``ipywidgets.Image``), ``error`` (the traceback of a
    failing ``draw``, an ``ipywidgets.HTML``; the image is hidden meanwhile), ``figure`` and ``calls`` (redraws).
    Core widgets only (no ``Output`` capture), so Jupyter, VS Code and Colab show the same thing. The box is
    appended to :data:`LIVE`."""
    import ipywidgets as w

    frames = _frames(static, controls)
    start = frames[_first_frame(first_frame, len(frames))]
    widgets = {}
    for name, spec in controls.items():
        style = {"description_width": "initial"}
        if isinstance(spec, list):
            widgets[name] = w.Dropdown(options=spec, value=start[name], description=name, style=style)
        else:
            lo, hi, step = spec
            cls = w.IntSlider if all(_is_int(v) for v in spec) else w.FloatSlider
            widgets[name] = cls(min=lo, max=hi, step=step, value=start[name], description=name,
                                continuous_update=False, style=style)
    status, error, image = w.HTML(), w.HTML(), w.Image(format="png")
    row = w.HBox(list(widgets.values()) + [status], layout=w.Layout(flex_flow="row wrap"))
    box = w.VBox([row, error, image])
    box.controls, box.status, box.error, box.image, box.calls = widgets, status, error, image, 0
    box.figure = fig = Figure(figsize=figsize)

    def redraw(_change=None):
        values = {name: widget.value for name, widget in widgets.items()}
        status.value = "<i>computing...</i>"
        start = time.perf_counter()
        box.calls += 1
        try:
            fig.clear()
            draw(fig, **values)
            png = _png(fig)
        except Exception as exc:  # shown to the reader, with its traceback, instead of a stale figure
            status.value = f"<span style='color:#b00'>error: {html.escape(f'{type(exc).__name__}: {exc}')}</span>"
            error.value = f"<pre style='color:#b00; white-space:pre-wrap'>{html.escape(traceback.format_exc())}</pre>"
            image.layout.display = "none"
            return
        image.value, image.layout.display, error.value = png, None, ""
        status.value = f"drawn in {time.perf_counter() - start:.2f} s"

    for widget in widgets.values():
        widget.observe(redraw, names="value")
    redraw()
    LIVE.append(box)
    return box


def interactive(draw, static, **controls):
    """Controls a reader can turn: live widgets in a kernel, a static animation in the built book.

    ``draw(fig, **values)`` draws into a cleared ``matplotlib.figure.Figure`` (use ``fig.subplots``/
    ``fig.add_subplot``, not ``plt``) for one setting of the controls. ``controls`` maps a name to
    ``(lo, hi, step)`` (an int slider when all three are ints, else a float slider) or to a list of
    choices (a dropdown). ``static`` is a list of dicts of control values: the frames of the
    ``to_jshtml`` animation, and the first one is where the live controls start; a control missing from a
    frame keeps its first-frame value (else ``lo`` / the first choice). Reserved keywords: ``figsize``
    (default ``(6.4, 2.6)``) and ``first_frame`` (default 0): the index of the static frame the page opens
    on and the live controls start at; choose the most telling one (not a flat panel at t = 999).

    With ``LOCALITY_BOOK_BUILD=1`` (every book build sets it), or outside a kernel with ipywidgets, this
    returns :func:`static_animation`; otherwise :func:`live_controls` (``continuous_update=False``, a
    "computing..." status, errors shown under the controls), which recomputes for any value.

    Example::

        def draw(fig, t, model):                     # one setting of the controls
            x_t = schedule.add_noise(x0, t, noise)   # any t, not only the frames below
            ax = fig.subplots()
            ax.imshow(to_numpy_image(models[model](x_t, t)[0]), cmap="gray")
            ax.set_title(f"{model}, t = {t}")

        # slider t, dropdown model; the book shows three frames (model = "wiener", the first choice)
        interactive(draw, [{"t": t} for t in (100, 500, 900)], t=(0, 999, 1), model=["wiener", "unet"])
    """
    figsize = controls.pop("figsize", (6.4, 2.6))
    first_frame = controls.pop("first_frame", 0)
    if book_build() or not _widget_kernel():
        return static_animation(draw, static, figsize=figsize, first_frame=first_frame, **controls)
    return live_controls(draw, static, figsize=figsize, first_frame=first_frame, **controls)
