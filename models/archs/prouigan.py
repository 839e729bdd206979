"""Pro-UIGAN (Zhang, Yu, Lu and Liu, "Pro-UIGAN: Progressive Face Hallucination from Occluded
Thumbnails", IEEE TIP 31, 3236-3250, 2022): Pro-UInet, progressive upsampling and inpainting of
an occluded 16 px face guided by its facial landmarks, as in the paper's Fig. 2-3.

    occluded LR 16x16 ─▶ LandmarkEstimator (stacked hourglass; FAN in the paper) ─▶ 68 heatmaps
    LR ─▶ face encoder ─▶ F_C ┐
    heatmaps ─▶ landmark encoder ─▶ F_L ┴▶ UIBlock 1: CMAM (Eq. 1-2) ─▶ TUM (Eq. 3) ─▶ 32 px
        ─▶ image 1 (3 x 32 x 32) and heatmaps 1 (68 x 32 x 32)
    features 1 = F_C, heatmaps 1 ─▶ landmark encoder = F_L ─▶ UIBlock 2 ─▶ 64 px (image 2, maps 2)
    features 2, maps 2 ─▶ UIBlock 3 ─▶ 128 px: image 3, the output (and 64 px maps 3, for L_h)

- ``CMAM`` (cross-modality attention module, Eq. 1-2): the cosine similarity CM between every
  landmark-feature position (the queries, F_L) and every face-feature position (the keys,
  F_C); each modality aggregates the other's values through CM and adds them to itself: F_P, the
  facial geometry prior, and F_A, the appearance features. (The abstract calls the face the
  queries; as both directions of CM are normalised over the positions they sum, see below, the
  two readings give the same F_P and F_A: one's CM is the other's transpose.)
- ``TUM`` (transposed-upsampling module, Eq. 3): concat(F_P, F_A) -> deconvolution x2 -> residual
  blocks.
- ``UIBlock``: CMAM then TUM, then an image head (tanh) and a landmark head (stacked hourglass)
  at the block's output scale.

The discriminators (Local-D, Global-D) and the losses are the recipe's.

Where the paper (and DESIGN.md's summary of it) is silent, our choices, each with its reason
beside the code:

- CM's rows are turned into weights by a softmax of CM / tau over the positions being summed
  (over face positions for F_P, over landmark positions for F_A), tau learnt from 0.1 (cosine
  attention as in Swin V2): unnormalised, Eq. 2 sums HW cosines in [-1, 1], a term growing with
  the map (256 at 16 px, 4096 at 64) that would swamp the residual F_L / F_C; softmax keeps each
  aggregate a convex mix of values and lets the attention sharpen on matching positions. The
  author code also softmaxes (raw dot products, once, using the result and its transpose).
- Conv(Conv(.)) of Eq. 2 is conv3x3 -> ReLU -> conv1x1 (the last linear: the aggregate is added to
  features that take both signs).
- F_L of block 1 comes from the 68 input heatmaps (the estimator's or, for P+GT, the ground
  truth's, any size: area-resized to the LR size) through a conv encoder (conv3x3 -> ReLU ->
  residual blocks); F_L of blocks 2-3 from the previous block's predicted heatmaps through an
  encoder of the same form. F_C of block 1 is the LR face through an encoder of the same form;
  F_C of blocks 2-3 is the previous block's TUM output itself, not its 3-channel image re-encoded
  (the author code re-encodes the image): the features carry what the image cannot, and the
  image is still supervised at every block.
- At feature maps larger than ``cm_size`` (default 16: blocks 2 and 3, at 32 and 64 px) CM is
  computed on area-pooled F_L and F_C (the values too), and the two aggregates are upsampled
  (bilinear) before the residual additions of Eq. 2, which stay at full size: softmaxes over
  1024 x 1024 entries per face double a CPU forward pass, and the full 4096 x 4096 CM at 64 px
  makes it 15 times slower. ``cm_size`` 0 computes every CM at full size (the paper).
- Ablations: ``cmam: false`` (P-FP) puts three residual blocks on concat(F_L, F_C) (the same
  2C x H x W the TUM receives) in place of each CM-AM, so landmark features still reach the TUM
  but no attention relates them to the face; ``blocks`` 1 or 2 make the last block's TUM
  upsample by the rest of x8 (one deconvolution per x2) so the output is still 128 px: blocks 1
  is a single UI-block 16 -> 128, blocks 2 16 -> 32 -> 128. P+GT only changes what heatmaps the
  caller passes.
- The landmark heads are stacked hourglasses (one stack by default) at each block's output
  scale up to ``heatmap_max`` (default 64: FAN's, and the CPGAN author code's, heatmap size);
  block 3's reads its 128 px features area-pooled to 64 px, as a 128 px hourglass would cost as
  much as the rest of the network. Widths fall as the resolution grows (``widths``), as in our
  CPGAN, so that the default fits a CPU budget.
- ``LandmarkEstimator`` upsamples the LR face (bilinear) to its heatmap size (default 32, twice
  the LR side: sub-pixel landmarks of a 16 px face) and runs a two-stack hourglass there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from datagen.core.params import ParamGroup
from models.archs.blocks import ResidualBlock, StackedHourglass, Upsample2x
from models.losses.heatmap import soft_argmax

SCALES = (16, 32, 64, 128)  # the feature maps' sides for a 16 px input, as ``widths`` lists them
N_LANDMARKS = 68


@dataclass(frozen=True)
class ProUIGANConfig(ParamGroup):
    """Architecture of Pro-UInet (the ``prouigan.arch`` params); ``blocks`` and ``cmam`` are the
    paper's ablations."""

    GROUP = "prouigan.arch"
    widths: tuple[int, int, int, int] = (64, 32, 16, 16)  # channels at 16, 32, 64, 128 px
    encoder_blocks: int = 1  # residual blocks of the face and landmark encoders
    res_blocks: int = 2  # H_res: residual blocks of each TUM
    blocks: int = 3  # UI-blocks (1: one block 16 -> 128; 2: 16 -> 32 -> 128)
    cmam: bool = True  # False: each CM-AM replaced by three residual blocks (P-FP)
    cm_size: int = 16  # largest side CM is computed at (0: always the full map, the paper)
    temperature: float = 0.1  # initial tau of the softmax over CM (learnt)
    heatmap_max: int = 64  # largest side of the predicted heatmaps (128: every block's full size)
    hourglass_width: int = 16  # the landmark heads' hourglass channels
    hourglass_stacks: int = 1

    def validate(self) -> None:
        if len(self.widths) != 4 or min(self.widths) < 4:
            raise ValueError("prouigan.arch.widths must be 4 channel counts, each >= 4")
        if self.blocks not in (1, 2, 3):
            raise ValueError(f"prouigan.arch.blocks must be 1, 2 or 3, not {self.blocks}")
        if min(self.encoder_blocks, self.res_blocks) < 0 or self.hourglass_stacks < 1:
            raise ValueError(
                "prouigan.arch: encoder_blocks and res_blocks must be >= 0, hourglass_stacks >= 1"
            )
        if self.hourglass_width < 4:
            raise ValueError("prouigan.arch.hourglass_width must be >= 4")
        if self.cm_size and (self.cm_size < 4 or self.cm_size & (self.cm_size - 1)):
            raise ValueError(
                f"prouigan.arch.cm_size must be 0 or a power of 2 >= 4, not {self.cm_size}"
            )
        if self.heatmap_max < 8 or self.heatmap_max & (self.heatmap_max - 1):
            raise ValueError(
                f"prouigan.arch.heatmap_max must be a power of 2 >= 8, not {self.heatmap_max}"
            )
        if not 0.01 <= self.temperature <= 10:
            raise ValueError("prouigan.arch.temperature must be in [0.01, 10]")

    def stages(self) -> list[tuple[int, int]]:
        """(input side, output side) of each UI-block for a 16 px input: the last block takes
        whatever of x8 is left, so every variant ends at 128 px."""
        sides = [16 * 2**i for i in range(self.blocks)] + [128]
        return list(zip(sides[:-1], sides[1:], strict=True))


