"""VividGAN (Zhang, Tsang, Li, Liu, Lu and Yu, "Face Hallucination with Finishing Touches",
IEEE TIP 2021): Vivid-FHnet, coarse-to-fine hallucination and frontalisation of a 16 px
non-frontal face, as in the paper's Fig. 3-5.

    LR 16x16 ─▶ CoarseFHNet: encoder ─▶ FTModule x3 (STN + residual block + deconvolution)
                16 ─▶ 32 ─▶ 64 ─▶ 128 ─▶ coarse frontal face C
    C ─▶ ComponentLocator (hourglass, 68 heatmaps) ─▶ left eye, right eye, nose, mouth boxes
    C ─crop─▶ TouchingUpNet (one U-Net per component) ─▶ refined components ─stitch (max-out)─▶
                the facial component appearance prior P
    (C, P) ─▶ FineIntegrationNet: encoder ─▶ FacialComponentAwareModule (stacked hourglass ─▶
                heatmaps F_H; IntegrationBlock, Eq. 1-2) ─▶ decoder ─▶ fine frontal face

The discriminators Coarse-D and Fine-D (``models.archs.discriminators.PatchDiscriminator``) and
the losses are the recipe's (``models.train.vividgan``).

Where we could not follow the paper's text, our choices (the paper's sections III-IV were not
available to us; we built from its abstract and figure names, the issue's description and the
authors' code, which never calls its fine-integration net):

- ``ComponentLocator``: the authors' code locates the components with a FAN hourglass run on the
  coarse face; no FAN weights can be had here, so a one-stack hourglass on the coarse face
  (detached: it does not steer the coarse net) learns the 68 heatmaps of the frontal target.
- Touching-up U-Nets predict a residual added to their crop (the refined component starts as
  the coarse one); the author code's U-Nets are 64-512 wide, ours ``unet_width`` (16) doubling
  per level, ``unet_depth`` (2) levels.
- The prior is the four components on a template of -1 (black: the rest of the face masked
  out), overlapping components merged by max-out (element-wise maximum), as the author code
  merges its components on a canvas.
- ``IntegrationBlock`` Eq. 1-2, written from the description "heatmaps as geometry guidance,
  sigma = 1, F_E = F_CH W_phi + F_C": Eq. 1 pools one feature vector per landmark with a spatial
  softmax of each standardised heatmap at temperature sigma; Eq. 2 paints each landmark's
  vector back where its attention is, giving F_CH; F_E = W_phi F_CH + F_C with W_phi a 1x1
  convolution started at zero (F_E = F_C before training).
- The fine face is the coarse face plus the decoder's output (a residual; the last convolution
  starts at zero), so the joint phase starts from the pre-trained coarse net's quality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from datagen.core.params import ParamGroup
from models.archs.blocks import ResidualBlock, SpatialTransformer, StackedHourglass, Upsample2x
from models.archs.components import (
    COMPONENTS,
    DEFAULT_SIZES,
    component_boxes,
    component_centres,
    crop_components,
    heatmap_landmarks,
    stitch_components,
)

PRIORS = ("touching_up", "coarse", "ground_truth")


@dataclass(frozen=True)
class ComponentSizes(ParamGroup):
    """``vividgan.arch.crops``: (width, height) of each component crop at 128 px (the author
    code's; scaled with the HR size for other sizes)."""

    GROUP = "vividgan.arch.crops"
    left_eye: tuple[int, int] = DEFAULT_SIZES["left_eye"]
    right_eye: tuple[int, int] = DEFAULT_SIZES["right_eye"]
    nose: tuple[int, int] = DEFAULT_SIZES["nose"]
    mouth: tuple[int, int] = DEFAULT_SIZES["mouth"]

    def validate(self) -> None:
        for name in COMPONENTS:
            w, h = getattr(self, name)
            if min(w, h) < 8 or w % 4 or h % 4:
                raise ValueError(f"vividgan.arch.crops.{name} must be multiples of 4, >= 8")

    def sizes(self, hr_size: int) -> list[tuple[int, int]]:
        s = hr_size / 128
        return [
            (
                max(8, round(getattr(self, n)[0] * s / 4) * 4),
                max(8, round(getattr(self, n)[1] * s / 4) * 4),
            )
            for n in COMPONENTS
        ]


@dataclass(frozen=True)
class VividGANConfig(ParamGroup):
    """Architecture of Vivid-FHnet (the ``vividgan.arch`` params); the switches are the paper's
    ablations."""

    GROUP = "vividgan.arch"
    width: int = 64  # coarse net channels at 16 px, halved by each FT module (at least 16)
    encoder_blocks: int = 2  # residual blocks of the coarse encoder
    stn: bool = True  # the FT modules' spatial transformers
    fine: bool = True  # False: the coarse net alone (the paper's VividGAN-dagger row)
    prior: str = (
        "touching_up"  # touching_up | coarse (no touching-up net: V-TN) | ground_truth (V+GT)
    )
    component_aware: bool = True  # False: the fine net without its facial component-aware module
    unet_width: int = 16  # touching-up U-Nets' channels at full crop size, doubled per level
    unet_depth: int = 2
    locator_width: int = 32  # the component locator's hourglass width
    fine_width: int = 32  # fine-integration encoder/decoder channels
    hourglass_stacks: int = 1  # the component-aware module's stacked hourglass
    hourglass_width: int = 32
    sigma: float = 1.0  # Eq. 1's softmax temperature (on standardised heatmaps)
    heatmap_size: int = 32  # side of the 68 heatmaps (locator and component-aware module; 64
    # costs 35% more training time for the same figures)
    crops: ComponentSizes = field(default_factory=ComponentSizes)

    def validate(self) -> None:
        if self.width < 16 or min(self.unet_width, self.fine_width, self.locator_width) < 4:
            raise ValueError("vividgan.arch widths: width >= 16, the others >= 4")
        if self.prior not in PRIORS:
            raise ValueError(f"vividgan.arch.prior must be one of {PRIORS}, not {self.prior!r}")
        if self.unet_depth < 1 or self.hourglass_stacks < 1 or self.encoder_blocks < 0:
            raise ValueError(
                "vividgan.arch: unet_depth and hourglass_stacks must be >= 1, encoder_blocks >= 0"
            )
        if not self.sigma > 0:
            raise ValueError("vividgan.arch.sigma must be > 0")


def check_sizes(c: VividGANConfig, hr_size: int, sizes: list[tuple[int, int]]) -> None:
    """Refuse, before any training, sizes the fine net cannot work with: the heatmaps must be
    the HR size over a power of 2 and divisible by 8 (the depth-3 hourglasses), each crop
    side divisible by 2^unet_depth (the U-Nets)."""
    ratio = hr_size // c.heatmap_size if c.heatmap_size else 0
    if c.heatmap_size % 8 or ratio < 1 or hr_size % c.heatmap_size or ratio & (ratio - 1):
        raise ValueError(
            f"vividgan.arch.heatmap_size {c.heatmap_size} must divide the HR size {hr_size} by "
            "a power of 2 and be a multiple of 8"
        )
    bad = [f"{n} {w}x{h}" for n, (w, h) in zip(COMPONENTS, sizes, strict=True)
           if w % 2**c.unet_depth or h % 2**c.unet_depth]  # fmt: skip
    if bad:
        raise ValueError(
            f"vividgan.arch.crops {', '.join(bad)} not divisible by 2^unet_depth = {2**c.unet_depth}"
        )


# ------------------------------------------------------------------ coarse-level FH net


class FTModule(nn.Module):
    """Feature Transform module: a spatial transformer aligns the features (the turned face
    towards the frontal one), a residual block refines them, a deconvolution doubles them.

    B x C_in x H x W -> B x C_out x 2H x 2W."""

    def __init__(self, in_channels: int, out_channels: int, size: int, stn: bool = True):
        super().__init__()
        self.stn = SpatialTransformer(in_channels, "affine", size=size) if stn else nn.Identity()
        self.block = ResidualBlock(in_channels)
        self.up = Upsample2x(in_channels, out_channels, "deconv")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.block(self.stn(x)))


