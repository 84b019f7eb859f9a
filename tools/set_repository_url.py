"""Set the book's repository address from its one setting, ``repository.url`` in ``_config.yml``.

Usage: ``python tools/set_repository_url.py https://github.com/OWNER/REPO`` (writes the address into
``_config.yml`` and everything generated from it), or ``python tools/set_repository_url.py`` after editing
``_config.yml`` by hand (generates everything else from it).

``_config.yml`` ``repository.url`` is the setting: Jupyter Book's launch buttons (Colab, from
``launch_buttons.colab_url``) and repository buttons read it, so the chapters carry no Colab badge and
no copy of the address in their text. Copies are generated only where a reader has no ``_config.yml``
(``tests/test_book.py`` checks that they agree with it):

- ``REPOSITORY_URL`` in ``locality_lib/__init__.py`` (the installed library's own record);
- the install cell of every chapter (``git+<url>``): a notebook opened in Colab has no ``_config.yml``, so
  the cell that installs ``locality_lib`` there must name the address itself;
- ``README.md`` and ``docs/*.md`` (and any link in ``book/*.md``): links to the repository, Colab links
  (``colab.research.google.com/github/OWNER/REPO/...``) and the address where the book will be published on
  GitHub Pages (:func:`pages_url`, e.g. ``https://owner.github.io/REPO/``; ``.github/workflows/book.yml``
  publishes it).

The copies are rewritten from the address they hold now (``REPOSITORY_URL``, the last generated one) to
the setting's. Files are edited as text (one exact substitution of the old address), so nothing else in
them changes; running it twice with the same address changes nothing.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GITHUB_URL = re.compile(r"https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)")
CONSTANT = re.compile(r'^(REPOSITORY_URL\s*=\s*")([^"]*)(")', re.M)
CONFIG_URL = re.compile(r"^(repository:[ \t]*\n(?:[ \t]+.*\n|[ \t]*\n)*?[ \t]+url:[ \t]*)(\S+)", re.M)


def parse_github_url(url: str) -> tuple[str, str]:
    """``https://github.com/OWNER/REPO`` (optional trailing ``/`` or ``.git``) -> ``(OWNER, REPO)``."""
    m = GITHUB_URL.fullmatch(url.strip().removesuffix("/").removesuffix(".git"))
    if m is None:
        raise ValueError(f"expected a repository address like https://github.com/OWNER/REPO, got {url!r}")
    return m.group(1), m.group(2)


def pages_url(url: str) -> str:
    """The GitHub Pages address of the book published from ``url`` by ``.github/workflows/book.yml``:
    ``https://github.com/OWNER/NAME`` -> ``https://owner.github.io/NAME/`` (GitHub lowercases the owner's
    host name); the repository ``OWNER.github.io`` is the owner's own site, ``https://owner.github.io/``."""
    owner, repo = parse_github_url(url)
    host = f"{owner.lower()}.github.io"
    return f"https://{host}/" if repo.lower() == host else f"https://{host}/{repo}/"


def config_url(root: Path) -> str:
    """``repository.url`` in ``_config.yml``: the setting every other copy is generated from."""
    m = CONFIG_URL.search((root / "_config.yml").read_text())
    if m is None:
        raise ValueError("_config.yml has no `repository:` block with a `url:` line")
    return m.group(2)


def current_url(root: Path) -> str:
    """The address in ``locality_lib/__init__.py``: the one the generated copies (install cells, links) hold now."""
    m = CONSTANT.search((root / "locality_lib" / "__init__.py").read_text())
    if m is None:
        raise ValueError("locality_lib/__init__.py has no line REPOSITORY_URL = \"...\"")
    return m.group(2)


def _replace_url(text: str, old: str, new: str) -> str:
    """Replace ``old`` where it is a whole repository address (not a prefix of a longer name),
    its Colab form ``colab.research.google.com/github/OWNER/REPO`` and its Pages address (:func:`pages_url`)."""
    (o_owner, o_repo), (n_owner, n_repo) = parse_github_url(old), parse_github_url(new)
    end = r"(?![A-Za-z0-9_.-])"
    text = re.sub(re.escape(f"https://github.com/{o_owner}/{o_repo}") + end,
                  f"https://github.com/{n_owner}/{n_repo}", text)
    text = re.sub(re.escape(pages_url(old).removesuffix("/")) + r"(?:/|" + end + ")",
                  lambda m: pages_url(new) if m.group().endswith("/") else pages_url(new).removesuffix("/"), text)
    return re.sub(re.escape(f"colab.research.google.com/github/{o_owner}/{o_repo}/"),
                  f"colab.research.google.com/github/{n_owner}/{n_repo}/", text)


def files_to_rewrite(root: Path) -> list[Path]:
    files = [root / "_config.yml", root / "locality_lib" / "__init__.py", root / "README.md"]
    files += sorted((root / "book").glob("*.ipynb")) + sorted((root / "book").glob("*.md"))
    files += sorted((root / "docs").glob("*.md"))
    return [f for f in files if f.is_file()]


def set_repository_url(new: str | None = None, root: Path = ROOT) -> list[Path]:
    """Set ``repository.url`` in ``_config.yml`` to ``new`` (None: keep the setting as it is) and rewrite every
    copy of the current address under ``root`` to it; return the changed files."""
    owner, repo = parse_github_url(config_url(root) if new is None else new)
    new = f"https://github.com/{owner}/{repo}"
    old = current_url(root)
    parse_github_url(old)
    changed = []
    for path in files_to_rewrite(root):
        text = path.read_text()
        updated = _replace_url(text, old, new)
        if path.name == "__init__.py":
            updated = CONSTANT.sub(lambda m: m.group(1) + new + m.group(3), updated)
        if path.name == "_config.yml":
            updated = CONFIG_URL.sub(lambda m: m.group(1) + new, updated)
        if updated != text:
            path.write_text(updated)
            changed.append(path)
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default=None,
                        help="https://github.com/OWNER/REPO (default: repository.url of _config.yml)")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    try:
        changed = set_repository_url(args.url, args.root.resolve())
    except ValueError as exc:
        parser.error(str(exc))
    for path in changed:
        print(f"updated {path.relative_to(args.root.resolve())}")
    url = config_url(args.root.resolve())
    print(f"{len(changed)} file(s) changed; once {url} is public, its workflow publishes the book at {pages_url(url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
