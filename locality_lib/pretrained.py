"""The networks shipped with the book, loaded by name: ``pretrained("dit/mnist")``.

Each name is ``<architecture>/<data>``; ``PRETRAINED`` maps every name to a one-line description, and
``locality_lib/checkpoints/README.md`` gives the command and the time that trained each one. A loaded
denoiser (:class:`~locality_lib.epsilon.EpsilonDenoiser`, a ``UNetDenoiser`` for the UNets) carries

* ``dataset`` -- its ``load_dataset`` name;
* ``transform`` -- the callable that made its training images from that data set (identity for plain
  data; ``plant_pattern`` or ``shuffle_pixels`` with the saved parameters otherwise); it applies to test
  images alike, so ``den.transform(load_dataset(den.dataset, "train"))`` rebuilds its training set and
  ``WienerDenoiser`` of that its linear counterpart.

:func:`on_grid` turns a network trained on shuffled pixels into a denoiser of unshuffled images, whose
sensitivity fields are the network's carried back to the pixel grid.
"""
from __future__ import annotations

import functools

from .base import Denoiser, denoiser_label
from .data import shuffle_pixels, unshuffle_pixels
from .epsilon import CHECKPOINT_DIR, EpsilonDenoiser, UNetDenoiser

__all__ = ["PRETRAINED", "pretrained", "on_grid"]

PRETRAINED = {
    "unet/mnist": "UNet (1.06 M parameters) trained on MNIST, 100 epochs on a GPU",
    "unet/fashion_mnist": "UNet (1.06 M parameters) trained on Fashion-MNIST, 100 epochs on a GPU",
    "dit/mnist": "DiT (patch 4, 1.26 M parameters) trained on MNIST on a CPU",
    "cnn/mnist": "attention-free CNN (zero-padded convolutions and skips, no global mixing; 1.05 M parameters) "
                 "trained on MNIST on a CPU",
    "unet/mnist-w": "UNet on MNIST with a planted W (plant_pattern), fine-tuned from unet/mnist",
    "dit/mnist-w": "DiT on MNIST with a planted W (plant_pattern), fine-tuned from an earlier stage of dit/mnist",
    "unet/mnist-shuffled": "UNet trained from scratch on MNIST with its pixels shuffled (shuffle_pixels)",
    "dit/mnist-shuffled": "DiT trained from scratch on MNIST with its pixels shuffled (shuffle_pixels)",
    "unet/mnist-plain": "UNet on plain MNIST with exactly unet/mnist-shuffled's recipe, seed and steps (its twin)",
    "dit/mnist-plain": "DiT on plain MNIST with exactly dit/mnist-shuffled's recipe, seed and steps (its twin)",
    "unet/mnist-shuffled-4x": "unet/mnist-shuffled trained on for 3x its steps (4x in all), as unet/mnist-plain-4x",
    "dit/mnist-shuffled-4x": "dit/mnist-shuffled trained on for 3x its steps (4x in all), as dit/mnist-plain-4x",
    "unet/mnist-plain-4x": "unet/mnist-plain trained on for 3x its steps (4x in all), as unet/mnist-shuffled-4x",
    "dit/mnist-plain-4x": "dit/mnist-plain trained on for 3x its steps (4x in all), as dit/mnist-shuffled-4x",
}
_FILES = {"unet/mnist": "mnist.pt", "unet/fashion_mnist": "fashion_mnist.pt"}  # the first two keep their names


def pretrained(name: str, map_location="cpu") -> EpsilonDenoiser:
    """The shipped network ``name`` (one of ``PRETRAINED``) as a denoiser ``den(x_t, t) -> x0_hat``.

    File: ``locality_lib/checkpoints/<arch>_<data>.pt`` (``mnist.pt`` / ``fashion_mnist.pt`` for the first
    two UNets). ``den.meta["name"]`` is ``name``; ``den.dataset`` and ``den.transform`` as in the module docstring.
    """
    if name not in PRETRAINED:
        raise ValueError(f"no pretrained network named {name!r}; expected one of: {', '.join(PRETRAINED)}")
    arch = name.split("/")[0]
    path = CHECKPOINT_DIR / _FILES.get(name, name.replace("/", "_") + ".pt")
    cls = UNetDenoiser if arch == "unet" else EpsilonDenoiser
    den = cls.from_checkpoint(path, map_location=map_location, arch=arch)
    den.meta["name"] = name
    return den


class _OnGrid(Denoiser):
    """``den_grid(x, t) = unshuffle(den(shuffle(x), t))`` (see :func:`on_grid`)."""

    def __init__(self, den, seed: int):
        self.den, self.seed = den, seed
        self.shape, self.schedule = den.shape, den.schedule
        self.meta = {"name": f"{denoiser_label(den)} on the grid"}  # a label for progress bars, not the inner's metadata

    def __repr__(self) -> str:
        return f"on_grid({self.den!r})"

    def _denoise(self, x_t, t):
        return unshuffle_pixels(self.den(shuffle_pixels(x_t, self.seed), t), self.seed)


def on_grid(den) -> Denoiser:
    """A denoiser trained on shuffled pixels, read on the grid: ``x -> unshuffle(den(shuffle(x), t))``.

    Its Jacobian is ``P^T J P`` (``P`` the permutation matrix, ``J`` the network's): row ``m`` is the field of
    grid pixel ``m`` with every input pixel put back in place. ``ValueError`` unless ``den.transform`` is a
    :func:`~locality_lib.data.shuffle_pixels` partial.
    """
    tf = getattr(den, "transform", None)
    if not (isinstance(tf, functools.partial) and tf.func is shuffle_pixels):
        raise ValueError(f"on_grid needs a denoiser trained on shuffled pixels (transform shuffle_pixels), "
                         f"got transform {tf!r}")
    return _OnGrid(den, int(tf.keywords.get("seed", 0)))

