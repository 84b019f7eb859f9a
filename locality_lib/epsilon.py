"""Epsilon-prediction networks as denoisers: the parameterization, its loss, and checkpoints.

A network ``eps_theta(x_t [B, C, H, W], t [B] long) -> [B, C, H, W]`` predicts the noise in
``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` (Ho et al. 2020):

* training loss ``L = E_{x0, t, eps} ||eps_theta(x_t, t) - eps||^2`` (:func:`epsilon_loss`, mean over pixels);
* denoiser ``x0_hat = (x_t - sqrt(1 - abar_t) eps_theta(x_t, t)) / sqrt(abar_t)`` (:func:`eps_to_x0`,
  :class:`EpsilonDenoiser`), which follows the library's contract ``den(x_t, t) -> x0_hat``.

Any architecture registered in :func:`architectures` (``"unet"``, ``"dit"``, ``"cnn"``) plugs in: a ``torch.nn.Module``
with a frozen dataclass ``config`` (``in_channels``, ``image_size``), a class attribute ``ARCH`` and
``num_parameters()``. A checkpoint is ``{"format": "locality-net-v1", "arch", "config", "ema", "meta"}``
(:func:`checkpoint_dict`, :func:`save_checkpoint`, :func:`load_checkpoint`); the training state written by
:mod:`locality_lib.train` holds the same entries plus the optimizer's, so one reader serves both. The
first UNet checkpoints (``"locality-unet-v1"``, no ``arch``) read as ``arch="unet"``. :class:`UNetDenoiser` is
the denoiser of a :class:`~locality_lib.unet.UNet`, with the book's two shipped UNets by name.

Layers: the networks (:mod:`~locality_lib.unet`, :mod:`~locality_lib.dit`, :mod:`~locality_lib.cnn`) are plain
``torch.nn.Module`` classes with their configs and import nothing of this module; this module sits above them.
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch

from .base import Denoiser
from .cnn import CNN, CNNConfig
from .data import make_transform
from .dit import DiT, DiTConfig
from .schedule import DDPMSchedule
from .unet import UNet, UNetConfig

__all__ = ["eps_to_x0", "epsilon_loss", "EpsilonDenoiser", "UNetDenoiser", "architectures", "checkpoint_dict",
           "save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT", "CHECKPOINT_DIR"]

CHECKPOINT_FORMAT = "locality-net-v1"
LEGACY_UNET_FORMAT = "locality-unet-v1"
#: Where the shipped checkpoints live (``locality_lib/checkpoints/``).
CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
_SHIPPED_UNETS = ("mnist", "fashion_mnist")  # UNetDenoiser.from_pretrained names (files <name>.pt)


def architectures() -> dict:
    """``{arch name: (network class, config class)}`` of the networks this library trains."""
    return {"unet": (UNet, UNetConfig), "dit": (DiT, DiTConfig), "cnn": (CNN, CNNConfig)}


def eps_to_x0(x_t: torch.Tensor, eps: torch.Tensor, abar) -> torch.Tensor:
    """``x0_hat = (x_t - sqrt(1 - abar) eps) / sqrt(abar)``; ``abar`` a float or a tensor broadcasting to ``x_t``."""
    return (x_t - (1 - abar) ** 0.5 * eps) / abar**0.5


def epsilon_loss(net, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """``mean ||net(x_t, t) - eps||^2`` with ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``.

    x0, eps: ``[B, C, H, W]``; t: ``[B]`` long; alpha_bar: the schedule's ``[T]`` table on x0's device.
    The prediction is compared in float32 (it may come out of a bfloat16 autocast region).
    """
    ab = alpha_bar[t].view(-1, 1, 1, 1)
    pred = net(ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t)
    return (pred.float() - eps).pow(2).mean()


def checkpoint_dict(net, ema_state: dict, meta: dict) -> dict:
    """``{"format", "arch", "config", "ema", "meta"}``: the EMA weights (float32, CPU) and the metadata."""
    return {
        "format": CHECKPOINT_FORMAT,
        "arch": type(net).ARCH,
        "config": asdict(net.config),
        "ema": {k: v.detach().float().cpu().clone() for k, v in ema_state.items()},
        "meta": dict(meta, num_parameters=net.num_parameters()),
    }


def atomic_save(obj, path) -> None:
    """``torch.save`` to a temporary file next to ``path``, then rename (no half-written file on a crash)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_checkpoint(path, net, ema_state: dict, meta: dict) -> None:
    """Write :func:`checkpoint_dict` to ``path`` atomically.

    ``meta`` should hold the dataset, its transform spec, schedule parameters, epochs, steps, loss, time and seed.
    """
    atomic_save(checkpoint_dict(net, ema_state, meta), path)


