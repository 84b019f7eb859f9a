"""The book: every chapter in ``_toc.yml`` exists and is committed without outputs, installs the
library only when it is missing, from the one repository address that ``_config.yml`` and
``locality_lib.REPOSITORY_URL`` share; the tools that keep it so work; and the whole book builds
in fast mode (every notebook executed: a failing cell or any Sphinx warning fails the test).
"""
from __future__ import annotations

import ast
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

import locality_lib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import check_site  # noqa: E402
import set_repository_url as seturl  # noqa: E402
import strip_outputs  # noqa: E402

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
FAST_OUT = ROOT / "_build" / "fast"


def toc_entries() -> list[str]:
    """Every ``root``/``file`` entry of ``_toc.yml``, in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    out = []

    def walk(node):
        if isinstance(node, dict):
            out.extend(str(node[k]) for k in ("root", "file") if k in node)
            for key, value in node.items():
                if key not in ("root", "file"):
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc)
    return out


def resolve(entry: str) -> list[Path]:
    """The files a toc entry may name (with or without its suffix)."""
    path = ROOT / entry
    candidates = [path] if path.suffix in (".ipynb", ".md") else [path.with_suffix(".ipynb"), path.with_suffix(".md")]
    return [p for p in candidates if p.is_file()]


CHAPTERS = [p for e in toc_entries() for p in resolve(e) if p.suffix == ".ipynb"]
CHAPTER_IDS = [p.name for p in CHAPTERS]


def first_code_cell(nb) -> str:
    return next(c.source for c in nb.cells if c.cell_type == "code")


def check_install_cell(source: str) -> str:
    """The URL installed by a chapter's first code cell, checking that it installs ``locality_lib``
    only when the import fails::

        try:
            import locality_lib
        except ImportError:
            %pip install -q "locality_lib @ git+<URL>"
            import locality_lib
    """
    lines = [ln.rstrip() for ln in source.splitlines()]
    assert lines and lines[0] == "try:", "the first code cell must start with `try:`"
    assert re.fullmatch(r"\s+import locality_lib", lines[1]), "then `import locality_lib` inside the try"
    k = next((i for i, ln in enumerate(lines) if re.match(r"except ImportError\s*:", ln)), None)
    assert k is not None, "`except ImportError:` must follow"
    block = []
    for ln in lines[k + 1:]:
        if ln and not ln[0].isspace():
            break
        block.append(ln)
    installs = [ln for ln in lines if re.search(r"[%!]\s*pip\b", ln)]
    assert len(installs) == 1 and installs[0] in block, "exactly one pip install, inside the except block"
    m = re.fullmatch(r'\s+%pip install -q "locality_lib @ git\+(\S+?)"', installs[0])
    assert m, f"install line must be `%pip install -q \"locality_lib @ git+URL\"`, got {installs[0].strip()!r}"
    assert any(re.fullmatch(r"\s+import locality_lib", ln) for ln in block), "import again after installing"
    return m.group(1)


# ----------------------------------------------------------------------------- the chapters


def test_toc_entries_exist_once():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    for part in toc.get("parts", []):
        assert part.get("chapters"), f"part {part.get('caption')!r} has no chapters: jupyter-book refuses an empty list"
    entries = toc_entries()
    assert entries and entries[0] == "book/intro"
    assert len(entries) == len(set(entries)), "a toc entry is listed twice"
    for entry in entries:
        found = resolve(entry)
        assert len(found) == 1, f"_toc.yml entry {entry!r} must name exactly one .ipynb or .md file, found {found}"


def numbered_chapters() -> list[str]:
    """The ``file`` entries of ``_toc.yml``'s numbered parts, in the order the toolchain numbers them."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [c["file"] for part in toc.get("parts", []) if part.get("numbered") for c in part["chapters"]]


