"""Building blocks shared by the face-hallucination networks (CPGAN, VividGAN, Pro-UIGAN).

Each block is named as in the paper it comes from: EDSR's residual block, RCAN's channel
attention and residual channel attention block, the spatial transformer (Jaderberg et al.,
2015), CPGAN's Copy block, Newell et al.'s (stacked) hourglass, and a x2 upsampling layer.
Shapes are B x C x H x W throughout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.archs.adain import channel_stats


def _activation(negative_slope: float) -> nn.Module:
    return nn.ReLU(inplace=True) if negative_slope == 0 else nn.LeakyReLU(negative_slope, True)


class ResidualBlock(nn.Module):
    """EDSR's residual block (Lim et al., 2017): conv3x3 -> ReLU -> conv3x3, scaled by
    ``res_scale``, plus the input. ``negative_slope`` > 0 makes the activation a LeakyReLU.

    B x C x H x W -> B x C x H x W.
    """

    def __init__(self, channels: int, negative_slope: float = 0.0, res_scale: float = 1.0):
        super().__init__()
        # No batch norm, as in EDSR: it normalises away the range of the features that a
        # restoration network needs to keep (absolute intensities), its statistics over the small
        # batches these GANs train with (CPGAN: 4) are noisy, and it costs memory. (The CPGAN
        # author code puts SwitchNorm here; the paper follows EDSR.)
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            _activation(negative_slope),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        # EDSR scales the residual (0.1 in its widest model) to keep deep stacks stable at start.
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


class ChannelAttention(nn.Module):
    """RCAN's channel attention (Zhang et al., 2018): global average pooling -> 1x1 conv down by
    ``reduction`` -> ReLU -> 1x1 conv up -> sigmoid, one weight in (0, 1) per channel that
    rescales the input.

    B x C x H x W -> B x C x H x W.
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        # at least one hidden unit, so that narrow test-sized networks still build
        squeezed = max(1, channels // reduction)
        self.weights = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, squeezed, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(squeezed, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # RCAN's x * w; the CPGAN author code returns x + x * w, which only rescales by 1 + w
        return x * self.weights(x)


class ResidualChannelAttentionBlock(nn.Module):
    """RCAN's RCAB: conv3x3 -> ReLU -> conv3x3 -> channel attention, scaled by ``res_scale``,
    plus the input.

    B x C x H x W -> B x C x H x W.
    """

    def __init__(self, channels: int, reduction: int = 16, res_scale: float = 1.0):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
            ChannelAttention(channels, reduction),
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


def similarity_theta(params: torch.Tensor) -> torch.Tensor:
    """The B x 2 x 3 ``F.affine_grid`` matrices of B x 4 similarity parameters (log-scale, angle
    in radians, tx, ty): [[s cos a, -s sin a, tx], [s sin a, s cos a, ty]], s = exp(log-scale).

    The matrix maps output positions to the input positions they sample (``affine_grid``'s
    convention, normalised coordinates, x right and y down), so a positive angle turns the
    picture anticlockwise as displayed and s > 1 zooms out.
    """
    log_scale, angle, tx, ty = params.unbind(1)
    # the log keeps the scale positive whatever the regressor outputs; 0 is the identity
    scale = log_scale.exp()
    cos, sin = scale * angle.cos(), scale * angle.sin()
    return torch.stack([cos, -sin, tx, sin, cos, ty], 1).view(-1, 2, 3)


class SpatialTransformer(nn.Module):
    """Spatial transformer (Jaderberg et al., 2015): a localisation net regresses a transform
    from the features, which are then resampled (bilinear) through it.

    ``mode`` "affine" regresses the 6 entries of the 2 x 3 matrix; "similarity" regresses
    log-scale, angle, tx, ty (see ``similarity_theta``), a rigid alignment plus scale that a face
    needs and that cannot shear. ``size`` is the inputs' spatial size (an int for square maps),
    which fixes the localisation net's linear layer. The regressor starts at the identity.

    B x C x H x W -> B x C x H x W (and B x 2 x 3 theta with ``return_theta``).
    """

    def __init__(
        self,
        channels: int,
        mode: str = "affine",
        *,
        size: int | tuple[int, int],
        hidden: int = 20,
        padding_mode: str = "border",
    ):
        super().__init__()
        if mode not in ("affine", "similarity"):
            raise ValueError(f"mode must be 'affine' or 'similarity', not {mode!r}")
        if padding_mode not in ("border", "zeros"):
            raise ValueError(f"padding_mode must be 'border' or 'zeros', not {padding_mode!r}")
        self.mode, self.padding_mode = mode, padding_mode
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        # Pool first, then convolve (as the author code's STNs do: the convolutions then run at
        # half resolution), until the map is 4 px or smaller: enough context for a global
        # transform at every scale from 8 to 128 px. The author code's widths: 20 filters, a
        # 20-unit hidden layer.
        layers: list[nn.Module] = []
        h, w = self.size
        in_ch = channels
        while True:
            layers += [nn.MaxPool2d(2), nn.Conv2d(in_ch, hidden, 3, padding=1), nn.ReLU(True)]
            in_ch, h, w = hidden, h // 2, w // 2
            if min(h, w) <= 4:
                break
        if min(h, w) < 1:
            raise ValueError(f"size {self.size} is too small for the localisation net")
        self.features = nn.Sequential(*layers)
        n_params = 6 if mode == "affine" else 4
        self.regressor = nn.Sequential(
            nn.Flatten(),
            nn.Linear(hidden * h * w, hidden),
            nn.ReLU(True),
            nn.Linear(hidden, n_params),
        )
        # Zero weights and an identity bias: training starts from the untransformed features
        # instead of a random warp, and the transform is learnt only as far as it helps.
        last = self.regressor[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            if mode == "affine":
                last.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))
            else:
                last.bias.zero_()

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """The B x 2 x 3 transform that the localisation net predicts for B x C x H x W ``x``."""
        if tuple(x.shape[-2:]) != self.size:
            raise ValueError(f"expected {self.size} inputs, got {tuple(x.shape[-2:])}")
        params = self.regressor(self.features(x))
        return params.view(-1, 2, 3) if self.mode == "affine" else similarity_theta(params)

    def forward(
        self, x: torch.Tensor, return_theta: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        theta = self.theta(x)
        # align_corners=False: normalised coordinates refer to pixel edges, so the identity
        # samples every pixel centre exactly and the transform does not depend on resolution
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, padding_mode=self.padding_mode, align_corners=False)
        return (out, theta) if return_theta else out


def mean_variance_norm(feat: torch.Tensor) -> torch.Tensor:
    """Each channel of each sample shifted and scaled to mean 0, deviation 1 over its positions
    (instance normalisation without affine): B x C x H x W -> B x C x H x W."""
    mean, std = channel_stats(feat)
    return (feat - mean[..., None, None]) / std[..., None, None]


class CopyBlock(nn.Module):
    """CPGAN's Copy block (Zhang et al., CVPR 2020, Eq. 1): every content position copies the
    guide's features from the guide positions that resemble it.

    A = softmax over guide positions of theta(norm(F_C))^T phi(norm(F_G)), an N_C x N_G matrix
    per sample; output = zeta(F_G) A^T, back to B x C x H x W. norm is mean-variance
    normalisation per channel, so the match compares feature patterns, not the two faces'
    brightness or contrast; the values zeta(F_G) are not normalised, so the copied features keep
    the guide's statistics. theta, phi (to ``embed`` channels, default ``channels``) and zeta
    are learnt 1x1 convolutions. The Paste (adding the output to the content features) is the
    caller's, as is any projection after it.

    content B x C x H x W, guide B x C x H' x W' (default: the content itself, the Internal
    CPnet's self-copy) -> B x C x H x W (and B x HW x H'W' attention with ``return_attention``).
    CPGAN uses guides of the content's size; other sizes work too.
    """

    def __init__(self, channels: int, embed: int | None = None):
        super().__init__()
        embed = embed or channels
        self.query = nn.Conv2d(channels, embed, 1)  # W_theta
        self.key = nn.Conv2d(channels, embed, 1)  # W_phi
        self.value = nn.Conv2d(channels, channels, 1)  # W_zeta

    def forward(
        self,
        content: torch.Tensor,
        guide: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if guide is None:
            guide = content
        b, c, h, w = content.shape
        q = self.query(mean_variance_norm(content)).flatten(2)  # B x E x N_C
        k = self.key(mean_variance_norm(guide)).flatten(2)  # B x E x N_G
        v = self.value(guide).flatten(2)  # B x C x N_G
        # Eq. 1 has no 1/sqrt(E) temperature, nor does the author code; we keep it that way
        attention = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # B x N_C x N_G
        out = (v @ attention.transpose(1, 2)).view(b, c, h, w)
        return (out, attention) if return_attention else out


class HourglassResidual(nn.Module):
    """Newell et al.'s residual module (pre-activation bottleneck): BN -> ReLU -> conv1x1 (C/2)
    -> BN -> ReLU -> conv3x3 (C/2) -> BN -> ReLU -> conv1x1 (C), plus the input (through a 1x1
    conv when the widths differ).

    B x C_in x H x W -> B x C_out x H x W.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None):
        super().__init__()
        out_channels = out_channels or in_channels
        mid = max(1, out_channels // 2)
        # batch norm, unlike the generators' blocks: the hourglass is Newell's as published
        # (the CPGAN author code's FAN keeps it too), a landmark regressor, not a restorer
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, mid, 1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 1),
        )
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class Hourglass(nn.Module):
    """One hourglass (Newell et al., 2016) of ``depth`` levels: at each level an upper branch
    (a residual module at this resolution) and a lower one (max-pool /2, residual module, the
    next level or a residual module at the bottom, residual module, nearest x2 up), added.

    B x C x H x W -> B x C x H x W; H and W need not be multiples of 2**depth (the lower
    branch is upsampled to its upper branch's size).
    """

    def __init__(self, depth: int, channels: int):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        self.upper = HourglassResidual(channels)
        self.down = HourglassResidual(channels)
        self.inner = Hourglass(depth - 1, channels) if depth > 1 else HourglassResidual(channels)
        self.up = HourglassResidual(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.up(self.inner(self.down(F.max_pool2d(x, 2))))
        return self.upper(x) + F.interpolate(low, size=x.shape[-2:], mode="nearest")


class StackedHourglass(nn.Module):
    """Stacked hourglass network (Newell et al., 2016) regressing ``heatmaps`` landmark heatmaps
    at its input's resolution, one prediction per stack for intermediate supervision.

    A stem (conv3x3 -> BN -> ReLU -> residual module) widens the input to ``channels``; each
    stack is an hourglass, a residual module and a 1x1 conv -> BN -> ReLU, then a 1x1 conv to
    the heatmaps. Between stacks the features and the heatmaps, each through a 1x1 conv, are
    added back to the stack's input, so that the next stack refines the previous prediction.

    B x C_in x H x W -> a list of ``stacks`` tensors B x heatmaps x H x W (the last is the
    final prediction).
    """

    def __init__(
        self,
        in_channels: int,
        stacks: int = 2,
        channels: int = 128,
        heatmaps: int = 68,
        depth: int = 4,
    ):
        super().__init__()
        # Newell's stem also downsamples 256 -> 64 px; here the input is already a feature map
        # at the heatmaps' resolution (CPGAN: 64 x 64 upsampled features), so it keeps its size
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            HourglassResidual(channels),
        )
        self.hourglasses = nn.ModuleList(Hourglass(depth, channels) for _ in range(stacks))
        self.features = nn.ModuleList(
            nn.Sequential(
                HourglassResidual(channels),
                nn.Conv2d(channels, channels, 1),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            )
            for _ in range(stacks)
        )
        self.heads = nn.ModuleList(nn.Conv2d(channels, heatmaps, 1) for _ in range(stacks))
        self.remap_features = nn.ModuleList(
            nn.Conv2d(channels, channels, 1) for _ in range(stacks - 1)
        )
        self.remap_heatmaps = nn.ModuleList(
            nn.Conv2d(heatmaps, channels, 1) for _ in range(stacks - 1)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = []
        for i, (hourglass, features, head) in enumerate(
            zip(self.hourglasses, self.features, self.heads, strict=True)
        ):
            feat = features(hourglass(x))
            heat = head(feat)
            outputs.append(heat)
            if i < len(self.remap_features):
                x = x + self.remap_features[i](feat) + self.remap_heatmaps[i](heat)
        return outputs


class Upsample2x(nn.Module):
    """x2 upsampling: ``mode`` "deconv" is a ConvTranspose2d (kernel 4, stride 2, padding 1; the
    VividGAN feature transform's deconvolution), "pixelshuffle" a conv3x3 to 4 x out_channels
    then PixelShuffle(2) (the CPGAN author code's choice); then a ReLU unless ``relu`` is False.

    B x C_in x H x W -> B x C_out x 2H x 2W.
    """

    def __init__(
        self, in_channels: int, out_channels: int, mode: str = "deconv", relu: bool = True
    ):
        super().__init__()
        if mode == "deconv":
            layers: list[nn.Module] = [nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1)]
        elif mode == "pixelshuffle":
            layers = [nn.Conv2d(in_channels, 4 * out_channels, 3, padding=1), nn.PixelShuffle(2)]
        else:
            raise ValueError(f"mode must be 'deconv' or 'pixelshuffle', not {mode!r}")
        if relu:
            layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
