"""A small DDPM UNet (Ho et al. 2020; the pytorch-ddpm layout the paper's baseline uses): a plain network.

The network predicts the noise: ``eps_theta(x_t, t)`` for ``x_t: [B, C, H, W]``, ``t: [B]`` long.
:class:`~locality_lib.epsilon.UNetDenoiser` (in :mod:`locality_lib.epsilon`, which imports this module, never
the other way round) turns it into the library contract ``den(x_t, t) -> x0_hat`` with
``x0_hat = (x_t - sqrt(1 - abar_t) eps_theta(x_t, t)) / sqrt(abar_t)``.

Layout: sinusoidal timestep embedding + MLP; per resolution ``num_res_blocks`` residual blocks
(GroupNorm, SiLU, 3x3 conv, timestep bias, dropout) with skip connections; stride-2 conv down and
nearest-neighbour up sampling (28 -> 14 -> 7 for ``channel_mults = (1, 2, 2)``); a middle block
(residual, self-attention, residual) at the lowest resolution.

Checkpoints (:func:`~locality_lib.epsilon.save_checkpoint` / ``UNetDenoiser.from_checkpoint``) are dicts
``{"format", "arch", "config", "ema", "meta"}``: the UNet config, the EMA weights (float32) and metadata
(dataset, schedule, epochs, steps, parameter count, final loss, training time, seed).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .schedule import DDPMSchedule

__all__ = ["UNet", "UNetConfig", "timestep_embedding"]


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a :class:`UNet`; ``image_size`` must be divisible by ``2 ** (len(channel_mults) - 1)``.

    The defaults are the shipped baselines (1.06 M parameters). The paper's UNet: ``base_channels=64``,
    ``num_res_blocks=2``, ``dropout=0.15``, 200 epochs; with a few CPU epochs we drop dropout.
    ``prior_skip=True`` adds a fixed skip: ``eps_theta = sqrt(1 - abar_t) x_t + network(x_t, t)``, the
    noise estimate of a unit-Gaussian prior plus a learned correction (the network's output is then small
    at high noise, where an epsilon-error is amplified ``sqrt((1 - abar_t) / abar_t)``-fold in ``x0_hat``).
    """

    in_channels: int = 1
    image_size: int = 28
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    dropout: float = 0.0
    groups: int = 8
    prior_skip: bool = False

    def __post_init__(self):
        object.__setattr__(self, "channel_mults", tuple(int(m) for m in self.channel_mults))
        ints = dict(in_channels=self.in_channels, image_size=self.image_size, base_channels=self.base_channels,
                    num_res_blocks=self.num_res_blocks, groups=self.groups)
        for name, v in ints.items():
            if not (isinstance(v, int) and v >= 1):
                raise ValueError(f"UNetConfig.{name} must be a positive int, got {v!r}")
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(f"UNetConfig.channel_mults must be positive ints, got {self.channel_mults!r}")
        if self.image_size % 2 ** (len(self.channel_mults) - 1):
            raise ValueError(f"image_size {self.image_size} is not divisible by 2^{len(self.channel_mults) - 1}")
        for c in {self.base_channels * m for m in self.channel_mults}:
            if c % self.groups:
                raise ValueError(f"channel count {c} is not divisible by groups={self.groups}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"UNetConfig.dropout must lie in [0, 1), got {self.dropout!r}")


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``[sin(t w_k), cos(t w_k)]``, ``w_k = 10000^(-k / (dim/2))``; ``t: [B]`` -> ``[B, dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """``h = conv(SiLU(GN(x))) + Linear(emb)``; ``out = skip(x) + conv(dropout(SiLU(GN(h))))``."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the ``H*W`` positions, residual: ``x + proj(softmax(q k^T / sqrt(c)) v)``."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x, emb=None):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)  # each [B, C, HW]
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))  # [B, HW, C]
        return x + self.proj(a.transpose(1, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    """``UNet(config)(x_t [B, C, H, W], t [B] long) -> eps_hat [B, C, H, W]``."""

    ARCH = "unet"

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        cfg = config if config is not None else UNetConfig()
        self.config = cfg
        ch, g, p = cfg.base_channels, cfg.groups, cfg.dropout
        emb_dim = 4 * ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.head = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        skips, c = [ch], ch
        for i, m in enumerate(cfg.channel_mults):
            for _ in range(cfg.num_res_blocks):
                self.down.append(ResBlock(c, ch * m, emb_dim, p, g))
                c = ch * m
                skips.append(c)
            if i < len(cfg.channel_mults) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, emb_dim, p, g), AttnBlock(c, g), ResBlock(c, c, emb_dim, p, g)])
        self.up = nn.ModuleList()
        for i, m in reversed(list(enumerate(cfg.channel_mults))):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(ResBlock(c + skips.pop(), ch * m, emb_dim, p, g))
                c = ch * m
            if i > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)))
        self.tail = nn.Sequential(nn.GroupNorm(g, c), nn.SiLU(), nn.Conv2d(c, cfg.in_channels, 3, padding=1))
        if cfg.prior_skip:
            self.register_buffer("prior_scale", (1 - DDPMSchedule().alpha_bar.double()).sqrt().float(),
                                 persistent=False)  # float32 like the weights (MPS has no float64)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels).to(x.dtype))
        h = self.head(x)
        hs = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.up:
            h = layer(torch.cat([h, hs.pop()], dim=1), emb) if isinstance(layer, ResBlock) else layer(h)
        out = self.tail(h)
        if self.config.prior_skip:
            out = out + self.prior_scale[t].view(-1, 1, 1, 1) * x
        return out

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
