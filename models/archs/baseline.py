"""The baseline face-SR network: what every paper's "FH" comparison row is about.

A plain 16 -> 128 super-resolution network with no face prior beyond what it learns: an input
convolution, a spatial transformer on the 16x16 features (CPGAN and VividGAN feed misaligned
thumbnails; the STN lets the baseline undo that as they do), residual blocks, then three x2
upsamplings, each followed by a residual block, and an output convolution with tanh ([-1, 1],
the networks' range). Trained with MSE (perceptual optional) on each task.

Widths halve as the resolution doubles (our choice: the cost of a convolution grows with the
pixel count, and the CPU default must train three of these in minutes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from datagen.core.params import ParamGroup
from models.archs.blocks import ResidualBlock, SpatialTransformer, Upsample2x


@dataclass(frozen=True)
class BaselineConfig(ParamGroup):
    """Architecture of the baseline (the ``baseline.arch`` params)."""

    GROUP = "baseline.arch"
    width: int = 64  # channels at 16x16; halved at each x2 upsampling (at least 16)
    blocks: int = 4  # residual blocks at 16x16
    stn: bool = True  # spatial transformer on the 16x16 features
    upsample: str = "pixelshuffle"  # pixelshuffle | deconv
    residual: bool = False  # add the output to the bicubic-upsampled input (warped by the STN)

    def validate(self) -> None:
        if self.width < 8 or self.blocks < 0:
            raise ValueError("baseline.arch.width must be >= 8 and blocks >= 0")
        if self.upsample not in ("deconv", "pixelshuffle"):
            raise ValueError(
                f"baseline.arch.upsample must be deconv or pixelshuffle, not {self.upsample!r}"
            )


class BaselineSR(nn.Module):
    """B x 3 x 16 x 16 in [-1, 1] -> B x 3 x 128 x 128 in [-1, 1] (any LR size s -> 8 s)."""

    def __init__(self, config: BaselineConfig = BaselineConfig(), lr_size: int = 16):
        super().__init__()
        self.config = config
        c = config.width
        self.head = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU(inplace=True))
        self.stn = SpatialTransformer(c, "similarity", size=lr_size) if config.stn else None
        self.body = nn.Sequential(*(ResidualBlock(c) for _ in range(config.blocks)))
        ups = []
        for _ in range(3):
            nxt = max(16, c // 2)
            ups += [Upsample2x(c, nxt, config.upsample), ResidualBlock(nxt)]
            c = nxt
        self.up = nn.Sequential(*ups)
        self.tail = nn.Conv2d(c, 3, 3, padding=1)
        if config.residual:
            # a zero residual at the start: training begins from the (aligned) bicubic image
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        x = self.head(lr)
        theta = None
        if self.stn is not None:
            x, theta = self.stn(x, return_theta=True)
        x = x + self.body(x)
        y = self.tail(self.up(x))
        if not self.config.residual:
            return torch.tanh(y)
        return (self.aligned_bicubic(lr, theta) + y).clamp(-1, 1)

    def aligned_bicubic(self, lr: torch.Tensor, theta: torch.Tensor | None) -> torch.Tensor:
        """The bicubic x8 image of ``lr`` (B x 3 x s x s), resampled through the STN's transform
        (the same normalised coordinates at every resolution): B x 3 x 8s x 8s."""
        up = F.interpolate(lr, scale_factor=8, mode="bicubic", align_corners=False)
        if theta is None:
            return up
        grid = F.affine_grid(theta, list(up.shape), align_corners=False)
        return F.grid_sample(up, grid, padding_mode="border", align_corners=False)
