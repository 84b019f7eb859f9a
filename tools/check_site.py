"""See the rendered book as a reader does: serve the built site locally and check every page in
headless Chromium.

Usage: ``python tools/check_site.py [SITE] [--screenshots DIR]`` (``make check-site``;
``SITE`` defaults to ``_build/html``). Prints one line per page (``PASS``/``FAIL`` and the reasons)
and exits non-zero when any page fails. Checks, per page:

- no request leaves the machine (CDN scripts, fonts, images): every non-local request is blocked
  and reported; no local request fails (404) and no script raises or logs an error;
- MathJax typeset every formula: each Sphinx ``.math`` element holds a typeset ``mjx-container``,
  MathJax reports no error or undefined macro, and no raw ``$...$``, ``\\(``, ``\\[`` is left in
  the visible text;
- every image loaded (``complete`` with a non-zero natural size), after scrolling the whole page;
- no cell output shows a traceback, an error, a warning, a stderr stream, or ``NaN``;
- in a 1440-px window (:data:`WINDOW_WIDTH`) no visible code or output block (``div.highlight pre``,
  ``.cell_output pre``, ``.output pre``, output tables) is wider than its box (``scrollWidth >
  clientWidth + 1``, or wider than its parent): the reason names the widths and the block's first
  characters. Blocks a reader does not see (``display:none``, a closed ``details``/hide-input toggle)
  do not count;
- every chapter built from a notebook has a Colab link to exactly
  ``https://colab.research.google.com/github/<owner>/<repo>/blob/<branch>/<path>.ipynb``
  (derived from ``_config.yml``), and every Colab link on the page points there;
- widget areas are never empty: ``to_jshtml`` animations show a loaded frame and their slider,
  ipywidgets views are rendered from the saved widget state (non-empty box);
- internal links resolve: every local ``href``/``src`` names an existing file, and every
  ``#fragment`` an existing id on the target page;
- every ``interactive(...)`` (and ``explore(...)``) call of a chapter's notebook left its static
  ``to_jshtml`` animation on the page (the book build sets ``LOCALITY_BOOK_BUILD=1``).
- references read as sentences: in the page's paragraphs and list items no reference word is doubled
  ("the exercise Exercise 8.4", "Chapter Chapter 3"), no equation number sits in doubled parentheses
  ("((3.2))"), and no paragraph links a numbered chapter by repeating its title ("the network of Diffusion
  in one notebook"; write "Chapter 1").

A full-page screenshot of every page is saved under ``--screenshots`` (``_build/screenshots``).
``--self-test`` (used by ``make check-site``) first runs the checks on a synthetic page holding one
instance of every problem above and stops if any goes unreported, or if a synthetic page that fits
(with wide blocks only where a reader cannot see them) fails.
Chromium comes from Debian (``apt-get install -y chromium``) and is driven with Playwright from
PyPI (no browser download); both are installed here when missing.
"""
from __future__ import annotations

import argparse
import functools
import html.parser
import http.server
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
#: Site folders that hold assets, not pages.
ASSET_DIRS = {"_static", "_sources", "_images", "offline", "_downloads"}
TIMEOUT_MS = 30_000
#: The browser window's width in CSS px (a common laptop): code and output blocks must fit at it.
WINDOW_WIDTH = 1440


# ----------------------------------------------------------------------------- set-up

def ensure_tools() -> None:
    """Install Debian's Chromium and the Playwright driver (PyPI) when missing."""
    if not Path(CHROMIUM).exists():
        if os.geteuid() != 0:
            raise SystemExit(f"check-site: {CHROMIUM} missing; run `sudo apt-get install -y chromium`")
        print("check-site: installing chromium (apt)", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=True, env=env, stdout=subprocess.DEVNULL)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        print("check-site: installing playwright (pip; no browser download)", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "playwright"], check=True)
        importlib.invalidate_caches()