def build_net(arch: str, config: dict, weights: dict | None = None, where: str = "checkpoint"):
    """The network ``arch`` with ``config`` (a dict), loaded with ``weights`` if given; ``ValueError`` naming ``where``."""
    archs = architectures()
    if arch not in archs:
        raise ValueError(f"{where}: unknown architecture {arch!r}; expected one of {', '.join(archs)}")
    cls, cfg_cls = archs[arch]
    try:
        net = cls(cfg_cls(**config))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where} has an invalid {arch} config {config}: {err}") from None
    if weights is not None:
        try:
            net.load_state_dict({k: v.float() for k, v in weights.items()})
        except (RuntimeError, AttributeError) as err:
            raise ValueError(f"{where}: the weights do not match its config ({err})") from None
    return net


def load_checkpoint(path, map_location="cpu", arch: str | None = None, label: str = "network"):
    """Read a checkpoint: ``(net with the EMA weights, meta)``.

    ``arch``: if given, the checkpoint must hold that architecture. Raises ``FileNotFoundError`` for a
    missing file and ``ValueError`` (naming the file) for an unreadable, truncated or mismatched one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{label} checkpoint not found: {path}. Train one with `python -m locality_lib.train --arch "
            f"{arch or '<unet|dit>'} --dataset <name> --epochs N --out runs/<name>_state.pt --publish {path}`")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ValueError(f"could not read {label} checkpoint {path}: the file is truncated or not a "
                         f"checkpoint ({type(err).__name__}: {err})") from None
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    if fmt not in (CHECKPOINT_FORMAT, LEGACY_UNET_FORMAT):
        raise ValueError(f"{path} is not a locality {label} checkpoint (expected a dict with format "
                         f"{CHECKPOINT_FORMAT!r}); a training state file? publish it with save_checkpoint")
    missing = [k for k in ("config", "ema", "meta") if k not in ckpt]
    if missing:
        raise ValueError(f"{label} checkpoint {path} lacks the entries {missing}")
    found = ckpt.get("arch", "unet")
    if arch is not None and found != arch:
        raise ValueError(f"{path} holds a {found!r} network, not a {arch!r} one")
    net = build_net(found, ckpt["config"], ckpt["ema"], where=f"{label} checkpoint {path}")
    return net, ckpt["meta"]


class EpsilonDenoiser(Denoiser):
    """``EpsilonDenoiser(net, schedule, meta)``; ``den(x_t, t) -> x0_hat = (x_t - sqrt(1-abar_t) eps) / sqrt(abar_t)``.

    ``net``: an epsilon network (see the module docstring). Differentiable in ``x_t`` (wrap calls in
    ``torch.no_grad()`` where gradients are not needed). The net is put in eval mode and moved to the
    device of ``x_t`` when needed. ``meta``: the checkpoint's metadata (``{}`` for a net built in memory);
    ``dataset`` (its ``load_dataset`` name, or None) and ``transform`` (the callable that made its training
    images from that data set; identity for plain data) come from it.
    """

    _label = "network"

    def __init__(self, net, schedule: DDPMSchedule | None = None, meta: dict | None = None):
        cfg = getattr(net, "config", None)
        if not isinstance(net, torch.nn.Module) or not hasattr(cfg, "image_size") or not hasattr(cfg, "in_channels"):
            raise ValueError(f"net must be an epsilon network (a torch Module with a config holding in_channels "
                             f"and image_size, e.g. locality_lib.UNet or locality_lib.dit.DiT), got {type(net).__name__}")
        self.net = net.eval()
        self.schedule = schedule if schedule is not None else DDPMSchedule()
        self.shape = (cfg.in_channels, cfg.image_size, cfg.image_size)
        self.meta = dict(meta or {})
        self.dataset = self.meta.get("dataset")
        self.transform = make_transform(self.meta.get("transform"))

    def __repr__(self) -> str:
        name = self.meta.get("name") or self.meta.get("dataset", "in-memory")
        return f"{type(self).__name__}({name}, {self.net.num_parameters():,} parameters, shape={self.shape})"

    def _denoise(self, x_t, t):
        param = next(self.net.parameters())
        if param.device != x_t.device:
            self.net.to(x_t.device)
        tt = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
        eps = self.net(x_t.to(param.dtype), tt).to(x_t.dtype)  # the net's precision (float32 unless .double())
        return eps_to_x0(x_t, eps, self.schedule.abar(t))

    @classmethod
    def from_checkpoint(cls, path, dataset: str | None = None, map_location="cpu", arch: str | None = None):
        """Load a checkpoint written by :func:`save_checkpoint` (or ``python -m locality_lib.train --publish``).

        ``dataset``: if given, the checkpoint must have been trained on it; ``arch`` likewise.
        """
        net, meta = load_checkpoint(path, map_location, arch=arch, label=cls._label)
        if dataset is not None and meta.get("dataset") != dataset:
            raise ValueError(f"{cls._label} checkpoint {path} was trained on {meta.get('dataset')!r}, not on {dataset!r}")
        sched = meta.get("schedule", {})
        return cls(net, DDPMSchedule(**sched) if sched else DDPMSchedule(), meta)


class UNetDenoiser(EpsilonDenoiser):
    """``UNetDenoiser(net, schedule)``: an :class:`~locality_lib.epsilon.EpsilonDenoiser` whose net is a :class:`UNet`.

    ``den(x_t, t) -> x0_hat = (x_t - sqrt(1-abar_t) eps) / sqrt(abar_t)``; differentiable in ``x_t``.
    ``meta``: the checkpoint's metadata (``{}`` for a net built in memory).
    """

    _label = "UNet"

    def __init__(self, net: UNet, schedule: DDPMSchedule | None = None, meta: dict | None = None):
        if not isinstance(net, UNet):
            raise ValueError(f"net must be a locality_lib.unet.UNet, got {type(net).__name__}")
        super().__init__(net, schedule, meta)

    @classmethod
    def from_checkpoint(cls, path, dataset: str | None = None, map_location="cpu", arch: str | None = "unet"):
        """Load a UNet checkpoint written by :func:`save_checkpoint` (or by ``python -m locality_lib.train``).

        ``dataset``: if given, the checkpoint must have been trained on it. Raises ``FileNotFoundError``
        for a missing file and ``ValueError`` (naming the file) for an unreadable, truncated or mismatched one.
        """
        return super().from_checkpoint(path, dataset, map_location, arch="unet")

    @classmethod
    def from_pretrained(cls, name: str, map_location="cpu") -> "UNetDenoiser":
        """The UNet trained for the book on ``"mnist"`` or ``"fashion_mnist"`` (``locality_lib/checkpoints/<name>.pt``).

        The other shipped networks load with :func:`locality_lib.pretrained`.
        """
        if name not in _SHIPPED_UNETS:
            raise ValueError(f"no pretrained UNet named {name!r}; expected one of {', '.join(_SHIPPED_UNETS)}")
        return cls.from_checkpoint(CHECKPOINT_DIR / f"{name}.pt", dataset=name, map_location=map_location)
