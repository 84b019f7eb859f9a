"""Every chapter's live controls, driven the way a reader drives them, without a browser.

A chapter of ``_toc.yml`` whose code calls ``interactive(`` runs in a kernel (``LOCALITY_FAST=1``, no
``LOCALITY_BOOK_BUILD``, so it makes live widgets), then one more cell in the same kernel moves every control
of every box in ``locality_lib.plotting.LIVE`` to another valid value, one at a time, and checks that the
callback ran once, the image changed, no error is shown and a figure with data was drawn (:func:`drive`).
Slow: each chapter runs in full, in fast mode (40-60 s on a busy machine).
"""
from __future__ import annotations

import inspect
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from locality_lib import plotting
from locality_lib.plotting import live_controls

ROOT = Path(__file__).resolve().parents[1]


def toc_notebooks() -> list[Path]:
    """The notebooks that ``_toc.yml`` names (``root``/``file`` entries, with or without their suffix), in order."""
    entries = []

    def walk(node):
        if isinstance(node, dict):
            entries.extend(str(node[k]) for k in ("root", "file") if k in node)
            node = list(node.values())
        if isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    paths = [ROOT / e if e.endswith(".ipynb") else ROOT / f"{e}.ipynb" for e in entries]
    return [p for p in paths if p.is_file()]


def calls_interactive(notebook: Path) -> bool:
    """True when a code cell of ``notebook`` calls ``interactive(`` (a call, not a mention in prose)."""
    nb = nbformat.read(notebook, as_version=4)
    return any(c.cell_type == "code" and re.search(r"\binteractive\(", c.source) for c in nb.cells)


LIVE_CHAPTERS = [p for p in toc_notebooks() if calls_interactive(p)]


# ----------------------------------------------------------------------------- the reader's hand
# These two functions also run inside the chapter's kernel (their source is sent as the extra cell):
# they import what they need themselves.


def other_value(widget):
    """A valid value of ``widget`` other than its current one: the next choice of a dropdown; for a slider the
    point on its step grid a quarter or three quarters along its range, whichever is farther from the value."""
    if hasattr(widget, "options"):
        options = list(widget.options)
        if len(options) < 2:
            raise AssertionError(f"dropdown {widget.description!r} has a single choice: a reader cannot change it")
        return options[(options.index(widget.value) + 1) % len(options)]
    lo, hi, step = widget.min, widget.max, widget.step
    n, now = round((hi - lo) / step), round((widget.value - lo) / step)
    k = round(n / 4) if now > n / 2 else round(3 * n / 4)
    if k == now:
        k = 0 if now > n / 2 else n
    value = lo + k * step
    return int(value) if isinstance(widget.value, int) else round(value, 12)


def drive(boxes, where: str) -> list[dict]:
    """Set every control of every box in ``boxes`` (made by ``live_controls``) to :func:`other_value`, one at a
    time, as a reader does; after each change check that the callback ran once, no error is shown, a PNG is
    shown and differs from the one before, and the figure has an axes with data. Raises ``AssertionError``
    naming ``where``, the box and the control otherwise. Returns one row per change (with the redraw time)."""
    import html
    import re
    import time

    assert boxes, (f"{where}: calls interactive( but made no live controls "
                   "(LOCALITY_BOOK_BUILD set, or not a kernel with ipywidgets?)")
    rows = []
    for b, box in enumerate(boxes):
        for name, widget in box.controls.items():
            old, new = widget.value, other_value(widget)
            at = f"{where}, box {b + 1} of {len(boxes)}, control {name!r} ({old!r} -> {new!r})"
            calls, before = box.calls, bytes(box.image.value)
            start = time.perf_counter()
            widget.value = new
            seconds = time.perf_counter() - start
            if box.error.value:
                shown = html.unescape(re.sub(r"<[^>]+>", "", box.error.value)).strip()
                raise AssertionError(f"{at}: draw raised; the reader sees\n{shown}")
            assert widget.value == new, f"{at}: the control holds {widget.value!r}, not the value set"
            assert box.calls == calls + 1, f"{at}: the callback ran {box.calls - calls} times, expected once"
            after = bytes(box.image.value)
            assert after.startswith(b"\x89PNG") and box.image.layout.display is None, f"{at}: no figure is shown"
            assert after != before, f"{at}: the figure did not change (does draw ignore {name!r}?)"
            assert any(ax.has_data() for ax in box.figure.axes), f"{at}: the figure has no axes with data"
            rows.append({"box": b + 1, "control": name, "from": old, "to": new, "seconds": round(seconds, 3)})
    return rows


def driver_cell(where: str) -> str:
    """The extra cell: :func:`other_value` and :func:`drive` applied to the kernel's ``plotting.LIVE``, after
    checking that the kernel imported this checkout's library; prints the rows as JSON."""
    return "\n\n".join([inspect.getsource(other_value), inspect.getsource(drive), f"""
import json
from locality_lib import plotting as _plotting
assert _plotting.__file__.startswith({str(ROOT / "locality_lib")!r}), f"the kernel imported {{_plotting.__file__}}"
print("LIVE-REPORT", json.dumps(drive(_plotting.LIVE, {where!r})))
"""])


def run_and_drive(notebook: Path, monkeypatch, timeout: int = 1800) -> list[dict]:
    """Execute ``notebook`` (cwd: its folder) in a ``python3`` kernel in fast mode without the book-build
    signal and with this checkout first on ``PYTHONPATH``, then the :func:`driver_cell`; its rows."""
    from nbclient import NotebookClient

    monkeypatch.setenv("LOCALITY_FAST", "1")
    monkeypatch.delenv(plotting.BOOK_BUILD_ENV, raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(driver_cell(notebook.name)))
    NotebookClient(nb, kernel_name="python3", timeout=timeout,
                   resources={"metadata": {"path": str(notebook.parent)}}).execute()
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    return json.loads(printed.split("LIVE-REPORT", 1)[1])