def test_chapter_files_carry_the_number_the_toolchain_prints():
    """Chapter k of the numbered parts is ``book/0k_...``; its glued names, labels and figure names say
    ``chk``, so a name never has to be translated from one chapter's number to another's."""
    chapters = numbered_chapters()
    assert chapters, "_toc.yml has no numbered part"
    for k, entry in enumerate(chapters, start=1):
        assert re.fullmatch(rf"book/{k:02d}_[a-z0-9_]+", entry), f"chapter {k} is {entry!r}: name it book/{k:02d}_<topic>"
        (path,) = resolve(entry)
        text = "\n".join(c.source + json.dumps(c.metadata) for c in nbformat.read(path, as_version=4).cells)
        defined = set(re.findall(r"glue\(\s*f?[\"'](ch\w+?)_", text))
        defined |= set(re.findall(r"\((?:sec|fig|eq|tab)-(ch\w+?)-[\w-]+\)=", text))
        defined |= set(re.findall(r"[\"']name[\"']:\s*[\"'](?:fig|tab)-(ch\w+?)-", text))
        defined |= set(re.findall(r"\$\$\s*\((?:eq)-(ch\w+?)-", text))
        assert defined <= {f"ch{k}"}, f"{path.name} (chapter {k}) defines names of another chapter: {sorted(defined)}"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_chapter_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; run `python tools/strip_outputs.py {path.relative_to(ROOT)}`"
    assert not strip_outputs.strip(copy.deepcopy(nb)), f"{path.name}: saved widget state or timing metadata"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_chapter_installs_library_from_the_repository(path):
    nb = nbformat.read(path, as_version=4)
    url = check_install_cell(first_code_cell(nb))
    assert url == locality_lib.REPOSITORY_URL == CONFIG["repository"]["url"]
    later = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and re.search(r"[%!]\s*pip\b", c.source)]
    assert len(later) == 1, f"{path.name}: only the first code cell may install packages (cells {later})"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_chapter_colab_links_point_at_itself(path):
    nb = nbformat.read(path, as_version=4)
    expected = check_site.colab_url(CONFIG, path.relative_to(ROOT).as_posix())
    links = {m for c in nb.cells if c.cell_type == "markdown"
             for m in re.findall(r"https://colab\.research\.google\.com/github/[^)\s\"']+", c.source)}
    assert links <= {expected}, f"{path.name}: Colab links {sorted(links - {expected})}, expected {expected}"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_chapter_holds_the_address_only_in_its_install_cell(path):
    """Colab is the launch button, drawn from _config.yml: no badge, no copy of the address in the text.
    The install cell keeps one (a notebook opened in Colab has no _config.yml), written by the tool."""
    nb = nbformat.read(path, as_version=4)
    owner_repo = "/".join(seturl.parse_github_url(CONFIG["repository"]["url"]))
    holding = [i for i, c in enumerate(nb.cells) if owner_repo in c.source or "colab.research.google.com" in c.source]
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    assert holding == [first_code], f"{path.name}: cells {holding} name the repository; only the install cell may"


CODE_LINE_MAX = 86  # a code box holds 87 monospace characters at a 1440-px window (tools/check_site.py)


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_chapter_code_lines_fit_the_code_box(path):
    """Every line of a code cell the reader sees (not tagged ``remove-cell``/``remove-input``; a
    ``hide-input`` cell opens to full width) holds at most 86 characters, so the built page shows it
    without a horizontal scroll bar. Printed lines are the check-site test's job."""
    nb = nbformat.read(path, as_version=4)
    long = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or {"remove-cell", "remove-input"} & set(cell.metadata.get("tags", [])):
            continue
        long += [f"cell {i}, {len(ln)} chars: {ln[:60]!r}" for ln in cell.source.splitlines() if len(ln) > CODE_LINE_MAX]
    assert not long, f"{path.name}: code lines over {CODE_LINE_MAX} characters:\n" + "\n".join(long)


