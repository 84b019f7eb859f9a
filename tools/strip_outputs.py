"""Strip notebook outputs before committing: chapters are committed without outputs, the book
build executes them.

Usage: ``python tools/strip_outputs.py [--check] [NOTEBOOK ...]`` (default: ``book/*.ipynb``).
Removes cell outputs, execution counts, per-cell execution timing metadata and saved widget
state; keeps sources, tags and other metadata. ``--check`` changes nothing and exits 1 when a
notebook is not stripped (listing it).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def strip(nb) -> bool:
    """Strip ``nb`` in place; return True when something was removed."""
    changed = nb.metadata.pop("widgets", None) is not None
    for cell in nb.cells:
        for key in ("execution", "collapsed", "scrolled"):
            changed |= cell.metadata.pop(key, None) is not None
        if cell.cell_type == "code":
            changed |= bool(cell.outputs) or cell.execution_count is not None
            cell.outputs, cell.execution_count = [], None
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--check", action="store_true", help="only report notebooks that are not stripped")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "book").glob("*.ipynb"))
    dirty = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if strip(nb):
            dirty.append(path)
            if not args.check:
                nbformat.write(nb, path)
    verb = "not stripped" if args.check else "stripped"
    for path in dirty:
        print(f"{verb}: {path}")
    return 1 if (args.check and dirty) else 0


if __name__ == "__main__":
    sys.exit(main())