# ----------------------------------------------------------------------------- the chapters


@pytest.mark.slow
@pytest.mark.parametrize("notebook", LIVE_CHAPTERS, ids=[p.stem for p in LIVE_CHAPTERS])
def test_chapter_live_controls_recompute(notebook, monkeypatch):
    rows = run_and_drive(notebook, monkeypatch)
    assert rows  # drive() raises, naming the control, on any failure
    print(f"\n{notebook.name}: " + "; ".join(f"box {r['box']} {r['control']} {r['from']} -> {r['to']} "
                                             f"{r['seconds']:.2f} s" for r in rows))


def test_chapters_with_controls_are_found(tmp_path):
    """The scan finds chapters (a broken scan would silently test none) and tells a call from prose."""
    assert LIVE_CHAPTERS and all(p.suffix == ".ipynb" for p in LIVE_CHAPTERS)
    prose, code = tmp_path / "prose.ipynb", tmp_path / "code.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("uses `interactive(draw, ...)`"),
                                                   nbformat.v4.new_code_cell("x = noninteractive(1)")]), prose)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("plotting.interactive(draw, [{}])")]),
                   code)
    assert not calls_interactive(prose) and calls_interactive(code)


# ----------------------------------------------------------------------------- the check can fail


def plot_line(fig, slope):
    fig.subplots().plot([0, 1], [0, slope])


GOOD = lambda fig, t, model: plot_line(fig, t + (10 if model == "b" else 0))  # noqa: E731
DEFECTS = {
    "ignores t": (lambda fig, t, model: plot_line(fig, 10 if model == "b" else 0),
                  r"control 't' \(1 -> 7\): the figure did not change"),
    "raises": (lambda fig, t, model: plot_line(fig, 1 / (t == 1)),
               r"control 't' \(1 -> 7\): draw raised; the reader sees\nTraceback.*ZeroDivisionError"),
    "draws nothing": (lambda fig, t, model: plot_line(fig, t) if t == 1 else fig.subplots(),
                      r"control 't' \(1 -> 7\): the figure has no axes with data"),
    "ignores model": (lambda fig, t, model: plot_line(fig, t),
                      r"control 'model' \('a' -> 'b'\): the figure did not change"),
}


def toy_box(draw):
    return live_controls(draw, [{"t": 1}], t=(0, 9, 1), model=["a", "b"])


def test_boxes_are_registered():
    box = toy_box(GOOD)
    assert plotting.LIVE[-1] is box and plotting.LIVE.count(box) == 1


def test_drive_passes_a_draw_that_follows_its_controls():
    rows = drive([toy_box(GOOD), toy_box(GOOD)], "toy")
    assert [(r["box"], r["control"], r["from"], r["to"]) for r in rows] == [
        (1, "t", 1, 7), (1, "model", "a", "b"), (2, "t", 1, 7), (2, "model", "a", "b")]


@pytest.mark.parametrize("defect", DEFECTS)
def test_drive_fails_on_a_broken_draw(defect):
    draw, message = DEFECTS[defect]
    with pytest.raises(AssertionError) as info:
        drive([toy_box(GOOD), toy_box(draw)], "toy")
    assert re.match(r"toy, box 2 of 2, " + message, str(info.value), re.S), str(info.value)


def test_drive_fails_without_live_controls():
    with pytest.raises(AssertionError, match="toy: calls interactive\\( but made no live controls"):
        drive([], "toy")


@pytest.mark.parametrize("spec, value, expected", [
    ((0, 999, 1), 999, 250), ((0, 999, 1), 100, 749), ((0, 9, 1), 5, 2), ((0, 1, 1), 0, 1), ((0, 1, 1), 1, 0),
    ((0.1, 4.0, 0.05), 1.0, 3.0), ((0.1, 4.0, 0.05), 4.0, 1.1),
])
def test_other_value_is_valid_and_far(spec, value, expected):
    import ipywidgets as w

    lo, hi, step = spec
    slider = (w.IntSlider if isinstance(step, int) else w.FloatSlider)(min=lo, max=hi, step=step, value=value)
    new = other_value(slider)
    assert new == pytest.approx(expected) and lo <= new <= hi and new != value
    assert abs((new - lo) / step - round((new - lo) / step)) < 1e-9  # on the step grid


@pytest.mark.slow
def test_a_notebook_whose_draw_ignores_its_control_fails(tmp_path, monkeypatch):
    """End to end through a kernel: the same run as a chapter's, on a notebook whose draw ignores ``t``."""
    from nbclient.exceptions import CellExecutionError

    notebook = tmp_path / "toy.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from locality_lib.plotting import interactive"),
        nbformat.v4.new_code_cell("def draw(fig, t, k):\n    fig.subplots().plot([0, 1], [0, k])  # t ignored"),
        nbformat.v4.new_code_cell("interactive(draw, [{'t': 1, 'k': 2}], t=(0, 9, 1), k=(0, 9, 1))"),
    ]), notebook)
    with pytest.raises(CellExecutionError) as info:
        run_and_drive(notebook, monkeypatch, timeout=300)
    assert info.value.evalue.startswith("toy.ipynb, box 1 of 1, control 't' (1 -> 7): the figure did not change")
