"""``locality_lib.plotting.interactive``: live controls driven the way a reader drives them (set a
widget's ``.value``), without a browser or a kernel; the static animation of the book build; the
signal that chooses between them; errors of ``draw`` shown, bad controls refused."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import ipywidgets as w
import nbformat
import pytest
from IPython.display import HTML

from locality_lib import plotting
from locality_lib.plotting import interactive, live_controls, static_animation


class Recorder:
    """A ``draw`` that plots a line whose slope and colour depend on the values, and records each call."""

    def __init__(self, fail_at=None):
        self.calls, self.fail_at, self.axes = [], fail_at, []

    def __call__(self, fig, **values):
        self.calls.append(values)
        if self.fail_at is not None and values.get("t") == self.fail_at:
            raise RuntimeError(f"no estimate at t = {values['t']} <b>")
        ax = fig.subplots()
        slope = sum(v for v in values.values() if not isinstance(v, str))
        ax.plot([0, 1], [0, slope], color="C1" if values.get("model") == "unet" else "C0")
        ax.set_ylim(-20, 20)
        self.axes.append(ax)


def png(box) -> bytes:
    """The figure the reader sees (checked to be a PNG, shown, with no error above it)."""
    value = bytes(box.image.value)
    assert value.startswith(b"\x89PNG") and box.image.layout.display is None and box.error.value == ""
    return value


def n_frames(html: HTML) -> int:
    return len(re.findall(r"frames\[\d+\] = \"data:image/png;base64,", html.data))


@pytest.fixture
def live(monkeypatch):
    """A kernel with widget support and no book build."""
    monkeypatch.delenv(plotting.BOOK_BUILD_ENV, raising=False)
    monkeypatch.setattr(plotting, "_widget_kernel", lambda: True)


def test_int_slider_recomputes_for_any_value(live):
    draw = Recorder()
    box = interactive(draw, [{"t": 100}, {"t": 900}], t=(0, 999, 1))
    slider = box.controls["t"]
    assert isinstance(box, w.VBox) and isinstance(slider, w.IntSlider) and not slider.continuous_update
    assert (slider.min, slider.max, slider.step, slider.value) == (0, 999, 1, 100)  # starts at the first frame
    assert draw.calls == [{"t": 100}] and box.calls == 1
    before = png(box)
    slider.value = 3  # not a static frame
    assert draw.calls[-1] == {"t": 3} and box.calls == 2
    assert png(box) != before
    assert draw.axes[-1].figure is box.figure and box.figure.axes == [draw.axes[-1]]  # drawn into a cleared figure


def test_float_slider_and_dropdown(live):
    draw = Recorder()
    box = interactive(draw, [{"tau": 0.5}], tau=(0.0, 1.0, 0.05), model=["wiener", "unet"])
    tau, model = box.controls["tau"], box.controls["model"]
    assert isinstance(tau, w.FloatSlider) and not tau.continuous_update and isinstance(model, w.Dropdown)
    assert draw.calls == [{"tau": 0.5, "model": "wiener"}]  # a control missing from the frame: first choice
    first = png(box)
    tau.value = 0.85
    assert draw.calls[-1] == {"tau": 0.85, "model": "wiener"}
    second = png(box)
    model.value = "unet"
    assert draw.calls[-1] == {"tau": 0.85, "model": "unet"} and box.calls == 3
    assert len({first, second, png(box)}) == 3


def test_mixed_int_float_tuple_is_a_float_slider_and_figsize_is_reserved(live):
    box = interactive(Recorder(), [{"temperature": 1}], temperature=(0, 2, 0.1), figsize=(3, 2))
    assert isinstance(box.controls["temperature"], w.FloatSlider) and list(box.controls) == ["temperature"]
    assert tuple(box.figure.get_size_inches()) == (3, 2)


def test_status_says_computing_while_draw_runs(live):
    seen, boxes = [], []
    draw = lambda fig, t: seen.append(boxes[0].status.value if boxes else None) or fig.subplots()  # noqa: E731
    box = live_controls(draw, [{"t": 1}], t=(0, 9, 1))
    boxes.append(box)
    assert seen == [None] and "drawn in" in box.status.value
    history = []
    box.status.observe(lambda change: history.append(change["new"]), names="value")
    box.controls["t"].value = 5
    assert "computing..." in seen[-1]
    assert "computing..." in history[0] and re.fullmatch(r"drawn in \d+\.\d\d s", history[-1])


def test_error_in_draw_is_shown_then_recovers(live):
    draw = Recorder(fail_at=7)
    box = interactive(draw, [{"t": 1}], t=(0, 9, 1))
    box.controls["t"].value = 7
    assert "RuntimeError: no estimate at t = 7 &lt;b&gt;" in box.error.value and "Traceback" in box.error.value
    assert box.image.layout.display == "none"  # no stale figure under the error
    assert "error: RuntimeError: no estimate at t = 7 &lt;b&gt;" in box.status.value  # escaped
    box.controls["t"].value = 2
    assert draw.calls[-1] == {"t": 2} and png(box) and "drawn in" in box.status.value


def test_book_build_gives_the_static_animation(monkeypatch):
    monkeypatch.setattr(plotting, "_widget_kernel", lambda: True)
    monkeypatch.setenv(plotting.BOOK_BUILD_ENV, "1")
    draw = Recorder()
    frames = [{"t": 100}, {"t": 500, "model": "unet"}, {"t": 900}]
    html = interactive(draw, frames, t=(0, 999, 1), model=["wiener", "unet"])
    assert isinstance(html, HTML) and 'class="animation"' in html.data and n_frames(html) == 3
    assert draw.calls == [{"t": 100, "model": "wiener"}, {"t": 500, "model": "unet"}, {"t": 900, "model": "wiener"}]
    assert len(set(re.findall(r'frames\[\d+\] = "(data:[^"]+)"', html.data))) == 3


def test_signal_chooses_live_or_static(monkeypatch):
    args = (lambda fig, t: fig.subplots(), [{"t": 1}])
    monkeypatch.setattr(plotting, "_widget_kernel", lambda: True)
    for value, kind in (("1", HTML), ("0", w.VBox), ("", w.VBox)):
        monkeypatch.setenv(plotting.BOOK_BUILD_ENV, value)
        assert isinstance(interactive(*args, t=(0, 9, 1)), kind), value
    monkeypatch.delenv(plotting.BOOK_BUILD_ENV)
    assert isinstance(interactive(*args, t=(0, 9, 1)), w.VBox)
    monkeypatch.setenv(plotting.BOOK_BUILD_ENV, "yes")
    with pytest.raises(ValueError, match="LOCALITY_BOOK_BUILD must be 1"):
        interactive(*args, t=(0, 9, 1))
    monkeypatch.delenv(plotting.BOOK_BUILD_ENV)
    monkeypatch.setattr(plotting, "_widget_kernel", lambda: False)  # a script, or IPython without a kernel
    assert isinstance(interactive(*args, t=(0, 9, 1)), HTML)


def test_no_kernel_outside_jupyter():
    assert not plotting._widget_kernel()  # pytest runs without IPython's kernel


@pytest.mark.parametrize("static, controls, error, match", [
    ([{"t": 1}], {}, TypeError, "at least one control"),
    ([{"t": 1}], {"t": (0, 9)}, TypeError, r"\(lo, hi, step\)"),
    ([{"t": 1}], {"t": ("a", "b", "c")}, TypeError, "list of choices"),
    ([{"t": 1}], {"t": (9, 0, 1)}, ValueError, "lo < hi"),
    ([{"t": 1}], {"t": (0, 9, 0)}, ValueError, "step > 0"),
    ([{"m": "a"}], {"m": []}, ValueError, "empty"),
    ([], {"t": (0, 9, 1)}, TypeError, "non-empty list of dicts"),
    ({"t": 1}, {"t": (0, 9, 1)}, TypeError, "non-empty list of dicts"),
    ([{"t": 10}], {"t": (0, 9, 1)}, ValueError, r"t=10; expected an int in \[0, 9\]"),
    ([{"t": 1.5}], {"t": (0, 9, 1)}, ValueError, "expected an int"),
    ([{"m": "c"}], {"m": ["a", "b"]}, ValueError, "not one of its choices"),
    ([{"s": 1}], {"t": (0, 9, 1)}, ValueError, r"names \['s'\], which are not controls"),
])
def test_bad_input_is_refused(live, static, controls, error, match):
    for make in (interactive, static_animation):
        with pytest.raises(error, match=match):
            make(Recorder(), static, **controls)


def test_explore_still_works():
    values = []
    html = plotting.explore(lambda v, fig: values.append(v) or fig.add_subplot().plot([0, v]), [1, 2], label="t")
    assert n_frames(html) == 2 and values[-2:] == [1, 2]


# ----------------------------------------------------------------------------- the built book

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import check_site  # noqa: E402

FAST_SITE = ROOT / "_build" / "fast" / "_build" / "html"


def test_site_check_finds_a_missing_static_fallback(tmp_path, monkeypatch):
    """``tools/check_site.py`` counts the animations that ``static_animation`` really writes."""
    notebook = tmp_path / "ch.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("def draw(fig, t):\n    fig.subplots()"),
                nbformat.v4.new_code_cell("interactive(draw, [{'t': 1}], t=(0, 9, 1))"),
                nbformat.v4.new_code_cell("interactive(draw, [{'t': 2}], t=(0, 9, 1))"),
                nbformat.v4.new_code_cell("x = 1  # interactive() would redraw it: a comment, not a call")]
    nbformat.write(nb, notebook)
    monkeypatch.setenv(plotting.BOOK_BUILD_ENV, "1")
    animation = interactive(lambda fig, t: fig.subplots(), [{"t": 1}], t=(0, 9, 1)).data
    page = tmp_path / "ch.html"
    page.write_text(f"<html><body>{animation}<p>text</p>{animation}</body></html>")
    assert check_site.missing_static_fallback(page, notebook) == []
    page.write_text(f"<html><body>{animation}<script type=\"application/vnd.jupyter.widget-view+json\">"
                    "{}</script></body></html>")
    (reason,) = check_site.missing_static_fallback(page, notebook)
    assert reason.startswith("static fallback missing: 2 interactive()/explore() call(s) in ch.ipynb, 1 to_jshtml")


def test_built_chapters_hold_their_static_fallbacks():
    """Every chapter page of the fast build (tests/test_book.py makes it) shows an animation per call."""
    if not FAST_SITE.is_dir():
        pytest.skip("no fast build: run tests/test_book.py (or make book-fast) first")
    chapters = sorted((ROOT / "book").glob("*.ipynb"))
    checked = 0
    for notebook in chapters:
        page = FAST_SITE / "book" / notebook.with_suffix(".html").name
        if page.is_file():
            assert check_site.missing_static_fallback(page, notebook) == [], page.name
            checked += 1
    assert checked, f"no chapter pages under {FAST_SITE}"
