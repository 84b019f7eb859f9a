"""The package a reader installs (Colab's first cell, ``pip install git+URL``): built from a clean checkout
(``git archive HEAD``: committed files only) as an sdist, the wheel built from that sdist, installed into a
new virtual environment, loads both shipped UNets from inside the installed package and denoises exactly as
the source tree does. Slow (about 30 s: builds, a new venv, a torch import); no network: the new venv
reuses this environment's torch through a ``.pth`` line and pip installs with ``--no-deps --no-index``.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

from locality_lib import UNetDenoiser

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = sorted(p.name for p in (ROOT / "locality_lib" / "checkpoints").glob("*.pt"))
# the results chapter 8 reads (paper's protocol, ELS scan, stored final samples for a second referee)
RESULTS = sorted(p.name for pat in ("*.json", "*.npz") for p in (ROOT / "locality_lib" / "results").glob(pat))
FUTURE = "locality_lib/checkpoints/dit/future.pt"  # a checkpoint in a subfolder, added before building

# Run in the new venv: load each UNet, denoise a fixed input, save the results and where the package lives.
PROBE = """
import sys, torch, locality_lib
from locality_lib import UNetDenoiser
from locality_lib.epsilon import CHECKPOINT_DIR
g = torch.Generator().manual_seed(0)
x = torch.randn(2, 1, 28, 28, generator=g)
out = {name: UNetDenoiser.from_pretrained(name)(x, 500) for name in ("mnist", "fashion_mnist")}
torch.save({"x": x, "out": out, "file": locality_lib.__file__, "ckpt": str(CHECKPOINT_DIR)}, sys.argv[1])
"""


def _extract(tar: tarfile.TarFile, dest: Path) -> None:
    """``extractall`` with the safe ``data`` filter where this Python has it (3.12, and 3.9-3.11 patch releases of 2023 on)."""
    tar.extractall(dest, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))


def _run(cmd, cwd, env=None):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
def test_wheel_from_clean_checkout_ships_the_checkpoints(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout")
    assert {"fashion_mnist.pt", "mnist.pt"} <= set(CHECKPOINTS), CHECKPOINTS  # the two UNets the probe loads
    src = tmp_path / "src"
    src.mkdir()
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    _extract(tarfile.open(fileobj=io.BytesIO(archive)), src)
    (src / FUTURE).parent.mkdir(parents=True)
    (src / FUTURE).write_bytes(b"not a real checkpoint")

    # sdist from the checkout, wheel from the unpacked sdist (as pip does): the PEP 517 hooks of setuptools.
    dist = tmp_path / "dist"
    hook = "import sys; from setuptools import build_meta as b; print(getattr(b, sys.argv[1])(sys.argv[2]))"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    sdist = dist / _run([sys.executable, "-c", hook, "build_sdist", dist], src, env).split()[-1]
    with tarfile.open(sdist) as tar:
        names = {n.partition("/")[2] for n in tar.getnames()}
        _extract(tar, tmp_path / "unpacked")
    for name in CHECKPOINTS:
        assert f"locality_lib/checkpoints/{name}" in names, f"sdist lacks {name}"
    assert FUTURE in names, "sdist lacks a checkpoint in a subfolder of locality_lib/checkpoints"
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    wheel = dist / _run([sys.executable, "-c", hook, "build_wheel", dist], unpacked, env).split()[-1]
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    for name in CHECKPOINTS:
        assert f"locality_lib/checkpoints/{name}" in names, f"wheel lacks {name}"
    assert any(n.endswith(".npz") for n in RESULTS), RESULTS
    for name in RESULTS:
        assert f"locality_lib/results/{name}" in names, f"wheel lacks results/{name}"
    assert FUTURE in names, "wheel lacks a checkpoint in a subfolder of locality_lib/checkpoints"

    # A new venv without pip; this environment's packages (torch, ...) appended to its path by a .pth
    # line (appended: the wheel's locality_lib, in the venv's own site-packages, comes first).
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path)
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path).strip())
    here = [p for p in sys.path if p.endswith("site-packages") and Path(p, "torch").is_dir()]
    (site / "outer.pth").write_text("\n".join(here) + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel], tmp_path)

    result = tmp_path / "probe.pt"
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    _run([python, "-c", PROBE, result], run_dir, env)
    got = torch.load(result)
    assert Path(got["file"]).is_relative_to(site), f"locality_lib imported from {got['file']}, not the wheel"
    assert Path(got["ckpt"]).is_relative_to(site)
    for name, out in got["out"].items():
        expected = UNetDenoiser.from_pretrained(name)(got["x"], 500)
        assert torch.equal(out, expected), f"{name}: the installed UNet denoises differently from the source tree's"
        assert not torch.equal(out, got["x"])  # a denoiser, not the identity