class CoarseFHNet(nn.Module):
    """Coarse-level FH net: encoder (conv + residual blocks at the LR size), three FT modules
    (x8), a convolution to RGB. LR B x 3 x s x s in [-1, 1] -> coarse B x 3 x 8s x 8s (tanh)."""

    def __init__(self, c: VividGANConfig, lr_size: int = 16):
        super().__init__()
        w = [max(16, c.width // 2**i) for i in range(4)]
        self.encoder = nn.Sequential(
            nn.Conv2d(3, w[0], 3, padding=1),
            nn.ReLU(inplace=True),
            *(ResidualBlock(w[0]) for _ in range(c.encoder_blocks)),
        )
        # the affine STN (not only a similarity): turning a face is a shear of its features
        self.ft = nn.Sequential(
            *(FTModule(w[i], w[i + 1], lr_size * 2**i, c.stn) for i in range(3))
        )
        self.to_rgb = nn.Sequential(nn.Conv2d(w[3], 3, 3, padding=1), nn.Tanh())

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.to_rgb(self.ft(self.encoder(lr)))


class ComponentLocator(nn.Module):
    """68 landmark heatmaps of a face (our stand-in for the FAN the author code runs on the
    coarse face). B x 3 x H x W -> B x 68 x S x S (S = ``heatmap_size``)."""

    def __init__(self, width: int, heatmap_size: int):
        super().__init__()
        self.size = heatmap_size
        self.hourglass = StackedHourglass(3, 1, width, 68, depth=3)

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(face, size=(self.size, self.size), mode="area")
        return self.hourglass(x)[-1]


# ------------------------------------------------------------------ touching-up subnetwork


class UNet(nn.Module):
    """A small U-Net (convolutions, stride-2 downsampling, deconvolutions, skip connections)
    refining one component crop: B x 3 x h x w -> B x 3 x h x w, the crop plus a residual
    (h and w divisible by 2^depth)."""

    def __init__(self, width: int = 16, depth: int = 2):
        super().__init__()
        widths = [width * 2**i for i in range(depth + 1)]
        self.inc = nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1), nn.LeakyReLU(0.2, True))
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i], widths[i + 1], 4, 2, 1), nn.LeakyReLU(0.2, True))
            for i in range(depth)
        )
        self.up = nn.ModuleList(
            nn.Sequential(
                nn.ConvTranspose2d(widths[i + 1], widths[i], 4, 2, 1), nn.LeakyReLU(0.2, True)
            )
            for i in reversed(range(depth))
        )
        self.merge = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(2 * widths[i], widths[i], 3, padding=1), nn.LeakyReLU(0.2, True)
            )
            for i in reversed(range(depth))
        )
        self.out = nn.Conv2d(widths[0], 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # starts as the identity: the refined crop = the crop
        nn.init.zeros_(self.out.bias)
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2**self.depth or x.shape[-2] % 2**self.depth:
            raise ValueError(f"crop {tuple(x.shape[-2:])} is not divisible by 2^{self.depth}")
        skips = [self.inc(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        f = skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            f = merge(torch.cat([up(f), skips.pop()], 1))
        return x + self.out(f)


class TouchingUpNet(nn.Module):
    """One U-Net per facial component (left eye, right eye, nose, mouth): a list of four
    B x 3 x h_k x w_k crops -> the refined crops."""

    def __init__(self, width: int, depth: int):
        super().__init__()
        self.unets = nn.ModuleDict({name: UNet(width, depth) for name in COMPONENTS})

    def forward(self, crops: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.unets[name](x) for name, x in zip(COMPONENTS, crops, strict=True)]


# ------------------------------------------------------------------ fine-integration subnetwork


class IntegrationBlock(nn.Module):
    """Integrates the facial geometry (heatmaps F_H) into the face features F_C.

    Eq. 1: A_k = softmax_p(z_k(p) / sigma), z_k the k-th heatmap standardised over its
    positions p; v_k = sum_p A_k(p) F_C(:, p), one feature vector per landmark.
    Eq. 2: F_CH(:, p) = sum_k (A_k(p) / max_q A_k(q)) v_k; F_E = W_phi F_CH + F_C.

    F_C B x C x H x W, F_H B x K x H x W -> F_E B x C x H x W."""

    def __init__(self, channels: int, sigma: float = 1.0):
        super().__init__()
        self.sigma = sigma
        self.phi = nn.Conv2d(channels, channels, 1)  # W_phi
        nn.init.zeros_(self.phi.weight)
        nn.init.zeros_(self.phi.bias)

    def attention(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """A of Eq. 1: B x K x H x W -> B x K x (H W), each row summing to 1."""
        z = heatmaps.flatten(2)
        z = (z - z.mean(-1, keepdim=True)) / (z.std(-1, keepdim=True) + 1e-6)
        return torch.softmax(z / self.sigma, -1)

    def forward(self, features: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        b, c, h, w = features.shape
        a = self.attention(heatmaps)  # B x K x N
        v = torch.bmm(a, features.flatten(2).transpose(1, 2))  # Eq. 1: B x K x C
        spread = a / a.amax(-1, keepdim=True)  # B x K x N, peak 1 per landmark
        f_ch = torch.bmm(v.transpose(1, 2), spread).view(b, c, h, w)  # Eq. 2
        return self.phi(f_ch) + features


class FacialComponentAwareModule(nn.Module):
    """A stacked hourglass predicts the 68 heatmaps F_H from the features (one prediction per
    stack, for L_h), and the integration block merges the last into the features.

    B x C x S x S -> (F_E B x C x S x S, [B x 68 x S x S] * stacks)."""

    def __init__(self, channels: int, stacks: int, width: int, sigma: float):
        super().__init__()
        self.hourglass = StackedHourglass(channels, stacks, width, 68, depth=3)
        self.integration = IntegrationBlock(channels, sigma)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        maps = self.hourglass(x)
        return self.integration(x, maps[-1]), maps


class FineIntegrationNet(nn.Module):
    """Encoder over the coarse face and the prior (6 channels at the HR size, down to the
    heatmap size), the facial component-aware module (or, for its ablation, residual blocks),
    a decoder back to the HR size; the output is added to the coarse face.

    coarse B x 3 x H x H, prior B x 3 x H x H -> (fine B x 3 x H x H, heatmaps list)."""

    def __init__(self, c: VividGANConfig, hr_size: int):
        super().__init__()
        w = c.fine_width
        steps = max(0, (hr_size // c.heatmap_size).bit_length() - 1)
        layers: list[nn.Module] = [nn.Conv2d(6, w, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(steps):
            layers += [nn.Conv2d(w, w, 4, 2, 1), nn.ReLU(inplace=True)]
        layers.append(ResidualBlock(w))
        self.encoder = nn.Sequential(*layers)
        self.aware = (
            FacialComponentAwareModule(w, c.hourglass_stacks, c.hourglass_width, c.sigma)
            if c.component_aware
            else nn.Sequential(ResidualBlock(w), ResidualBlock(w))
        )
        self.decoder = nn.Sequential(
            ResidualBlock(w), *(Upsample2x(w, w, "deconv") for _ in range(steps))
        )
        self.out = nn.Conv2d(w, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # the fine face starts as the coarse one
        nn.init.zeros_(self.out.bias)

    def forward(
        self, coarse: torch.Tensor, prior: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        f = self.encoder(torch.cat([coarse, prior], 1))
        if isinstance(self.aware, FacialComponentAwareModule):
            f, maps = self.aware(f)
        else:
            f, maps = self.aware(f), []
        return coarse + self.out(self.decoder(f)), maps


# ------------------------------------------------------------------ Vivid-FHnet


class VividFHNet(nn.Module):
    """The VividGAN generator. ``forward(lr)``: LR B x 3 x s x s in [-1, 1] -> the frontal face
    B x 3 x 8s x 8s (the fine face; the coarse one with ``fine: false``). ``stages(lr, hr)``
    gives every intermediate the losses need (``hr``, the target, only for the V+GT prior)."""

    def __init__(self, config: VividGANConfig = VividGANConfig(), lr_size: int = 16):
        super().__init__()
        self.config = c = config
        self.lr_size, self.hr_size = lr_size, 8 * lr_size
        self.coarse = CoarseFHNet(c, lr_size)
        if c.fine:
            self.sizes = c.crops.sizes(self.hr_size)
            check_sizes(c, self.hr_size, self.sizes)
            self.locator = ComponentLocator(c.locator_width, c.heatmap_size)
            self.touching_up = TouchingUpNet(c.unet_width, c.unet_depth)
            self.fine = FineIntegrationNet(c, self.hr_size)

    def boxes(self, locator_maps: torch.Tensor) -> torch.Tensor:
        """B x 4 x 4 component boxes from the locator's heatmaps."""
        landmarks = heatmap_landmarks(locator_maps, self.hr_size)
        return component_boxes(component_centres(landmarks), self.sizes, self.hr_size)

    def stages(
        self, lr: torch.Tensor, hr: torch.Tensor | None = None, upto: str = "fine"
    ) -> dict[str, Any]:
        """The intermediates the losses need, up to ``upto``:

        - ``coarse``: ``coarse`` (and the locator's ``locator`` B x 68 x S x S heatmaps, from
          the detached coarse face);
        - ``touch``: also ``boxes`` (B x 4 x 4), ``crops`` and ``touched`` (lists of four
          B x 3 x h x w), the coarse net and locator run without gradients (the touch phase);
        - ``fine``: also ``prior`` (B x 3 x H x H), ``fine`` and ``heatmaps`` (the
          component-aware module's, one per stack).

        ``hr`` (the target) is needed only by the V+GT prior."""
        c = self.config
        if upto not in ("coarse", "touch", "fine"):
            raise ValueError(f"upto must be coarse, touch or fine, not {upto!r}")
        with torch.set_grad_enabled(torch.is_grad_enabled() and upto != "touch"):
            coarse = self.coarse(lr)
            out: dict[str, Any] = {"coarse": coarse}
            if not c.fine:
                return out
            out["locator"] = maps = self.locator(coarse.detach())
            if upto == "coarse":
                return out
            out["boxes"] = boxes = self.boxes(maps)
            out["crops"] = crops = crop_components(coarse, boxes, self.sizes)
        if c.prior == "ground_truth":
            if hr is None:
                raise ValueError("vividgan.arch.prior ground_truth needs the target face")
            touched = crop_components(hr, boxes, self.sizes)
        elif c.prior == "coarse":
            touched = crops
        else:
            touched = self.touching_up(crops)
        out["touched"] = touched
        if upto == "touch":
            return out
        out["prior"] = prior = stitch_components(touched, boxes, self.hr_size)
        out["fine"], out["heatmaps"] = self.fine(coarse, prior)
        return out

    @property
    def needs_target(self) -> bool:
        """Whether ``forward`` needs the target face (the V+GT ablation's ground-truth prior):
        the evaluation protocol then passes it."""
        return self.config.fine and self.config.prior == "ground_truth"

    def forward(
        self, lr: torch.Tensor, hr: torch.Tensor | None = None, upto: str | None = None
    ) -> torch.Tensor | dict[str, Any]:
        """The frontal face (the fine one; the coarse one with ``fine: false``), or with
        ``upto`` the ``stages`` dict (training calls the network this way, so that DDP sees
        every forward pass)."""
        if upto is not None:
            return self.stages(lr, hr, upto)
        s = self.stages(lr, hr, "fine")
        return s["fine"] if self.config.fine else s["coarse"]
