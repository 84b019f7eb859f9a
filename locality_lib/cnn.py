"""An attention-free, zero-padded convolutional epsilon network: the kind of network Kamb & Ganguli (2025)
explain with their ELS machine.

``CNN(config)(x_t [B, C, H, W], t [B] long) -> eps_hat [B, C, H, W]``. A UNet layout with every spatial
mixing local: 3x3 convolutions with zero padding, stride-2 convolutions down and nearest-neighbour
up-sampling (28 -> 14 -> 7 for ``channel_mults = (1, 2, 2)``), skip connections. No attention, no global
pooling, and no GroupNorm (its mean and variance over all pixels would mix the whole image): blocks
normalize each pixel over its channels (:class:`PixelNorm`). The timestep enters as a per-channel bias
(sinusoidal embedding + MLP), the same at every pixel. Each output pixel therefore sees a finite
neighbourhood of the input (the receptive field), and the zero padding tells it where the borders are.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .unet import timestep_embedding

__all__ = ["CNN", "CNNConfig", "PixelNorm"]


@dataclass(frozen=True)
class CNNConfig:
    """Architecture of a :class:`CNN`; ``image_size`` divisible by ``2 ** (len(channel_mults) - 1)``."""

    in_channels: int = 1
    image_size: int = 28
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1

    def __post_init__(self):
        object.__setattr__(self, "channel_mults", tuple(int(m) for m in self.channel_mults))
        for name in ("in_channels", "image_size", "base_channels", "num_res_blocks"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise ValueError(f"CNNConfig.{name} must be a positive int, got {v!r}")
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(f"CNNConfig.channel_mults must be positive ints, got {self.channel_mults!r}")
        if self.image_size % 2 ** (len(self.channel_mults) - 1):
            raise ValueError(f"image_size {self.image_size} is not divisible by 2^{len(self.channel_mults) - 1}")


class PixelNorm(nn.Module):
    """``y[:, c, i, j] = g_c (x[:, c, i, j] - mean_c x[:, :, i, j]) / std_c x[:, :, i, j] + b_c``: per pixel, over channels."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ResBlock(nn.Module):
    """``h = conv(SiLU(PN(x))) + Linear(emb)``; ``out = skip(x) + conv(SiLU(PN(h)))``, 3x3 zero-padded convolutions."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.norm1, self.norm2 = PixelNorm(c_in), PixelNorm(c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class CNN(nn.Module):
    """``CNN(config)(x_t [B, C, H, W], t [B] long) -> eps_hat [B, C, H, W]`` (module docstring)."""

    ARCH = "cnn"

    def __init__(self, config: CNNConfig | None = None):
        super().__init__()
        cfg = config if config is not None else CNNConfig()
        self.config = cfg
        ch = cfg.base_channels
        emb_dim = 4 * ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.head = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)
        self.down, skips, c = nn.ModuleList(), [ch], ch
        for i, m in enumerate(cfg.channel_mults):
            for _ in range(cfg.num_res_blocks):
                self.down.append(ResBlock(c, ch * m, emb_dim))
                c = ch * m
                skips.append(c)
            if i < len(cfg.channel_mults) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, emb_dim), ResBlock(c, c, emb_dim)])
        self.up = nn.ModuleList()
        for i, m in reversed(list(enumerate(cfg.channel_mults))):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(ResBlock(c + skips.pop(), ch * m, emb_dim))
                c = ch * m
            if i > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)))
        self.tail = nn.Sequential(PixelNorm(c), nn.SiLU(), nn.Conv2d(c, cfg.in_channels, 3, padding=1))

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
        return self.tail(h)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
