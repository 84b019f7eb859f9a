"""The book's figure style (locality_lib/style.py): each kind of figure drawn with the helpers is
legible at the page's width, keeps its legend off the data, tells its levels apart, carries a
colour bar on a field, marks a pixel without hiding it, and an animation opens on the chosen frame."""
from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from locality_lib import plotting, style  # noqa: E402
from locality_lib.chapter import setup  # noqa: E402


@pytest.fixture(autouse=True)
def book_style():
    with matplotlib.rc_context():
        setup(seed=0)
        yield
    plt.close("all")


def curves_figure(k=5, width=6.4):
    """A line plot of k noise levels with a legend outside, as the chapters draw error curves."""
    fig, ax = plt.subplots(figsize=(width, 3.0))
    x = np.linspace(0, 1, 50)
    for c, t in zip(style.level_colors(k), np.linspace(10, 900, k).astype(int)):
        ax.plot(x, np.sin(3 * x) + t / 300, color=c, label=f"t = {t}")
    ax.set_xlabel("pixel offset")
    ax.set_ylabel("weight")
    ax.set_title("a curve per noise level")
    return fig, ax, style.legend_outside(ax)


def field_figure():
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.4), layout="constrained")
    f = np.random.default_rng(0).normal(size=(28, 28))
    ims = [style.field_imshow(axes[0], f, label="sensitivity"),
           style.field_imshow(axes[1], np.abs(f)),
           plotting.field_image(torch.tensor(f).flatten(), (1, 28, 28), ax=axes[2], title="field_image")]
    return fig, ims


def test_setup_sets_the_style():
    assert matplotlib.rcParams["savefig.dpi"] == style.DPI == matplotlib.rcParams["figure.dpi"]
    for key in ("font.size", "xtick.labelsize", "ytick.labelsize", "legend.fontsize", "axes.titlesize"):
        size = matplotlib.font_manager.FontProperties(size=matplotlib.rcParams[key]).get_size_in_points()
        assert style.displayed_px(size, style.PAGE_WIDTH_IN) >= style.MIN_TEXT_PX, key


def test_displayed_size_follows_the_page_width():
    # a figure narrower than the column keeps its size: 9 pt at 100 dpi is 12.5 px
    assert style.displayed_px(9, 6.0) == pytest.approx(12.5)
    # one twice the column's width is shown at half size
    assert style.displayed_px(9, 2 * style.PAGE_WIDTH_IN) == pytest.approx(6.25)


@pytest.mark.parametrize("make", [lambda: curves_figure()[0], lambda: field_figure()[0]], ids=["curves", "fields"])
def test_every_text_is_legible_as_displayed(make):
    px, text = style.smallest_text_px(make())
    assert px >= style.MIN_TEXT_PX, f"{text!r} is shown {px:.1f} px tall"


def test_small_text_on_a_wide_figure_is_caught():
    """What Fig. 1.6 did: 6-pt row labels on a figure wider than the page."""
    fig, ax = plt.subplots(figsize=(14, 2))
    ax.set_ylabel("row label", fontsize=6)
    px, text = style.smallest_text_px(fig)
    assert px < style.MIN_TEXT_PX and text == "row label"


def test_legend_outside_leaves_the_data_area_free():
    for where in ("right", "below"):
        fig, ax = plt.subplots(figsize=(6.4, 3.0))
        for t in (10, 50, 100):
            ax.plot([0, 1], [0, t], label=f"t = {t}")
        leg = style.legend_outside(ax, where=where)
        fig.canvas.draw()
        box = leg.get_window_extent()
        data = ax.get_window_extent()
        assert not box.overlaps(data), (where, box, data)
    with pytest.raises(ValueError, match="right' or 'below"):
        style.legend_outside(ax, where="inside")


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6, 8])
def test_level_colors_can_be_told_apart(k):
    colors = style.level_colors(k)
    assert len(colors) == k
    assert style.min_color_distance(colors) >= 10  # CIELAB Delta E: apart at a glance
    lightness = style._lab(np.array([c[:3] for c in colors]))[:, 0]
    assert np.all(np.diff(lightness) >= 8), "a sequential map gets visibly lighter step by step"
    assert (lightness < 20).sum() <= 1, "at most one near-black level"


