"""What every chapter needs: set-up (seeds, plot style, device), fast mode, one colour per model,
numbers glued into the prose (``glue``) and the checks that keep the prose true (``claim``).

Both ``glue`` and ``claim`` work without the book's toolchain (in Colab ``myst_nb`` is absent):
``glue`` then prints the value, ``claim`` raises the same error.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["setup", "fast_mode", "MODEL_COLORS", "pick", "glue", "sci", "claim", "ClaimError"]

#: The same colour for the same model in every figure of the book.
MODEL_COLORS = {
    "unet": "#222222",
    "optimal": "#d62728",
    "nearest": "#ff9896",
    "wiener": "#1f77b4",
    "locality": "#2ca02c",
    "ls": "#9467bd",
    "els": "#8c564b",
    "els_padded": "#c49c94",
    "patch": "#e377c2",
    "data": "#7f7f7f",
    "dit": "#ff7f0e",
    "cnn": "#17becf",
}


def fast_mode() -> bool:
    """True when ``LOCALITY_FAST=1``: chapters shrink their work so the test suite can run them all."""
    return os.environ.get("LOCALITY_FAST", "0") not in ("", "0", "false", "False")


def pick(full, fast):
    """``fast`` in fast mode, else ``full`` (e.g. ``N = pick(60_000, 2_000)``)."""
    return fast if fast_mode() else full


def setup(seed: int = 0, device: str | None = None) -> torch.device:
    """Seed Python, NumPy and torch; set the book's figure style (:func:`locality_lib.style.apply`);
    return the device to use (``device`` if given, else CUDA, then MPS, else CPU)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    from .style import apply as apply_figure_style

    apply_figure_style()  # legible at the page's width: locality_lib/style.py
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def glue(name: str, value, display: bool = False):
    """Make ``value`` available to the text as ``{glue:text}`name:.3f` `` (myst-nb), and return it.

    Without myst-nb (Colab, a plain Jupyter) the value is printed as ``name = value`` instead, so
    the reader still sees the number the sentence refers to.
    """
    try:
        from myst_nb import glue as _glue
    except ImportError:
        print(f"{name} = {value}")
        return value
    _glue(name, value, display=display)
    return value


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def sci(value, digits: int = 1) -> str:
    """``value`` as the prose writes a small or large number, e.g. ``sci(0.00024) == "2.4 × 10⁻⁴"``: a string to
    glue (``glue("name", sci(x))``, then ``{glue:text}`name` ``), where ``:.1e`` would print ``2.4e-04``; zero is
    ``"0"``."""
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"sci needs a finite number, got {value}")
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.{digits}e}".split("e")
    return f"{mantissa} × 10{str(int(exponent)).translate(_SUPERSCRIPT)}"


class ClaimError(AssertionError):
    """A sentence of the book is not supported by the output it refers to."""


def claim(condition, sentence: str, **numbers):
    """Guard a sentence of the prose: raise ``ClaimError`` naming it when ``condition`` is False.

    Put it in a hidden cell (tag ``remove-cell``) right after the computation the sentence reads,
    stating exactly what the sentence says (not something weaker), e.g.
    ``claim(mse_unet < mse_wiener, "the UNet has a lower error than the Wiener filter at t = 200",
    unet=mse_unet, wiener=mse_wiener)``. ``numbers`` are printed in the error to show what the run found.
    """
    if isinstance(condition, torch.Tensor):
        if condition.numel() != 1:
            raise TypeError(f"claim needs one truth value; got a tensor of shape {tuple(condition.shape)} (use .all() or .any())")
        condition = bool(condition)
    if not isinstance(condition, (bool, np.bool_)):
        raise TypeError(f"claim needs a bool, got {type(condition).__name__}")
    if not condition:
        found = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in numbers.items())
        raise ClaimError(f"The text says: \"{sentence}\", but this run does not support it"
                         + (f" ({found})." if found else ".") + " Rewrite the sentence or find out what changed.")
    return True
