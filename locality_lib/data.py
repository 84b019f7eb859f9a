"""Datasets as float32 tensors ``[N, C, H, W]`` in [-1, 1] (``uint8 / 127.5 - 1``).

``load_dataset(name, split="train", n=None, seed=0, root=None, **options)``:

* ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"`` -- torchvision's raw files under the data root:
  ``root``, else ``$LOCALITY_DATA_DIR``, else ``~/.cache/locality``; downloaded there when missing
  and a network is available.
* ``"natural_patches"`` -- random crops of the photographs that ship with scikit-image
  (options ``size=32``, ``grayscale=False``, ``num=10000``); train crops come from the left 3/4
  of each photograph, test crops from the right 1/4.
* ``"faces"`` -- the 100 aligned 25x25 grayscale faces of scikit-image's LFW subset
  (train: the first 80, test: the last 20).
* ``"gaussian_field"`` -- synthetic stationary (periodic) Gaussian fields with a Gaussian
  correlation kernel (options ``size=16``, ``length=2.0`` pixels, ``std=0.3``, ``num=10000``).

``n=None`` returns the whole split in its own order; ``n=k`` a random subset of k drawn with ``seed``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["load_dataset", "data_root", "DATASETS"]

DATASETS = ("mnist", "fashion_mnist", "cifar10", "natural_patches", "faces", "gaussian_field")
_TORCHVISION = {"mnist": ("MNIST", "MNIST/raw"), "fashion_mnist": ("FashionMNIST", "FashionMNIST/raw"),
                "cifar10": ("CIFAR10", "cifar-10-batches-py")}
_PHOTOS = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina",
           "rocket")


def data_root(root=None) -> Path:
    """The data root: ``root``, else ``$LOCALITY_DATA_DIR``, else ``~/.cache/locality``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("LOCALITY_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "locality"


def _to_unit(u8: torch.Tensor) -> torch.Tensor:
    return u8.float() / 127.5 - 1.0


def _torchvision(name: str, train: bool, root) -> torch.Tensor:
    import torchvision

    cls_name, sub = _TORCHVISION[name]
    cls = getattr(torchvision.datasets, cls_name)
    folder = data_root(root)
    try:
        ds = cls(root=str(folder), train=train, download=False)
    except RuntimeError:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            ds = cls(root=str(folder), train=train, download=True)
        except Exception as err:
            raise FileNotFoundError(
                f"Could not find or download {cls_name}: looked in {folder / sub}. Either allow the download "
                f"(a network connection), or put torchvision's raw files there, or set LOCALITY_DATA_DIR "
                f"(or pass root=) to a folder that holds {sub}/. ({type(err).__name__}: {err})"
            ) from None
    data = torch.as_tensor(np.asarray(ds.data))
    if data.ndim == 3:  # [N, H, W] -> [N, 1, H, W]
        data = data[:, None]
    else:  # CIFAR: [N, H, W, C] -> [N, C, H, W]
        data = data.permute(0, 3, 1, 2)
    return _to_unit(data.contiguous())


def _photo(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return img[..., :3]


def _natural_patches(train: bool, seed: int, size: int = 32, grayscale: bool = False, num: int = 10000):
    if not (isinstance(size, int) and 2 <= size <= 128):
        raise ValueError(f"size must be an int in 2..128, got {size!r}")
    if not (isinstance(num, int) and num >= 1):
        raise ValueError(f"num must be a positive int, got {num!r}")
    rng = np.random.default_rng([seed, 0 if train else 1])
    photos = [_photo(p) for p in _PHOTOS]
    out = np.empty((num, size, size, 3), dtype=np.uint8)
    which = rng.integers(len(photos), size=num)
    for k in range(num):
        img = photos[which[k]]
        h, w = img.shape[:2]
        split = (3 * w) // 4
        x_lo, x_hi = (0, split - size) if train else (split, w - size)
        y0 = rng.integers(0, h - size + 1)
        x0 = rng.integers(x_lo, x_hi + 1)
        out[k] = img[y0 : y0 + size, x0 : x0 + size]
    x = torch.from_numpy(out).permute(0, 3, 1, 2).float()
    if grayscale:
        x = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).round()
    return x / 127.5 - 1.0


def _faces(train: bool):
    import skimage.data

    faces = skimage.data.lfw_subset()[:100]  # the first 100 are faces, float in [0, 1]
    faces = faces[:80] if train else faces[80:]
    return torch.from_numpy(np.ascontiguousarray(faces)).float()[:, None] * 2.0 - 1.0


def _gaussian_field(train: bool, seed: int, size: int = 16, length: float = 2.0, std: float = 0.3, num: int = 10000):
    if not (isinstance(size, int) and size >= 2):
        raise ValueError(f"size must be an int >= 2, got {size!r}")
    if not (length > 0 and std > 0 and isinstance(num, int) and num >= 1):
        raise ValueError(f"need length > 0, std > 0 and a positive int num; got length={length}, std={std}, num={num}")
    g = torch.Generator().manual_seed(int(seed) * 2 + (0 if train else 1))
    freqs = torch.fft.fftfreq(size, dtype=torch.float64)
    k2 = freqs[:, None] ** 2 + freqs[None, :] ** 2
    spectrum = torch.exp(-2 * math.pi**2 * length**2 * k2)  # power spectrum of a Gaussian kernel of width `length`
    white = torch.randn(num, size, size, generator=g, dtype=torch.float64)
    field = torch.fft.ifft2(torch.fft.fft2(white) * spectrum.sqrt()).real
    field = field / field.std()
    return (std * field).float()[:, None]


def load_dataset(name: str, split: str = "train", n: int | None = None, seed: int = 0, root=None, **options):
    """Return a float32 tensor ``[N, C, H, W]`` in [-1, 1] (see the module docstring for names and options)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    train = split == "train"
    if name in _TORCHVISION:
        if options:
            raise ValueError(f"{name} takes no options, got {sorted(options)}")
        x = _torchvision(name, train, root)
    elif name == "natural_patches":
        x = _natural_patches(train, seed, **options)
    elif name == "faces":
        if options:
            raise ValueError(f"faces takes no options, got {sorted(options)}")
        x = _faces(train)
    else:
        x = _gaussian_field(train, seed, **options)
    if n is not None:
        if not (isinstance(n, int) and 1 <= n <= x.shape[0]):
            raise ValueError(f"n must be None or an int in 1..{x.shape[0]} for {name} ({split}), got {n!r}")
        g = torch.Generator().manual_seed(int(seed))
        x = x[torch.randperm(x.shape[0], generator=g)[:n]]
    return x.contiguous()
