"""Fetch the book's browser assets from the npm registry into ``_extra/offline`` (git-ignored).

The rendered book loads MathJax, RequireJS and the Jupyter-widgets html-manager from its own
``offline/`` folder instead of a CDN, so that it works without network (CI, offline readers).
The copies come from the npm registry with ``npm pack`` at setup time; nothing large is committed.

``_config.yml`` copies ``_extra/`` into the site root (``html_extra_path``; not ``_static``, whose
every ``.js`` Jupyter Book would load on every page) and points ``mathjax_path`` and
``nb_ipywidgets_js`` at ``../offline/...`` (relative to ``_static``).

Usage: ``python tools/fetch_assets.py [--dest _extra/offline] [--force]``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: npm package spec -> (destination folder, files/folders of the package to keep, relative to package/)
PACKAGES = {
    "mathjax@3.2.2": ("mathjax", [
        "LICENSE", "es5/tex-mml-chtml.js", "es5/input", "es5/output/chtml.js", "es5/output/chtml",
        "es5/a11y", "es5/ui", "es5/sre", "es5/adaptors", "es5/core.js", "es5/loader.js", "es5/startup.js",
    ]),
    "@jupyter-widgets/html-manager@1.0.15": ("html-manager", [
        "package.json", "dist/embed-amd.js", "dist/*.woff", "dist/*.woff2", "dist/*.ttf", "dist/*.eot", "dist/*.svg",
    ]),
    "requirejs@2.3.8": ("requirejs", ["require.js"]),
}
STAMP = "VERSIONS.json"
#: Written by this project (not fetched): copied next to the packages on every run.
OWN_FILES = [ROOT / "tools" / "widgets_config.js", ROOT / "tools" / "colab_badge.svg"]


def _copy(pkg_dir: Path, pattern: str, dest: Path) -> int:
    matches = sorted(pkg_dir.glob(pattern))
    for src in matches:
        target = dest / src.relative_to(pkg_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, dirs_exist_ok=True)
        else:
            shutil.copy2(src, target)
    return len(matches)


def fetch(dest: Path, force: bool = False) -> None:
    """Download every package of ``PACKAGES`` with ``npm pack`` and copy the kept files under ``dest``."""
    stamp = dest / STAMP
    wanted = sorted(PACKAGES)
    if not force and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        for own in OWN_FILES:
            shutil.copy2(own, dest / own.name)
        stamp.touch()
        print(f"assets: up to date in {dest}")
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("assets: `npm` not found; install Node.js/npm (e.g. `apt-get install -y npm`) and rerun")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = subprocess.run([npm, "pack", "--silent", "--pack-destination", str(tmp), *wanted],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"assets: npm pack failed:\n{out.stderr}")
        tarballs = {Path(line.strip()).name for line in out.stdout.splitlines() if line.strip().endswith(".tgz")}
        if len(tarballs) != len(wanted):
            raise SystemExit(f"assets: expected {len(wanted)} tarballs from npm pack, got {sorted(tarballs)}")
        if dest.exists():
            shutil.rmtree(dest)
        for spec in wanted:
            name, version = spec.rsplit("@", 1)
            tgz = tmp / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
            unpacked = tmp / tgz.stem
            with tarfile.open(tgz) as tar:
                tar.extractall(unpacked, filter="data")
            folder, keep = PACKAGES[spec]
            for pattern in keep:
                if _copy(unpacked / "package", pattern, dest / folder) == 0:
                    raise SystemExit(f"assets: {spec} has no {pattern}")
    for own in OWN_FILES:
        shutil.copy2(own, dest / own.name)
    stamp.write_text(json.dumps(wanted))
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file()) / 2**20
    print(f"assets: fetched {', '.join(wanted)} into {dest} ({size:.1f} MiB)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=ROOT / "_extra" / "offline")
    parser.add_argument("--force", action="store_true", help="fetch again even when the stamp matches")
    args = parser.parse_args(argv)
    fetch(args.dest.resolve(), args.force)


if __name__ == "__main__":
    sys.exit(main())
