"""Pro-UIGAN's training recipe (paper s III-C, Eq. 4-15) on the occlusion pairs (``lr`` with
a hole, the clean ``hr``, the clean face's ``landmarks``):

0. ``estimator``: our landmark estimator (standing in for FAN, whose weights we cannot have)
   learns the clean face's 68 heatmaps from the occluded LR face, L_h on every stack; it is
   frozen afterwards (its heatmaps feed Pro-UInet; ``prior: ground_truth``, P+GT, feeds the
   true heatmaps instead and skips this phase);
1. ``block1``: UI-block 1 alone;
2. ``block2``: blocks 1 and 2 (block 1 starting from phase 1);
3. ``joint``: every block, block 3 at lr (1e-3), blocks 1-2 and the encoder at
   ``rest_lr_scale`` x lr (1e-4), with Local-D (the central face region, after blocks 1 and 3)
   and Global-D (the whole face, after block 3) when ``weights.adv`` > 0.

Per block k (each against the target at its size): L_mse + f L_f (VGG-19 relu3_2) + h L_h (its
heatmaps against the true ones at their size) + gamma_k L_style (Gram matrices of VGG-19
pool1-3, standing in for the paper's VGG-16) + adv L_adv; gamma = (10, 10, 1). The paper's
weights: f = 0.01, h = 1, adv = 0.01. The CPU default differs where measured
(``ProUIGANWeights``). Ours: ``weights.identity`` adds L_id on the final face in the joint
phase.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.ops import roi_align

from datagen.core.params import ParamGroup
from datagen.face.align import template_pixels
from models.archs.discriminators import PatchDiscriminator
from models.archs.prouigan import PRIORS, LandmarkEstimatorConfig, ProUIGAN, ProUIGANConfig
from models.losses.adversarial import KINDS, discriminator_loss, generator_loss
from models.losses.heatmap import gaussian_heatmaps, heatmap_loss
from models.losses.perceptual import perceptual_loss, style_loss
from models.losses.pixel import mse_loss
from models.train.loop import Phase, Recipe, TrainParams

# the central face region of Local-D: brows, eyes, nose and mouth (iBUG points 17-67)
CENTRAL_POINTS = slice(17, 68)
PHASES = ("estimator", "block1", "block2", "joint")


@dataclass(frozen=True)
class ProUIGANWeights(ParamGroup):
    """``prouigan.weights``: the terms of each block's loss (Eq. 4-15). ``style`` is gamma per
    block (the paper's 10, 10, 1); with fewer blocks the last gammas are used."""

    GROUP = "prouigan.weights"
    mse: float = 1.0
    # L_f, VGG-19 relu3_2 (paper 0.01; on scaled features, ~2 for bicubic x8) and gamma_1..3 of
    # L_style (paper 10, 10, 1): CPU default 0, since VGG-19 on the three blocks' faces is 3.7 s of
    # a 6.6 s joint step here (batch 16, 2 cores); the paper's weights are the GPU recipe
    perceptual: float = 0.0
    heatmap: float = 1.0  # L_h
    style: tuple[float, float, float] = (0.0, 0.0, 0.0)
    adv: float = 0.0  # paper 0.01; CPU default 0: no discriminator (a GPU-length term)
    estimator: float = 1.0  # the landmark estimator's L_h (phase 0)
    # ours, not the paper's: L_id (dlib descriptor MSE, as the baseline's) on the final face in
    # the joint phase; the paper has no identity term
    identity: float = 20.0

    def validate(self) -> None:
        values = (self.mse, self.perceptual, self.heatmap, self.adv, self.estimator,
                  self.identity, *self.style)  # fmt: skip
        if len(self.style) != 3 or min(values) < 0 or not self.mse > 0:
            raise ValueError("prouigan.weights must be >= 0 with mse > 0 and 3 style gammas")


@dataclass(frozen=True)
class ProUIGANParams(ParamGroup):
    """The ``prouigan`` param group."""

    GROUP = "prouigan"
    arch: ProUIGANConfig = field(default_factory=ProUIGANConfig)
    estimator: LandmarkEstimatorConfig = field(default_factory=LandmarkEstimatorConfig)
    weights: ProUIGANWeights = field(default_factory=ProUIGANWeights)
    train: TrainParams = field(default_factory=lambda: TrainParams(steps=250))
    prior: str = "estimator"  # estimator | ground_truth (P+GT: the true heatmaps, an oracle)
    estimator_steps: int = 50  # phase 0 (its own optimiser; frozen afterwards)
    block1_steps: int = 100  # phase 1
    block2_steps: int = 60  # phase 2; the joint phase takes the rest of train.steps
    rest_lr_scale: float = 0.1  # joint phase: blocks 1-2 and the encoder (paper: 1e-4 vs 1e-3)
    adversarial: str = "lsgan"
    disc_width: int = 32  # Local-D and Global-D (PatchGAN, spectral norm)
    heatmap_sigma: float = 1.0  # the target heatmaps' sigma, in pixels of a 16 px face

    def validate(self) -> None:
        if self.prior not in PRIORS:
            raise ValueError(f"prouigan.prior must be one of {PRIORS}, not {self.prior!r}")
        steps = (self.estimator_steps, self.block1_steps, self.block2_steps)
        if min(steps) < 0:
            raise ValueError("prouigan: estimator_steps, block1_steps, block2_steps must be >= 0")
        if self.phase_steps()[3] < 0:  # the joint phase takes what the others leave
            raise ValueError(
                "prouigan: estimator_steps + block1_steps + block2_steps exceed "
                "prouigan.train.steps (the joint phase takes the rest)"
            )
        if self.adversarial not in KINDS:
            raise ValueError(f"prouigan.adversarial must be one of {KINDS}")
        if not 0 < self.rest_lr_scale <= 1 or self.disc_width < 4 or not self.heatmap_sigma > 0:
            raise ValueError(
                "prouigan.rest_lr_scale must be in (0, 1], disc_width >= 4, heatmap_sigma > 0"
            )

    def phase_steps(self) -> tuple[int, int, int, int]:
        """Steps of (estimator, block1, block2, joint); train.steps is their sum. Phases for
        blocks the network does not have (``arch.blocks`` < 3) get no steps."""
        est = self.estimator_steps if self.prior == "estimator" else 0
        b1 = self.block1_steps if self.arch.blocks > 1 else 0
        b2 = self.block2_steps if self.arch.blocks > 2 else 0
        return est, b1, b2, self.train.steps - est - b1 - b2


def arch_of(p: ProUIGANParams) -> dict[str, Any]:
    """What the model file records to rebuild ``ProUIGAN`` (``model_loader``): Pro-UInet's
    arch, the estimator's and the prior."""
    return {**p.arch.outputs(), "estimator": p.estimator.outputs(), "prior": p.prior}


def central_boxes(landmarks: torch.Tensor, image_size: int, side: int) -> torch.Tensor:
    """Local-D's square boxes (roi_align's K x 5: batch index, x0, y0, x1, y1) around the
    central face region (``CENTRAL_POINTS``) of B x 68 x 2 landmarks given in pixels of an
    ``image_size`` face, in pixels of a ``side`` px image; the box is the points' bounding
    square, grown by 10% so the brows and lips are whole."""
    pts = landmarks[:, CENTRAL_POINTS] * (side / image_size)
    lo, hi = pts.amin(1), pts.amax(1)
    centre, half = (lo + hi) / 2, (hi - lo).amax(1, keepdim=True) * 0.55
    index = torch.arange(len(pts), dtype=pts.dtype, device=pts.device)[:, None]
    return torch.cat([index, centre - half, centre + half], 1)


def central_region(
    images: torch.Tensor, landmarks: torch.Tensor, image_size: int, out: int
) -> torch.Tensor:
    """The central face region of each image (B x 3 x side x side), resampled to out x out
    (differentiable: ``roi_align``), at the landmarks (B x 68 x 2, pixels of ``image_size``)."""
    boxes = central_boxes(landmarks, image_size, images.shape[-1])
    return roi_align(images, boxes, (out, out), 1.0, sampling_ratio=2, aligned=True)


def _resized(x: torch.Tensor, size: int) -> torch.Tensor:
    return x if x.shape[-1] == size else F.interpolate(x, size=(size, size), mode="area")


def _params(*modules: nn.Module) -> list[nn.Parameter]:
    return [q for m in modules for q in m.parameters()]


def prouigan_recipe(
    p: ProUIGANParams,
    lr_size: int = 16,
    seed: int = 0,
    mean_landmarks: torch.Tensor | None = None,
) -> Recipe:
    """Generator ``g`` (``ProUIGAN``: estimator + Pro-UInet), ``d_local`` (16 px after block 1)
    ``d_local3`` (64 px after block 3) and ``d_global``, the phases above. Initial weights come
    from ``seed`` alone; VGG-19 is built only when L_f or L_style has a weight.
    ``mean_landmarks`` (68 x 2, pixels of the 8 x ``lr_size`` face): the train faces' mean
    shape, the estimator's template (``estimator.template``; default: the alignment template)."""
    p.validate()
    c, w = p.arch, p.weights
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        g = ProUIGAN(c, p.estimator, lr_size, p.prior)
        discs = {
            "d_local": PatchDiscriminator(3, p.disc_width, layers=2, spectral_norm=True),
            "d_local3": PatchDiscriminator(3, p.disc_width, layers=3, spectral_norm=True),
            "d_global": PatchDiscriminator(3, p.disc_width, layers=3, spectral_norm=True),
        }
    vgg = None
    if w.perceptual or max(w.style):
        from models.archs.vgg_features import VGGFeatures

        vgg = VGGFeatures(("relu3_2", "pool1", "pool2", "pool3"))
    adversarial = w.adv > 0
    identity = None
    if w.identity:
        from models.losses.identity import IdentityLoss

        identity = IdentityLoss()
    n_blocks = c.blocks
    hr_size = 8 * lr_size
    sigma_px = p.heatmap_sigma * hr_size / lr_size  # sigma in HR pixels, scaled per map below
    if p.estimator.template:
        if mean_landmarks is None:
            mean_landmarks = torch.from_numpy(template_pixels(hr_size)).float()
        side = p.estimator.heatmap_size
        drawn = gaussian_heatmaps(
            mean_landmarks[None].float(), hr_size, side, sigma_px * side / hr_size
        )
        g.estimator.set_template(drawn[0])

    def gammas() -> list[float]:
        return list(w.style[3 - n_blocks :])  # fewer blocks: the last gammas

    def true_heatmaps(batch: dict[str, Any], side: int) -> torch.Tensor:
        return gaussian_heatmaps(batch["landmarks"], hr_size, side, sigma_px * side / hr_size)

    def prior(batch: dict[str, Any]) -> torch.Tensor | None:
        """P+GT's true heatmaps; None: the frozen estimator's (``ProUIGAN.frozen_heatmaps``)."""
        return true_heatmaps(batch, lr_size) if p.prior == "ground_truth" else None

    def block_terms(batch: dict[str, Any], out: dict, k: int) -> dict[str, torch.Tensor]:
        image = out["images"][k]
        want = _resized(batch["hr"], image.shape[-1])
        terms = {f"b{k + 1}_mse": mse_loss(image, want)}
        stacks = out["heatmap_stacks"][k]
        maps_true = true_heatmaps(batch, stacks[-1].shape[-1])
        terms[f"b{k + 1}_heatmap"] = sum(heatmap_loss(h, maps_true) for h in stacks) / len(stacks)
        if vgg is not None:
            vgg.to(image.device)
            feats = vgg(image)
            with torch.no_grad():
                target_feats = vgg(want)
            if w.perceptual:
                terms[f"b{k + 1}_perceptual"] = perceptual_loss(feats, target_feats, "relu3_2")
            if gammas()[k]:
                terms[f"b{k + 1}_style"] = style_loss(
                    feats, target_feats, ("pool1", "pool2", "pool3")
                )
        return terms

    def weights_of(terms: dict[str, torch.Tensor]) -> dict[str, float]:
        out = {}
        for name in terms:
            block, term = name.split("_", 1)
            k = int(block[1:]) - 1
            out[name] = {
                "mse": w.mse, "perceptual": w.perceptual, "heatmap": w.heatmap,
                "style": gammas()[k], "adv": w.adv, "gadv": w.adv, "identity": w.identity,
            }[term]  # fmt: skip
        return out

    def estimator_step(batch: dict[str, Any], m: dict) -> Any:
        stacks = m["g"](batch["lr"], part="landmarks")
        maps_true = true_heatmaps(batch, stacks[-1].shape[-1])
        loss = sum(heatmap_loss(h, maps_true) for h in stacks) / len(stacks)
        yield "g", {"estimator": loss}, {"estimator": w.estimator}

    def blocks_step(upto: int):
        def step(batch: dict[str, Any], m: dict) -> Any:
            out = m["g"](batch["lr"], prior(batch), upto, part="blocks")
            terms: dict[str, torch.Tensor] = {}
            for k in range(upto):
                terms.update(block_terms(batch, out, k))
            yield "g", terms, weights_of(terms)

        return step

    def local(image: torch.Tensor, batch: dict[str, Any], size: int) -> torch.Tensor:
        return central_region(image, batch["landmarks"], hr_size, size)

    def joint_step(batch: dict[str, Any], m: dict) -> Any:
        out = m["g"](batch["lr"], prior(batch), part="blocks")
        first, last = out["images"][0], out["images"][-1]
        if adversarial:
            real1 = local(_resized(batch["hr"], first.shape[-1]), batch, 16)
            real3 = local(batch["hr"], batch, 64)
            fake1, fake3 = local(first.detach(), batch, 16), local(last.detach(), batch, 64)
            yield (
                "d",
                {
                    "local1": discriminator_loss(
                        m["d_local"](real1), m["d_local"](fake1), p.adversarial
                    ),
                    "local3": discriminator_loss(
                        m["d_local3"](real3), m["d_local3"](fake3), p.adversarial
                    ),
                    "global": discriminator_loss(
                        m["d_global"](batch["hr"]), m["d_global"](last.detach()), p.adversarial
                    ),
                },
                {"local1": 1.0, "local3": 1.0, "global": 1.0},
            )
        terms: dict[str, torch.Tensor] = {}
        for k in range(n_blocks):
            terms.update(block_terms(batch, out, k))
        if identity is not None:
            terms[f"b{n_blocks}_identity"] = identity.to(last.device)(last, batch["hr"])
        if adversarial:
            b = n_blocks
            if n_blocks > 1:  # after block 1: local only (Eq. 13)
                terms["b1_adv"] = generator_loss(
                    m["d_local"](local(first, batch, 16)), p.adversarial
                )
            terms[f"b{b}_adv"] = generator_loss(
                m["d_local3"](local(last, batch, 64)), p.adversarial
            )
            terms[f"b{b}_gadv"] = generator_loss(m["d_global"](last), p.adversarial)
        yield "g", terms, weights_of(terms)

    net = g.net
    est_steps, b1_steps, b2_steps, joint_steps = p.phase_steps()
    first_blocks = [net.encoder, *net.blocks[: n_blocks - 1]]
    joint_groups = [
        {"params": _params(net.blocks[-1])},
        {"params": _params(*first_blocks), "lr_scale": p.rest_lr_scale},
    ]
    joint_opts: dict[str, list[dict[str, Any]]] = {"g": joint_groups}
    if adversarial:
        joint_opts["d"] = [{"params": _params(*discs.values())}]
    phases = [
        Phase("estimator", est_steps, {"g": [{"params": _params(g.estimator)}]}, estimator_step),
        Phase("block1", b1_steps, {"g": [{"params": _params(net.encoder, net.blocks[0])}]},
              blocks_step(1)),
        Phase("block2", b2_steps, {"g": [{"params": _params(net.encoder, *net.blocks[:2])}]},
              blocks_step(2)),
        Phase("joint", joint_steps, joint_opts, joint_step),
    ]  # fmt: skip
    phases = [ph for ph in phases if ph.steps > 0]
    config = {
        "network": "prouigan",
        "task": "occlusion",
        "arch": arch_of(p),
        "weights": asdict(w),
        "prior": p.prior,
        "phase_steps": dict(zip(PHASES, p.phase_steps(), strict=True)),
        "rest_lr_scale": p.rest_lr_scale,
        "adversarial": p.adversarial,
        "disc_width": p.disc_width,
        "heatmap_sigma": p.heatmap_sigma,
    }
    return Recipe(
        {"g": g, **discs},
        phases,
        "g",
        config,
        # every phase but the joint one leaves some of g out of its backward pass
        find_unused_parameters=True,
    )