def _echoes_glue(source: str) -> bool:
    """Whether a cell's last statement is a bare ``glue(...)`` or ``claim(...)`` call without ``;`` (Jupyter
    then prints its return value, a raw number or ``True`` under the table or figure the cell shows)."""
    tree = ast.parse("\n".join(ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))))
    last = tree.body[-1] if tree.body else None
    if not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)):
        return False
    func = last.value.func
    return getattr(func, "id", getattr(func, "attr", None)) in ("glue", "claim") and not source.rstrip().endswith(";")


def test_echoes_glue_reads_the_last_statement():
    assert _echoes_glue('x = 1\nglue("a", x)') and _echoes_glue("claim(True, 's')") and _echoes_glue("glue(\n  'a', 2\n)\n")
    assert not _echoes_glue('glue("a", 1);') and not _echoes_glue('glue("a", 1)\nx = 2') and not _echoes_glue("")


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_chapter_cells_do_not_echo_glued_values(path):
    """A shown code cell that ends in ``glue(...)`` or ``claim(...)`` ends it with ``;``: the value belongs
    in the sentence, not printed raw under the cell."""
    nb = nbformat.read(path, as_version=4)
    shown = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and not {"remove-cell", "remove-output"} & set(c.metadata.get("tags", []))]
    echo = [i for i, c in shown if _echoes_glue(c.source)]
    assert not echo, f"{path.name}: cells {echo} end in glue(...) or claim(...) without ';'"


def test_repository_url_has_one_value():
    assert locality_lib.REPOSITORY_URL == CONFIG["repository"]["url"]
    seturl.parse_github_url(locality_lib.REPOSITORY_URL)
    assert seturl.current_url(ROOT) == locality_lib.REPOSITORY_URL == seturl.config_url(ROOT)


# ----------------------------------------------------------------------------- the tools

INSTALL_CELL = (
    "try:\n    import locality_lib\nexcept ImportError:  # on Colab\n"
    '    %pip install -q "locality_lib @ git+{url}"\n    import locality_lib\n'
    "from locality_lib.chapter import setup\ndevice = setup(seed=0)"
)


def _toy_notebook(url: str, name: str):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    owner_repo = url.removeprefix("https://github.com/")
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{owner_repo}/blob/main/book/{name})\n"
            f"Data: {url}-data"),
        nbformat.v4.new_code_cell(INSTALL_CELL.format(url=url)),
    ]
    return nb


