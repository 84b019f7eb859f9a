"""Sphinx extension (loaded from ``_config.yml``): keep the rendered book free of CDN requests.

- Fails the build (a warning under ``-W``) when the offline assets of ``tools/fetch_assets.py``
  are missing, instead of silently rendering pages without MathJax.
- Drops the FontAwesome 4 ``<link>`` to a CDN that matplotlib's ``to_jshtml`` animations carry:
  the theme already ships FontAwesome, which draws the animation buttons.
- Shows the chapters' "Open in Colab" badges from the site (``offline/colab_badge.svg``, our own
  drawing) instead of Google's server; the notebooks keep the usual badge address.
- Removes duplicate ``<script>`` entries (sphinx-thebe registers its inline configuration twice,
  which raises "Identifier 'THEBE_JS_URL' has already been declared" in every page).
"""
from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx.util import logging
from sphinx.util.osutil import relative_uri

logger = logging.getLogger(__name__)

#: The stylesheet link that ``matplotlib.animation.HTMLWriter``/``to_jshtml`` puts before each animation.
CDN_FONT_LINK = re.compile(r'<link\s+rel="stylesheet"\s+href="https://maxcdn\.bootstrapcdn\.com/font-awesome/[^"]*"\s*/?>\s*')
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
LOCAL_BADGE = "offline/colab_badge.svg"


def check_assets(app) -> None:
    stamp = Path(app.srcdir) / "_extra" / "offline" / "VERSIONS.json"
    if app.builder.format == "html" and not stamp.is_file():
        logger.warning(f"offline assets missing ({stamp}): run `make assets` (tools/fetch_assets.py)")


def localize(app, doctree, docname) -> None:
    """Serve the Colab badge from the site and drop the animations' CDN stylesheet."""
    if app.builder.format != "html":
        return
    badge = relative_uri(app.builder.get_target_uri(docname), LOCAL_BADGE)
    for image in doctree.findall(nodes.image):
        if image.get("uri") == COLAB_BADGE:
            image["uri"] = badge
            image["candidates"] = {"?": badge}
    for raw in list(doctree.findall(nodes.raw)):
        text = raw.astext()
        if "html" in raw.get("format", "") and (CDN_FONT_LINK.search(text) or COLAB_BADGE in text):
            text = CDN_FONT_LINK.sub("", text).replace(COLAB_BADGE, badge)
            raw.replace_self(nodes.raw(text, text, format=raw["format"]))


def _script_key(js):
    """Same file (``None`` and ``""`` both mean an inline script) with the same attributes and body."""
    attributes = getattr(js, "attributes", {})
    return getattr(js, "filename", js) or "", tuple(sorted(attributes.items()))


def dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if scripts:
        unique = {}
        for js in scripts:
            unique.setdefault(_script_key(js), js)
        context["script_files"] = list(unique.values())


def setup(app):
    app.connect("builder-inited", check_assets)
    app.connect("doctree-resolved", localize)
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
