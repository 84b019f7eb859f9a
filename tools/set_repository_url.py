"""Publish the book under a new repository address with one command.

Usage: ``python tools/set_repository_url.py https://github.com/OWNER/REPO``

The address lives in three kinds of places, all rewritten here (``tests/test_book.py`` checks
that they agree):

- ``_config.yml`` ``repository.url`` (launch and repository buttons of the rendered book);
- ``REPOSITORY_URL`` in ``locality_lib/__init__.py``;
- the chapters (``book/*.ipynb``, ``book/*.md``), ``README.md`` and ``docs/*.md``: the install cell
  (``git+<url>``), Colab badges (``colab.research.google.com/github/OWNER/REPO/...``), any
  other link to the repository, and the address of the published book on GitHub Pages
  (:func:`pages_url`, e.g. ``https://owner.github.io/REPO/``; ``.github/workflows/book.yml`` publishes it).

Files are edited as text (one exact substitution of the old address), so nothing else in them
changes; running it twice with the same address changes nothing.
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


def current_url(root: Path) -> str:
    """The address in ``locality_lib/__init__.py`` (the one the install cells must use)."""
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


def set_repository_url(new: str, root: Path = ROOT) -> list[Path]:
    """Rewrite every occurrence of the current address under ``root`` to ``new``; return the changed files."""
    owner, repo = parse_github_url(new)
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
    parser.add_argument("url", help="https://github.com/OWNER/REPO")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    try:
        changed = set_repository_url(args.url, args.root.resolve())
    except ValueError as exc:
        parser.error(str(exc))
    for path in changed:
        print(f"updated {path.relative_to(args.root.resolve())}")
    print(f"{len(changed)} file(s) changed; the book will be published at {pages_url(args.url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
