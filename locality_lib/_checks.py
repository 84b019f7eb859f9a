"""Input validation shared by every module: fail fast with a message that says what was expected."""
from __future__ import annotations

import torch


def check_timestep(t, num_steps: int = 1000):
    """Return ``t`` if it is an int (or integer tensor) in ``0..num_steps-1``; raise ``ValueError`` otherwise."""
    if isinstance(t, torch.Tensor):
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            raise ValueError(f"t must be an integer timestep or a long tensor, got a {t.dtype} tensor")
        if t.ndim > 1:
            raise ValueError(f"t must be an int or a [B] long tensor, got shape {tuple(t.shape)}")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_steps):
            raise ValueError(f"timesteps must lie in 0..{num_steps - 1}, got values in {int(t.min())}..{int(t.max())}")
        return t
    if isinstance(t, bool) or not isinstance(t, int):
        try:
            import numpy as np

            if isinstance(t, np.integer):
                t = int(t)
            else:
                raise TypeError
        except TypeError:
            raise ValueError(f"t must be an int in 0..{num_steps - 1}, got {t!r}") from None
    if not 0 <= t < num_steps:
        raise ValueError(f"t must lie in 0..{num_steps - 1}, got {t}")
    return t


def check_images(x: torch.Tensor, name: str, shape: tuple[int, int, int] | None = None) -> torch.Tensor:
    """Check that ``x`` is a finite float tensor ``[B, C, H, W]`` (matching ``shape = (C, H, W)`` if given)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape [B, C, H, W], got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise ValueError(f"{name} must be a float tensor, got dtype {x.dtype}; convert images with x.float() / 127.5 - 1")
    if x.ndim != 4:
        hint = " (add a channel axis with x.unsqueeze(1))" if x.ndim == 3 else ""
        raise ValueError(f"{name} must have shape [B, C, H, W], got {x.ndim} dims {tuple(x.shape)}{hint}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (batch size 0)")
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(
            f"{name} has image shape (C, H, W) = {tuple(x.shape[1:])}, but the model was built for {tuple(shape)}"
        )
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf values")
    return x


def check_positive(value, name: str, allow_zero: bool = False) -> float:
    """A finite float > 0 (or >= 0)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    ok = v >= 0 if allow_zero else v > 0
    if not (ok and v < float("inf")):
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return v


def check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value
