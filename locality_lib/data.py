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

Transforms that change a data set's pixel correlations (chapter 5 trains networks on them):

* ``plant_pattern(x, amplitude=2.0, seed=0)`` -- ``x_i + a_i w`` with ``w = w_mask()`` a W-shaped 0/1 mask
  in the top-left corner and ``a_i ~ U(0, amplitude)`` one amplitude per image (image ``i`` of ``x`` gets
  the ``i``-th draw of a generator seeded with ``seed``). With ``a`` independent of the images the
  covariance becomes ``Sigma + Var(a) w w^T`` (``Var(a) = amplitude^2 / 12``) and the mean ``mu + E[a] w``:
  a rank-one block on the W pixels; no other entry changes.
* ``shuffle_pixels(x, seed=0)`` -- images ``[..., B, C, H, W]``: ``y[b].flat[j] = x[b].flat[perm[j]]`` over the
  ``C*H*W`` pixels of each image with a fixed permutation ``perm = pixel_permutation(D, seed)``;
  ``unshuffle_pixels`` is its inverse (it carries images, or fields in image form, back to the grid).
  ``shuffle_flat`` / ``unshuffle_flat`` do the same along the last axis of flat vectors ``[..., D]`` (fields
  ``[inputs, pixels, D]``). Axes are never guessed: a 3-axis tensor is refused by the image functions.
  Covariance of the shuffled data ``Sigma[perm][:, perm]``.
* ``make_transform(spec)`` -- the callable for a spec ``{"name": "none" | "w" | "shuffled", **params}``.
"""
from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["load_dataset", "data_root", "DATASETS", "w_mask", "plant_pattern", "pixel_permutation",
           "shuffle_pixels", "unshuffle_pixels", "shuffle_flat", "unshuffle_flat", "make_transform", "TRANSFORMS"]

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


# -- transforms that change the pixel correlations ------------------------------------------------------

#: The W: rows 0..4 of a 5 x 9 box, ``1`` on four strokes (0,0)-(4,2)-(0,4)-(4,6)-(0,8).
_W_ROWS = ((0, 4, 8), (0, 4, 8), (1, 3, 5, 7), (1, 3, 5, 7), (2, 6))


def w_mask(shape=(1, 28, 28), top: int = 1, left: int = 1) -> torch.Tensor:
    """A W-shaped 0/1 mask ``[C, H, W]`` float32 (16 pixels in a 5 x 9 box at ``(top, left)``, every channel).

    The default corner (rows 1-5, columns 1-9 of a 28 x 28 image) is background in MNIST: a stroke
    crosses the W in about 4 % of the training digits (mostly on its bottom row).
    """
    c, h, w = shape
    if top < 0 or left < 0 or top + 5 > h or left + 9 > w:
        raise ValueError(f"the 5 x 9 W at (top={top}, left={left}) does not fit in an image of shape {tuple(shape)}")
    m = torch.zeros(shape)
    for r, cols in enumerate(_W_ROWS):
        m[:, top + r, [left + k for k in cols]] = 1.0
    return m


def plant_pattern(x: torch.Tensor, amplitude: float = 2.0, seed: int = 0, mask: torch.Tensor | None = None):
    """``x_i + a_i w`` for images ``x [N, C, H, W]``; ``a_i ~ U(0, amplitude)`` from ``seed``, ``w = w_mask`` by default.

    The same ``(x, seed)`` gives the same output; image ``i`` always gets draw ``i``. With the default
    amplitude 2 a background pixel (-1) of MNIST becomes ``-1 + a_i`` in ``[-1, 1]``; only where a stroke
    crosses the W can a pixel exceed 1 (at most ``1 + amplitude``). Nothing is clipped (clipping would
    break the rank-one covariance change).
    """
    check = x.ndim == 4 and x.dtype.is_floating_point
    if not check:
        raise ValueError(f"x must be a float tensor [N, C, H, W], got {x.dtype} of shape {tuple(x.shape)}")
    if not amplitude > 0:
        raise ValueError(f"amplitude must be positive, got {amplitude!r}")
    w = w_mask(tuple(x.shape[1:])) if mask is None else mask
    if tuple(w.shape) != tuple(x.shape[1:]):
        raise ValueError(f"mask has shape {tuple(w.shape)}, the images {tuple(x.shape[1:])}")
    a = torch.rand(x.shape[0], generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
    return x + (amplitude * a).to(x.dtype).view(-1, 1, 1, 1) * w.to(x.device, x.dtype)


def pixel_permutation(d: int, seed: int = 0) -> torch.Tensor:
    """A fixed permutation ``perm [d]`` (long) of the flat pixel indices, from ``seed``."""
    return torch.randperm(int(d), generator=torch.Generator().manual_seed(int(seed)))


def _image_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x [..., B, C, H, W]`` (at least 4 axes), else a ``ValueError`` naming the layouts it takes."""
    if not isinstance(x, torch.Tensor) or x.ndim < 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"{name} takes a batch of images [B, C, H, W] (or [..., B, C, H, W]) and permutes the C*H*W pixels of "
            f"each image; got shape {shape}. One image [C, H, W]: pass x[None]. Flat vectors or fields [..., D] "
            f"(e.g. [inputs, pixels, D]): use {name.replace('pixels', 'flat')}, which permutes the last axis only.")
    return x


