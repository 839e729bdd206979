"""CPGAN (Zhang, Lin, Yang, Zhang, Ding, Wang and Porikli, "Copy and Paste GAN: Face
Hallucination from Shaded Thumbnails", CVPR 2020), its generator as in the paper's Fig. 3-5.

    LR 16x16 ──conv──▶ InternalCPnet ──shrink──▶ ExternalCPnet(16) ─up─▶ ExternalCPnet(32) ─up─▶
    ExternalCPnet(64) (+ heatmaps of the StackedHourglass on the 64 px features) ─up─▶ 128 ─▶ out
    guide 128x128 ──▶ GuideEncoder ──▶ guide features at 16, 32 and 64 px (the keys and values of
    each ExternalCPnet's Copy block)

- ``InternalCPnet`` (Fig. 4): residual blocks and RCAN channel attention, then a Copy block whose
  content and guide are both the CA output (Eq. 1 on the face itself), Paste (addition) and the
  skip connection from the input features.
- ``ExternalCPnet`` (Fig. 5): residual blocks, then a Copy block from the guide face's features
  at the same scale (Eq. 1 with mean-variance normalisation), Paste (addition). The guide is a
  well-lit face of another person: the copied features carry its illumination.
- ``SpatialTransformer`` on the intermediate features (Fig. 3's yellow blocks; the author code
  builds one and never calls it), so misaligned thumbnails come out upright.
- ``StackedHourglass`` on the 64 px features predicts 68 landmark heatmaps (L_h), which are
  concatenated back into the features, as the author code does.
- Spectral norm on every convolution of the generator (supplement s2.1).

Where the paper is silent, our choices: the guide encoder is the content path's own layers
applied to the guide (the author code's shared weights), fed the guide downsampled to the LR
size, so that content and guide features at each scale live in one feature space; widths halve
from ``width`` as the resolution passes 32 px (the author code keeps 128 channels up to 128 px,
far beyond a CPU budget); the Copy blocks run at ``copy_scales`` (the paper: 16, 32 and 64; the
CPU default drops 64, whose 4096 x 4096 attention per face is most of the cost).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from datagen.core.params import ParamGroup
from models.archs.blocks import (
    ChannelAttention,
    CopyBlock,
    ResidualBlock,
    SpatialTransformer,
    StackedHourglass,
    Upsample2x,
)

SCALES = (16, 32, 64)  # the ExternalCPnets' resolutions for a 16 px input


@dataclass(frozen=True)
class CPGANConfig(ParamGroup):
    """Architecture of the CPGAN generator (the ``cpgan.arch`` params)."""

    GROUP = "cpgan.arch"
    width: int = 32  # channels at 16 and 32 px (1/2 at 64, 1/4 at 128); paper code: 256, 128
    internal: bool = True  # the Internal CPnet; False: one convolution (the paper's ablation)
    external: bool = True  # the External CPnets' Copy blocks; False: removed (ablation)
    internal_blocks: int = 2  # residual blocks in the Internal CPnet
    external_blocks: int = 2  # residual blocks in each External CPnet
    copy_scales: tuple[int, ...] = (16, 32)  # where the External CPnets copy (paper: 16, 32, 64)
    stn: bool = True  # spatial transformers on the 16 and 32 px features
    hourglass_stacks: int = 1
    hourglass_width: int = 32
    spectral_norm: bool = True  # on every generator convolution (supplement s2.1)
    embed: int = 0  # Copy block embedding width (0: the features' width)

    def validate(self) -> None:
        if self.width < 16 or self.width % 4:
            raise ValueError("cpgan.arch.width must be a multiple of 4, at least 16")
        if min(self.internal_blocks, self.external_blocks) < 0 or self.hourglass_stacks < 1:
            raise ValueError("cpgan.arch block counts must be >= 0, hourglass_stacks >= 1")
        bad = [s for s in self.copy_scales if s not in SCALES]
        if bad:
            raise ValueError(f"cpgan.arch.copy_scales must be among {SCALES}, not {bad}")

    def widths(self) -> dict[int, int]:
        """Channels at each resolution (16, 32, 64, 128 px)."""
        w = self.width
        return {16: w, 32: w, 64: max(16, w // 2), 128: max(16, w // 4)}


class InternalCPnet(nn.Module):
    """Fig. 4: residual blocks -> channel attention -> Copy block (content = guide = the CA
    output) -> Paste (+ the CA output), plus the skip connection from the input features.

    B x C x H x W -> B x C x H x W."""

    def __init__(self, channels: int, blocks: int, embed: int | None = None):
        super().__init__()
        self.blocks = nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))
        self.attention = ChannelAttention(channels)
        self.copy = CopyBlock(channels, embed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.attention(self.blocks(x))
        pasted = f + self.copy(f)  # Paste: the copied features added to the CA output
        return x + pasted  # the skip connection from the input features


class ExternalCPnet(nn.Module):
    """Fig. 5: residual blocks on the content features, then (with ``copy``) a Copy block whose
    keys and values are the guide's features at the same scale, and Paste (addition).

    content B x C x H x W, guide B x C x H x W -> B x C x H x W."""

    def __init__(self, channels: int, blocks: int, copy: bool, embed: int | None = None):
        super().__init__()
        self.blocks = nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))
        self.copy = CopyBlock(channels, embed) if copy else None

    def forward(self, content: torch.Tensor, guide: torch.Tensor | None) -> torch.Tensor:
        f = self.blocks(content)
        if self.copy is None or guide is None:
            return f
        return f + self.copy(f, guide)


class CPGANGenerator(nn.Module):
    """LR B x 3 x s x s and guide B x 3 x S x S (S any size; 128 in the pairs), both in [-1, 1]
    -> the face B x 3 x 8s x 8s in [-1, 1] (tanh); with ``heatmaps=True``, also the list (one
    per hourglass stack) of B x 68 x 4s x 4s landmark heatmaps that L_h trains."""

    def __init__(self, config: CPGANConfig = CPGANConfig(), lr_size: int = 16):
        super().__init__()
        self.config = c = config
        self.lr_size = s = lr_size
        w = c.widths()
        embed = c.embed or None
        self.head = nn.Sequential(nn.Conv2d(3, w[16], 3, padding=1), nn.ReLU(inplace=True))
        if c.internal:
            self.internal = InternalCPnet(w[16], c.internal_blocks, embed)
        else:  # the ablation: one convolution in its place
            self.internal = nn.Sequential(nn.Conv2d(w[16], w[16], 3, padding=1), nn.ReLU(True))
        self.shrink = nn.Sequential(nn.Conv2d(w[16], w[16], 3, padding=1), nn.ReLU(inplace=True))
        self.stn = nn.ModuleDict(
            {str(k): SpatialTransformer(w[k], "similarity", size=k * s // 16) for k in (16, 32)}
            if c.stn
            else {}
        )
        self.external = nn.ModuleDict(
            {
                str(k): ExternalCPnet(
                    w[k], c.external_blocks, c.external and k in c.copy_scales, embed
                )
                for k in SCALES
            }
        )
        self.up = nn.ModuleDict(
            {str(k): Upsample2x(w[k], w[2 * k], "pixelshuffle") for k in SCALES}
        )
        self.hourglass = StackedHourglass(w[64], c.hourglass_stacks, c.hourglass_width, 68, depth=3)
        # the heatmaps are concatenated into the 64 px features (the author code's conv2)
        self.fuse = nn.Sequential(nn.Conv2d(w[64] + 68, w[64], 3, padding=1), nn.ReLU(True))
        self.tail = nn.Sequential(
            ResidualBlock(w[128]), nn.Conv2d(w[128], 3, 3, padding=1), nn.Tanh()
        )
        if c.spectral_norm:
            _spectral_norm_convs(self, skip=self.hourglass)

    def guide_features(self, guide: torch.Tensor) -> dict[int, torch.Tensor]:
        """The guide face through the content path's own layers (shared weights), at each
        External CPnet's resolution: {16: B x C16 x s x s, 32: ..., 64: ...}."""
        s = self.lr_size
        g = F.interpolate(guide, size=(s, s), mode="area") if guide.shape[-1] != s else guide
        f = self.shrink(self.head(g))
        out = {}
        deepest = max(self.config.copy_scales, default=0)
        for k in SCALES:
            out[k] = f
            if k >= deepest:  # no Copy block needs the guide deeper than this
                break
            f = self.up[str(k)](self.external[str(k)].blocks(f))
        return out

    def forward(
        self, lr: torch.Tensor, guide: torch.Tensor, heatmaps: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        c = self.config
        guides = self.guide_features(guide) if c.external and c.copy_scales else {}
        x = self.shrink(self.internal(self.head(lr)))
        maps: list[torch.Tensor] = []
        for k in SCALES:
            if str(k) in self.stn:
                x = self.stn[str(k)](x)
            x = self.external[str(k)](x, guides.get(k) if k in c.copy_scales else None)
            if k == 64:
                maps = self.hourglass(x)
                x = self.fuse(torch.cat([x, maps[-1]], 1))
            x = self.up[str(k)](x)
        sr = self.tail(x)
        return (sr, maps) if heatmaps else sr


def _spectral_norm_convs(module: nn.Module, skip: nn.Module) -> None:
    """Spectral norm on every convolution of ``module`` outside ``skip`` (the hourglass keeps
    its batch norm and plain convolutions: a landmark regressor, as Newell's)."""
    skipped = {id(m) for m in skip.modules()}
    for m in list(module.modules()):
        if id(m) in skipped:
            continue
        for child_name, child in list(m.named_children()):
            if isinstance(child, nn.Conv2d) and id(child) not in skipped:
                setattr(m, child_name, spectral_norm(child))