def load_config(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def colab_url(config: dict, notebook: str) -> str:
    """The Colab address of ``notebook`` (a path relative to the book root, e.g. ``book/01_x.ipynb``)
    from ``repository.url``, ``repository.branch`` and ``repository.path_to_book`` of ``_config.yml``."""
    repo = config.get("repository") or {}
    m = re.fullmatch(r"https://github\.com/([^/\s]+)/([^/\s]+?)(?:\.git)?/?", str(repo.get("url", "")))
    if m is None:
        raise ValueError(f"_config.yml repository.url must be https://github.com/OWNER/REPO, got {repo.get('url')!r}")
    prefix = str(repo.get("path_to_book") or "").strip("/")
    path = f"{prefix}/{notebook}" if prefix else notebook
    return (f"https://colab.research.google.com/github/{m.group(1)}/{m.group(2)}/blob/"
            f"{repo.get('branch', 'main')}/{path}")


# ----------------------------------------------------------------------------- static link check

class _Links(html.parser.HTMLParser):
    """Collects ids and local link targets (href/src) of one HTML file."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.targets: list[str] = []
        self.refresh: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key) and (key == "id" or tag == "a"):
                self.ids.add(a[key])
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "refresh":
            self.refresh = (a.get("content") or "").split("url=", 1)[-1].strip()
        for key in ("href", "src"):
            if a.get(key) and not (tag == "a" and key == "src"):
                self.targets.append(a[key])


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> _Links:
    p = _Links()
    p.feed(path.read_text(errors="replace"))
    return p


def broken_links(site: Path, page: Path) -> list[str]:
    """Local links of ``page`` whose file, or whose ``#fragment`` on an HTML target, does not exist."""
    bad = []
    base = page.relative_to(site).as_posix()
    for href in sorted(set(_parse(page).targets)):
        parts = urlsplit(href)
        if parts.scheme or href.startswith("//"):
            continue  # external (http, https, mailto, data, javascript): not a file of the site
        target_rel = urljoin(base, unquote(parts.path)) if parts.path else base
        target = (site / target_rel).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_relative_to(site.resolve()) or not target.is_file():
            bad.append(f"broken link {href}")
        elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _parse(target).ids:
            bad.append(f"missing anchor {href}")
    return bad


DOUBLED_REFERENCE = re.compile(r"\b(exercise|chapter|section|figure|fig\.|equation|table)\s+\1(?=\W)|\(\(\d",
                               re.IGNORECASE)
_TAGS = re.compile(r"<[^>]+>")
_MATH = re.compile(r"\\\(.*?\\\)|\\\[.*?\\\]", re.DOTALL)


def _text(fragment: str) -> str:
    """The visible text of an HTML fragment, maths replaced by ``M``, whitespace collapsed."""
    return re.sub(r"\s+", " ", _MATH.sub("M", html.unescape(_TAGS.sub("", fragment))))


@functools.lru_cache(maxsize=None)
def _title(path: Path) -> str | None:
    """A numbered page's ``<h1>`` text without its number ("3. The best linear ..." -> "The best linear
    ..."); None for a page without a numbered title (an appendix is called by its name)."""
    m = re.search(r"<h1[^>]*>(.*?)(?:<a class=\"headerlink\"|</h1>)", path.read_text(errors="replace"), re.DOTALL)
    numbered = re.match(r"^\s*\d[\d.]*\s+(.*)$", _text(m.group(1))) if m else None
    return numbered.group(1).strip() if numbered else None


def broken_sentences(page: Path) -> list[str]:
    """Paragraphs and list items of ``page`` whose references do not read as sentences: a doubled reference
    word or doubled parentheses around an equation number (:data:`DOUBLED_REFERENCE`), and, in a paragraph,
    a link to another page of the site whose text is that page's title."""
    text = page.read_text(errors="replace")
    bad = []
    for tag, block in re.findall(r"<(p|li)\b[^>]*>(.*?)</\1>", text, re.DOTALL):
        plain = _text(block)
        for m in DOUBLED_REFERENCE.finditer(plain):
            bad.append(f"doubled reference word: ...{plain[max(0, m.start() - 40):m.end() + 20]}...")
        if tag != "p":
            continue
        for href, label in re.findall(r"<a [^>]*href=\"([^\"#]+\.html)[^\"]*\"[^>]*>(.*?)</a>", block, re.DOTALL):
            target = (page.parent / unquote(href)).resolve()
            if target.is_file() and target != page.resolve() and _title(target) == _text(label).strip():
                bad.append(f"chapter title inside a sentence: {_text(label).strip()!r} (use a numbered reference)")
    return bad


STATIC_CALL = re.compile(r"\b(?:interactive|explore)\(")
ANIMATION = re.compile(r"<div class=\"animation\">")


def missing_static_fallback(page: Path, notebook: Path) -> list[str]:
    """A chapter whose code calls ``interactive(`` or ``explore(`` k times must show at least k
    ``to_jshtml`` animations: with ``LOCALITY_BOOK_BUILD=1`` unset, ``interactive`` leaves a live
    widget that a page without a kernel cannot redraw."""
    cells = json.loads(notebook.read_text()).get("cells", [])
    code = "".join("".join(c["source"]) + "\n" for c in cells if c.get("cell_type") == "code")
    code = re.sub(r"#[^\n]*", "", code)  # comments that name a call are not calls
    calls = len(STATIC_CALL.findall(re.sub(r"^\s*def [^\n]*", "", code, flags=re.M)))
    shown = len(ANIMATION.findall(page.read_text(errors="replace")))
    if shown >= calls:
        return []
    return [f"static fallback missing: {calls} interactive()/explore() call(s) in {notebook.name}, "
            f"{shown} to_jshtml animation(s) on the page (build with LOCALITY_BOOK_BUILD=1)"]


# ----------------------------------------------------------------------------- browser checks

#: Runs in the page once MathJax and the widgets have settled; returns a list of reasons to fail.
PAGE_CHECKS_JS = r"""
([expectedColab]) => {
  const bad = [];
  const text = (el) => (el.innerText || el.textContent || '').trim();
  const short = (s) => s.replace(/\s+/g, ' ').slice(0, 80);

  // MathJax: every Sphinx math element typeset, no error, no undefined macro.
  const maths = [...document.querySelectorAll('.math, .amsmath')];
  const untyped = maths.filter((el) => !el.querySelector('mjx-container'));
  if (untyped.length) bad.push(`${untyped.length} formula(s) not typeset, e.g. ${short(text(untyped[0]))}`);
  if (maths.length && !window.MathJax) bad.push('MathJax not loaded');
  for (const el of document.querySelectorAll('mjx-merror, [data-mjx-error]'))
    bad.push(`MathJax error: ${el.getAttribute('data-mjx-error') || short(text(el))}`);
  if (window.MathJax && MathJax.startup && MathJax.startup.document && MathJax.startup.toMML) {
    for (const item of Array.from(MathJax.startup.document.math)) {
      const mml = MathJax.startup.toMML(item.root);
      const undef = mml.match(/<mtext mathcolor="red">(\\[^<]*)<\/mtext>/);
      if (undef) bad.push(`undefined TeX macro ${undef[1]} in ${short(item.math)}`);
    }
  }
  // Raw TeX left in visible text (outside code, scripts and typeset math).
  const skip = 'script, style, pre, code, textarea, mjx-container, .highlight, .MathJax';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const rawTex = /\\\(|\\\[|\$\$|\$[^$\n]*[\\^_{][^$\n]*\$|\\begin\{/;
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest(skip)) continue;
    const m = n.textContent.match(rawTex);
    if (m && el.getClientRects().length) { bad.push(`raw TeX in text: ${short(n.textContent)}`); break; }
  }

  // Images: loaded, non-zero natural size.
  for (const img of document.images) {
    if (!img.complete || img.naturalWidth === 0 || img.naturalHeight === 0)
      bad.push(`image not loaded: ${(img.getAttribute('src') || '').slice(0, 80)}`);
  }

  // Cell outputs: tracebacks, errors, warnings, stderr, NaN.
  for (const out of document.querySelectorAll('.cell_output')) {
    const t = text(out);
    if (out.querySelector('.traceback, .output.error') || /Traceback \(most recent call last\)/.test(t))
      bad.push(`traceback in output: ${short((t.match(/\w*(Error|Exception|Interrupt)\b:.*/) || [t])[0])}`);
    else if (/\b[A-Z]\w*(Error|Exception)\b:/.test(t)) bad.push(`error in output: ${short(t.match(/\b[A-Z]\w*(Error|Exception)\b:.*/)[0])}`);
    if (/\b[A-Z]\w*Warning\b/.test(t)) bad.push(`warning in output: ${short(t.match(/\b[A-Z]\w*Warning\b.*/)[0])}`);
    for (const err of out.querySelectorAll('.output.stderr'))
      if (text(err)) bad.push(`stderr output: ${short(text(err))}`);
    if (/(^|[^\w.])(nan|NaN|NAN)([^\w]|$)/.test(t)) bad.push(`NaN in output: ${short(t.match(/.{0,30}\b(nan|NaN|NAN)\b.{0,30}/)[0])}`);
  }

  // Colab: the chapter's own notebook, and nothing else.
  const colab = [...document.querySelectorAll('a[href^="https://colab.research.google.com/"]')]
    .map((a) => a.href).filter((h) => !h.includes('/assets/'));
  if (expectedColab) {
    if (!colab.includes(expectedColab)) bad.push(`no Colab link to ${expectedColab}`);
    for (const h of new Set(colab)) if (h !== expectedColab) bad.push(`wrong Colab link ${h}`);
  }

  // Widget areas: animations show a frame and a slider; ipywidgets views are rendered.
  for (const anim of document.querySelectorAll('.animation')) {
    const img = anim.querySelector('img');
    if (!img || !img.naturalWidth) bad.push('animation without a loaded frame');
    if (!anim.querySelector('input[type=range]')) bad.push('animation without its slider');
  }
  for (const view of document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')) {
    const area = view.parentElement;
    const rendered = area.querySelector('.jupyter-widgets, .widget-subarea, .lm-Widget');
    const box = (rendered || area).getBoundingClientRect();
    if (!rendered || box.height < 4 || box.width < 4) bad.push('empty widget area (no saved widget state rendered)');
  }
  // Printouts wider than their box: a visible code or output block (or an output table) whose content
  // runs past its own box (scrollWidth > clientWidth) or past its parent's, i.e. what a reader must
  // scroll sideways to see. Blocks not shown (display:none, inside a closed <details> such as a
  // collapsed hide-input toggle) do not count.
  const blocks = new Set(document.querySelectorAll(
    'div.highlight pre, .cell_output pre, .output pre, .cell_output table, .output table'));
  for (const el of blocks) {
    if (!el.getClientRects().length || getComputedStyle(el).visibility === 'hidden') continue;
    if (el.closest('details:not([open])') && !el.closest('summary')) continue;
    const parent = el.parentElement;
    const inner = el.scrollWidth - el.clientWidth;
    const outer = parent && parent.clientWidth ? el.getBoundingClientRect().width - parent.clientWidth : 0;
    if (Math.max(inner, outer) > 1) {
      const [wide, box] = inner >= outer ? [el.scrollWidth, el.clientWidth]
                                         : [Math.round(el.getBoundingClientRect().width), parent.clientWidth];
      bad.push(`block wider than its box (${wide} px in ${box} px): ${short(text(el)).slice(0, 60)}`);
    }
  }
  return bad;
}
"""

#: Resolves once MathJax has typeset the page and the widget manager had a chance to render.
SETTLE_JS = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]');
  for (let i = 0; i < 100 && views.length; i++) {
    const done = [...views].every((v) => v.parentElement.querySelector('.jupyter-widgets, .widget-subarea, .lm-Widget'));
    if (done) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  // Scroll through the page so that lazily loaded images load, then wait for every image.
  for (let y = 0; y < document.body.scrollHeight; y += window.innerHeight) {
    window.scrollTo(0, y);
    await new Promise((r) => setTimeout(r, 20));
  }
  window.scrollTo(0, 0);
  await Promise.all([...document.images].map((img) => img.complete ? null :
    new Promise((r) => { img.addEventListener('load', r); img.addEventListener('error', r); setTimeout(r, 5000); })));
}
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(site: Path) -> http.server.ThreadingHTTPServer:
    """Serve ``site`` on 127.0.0.1 (a free port) from a daemon thread."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def pages_of(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html") if not (set(p.relative_to(site).parts[:-1]) & ASSET_DIRS))


def check_page(page, url: str, expected_colab: str | None, shot: Path) -> list[str]:
    """Load ``url`` in ``page`` (a Playwright page), run the checks, save a full-page screenshot."""
    bad: list[str] = []
    handlers = {
        # (failed loads are reported below with their address, not as console errors)
        "console": lambda msg: msg.type == "error" and not msg.text.startswith("Failed to load resource")
        and bad.append(f"console error: {msg.text[:120]}"),
        "pageerror": lambda err: bad.append(f"script error: {str(err)[:120]}"),
        "requestfailed": lambda req: urlsplit(req.url).hostname in LOCAL_HOSTS
        and bad.append(f"request failed: {urlsplit(req.url).path}"),
        "response": lambda res: res.status >= 400 and bad.append(f"HTTP {res.status}: {urlsplit(res.url).path}"),
    }
    for event, fn in handlers.items():
        page.on(event, fn)
    try:
        page.goto(url, wait_until="load", timeout=TIMEOUT_MS)
        page.evaluate(SETTLE_JS)
        bad += page.evaluate(PAGE_CHECKS_JS, [expected_colab])
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True, timeout=TIMEOUT_MS)
    except Exception as exc:  # a page that cannot load or settle fails with the reason
        bad.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
    for event, fn in handlers.items():
        page.remove_listener(event, fn)
    return list(dict.fromkeys(bad))


def check_site(site: Path, config: dict, screenshots: Path, source: Path = ROOT, verbose: bool = True) -> dict[str, list[str]]:
    """Check every page of ``site`` (see the module docstring); print one line per page and return
    ``{page: reasons}`` (empty reasons = pass). A page ``X.html`` is a chapter when ``source/X.ipynb`` exists."""
    pages = pages_of(site)
    ensure_tools()
    from playwright.sync_api import sync_playwright

    if screenshots.exists():
        shutil.rmtree(screenshots)
    server = serve(site)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    external: list[str] = []

    def route(r):
        parts = urlsplit(r.request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOCAL_HOSTS:
            external.append(r.request.url)
            return r.abort("blockedbyclient")
        return r.continue_()

    results = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
            context = browser.new_context(viewport={"width": WINDOW_WIDTH, "height": 900}, service_workers="block")
            context.route("**/*", route)
            page = context.new_page()
            for path in pages:
                rel = path.relative_to(site).as_posix()
                t0 = time.time()
                bad = broken_links(site, path) + broken_sentences(path)
                if _parse(path).refresh is None:  # (of a redirect page, only the links are checked)
                    notebook = Path(rel).with_suffix(".ipynb").as_posix()
                    expected = colab_url(config, notebook) if (source / notebook).is_file() else None
                    if expected:
                        bad += missing_static_fallback(path, source / notebook)
                    external.clear()
                    shot = screenshots / (rel.removesuffix(".html").replace("/", "__") + ".png")
                    bad += check_page(page, base + rel, expected, shot)
                    bad += [f"external request {u[:100]}" for u in dict.fromkeys(external)]
                results[rel] = bad
                if verbose:
                    print(f"{'FAIL' if bad else 'PASS'} {rel} ({time.time() - t0:.1f} s)"
                          + "".join(f"\n    - {b}" for b in bad), flush=True)
            browser.close()
    finally:
        server.shutdown()
    return results


#: A page with one instance of every problem the checker must catch (``--self-test``).
BAD_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<p>Raw maths $x_t^2$ and \\(\\alpha\\).</p>
<img src="missing.png"> <img src="https://cdn.example.org/logo.png"> <a href="nowhere.html">x</a>
<a href="chapter.html#no-such-anchor">y</a> <span id="here"></span> <a href="#here">ok</a>
<a href="https://colab.research.google.com/github/o/r/blob/main/book/other.ipynb">Colab</a>
<div class="cell_output"><div class="output stream"><pre>loss = nan</pre></div>
<div class="output stderr"><pre>/x.py:3: UserWarning: careful</pre></div>
<div class="output traceback"><pre>Traceback (most recent call last)\nValueError: boom</pre></div></div>
<div class="cell_output"><script type="application/vnd.jupyter.widget-view+json">{"model_id": "x"}</script></div>
<div class="cell_output"><div class="highlight"><pre>WIDE {wide}</pre></div></div>
<details class="hide above-input"><summary>Show code</summary><div class="highlight"><pre>HIDDEN {wide}</pre></div></details>
<div class="cell_output" style="display:none"><pre>HIDDEN {wide}</pre></div>
<p>As the exercise Exercise 8.4 shows, by ((3.2)), the network of <a class="reference internal" href="fits.html">A title
for the page</a> does.</p>
<script>console.error("self-test"); undefinedFunction();</script>
</body></html>""".replace("{wide}", "0123456789 " * 40)
#: A page that must pass: blocks that fit, and wide blocks only where a reader cannot see them.
GOOD_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="width: 800px">
<h1>1. A title for the page<a class="headerlink" href="#">#</a></h1>
<p>As Exercise 8.4 shows, by (3.2) (see <a class="reference internal" href="chapter.html">Chapter 2</a>), a table
or two, and <a class="reference internal" href="fits.html">A title for the page</a> on itself.</p>
<ul><li><a class="reference internal" href="chapter.html">Chapter title in a list: a map</a></li></ul>
<div class="cell_input"><div class="highlight"><pre>x = 1  # fits</pre></div></div>
<div class="cell_output"><div class="output"><pre style="white-space: pre-wrap">{wide}</pre></div>
<table><tr><td>a</td><td>0.5</td></tr></table></div>
<details class="hide above-input"><summary>Show code</summary><div class="highlight"><pre>{wide}</pre></div></details>
<div class="cell_output" style="display:none"><pre>{wide}</pre></div>
</body></html>""".replace("{wide}", "wrapped or hidden " * 40)
EXPECTED_REASONS = [
    "broken link missing.png", "broken link nowhere.html", "missing anchor chapter.html#no-such-anchor",
    "HTTP 404", "raw TeX in text", "image not loaded: missing.png", "NaN in output", "warning in output",
    "stderr output", "traceback in output: ValueError: boom", "no Colab link to", "wrong Colab link",
    "empty widget area", "static fallback missing", "console error: self-test", "script error", "external request https://cdn.example.org",
    "block wider than its box", "doubled reference word: ...As the exercise Exercise",
    "doubled reference word: ...As the exercise Exercise 8.4 shows, by ((3",
    "chapter title inside a sentence: 'A title for the page'",
]


def self_test(tmp: Path) -> list[str]:
    """Run the checker on a synthetic page with known problems and on one that fits; return what it got
    wrong: problems it missed, hidden blocks it counted, reasons it gave the page that fits."""
    site, source = tmp / "site", tmp / "source"
    (site / "book").mkdir(parents=True)
    (source / "book").mkdir(parents=True)
    (source / "book" / "chapter.ipynb").write_text(json.dumps(
        {"cells": [{"cell_type": "code", "source": ["interactive(draw, [{'t': 1}], t=(0, 9, 1))"]}]}))
    (site / "book" / "chapter.html").write_text(BAD_PAGE)
    (site / "book" / "fits.html").write_text(GOOD_PAGE)
    config = {"repository": {"url": "https://github.com/o/r", "branch": "main"}}
    results = check_site(site, config, tmp / "shots", source, verbose=False)
    bad = results["book/chapter.html"]
    wrong = [e for e in EXPECTED_REASONS if not any(b.startswith(e) for b in bad)]
    wide = [b for b in bad if b.startswith("block wider than its box")]
    if len(wide) != 1 or "WIDE 0123" not in wide[0]:
        wrong.append(f"expected one wide block (the visible one), got {wide}")
    wrong += [f"fits.html: {b}" for b in results["book/fits.html"]]
    return wrong


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", default="_build/html", type=Path)
    parser.add_argument("--config", default=ROOT / "_config.yml", type=Path)
    parser.add_argument("--screenshots", default=ROOT / "_build" / "screenshots", type=Path)
    parser.add_argument("--self-test", action="store_true",
                        help="first check that a synthetic broken page fails for every expected reason")
    args = parser.parse_args(argv)
    if args.self_test:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            missed = self_test(Path(tmp))
        if missed:
            print(f"check-site: self-test FAILED, the checker got these wrong: {missed}")
            return 2
        print("check-site: self-test passed (the synthetic broken page failed for every expected reason, "
              "the page that fits passed)")
    site = args.site.resolve()
    if not (site.is_dir() and pages_of(site)):
        raise SystemExit(f"check-site: no HTML pages under {site}; build the book first (make book / make book-fast)")
    start = time.time()
    results = check_site(site, load_config(args.config), args.screenshots)
    failed = sum(bool(bad) for bad in results.values())
    print(f"check-site: {len(results)} pages in {time.time() - start:.0f} s, screenshots in {args.screenshots}")
    print(f"check-site: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