def _flat_vectors(v: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(v, torch.Tensor) or v.ndim < 1:
        raise ValueError(f"{name} takes flat vectors [..., D] (pixels on the last axis); got {v!r:.60}")
    return v


def shuffle_flat(v: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``w[..., j] = v[..., perm[j]]`` along the last axis only (``[..., D]``, D = C*H*W): flat images or fields."""
    v = _flat_vectors(v, "shuffle_flat")
    return v[..., pixel_permutation(v.shape[-1], seed).to(v.device)]


def unshuffle_flat(w: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Inverse of :func:`shuffle_flat`: ``v[..., perm[j]] = w[..., j]`` along the last axis only; carries flat
    fields ``[..., D]`` (every leading axis a separate field) back to the grid."""
    w = _flat_vectors(w, "unshuffle_flat")
    out = torch.empty_like(w)
    out[..., pixel_permutation(w.shape[-1], seed).to(w.device)] = w
    return out


def shuffle_pixels(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Images ``x [..., B, C, H, W]`` with the ``C*H*W`` pixels of each image permuted: ``y[b].flat[j] =
    x[b].flat[perm[j]]``. A 3-axis tensor (one image, or flat fields?) is refused; see :func:`shuffle_flat`."""
    x = _image_batch(x, "shuffle_pixels")
    return shuffle_flat(x.flatten(-3), seed).reshape(x.shape)


def unshuffle_pixels(y: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Inverse of :func:`shuffle_pixels` on images ``[..., B, C, H, W]`` (fields in image form, e.g. ``[B, P, C, H, W]``,
    carried back to the grid); flat fields ``[..., D]`` go through :func:`unshuffle_flat`."""
    y = _image_batch(y, "unshuffle_pixels")
    return unshuffle_flat(y.flatten(-3), seed).reshape(y.shape)


def _identity(x: torch.Tensor) -> torch.Tensor:
    """No transform: the data as loaded."""
    return x


TRANSFORMS = {"none": _identity, "w": plant_pattern, "shuffled": shuffle_pixels}


def make_transform(spec=None):
    """The callable ``x -> transformed x`` for ``spec``: ``None`` or ``{"name": ..., **params}`` (see ``TRANSFORMS``).

    ``{"name": "w", "amplitude": 2.0, "seed": 0}`` is ``functools.partial(plant_pattern, amplitude=2.0, seed=0)``.
    """
    spec = dict(spec or {"name": "none"})
    name = spec.pop("name", None)
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; expected one of {', '.join(TRANSFORMS)}")
    if name == "none":
        if spec:
            raise ValueError(f"the 'none' transform takes no parameters, got {sorted(spec)}")
        return _identity
    return functools.partial(TRANSFORMS[name], **spec)