def check_sizes(c: ProUIGANConfig, lr_size: int) -> None:
    """Refuse, before any training, an LR size the network cannot work with: a power of 2 of at
    least 8, so that each block's side is the LR side times a power of 2 (the widths and the
    hourglasses are laid out per scale, and ``cm_size`` pooling is exact)."""
    if lr_size < 8 or lr_size & (lr_size - 1):
        raise ValueError(f"Pro-UInet needs a power-of-2 LR size >= 8, not {lr_size}")


@dataclass(frozen=True)
class LandmarkEstimatorConfig(ParamGroup):
    """The landmark estimator (the ``prouigan.estimator`` params), our stand-in for FAN."""

    GROUP = "prouigan.estimator"
    width: int = 64  # hourglass channels
    stacks: int = 2  # Newell's intermediate supervision: one prediction per stack
    heatmap_size: int = 32  # side of the 68 heatmaps (the LR face is upsampled to it)
    # ours: each stack predicts the residual over the mean shape's heatmaps (the train faces'
    # mean landmarks, set by the recipe): our faces are aligned, so the mean shape is already
    # close (NRMSE 0.038 on the test split) where a plain hourglass starts from nothing
    template: bool = True

    def validate(self) -> None:
        if self.width < 4 or self.stacks < 1:
            raise ValueError("prouigan.estimator: width must be >= 4, stacks >= 1")
        if self.heatmap_size not in (8, 16, 32, 64):
            raise ValueError(
                f"prouigan.estimator.heatmap_size must be 8, 16, 32 or 64, not {self.heatmap_size}"
            )