def test_set_repository_url_rewrites_every_place(tmp_path):
    old, new = locality_lib.REPOSITORY_URL, "https://github.com/new-owner/new-book"
    (tmp_path / "locality_lib").mkdir()
    (tmp_path / "book").mkdir()
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    shutil.copy(ROOT / "locality_lib" / "__init__.py", tmp_path / "locality_lib" / "__init__.py")
    for path in CHAPTERS:
        shutil.copy(path, tmp_path / "book" / path.name)
    nbformat.write(_toy_notebook(old, "99_toy.ipynb"), tmp_path / "book" / "99_toy.ipynb")

    changed = seturl.set_repository_url(new + ".git/", tmp_path)
    assert tmp_path / "_config.yml" in changed and tmp_path / "book" / "99_toy.ipynb" in changed
    assert yaml.safe_load((tmp_path / "_config.yml").read_text())["repository"]["url"] == new
    assert seturl.current_url(tmp_path) == new
    for path in sorted((tmp_path / "book").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert check_install_cell(first_code_cell(nb)) == new
        config = yaml.safe_load((tmp_path / "_config.yml").read_text())
        colab = check_site.colab_url(config, f"book/{path.name}")
        assert colab.startswith("https://colab.research.google.com/github/new-owner/new-book/blob/")
        assert colab in path.read_text() or path.name != "99_toy.ipynb"
        assert old + '"' not in path.read_text() and old + "/" not in path.read_text()
    # a longer name that merely starts with the old address is left alone
    assert f"{new}-data" not in (tmp_path / "book" / "99_toy.ipynb").read_text()
    assert f"{old}-data" in (tmp_path / "book" / "99_toy.ipynb").read_text()
    # a second run changes nothing; a bad address is refused and changes nothing
    assert seturl.set_repository_url(new, tmp_path) == []
    assert seturl.set_repository_url(None, tmp_path) == []
    with pytest.raises(ValueError, match="OWNER/REPO"):
        seturl.set_repository_url("https://gitlab.com/a/b", tmp_path)
    assert seturl.current_url(tmp_path) == new


def test_set_repository_url_generates_the_copies_from_config(tmp_path):
    """Edit repository.url in _config.yml by hand, run the tool with no address: every copy follows."""
    old, new = locality_lib.REPOSITORY_URL, "https://github.com/hand-edited/book"
    (tmp_path / "locality_lib").mkdir()
    (tmp_path / "book").mkdir()
    config = (ROOT / "_config.yml").read_text()
    assert config.count(f"url: {old}\n") == 1
    (tmp_path / "_config.yml").write_text(config.replace(f"url: {old}\n", f"url: {new}\n"))
    shutil.copy(ROOT / "locality_lib" / "__init__.py", tmp_path / "locality_lib" / "__init__.py")
    nbformat.write(_toy_notebook(old, "99_toy.ipynb"), tmp_path / "book" / "99_toy.ipynb")
    assert seturl.main(["--root", str(tmp_path)]) == 0
    assert seturl.config_url(tmp_path) == seturl.current_url(tmp_path) == new
    assert check_install_cell(first_code_cell(nbformat.read(tmp_path / "book" / "99_toy.ipynb", as_version=4))) == new
    assert seturl.set_repository_url(None, tmp_path) == []


def test_strip_outputs(tmp_path):
    nb = _toy_notebook(locality_lib.REPOSITORY_URL, "x.ipynb")
    cell = nb.cells[1]
    cell.metadata["tags"] = ["hide-input"]
    cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01"}
    cell.execution_count = 3
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    assert strip_outputs.main(["--check", str(path)]) == 1
    assert nbformat.read(path, as_version=4).cells[1].outputs  # --check changes nothing
    assert strip_outputs.main([str(path)]) == 0
    assert strip_outputs.main(["--check", str(path)]) == 0
    out = nbformat.read(path, as_version=4)
    assert out.cells[1].outputs == [] and out.cells[1].execution_count is None
    assert out.cells[1].metadata == {"tags": ["hide-input"]} and "widgets" not in out.metadata
    assert [c.source for c in out.cells] == [c.source for c in nb.cells]


def test_colab_url_from_config():
    config = {"repository": {"url": "https://github.com/o/r", "branch": "dev", "path_to_book": "docs/"}}
    assert check_site.colab_url(config, "book/01_x.ipynb") == \
        "https://colab.research.google.com/github/o/r/blob/dev/docs/book/01_x.ipynb"
    assert check_site.colab_url({"repository": {"url": "https://github.com/o/r.git"}}, "a.ipynb") == \
        "https://colab.research.google.com/github/o/r/blob/main/a.ipynb"
    with pytest.raises(ValueError, match="OWNER/REPO"):
        check_site.colab_url({"repository": {"url": "https://example.com/o/r"}}, "a.ipynb")


def test_broken_links_finds_missing_files_and_anchors(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "x.css").write_text("")
    (tmp_path / "book" / "b.html").write_text('<h1 id="ok">B</h1><a name="old">o</a>')
    page = tmp_path / "book" / "a.html"
    page.write_text(
        '<link rel="stylesheet" href="../_static/x.css?v=1"><a href="b.html#ok">1</a> <a href="b.html#old">2</a>'
        '<a href="b.html#gone">3</a> <a href="c.html">4</a> <a href="#top">5</a> <span id="top"></span>'
        '<a href="https://example.com/x">6</a> <a href="mailto:a@b.c">7</a> <img src="../_static/y.png">'
        '<a href="../../outside.html">8</a> <a href="../book/">9</a>')
    assert sorted(check_site.broken_links(tmp_path, page)) == [
        "broken link ../../outside.html", "broken link ../_static/y.png", "broken link ../book/",
        "broken link c.html", "missing anchor b.html#gone"]


def _browser_missing() -> str | None:
    if not Path(check_site.CHROMIUM).exists():
        return f"{check_site.CHROMIUM} missing (make check-site installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright missing (make check-site installs it)"
    return None


@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_site_check_self_test_in_chromium(tmp_path):
    """``check_site.py --self-test`` in headless Chromium at a 1440-px window: the synthetic broken page
    fails for every reason (a printout wider than its box among them; the same block hidden in a
    closed toggle or ``display:none`` is not counted), and a page whose blocks fit passes."""
    assert check_site.WINDOW_WIDTH == 1440
    assert check_site.self_test(tmp_path) == []


# ----------------------------------------------------------------------------- the build


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _log_excerpt(log: str, out: Path) -> str:
    """Warning lines, the end of the build log and the end of each notebook's error report."""
    lines = ANSI.sub("", log).splitlines()
    warnings = [ln for ln in lines if re.search(r"WARNING|ERROR|Error|Traceback", ln) and "[IPKernelApp]" not in ln]
    reports = "".join(f"\n--- {p.name}\n" + ANSI.sub("", p.read_text())[-2000:]
                      for p in sorted((out / "_build" / "html" / "reports").rglob("*.log")))
    return ("\n".join(warnings[:60]) + "\n--- last lines of the build log:\n" + "\n".join(lines[-60:])
            + reports)


@pytest.mark.slow
def test_book_builds_in_fast_mode():
    """``LOCALITY_FAST=1 LOCALITY_BOOK_BUILD=1 jupyter-book build -W -n --keep-going --path-output _build/fast .``: every
    chapter executes (cached by jupyter-cache when unchanged); any failing cell or warning fails."""
    subprocess.run([sys.executable, str(ROOT / "tools" / "fetch_assets.py")], check=True, cwd=ROOT)
    jb = Path(sys.executable).with_name("jupyter-book")
    env = dict(os.environ, LOCALITY_FAST="1", LOCALITY_BOOK_BUILD="1")  # static figures of interactive()
    shared = ROOT.parent / "shared" / "data"
    if "LOCALITY_DATA_DIR" not in env and shared.is_dir():
        env["LOCALITY_DATA_DIR"] = str(shared)
    shutil.rmtree(FAST_OUT / "_build" / "html" / "reports", ignore_errors=True)  # reports of an earlier run
    start = time.time()
    proc = subprocess.run(
        [str(jb), "build", "-W", "-n", "--keep-going", "--path-output", str(FAST_OUT.relative_to(ROOT)), "."],
        cwd=ROOT, env=env, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    FAST_OUT.mkdir(parents=True, exist_ok=True)
    (FAST_OUT / "build.log").write_text(log)
    if proc.returncode != 0:
        pytest.fail(f"fast book build failed (exit {proc.returncode}, {time.time() - start:.0f} s):\n"
                    + _log_excerpt(log, FAST_OUT), pytrace=False)
    html = FAST_OUT / "_build" / "html"
    for path in CHAPTERS:
        assert (html / path.relative_to(ROOT).with_suffix(".html")).is_file(), f"{path.name} was not rendered"
    # No page loads a script or stylesheet from another host (offline assets, tools/offline_site.py).
    remote = re.compile(r'<script[^>]*\ssrc="(?:https?:)?//|<link[^>]*rel="stylesheet"[^>]*href="(?:https?:)?//')
    for page in check_site.pages_of(html):
        assert not remote.search(page.read_text()), f"{page.relative_to(html)} loads a remote script or stylesheet"