def test_color_distance_flags_near_black_levels():
    """What Fig. 3.1 did: t = 10, 50, 100 indexed by t / 999 on a dark-to-light map."""
    near_black = [matplotlib.colormaps["viridis"](t / 999) for t in (10, 50, 100)]
    assert style.min_color_distance(near_black) < 10
    lightness = style._lab(np.array([c[:3] for c in near_black]))[:, 0]
    assert (lightness < 20).sum() >= 2


def test_a_field_has_a_colour_bar():
    fig, ims = field_figure()
    for im in ims:
        assert im.colorbar is not None and im.colorbar.ax in fig.axes
    assert ims[0].get_cmap().name == "RdBu_r" and ims[0].get_clim() == (-ims[0].get_clim()[1], ims[0].get_clim()[1])
    assert ims[1].get_cmap().name == "viridis"
    assert ims[0].colorbar.ax.get_ylabel() == "sensitivity"
    with pytest.raises(ValueError, match="2-D field"):
        style.field_imshow(fig.axes[0], np.zeros((2, 3, 4)))


@pytest.mark.parametrize("shape", ["square", "circle"])
def test_mark_pixel_is_an_outline(shape):
    fig, ax = plt.subplots(figsize=(3, 3))
    field = np.zeros((9, 9))
    field[4, 6] = 1.0
    style.field_imshow(ax, field)
    patch = style.mark_pixel(ax, 4, 6, shape=shape)
    assert not patch.get_fill() and patch.get_facecolor()[3] == 0
    assert patch in ax.patches
    # the marked pixel's centre is inside the outline, and the outline runs outside the pixel
    assert patch.contains_point(ax.transData.transform((6, 4)))
    x0, y0, x1, y1 = patch.get_extents().extents
    px0, py0 = ax.transData.transform((5.5, 3.5))
    px1, py1 = ax.transData.transform((6.5, 4.5))
    assert x0 < min(px0, px1) and x1 > max(px0, px1) and y0 < min(py0, py1) and y1 > max(py0, py1)


def _draw(fig, t):
    ax = fig.subplots()
    ax.plot([0, 1], [0, t])


def _opening_frame(jshtml):
    m = re.search(r"anim\w+\.set_frame\((\d+)\);", jshtml)
    return int(m.group(1)) if m else 0


def test_an_animation_opens_on_the_chosen_frame(monkeypatch):
    monkeypatch.setenv(plotting.BOOK_BUILD_ENV, "1")
    static = [{"t": t} for t in (999, 500, 100)]
    assert _opening_frame(plotting.interactive(_draw, static, t=(0, 999, 1)).data) == 0
    assert _opening_frame(plotting.interactive(_draw, static, first_frame=2, t=(0, 999, 1)).data) == 2
    assert _opening_frame(plotting.static_animation(_draw, static, first_frame=-1, t=(0, 999, 1)).data) == 2
    html = plotting.explore(lambda v, fig: _draw(fig, v), [999, 100], first_frame=1).data
    assert _opening_frame(html) == 1
    with pytest.raises(ValueError, match="first_frame"):
        plotting.interactive(_draw, static, first_frame=3, t=(0, 999, 1))


def test_live_controls_start_at_the_chosen_frame():
    pytest.importorskip("ipywidgets")
    box = plotting.live_controls(_draw, [{"t": 999}, {"t": 100}], first_frame=1, t=(0, 999, 1))
    assert box.controls["t"].value == 100


def test_saved_width_is_the_png_width():
    fig = Figure(figsize=(4, 2))
    fig.subplots().plot([0, 1])
    assert 300 < style.saved_width_px(fig) <= 420