def hourglass_depth(side: int) -> int:
    """Levels of an hourglass on a ``side`` px map: its lowest level at 4 px where it can (a
    4 px map still sees the whole face), at most 4 levels (8 px at the bottom of a 128 px map),
    at least 1."""
    return max(1, min(4, int(math.log2(side)) - 2))


# ------------------------------------------------------------------ landmark estimator


class LandmarkEstimator(nn.Module):
    """68 landmark heatmaps of an occluded LR face (the paper runs FAN, whose weights we cannot
    have; this small stacked hourglass is trained on the occlusion pairs instead). The face is
    upsampled (bilinear) to the heatmap size, so the hourglass works at the heatmaps' scale.

    LR B x 3 x s x s in [-1, 1] -> a list (one per stack; the last is the prediction) of
    B x 68 x S x S heatmaps, S = ``heatmap_size``."""

    def __init__(self, config: LandmarkEstimatorConfig = LandmarkEstimatorConfig()):
        super().__init__()
        config.validate()
        self.config = c = config
        self.size = c.heatmap_size
        self.hourglass = StackedHourglass(
            3, c.stacks, c.width, N_LANDMARKS, depth=hourglass_depth(c.heatmap_size)
        )
        # the mean shape's heatmaps (68 x S x S; ``set_template``), saved with the weights
        self.register_buffer("template", torch.zeros(N_LANDMARKS, self.size, self.size))

    def set_template(self, heatmaps: torch.Tensor) -> None:
        """The mean shape's 68 x S x S heatmaps, which ``config.template`` adds to each stack."""
        if heatmaps.shape != self.template.shape:
            raise ValueError(
                f"template heatmaps {tuple(heatmaps.shape)}, expected {tuple(self.template.shape)}"
            )
        self.template.copy_(heatmaps)

    def forward(self, lr: torch.Tensor) -> list[torch.Tensor]:
        if lr.shape[-2:] != (self.size, self.size):
            lr = F.interpolate(
                lr, size=(self.size, self.size), mode="bilinear", align_corners=False
            )
        stacks = self.hourglass(lr)
        return [h + self.template for h in stacks] if self.config.template else stacks


# ------------------------------------------------------------------ UI-block


