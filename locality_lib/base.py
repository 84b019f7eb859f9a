"""The one contract every model follows: ``den(x_t, t) -> x0_hat``.

``x_t``: float ``[B, C, H, W]`` in the VP scaling (``sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``);
``t``: an int in ``0..999`` or a ``[B]`` long tensor. Returns the x0-estimate ``[B, C, H, W]``
with the dtype and device of ``x_t``. Subclasses implement ``_denoise(x_t, t: int)``.
"""
from __future__ import annotations

import torch

from ._checks import check_images, check_timestep
from .schedule import DDPMSchedule

__all__ = ["Denoiser", "TrainingSetDenoiser", "exact_dtype", "denoiser_label"]


def exact_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device has it (CPU, CUDA); float32 on MPS."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def denoiser_label(den) -> str:
    """A short name for progress bars: ``den.meta["name"]`` where the denoiser has one (pretrained networks,
    ``on_grid``), else its class name."""
    return (getattr(den, "meta", None) or {}).get("name") or type(den).__name__


class Denoiser:
    """Base class: validates inputs, splits a ``[B]`` tensor of timesteps into groups of one t."""

    shape: tuple[int, int, int]
    schedule: DDPMSchedule

    def __call__(self, x_t: torch.Tensor, t) -> torch.Tensor:
        check_images(x_t, "x_t", self.shape)
        check_timestep(t, self.schedule.num_steps)
        if isinstance(t, torch.Tensor):
            if t.ndim == 0:
                t = int(t)
            else:
                if t.shape[0] != x_t.shape[0]:
                    raise ValueError(f"t has {t.shape[0]} entries but x_t has batch size {x_t.shape[0]}")
                out = torch.empty_like(x_t)
                for tt in t.unique().tolist():
                    idx = (t == tt).nonzero().squeeze(1).to(x_t.device)
                    out[idx] = self._denoise(x_t[idx], int(tt)).to(x_t.dtype)
                return out
        return self._denoise(x_t, int(t)).to(x_t.dtype)

    def _denoise(self, x_t: torch.Tensor, t: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class TrainingSetDenoiser(Denoiser):
    """A denoiser built from a training tensor ``[N, C, H, W]`` and a schedule.

    The training set is kept as one tensor; a copy on another device is made once, when a
    query first arrives there (device follows the inputs).
    """

    def __init__(self, train: torch.Tensor, schedule: DDPMSchedule | None = None, chunk_size: int = 4096):
        check_images(train, "train")
        if schedule is None:
            schedule = DDPMSchedule()
        if not isinstance(schedule, DDPMSchedule):
            raise ValueError(f"schedule must be a DDPMSchedule, got {type(schedule).__name__}")
        if not (isinstance(chunk_size, int) and chunk_size >= 1):
            raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
        self.train = train.detach().float().contiguous()
        self.schedule = schedule
        self.shape = tuple(train.shape[1:])
        self.chunk_size = chunk_size
        self._on_device: dict = {(self.train.device, torch.float32): self.train}

    @property
    def num_train(self) -> int:
        return self.train.shape[0]

    def train_on(self, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The training set ``[N, C, H, W]`` on ``device`` in ``dtype``, copied once and kept."""
        key = (torch.device(device), dtype)
        if key not in self._on_device:
            self._on_device[key] = self.train.to(*key)
        return self._on_device[key]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(N={self.num_train}, shape={self.shape})"