def encoder(in_channels: int, channels: int, blocks: int) -> nn.Sequential:
    """conv3x3 -> ReLU -> ``blocks`` residual blocks: B x C_in x H x W -> B x C x H x W. The face
    and landmark encoders (F_C and F_L of Eq. 1)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1),
        nn.ReLU(inplace=True),
        *(ResidualBlock(channels) for _ in range(blocks)),
    )


def cross_modality_matrix(q: torch.Tensor, k: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Eq. 1: CM = <Q/|Q|, K/|K|>, the cosine similarity between the C-vector of every query
    position and that of every key position.

    q B x C x H x W (F_L), k B x C x H' x W' (F_C) -> CM B x (H W) x (H' W'), row i the query
    position i (row-major), column j the key position j; entries in [-1, 1] (0 for a zero
    vector)."""
    qn = F.normalize(q.flatten(2), dim=1, eps=eps)  # B x C x N_Q, unit columns
    kn = F.normalize(k.flatten(2), dim=1, eps=eps)  # B x C x N_K
    return qn.transpose(1, 2) @ kn


def _value_convs(channels: int) -> nn.Sequential:
    """Conv(Conv(.)) of Eq. 2."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 1),
    )


class CMAM(nn.Module):
    """Cross-modality attention module (Eq. 1-2). Queries the landmark features F_L, keys the
    face features F_C; CM their cosine matrix (``cross_modality_matrix``).

    Eq. 2: F_P = [Conv(Conv(F_C))]^R (.) CM + F_L, the facial geometry prior: at each landmark
    position, the face values weighted by that row of CM; F_A = [Conv(Conv(F_L))]^R (.) CM + F_C,
    the appearance features: at each face position, the landmark values weighted by that column.
    (.) weighs with softmax(CM / tau), normalised over the positions summed (see the module
    docstring: why a softmax, and why tau is learnt).

    F_L, F_C B x C x H x W -> (F_P, F_A), each B x C x H x W."""

    def __init__(self, channels: int, cm_size: int = 0, temperature: float = 0.1):
        super().__init__()
        self.face_values = _value_convs(channels)  # Conv(Conv(F_C))
        self.landmark_values = _value_convs(channels)  # Conv(Conv(F_L))
        self.cm_size = cm_size
        # log(1 / tau): learnt in log space so tau stays positive (Swin V2's cosine attention)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))

    @property
    def scale(self) -> torch.Tensor:
        """1 / tau, capped at 100 (tau >= 0.01): a sharper softmax is a one-hot whose gradient
        vanishes."""
        return self.log_scale.clamp(max=math.log(100)).exp()

    def attention(
        self, f_l: torch.Tensor, f_c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """CM (Eq. 1) and its two normalisations: B x N x N each, N = H W (at most
        ``cm_size``^2): CM; A_P = softmax over face positions (rows sum to 1: F_P); A_A =
        softmax over landmark positions (columns sum to 1: F_A)."""
        cm = cross_modality_matrix(f_l, f_c)
        logits = cm * self.scale
        return cm, torch.softmax(logits, -1), torch.softmax(logits, 1)

    def forward(self, f_l: torch.Tensor, f_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if f_l.shape != f_c.shape:
            raise ValueError(f"F_L {tuple(f_l.shape)} and F_C {tuple(f_c.shape)} differ")
        b, c, h, w = f_c.shape
        q, k = f_l, f_c
        pooled = bool(self.cm_size) and max(h, w) > self.cm_size
        if pooled:  # the attention at cm_size, its aggregates upsampled (module docstring)
            side = (min(h, self.cm_size), min(w, self.cm_size))
            q, k = F.adaptive_avg_pool2d(q, side), F.adaptive_avg_pool2d(k, side)
        _, a_p, a_a = self.attention(q, k)
        v_c = self.face_values(k).flatten(2)  # [Conv(Conv(F_C))]^R: B x C x N
        v_l = self.landmark_values(q).flatten(2)  # [Conv(Conv(F_L))]^R
        size = q.shape[-2:]
        p = (v_c @ a_p.transpose(1, 2)).view(b, c, *size)  # Eq. 2: sum_j V_C(j) A_P(i, j)
        a = (v_l @ a_a).view(b, c, *size)  # Eq. 2: sum_i V_L(i) A_A(i, j)
        if pooled:
            p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
            a = F.interpolate(a, size=(h, w), mode="bilinear", align_corners=False)
        return p + f_l, a + f_c  # Eq. 2: F_P, F_A


class ResidualFusion(nn.Module):
    """The P-FP ablation's stand-in for CMAM: three residual blocks on concat(F_L, F_C), split
    back into the two halves, so the TUM gets a tensor of the same size without the attention.

    F_L, F_C B x C x H x W -> (F_P, F_A), each B x C x H x W."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(*(ResidualBlock(2 * channels) for _ in range(3)))

    def forward(self, f_l: torch.Tensor, f_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f_p, f_a = self.body(torch.cat([f_l, f_c], 1)).chunk(2, 1)
        return f_p, f_a


class TUM(nn.Module):
    """Transposed-upsampling module, Eq. 3: F_out = H_res[H_up(concat(F_P, F_A))]. H_up is one
    deconvolution (kernel 4, stride 2) + ReLU per entry of ``widths`` (the channels after each:
    one entry is the paper's x2; the one- and two-block ablations' last TUM has 3 or 2); H_res
    ``res_blocks`` residual blocks at the output scale.

    F_P, F_A B x C x H x W -> B x widths[-1] x (f H) x (f W), f = 2 ** len(widths)."""

    def __init__(self, channels: int, widths: list[int], res_blocks: int):
        super().__init__()
        ins = [2 * channels, *widths[:-1]]
        self.up = nn.Sequential(
            *(Upsample2x(i, o, "deconv") for i, o in zip(ins, widths, strict=True))
        )
        self.res = nn.Sequential(*(ResidualBlock(widths[-1]) for _ in range(res_blocks)))

    def forward(self, f_p: torch.Tensor, f_a: torch.Tensor) -> torch.Tensor:
        return self.res(self.up(torch.cat([f_p, f_a], 1)))  # Eq. 3


def resize_heatmaps(heatmaps: torch.Tensor, side: int) -> torch.Tensor:
    """B x K x S x S -> B x K x side x side: area when shrinking (each map keeps its mass, and so
    its sub-pixel peak), bilinear when growing."""
    if heatmaps.shape[-2:] == (side, side):
        return heatmaps
    if heatmaps.shape[-1] > side:
        return F.interpolate(heatmaps, size=(side, side), mode="area")
    return F.interpolate(heatmaps, size=(side, side), mode="bilinear", align_corners=False)


class UIBlock(nn.Module):
    """One upsampling-and-inpainting block (Fig. 2-3): the heatmaps it is given are encoded into
    F_L, CMAM (or, for P-FP, residual blocks) relates them to the face features F_C, the TUM
    upsamples, and two heads read the result: the face image (conv3x3 -> tanh, in [-1, 1]) and
    its 68 landmark heatmaps (a stacked hourglass) at the output scale, or at ``heatmap_max``
    if smaller (the hourglass then reads the features area-pooled to it).

    features F_C B x C_in x s x s, heatmaps B x 68 x S' x S' (any S': resized to s) -> dict:
    ``image`` B x 3 x S x S, ``heatmaps`` B x 68 x H x H (the last stack's), ``heatmap_stacks``
    (one per stack, for L_h), ``features`` B x C_out x S x S (what the next block starts from);
    S = s x the block's factor, H = min(S, ``heatmap_max``).
    """

    def __init__(self, c: ProUIGANConfig, in_channels: int, up_widths: list[int], out_size: int):
        super().__init__()
        self.landmarks = encoder(N_LANDMARKS, in_channels, c.encoder_blocks)  # F_L
        self.cmam = (
            CMAM(in_channels, c.cm_size, c.temperature) if c.cmam else ResidualFusion(in_channels)
        )
        self.tum = TUM(in_channels, up_widths, c.res_blocks)
        out = up_widths[-1]
        self.to_image = nn.Sequential(nn.Conv2d(out, 3, 3, padding=1), nn.Tanh())
        self.heatmap_size = min(out_size, c.heatmap_max)
        depth = hourglass_depth(self.heatmap_size)
        self.to_heatmaps = StackedHourglass(
            out, c.hourglass_stacks, c.hourglass_width, N_LANDMARKS, depth
        )

    def forward(self, features: torch.Tensor, heatmaps: torch.Tensor) -> dict[str, Any]:
        f_l = self.landmarks(resize_heatmaps(heatmaps, features.shape[-1]))
        f_p, f_a = self.cmam(f_l, features)  # Eq. 1-2
        f = self.tum(f_p, f_a)  # Eq. 3
        h = self.heatmap_size
        stacks = self.to_heatmaps(f if f.shape[-1] == h else F.adaptive_avg_pool2d(f, h))
        return {
            "image": self.to_image(f),
            "heatmaps": stacks[-1],
            "heatmap_stacks": stacks,
            "features": f,
        }


# ------------------------------------------------------------------ Pro-UInet


class ProUINet(nn.Module):
    """The Pro-UIGAN generator. ``forward(lr, heatmaps)``: the occluded LR face B x 3 x s x s in
    [-1, 1] and its 68 landmark heatmaps B x 68 x S x S (the estimator's, or the ground truth's
    for P+GT; any S, area-resized to s) -> dict:

    - ``images``: each block's face, B x 3 x 2s x 2s, 4s, 8s (3 blocks; with fewer, the last
      is 8s), in [-1, 1];
    - ``heatmaps``: each block's 68 heatmaps at its image's size or ``heatmap_max``, the
      smaller (2s, 4s, 64 px by default); ``heatmap_stacks``: each block's list of one
      prediction per hourglass stack (for L_h with intermediate supervision);
    - ``output``: the final face, ``images[-1]`` (B x 3 x 8s x 8s).

    ``upto`` runs only the first ``upto`` blocks (pre-training block 1, then block 2: the
    paper's recipe); ``output`` is then the last block run's image. ``hallucinate`` gives the
    final face alone."""

    def __init__(self, config: ProUIGANConfig = ProUIGANConfig(), lr_size: int = 16):
        super().__init__()
        config.validate()  # from_params validates too; a config built in code is checked here
        check_sizes(config, lr_size)
        self.config = c = config
        self.lr_size, self.hr_size = lr_size, 8 * lr_size
        w = dict(zip(SCALES, c.widths, strict=True))
        self.encoder = encoder(3, w[16], c.encoder_blocks)  # F_C of block 1
        blocks = []
        for s_in, s_out in c.stages():
            ups = [w[s] for s in SCALES if s_in < s <= s_out]
            blocks.append(UIBlock(c, w[s_in], ups, s_out * lr_size // 16))
        self.blocks = nn.ModuleList(blocks)

    def forward(
        self, lr: torch.Tensor, heatmaps: torch.Tensor, upto: int | None = None
    ) -> dict[str, Any]:
        s = self.lr_size
        if lr.shape[-2:] != (s, s):
            raise ValueError(f"expected {s} x {s} LR faces, got {tuple(lr.shape[-2:])}")
        if heatmaps.ndim != 4 or heatmaps.shape[1] != N_LANDMARKS or heatmaps.shape[0] != len(lr):
            raise ValueError(
                f"expected B x {N_LANDMARKS} x S x S heatmaps for {len(lr)} faces, got "
                f"{tuple(heatmaps.shape)}"
            )
        n = len(self.blocks) if upto is None else upto
        if not 1 <= n <= len(self.blocks):
            raise ValueError(f"upto must be 1..{len(self.blocks)}, not {upto}")
        if heatmaps.shape[-1] != heatmaps.shape[-2]:
            raise ValueError(f"expected square heatmaps, got {tuple(heatmaps.shape[-2:])}")
        f = self.encoder(lr)
        out: dict[str, Any] = {"images": [], "heatmaps": [], "heatmap_stacks": []}
        for block in self.blocks[:n]:
            r = block(f, heatmaps)
            f, heatmaps = r["features"], r["heatmaps"]  # where the next block starts (Fig. 2)
            out["images"].append(r["image"])
            out["heatmaps"].append(r["heatmaps"])
            out["heatmap_stacks"].append(r["heatmap_stacks"])
        out["output"] = out["images"][-1]
        return out

    def hallucinate(self, lr: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        """The final face, B x 3 x 8s x 8s in [-1, 1]."""
        return self.forward(lr, heatmaps)["output"]


# ------------------------------------------------------------------ the trained model

PRIORS = ("estimator", "ground_truth")


class ProUIGAN(nn.Module):
    """What training produces and the evaluation runs: the landmark estimator and Pro-UInet.

    ``forward(lr)``: the occluded LR face B x 3 x s x s in [-1, 1] -> the final face
    B x 3 x 8s x 8s, Pro-UInet run on the estimator's heatmaps (its last stack, computed in
    eval mode without gradient: the estimator is frozen once trained). The recipe also calls
    ``forward(lr, heatmaps, upto, part="blocks")`` (Pro-UInet's dict, on the given heatmaps or
    the estimator's) and ``forward(lr, part="landmarks")`` (the estimator's stacks, to train it):
    one ``forward`` so that DDP wraps every use.

    ``prior: ground_truth`` (P+GT, an oracle) was trained on the true heatmaps: it refuses to
    run without them rather than fall back on an estimator it never used."""

    def __init__(
        self,
        config: ProUIGANConfig = ProUIGANConfig(),
        estimator: LandmarkEstimatorConfig = LandmarkEstimatorConfig(),
        lr_size: int = 16,
        prior: str = "estimator",
    ):
        super().__init__()
        if prior not in PRIORS:
            raise ValueError(f"prouigan.prior must be one of {PRIORS}, not {prior!r}")
        self.prior = prior
        self.estimator = LandmarkEstimator(estimator)
        self.net = ProUINet(config, lr_size)

    def frozen_heatmaps(self, lr: torch.Tensor) -> torch.Tensor:
        """The estimator's heatmaps, B x 68 x S x S, in eval mode (its batch norms' running
        statistics stay those it was trained with) and without gradient."""
        if self.prior == "ground_truth":
            raise ValueError(
                "this Pro-UIGAN is the P+GT oracle: it needs the true landmark heatmaps"
            )
        was = self.estimator.training
        self.estimator.eval()
        with torch.no_grad():
            maps = self.estimator(lr)[-1]
        self.estimator.train(was)
        return maps

    def forward(
        self,
        lr: torch.Tensor,
        heatmaps: torch.Tensor | None = None,
        upto: int | None = None,
        part: str = "face",
    ) -> Any:
        if part == "landmarks":
            return self.estimator(lr)
        if part not in ("face", "blocks"):
            raise ValueError(f"part must be face, blocks or landmarks, not {part!r}")
        out = self.net(lr, self.frozen_heatmaps(lr) if heatmaps is None else heatmaps, upto)
        return out["output"] if part == "face" else out

    @property
    def estimates_landmarks(self) -> bool:
        """Whether this model has a trained estimator (not the P+GT oracle)."""
        return self.prior == "estimator"

    def estimated_landmarks(self, lr: torch.Tensor) -> torch.Tensor:
        """The estimator's 68 landmarks on B x 3 x s x s LR faces: B x 68 x 2 (x, y) in pixels
        of the 8s px face (``soft_argmax`` of its last stack's heatmaps). The evaluation scores
        them against the clean face's (the estimator's NRMSE)."""
        return soft_argmax(self.frozen_heatmaps(lr), self.net.hr_size)

    def block_outputs(self, lr: torch.Tensor) -> list[torch.Tensor]:
        """Each UI-block's face (B x 3 x 2s x 2s, 4s, 8s; Fig. 9's intermediate outputs), on the
        estimator's heatmaps."""
        return self.forward(lr, part="blocks")["images"]
