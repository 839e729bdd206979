"""VividGAN's training recipe: the pose pairs (``lr`` from a turned face, the frontal ``hr``,
its landmarks and heatmaps), three phases as in the paper:

1. ``coarse``: the coarse-level FH net with L_C's cheap terms, L_mse + L_sym (and the component
   locator's L_h, our addition: it stands in for the author code's pretrained FAN); with
   ``coarse_identity`` also a1 L_id, the paper's whole L_C (off by default: on a CPU-length
   run it lowers the identity distance by learning stripes that fool the descriptor, README);
2. ``touch``: the touching-up U-Nets with L_T = L_mse on the facial component sets: each
   batch's component crops of the (frozen) coarse faces, against the same crops of the clean
   frontal faces, cut where the locator puts the components (as at inference);
3. ``joint``: L_G = L_C + L_T + L_F, L_C = L_mse + L_sym + a1 L_id + p1 L_adv (Coarse-D),
   L_F = L_mse + a2 L_id + g2 L_h + p2 L_adv (Fine-D), with the fine-integration net at lr
   (1e-3) and the rest at ``rest_lr_scale`` x lr (1e-4), Coarse-D and Fine-D trained in turn.

The paper's weights: a1 = a2 = g2 = p1 = p2 = 0.01. The CPU default's differ where measured
(``VividGANWeights``). With ``fine: false`` (VividGAN-dagger) only the coarse phase runs, every
step, with L_mse + L_sym + a1 L_id (no Coarse-D: ``adv`` is not used there); with ``prior: coarse`` (V-TN) or ``ground_truth`` (V+GT) there is no touch phase and no
L_T.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.nn import functional as F

from datagen.core.params import ParamGroup
from models.archs.components import crop_components
from models.archs.discriminators import PatchDiscriminator
from models.archs.vividgan import VividFHNet, VividGANConfig
from models.losses.adversarial import KINDS, discriminator_loss, generator_loss
from models.losses.heatmap import heatmap_loss
from models.losses.pixel import mse_loss
from models.losses.symmetry import symmetry_loss
from models.train.loop import Phase, Recipe, TrainParams


@dataclass(frozen=True)
class VividGANWeights(ParamGroup):
    """``vividgan.weights``: the terms of L_G. ``identity`` is a1 = a2, ``heatmap`` g2, ``adv``
    p1 = p2 (the paper: 0.01 each); ``touch`` weighs L_T in L_G, ``locator`` the component
    locator's L_h (ours). The CPU default differs from the paper in three, each measured
    (README, "VividGAN"): ``sym`` 0.01, not 1 (L_sym is an L1 mean, ~0.12 on our frontal
    targets, which are not mirror-symmetric: at 1 it cost the coarse net 1.8 dB); ``identity``
    20 (our L_id is the MSE of unit-length dlib descriptors, ~3e-3, where 0.01 would vanish;
    the baseline's weight); ``adv`` 0 (no discriminator is trained: CPGAN's measured GAN terms
    cost PSNR and identity in a CPU-length run)."""

    GROUP = "vividgan.weights"
    mse: float = 1.0
    sym: float = 0.01
    identity: float = 20.0
    heatmap: float = 1e-2
    adv: float = 0.0
    touch: float = 1.0
    locator: float = 1.0

    def validate(self) -> None:
        if min(asdict(self).values()) < 0 or not self.mse > 0:
            raise ValueError("vividgan.weights must be >= 0, with mse > 0")


@dataclass(frozen=True)
class VividGANParams(ParamGroup):
    """The ``vividgan`` param group."""

    GROUP = "vividgan"
    arch: VividGANConfig = field(default_factory=VividGANConfig)
    weights: VividGANWeights = field(default_factory=VividGANWeights)
    train: TrainParams = field(default_factory=lambda: TrainParams(steps=400))
    coarse_steps: int = 300  # phase 1 (with fine: false, every step is phase 1)
    touch_steps: int = 20  # phase 2; the joint phase takes the rest of train.steps
    # a1 L_id in phase 1 too (the paper's L_C): off, see the module docstring
    coarse_identity: bool = False
    rest_lr_scale: float = 0.1  # joint phase: the coarse, locator and touching-up nets' lr
    adversarial: str = "lsgan"
    disc_width: int = 32

    def validate(self) -> None:
        if self.coarse_steps < 0 or self.touch_steps < 0:
            raise ValueError("vividgan.coarse_steps and touch_steps must be >= 0")
        touch = self.touch_steps if self.arch.prior == "touching_up" else 0
        if self.arch.fine and self.coarse_steps + touch > self.train.steps:
            raise ValueError("vividgan.coarse_steps + touch_steps must be <= vividgan.train.steps")
        if self.adversarial not in KINDS:
            raise ValueError(f"vividgan.adversarial must be one of {KINDS}")
        if not 0 < self.rest_lr_scale <= 1 or self.disc_width < 4:
            raise ValueError("vividgan.rest_lr_scale must be in (0, 1], disc_width >= 4")


def _params(*modules: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [q for m in modules for q in m.parameters()]


def vividgan_recipe(p: VividGANParams, lr_size: int = 16, seed: int = 0) -> Recipe:
    """Generator ``g`` (Vivid-FHnet), discriminators ``d_coarse`` and ``d_fine``, the phases
    above. Initial weights come from ``seed`` alone; the identity network is built only when
    its weight is non-zero."""
    p.validate()
    c, w = p.arch, asdict(p.weights)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        g = VividFHNet(c, lr_size)
        d_coarse = PatchDiscriminator(3, p.disc_width, layers=3, spectral_norm=True)
        d_fine = PatchDiscriminator(3, p.disc_width, layers=3, spectral_norm=True)
    identity = None
    if p.weights.identity:
        from models.losses.identity import IdentityLoss

        identity = IdentityLoss()
    adversarial = p.weights.adv > 0
    touches = c.fine and c.prior == "touching_up"

    def coarse_terms(batch: dict[str, Any], out: dict) -> dict[str, torch.Tensor]:
        coarse = out["coarse"]
        terms = {"mse": mse_loss(coarse, batch["hr"]), "sym": symmetry_loss(coarse)}
        if "locator" in out:
            terms["locator"] = heatmap_loss(out["locator"], batch["heatmaps"])
        return terms

    def touch_loss(batch: dict[str, Any], out: dict) -> torch.Tensor:
        real = crop_components(batch["hr"], out["boxes"], g.sizes)
        pairs = zip(out["touched"], real, strict=True)
        return sum(mse_loss(a, b) for a, b in pairs) / len(real)

    def identity_terms(batch: dict[str, Any], faces: dict[str, torch.Tensor]) -> dict:
        """L_id of each named face against the target, whose descriptors are computed once."""
        identity.to(batch["hr"].device)
        with torch.no_grad():
            want = identity.descriptors(batch["hr"])
        return {k: F.mse_loss(identity.descriptors(x), want) for k, x in faces.items()}

    def coarse_step(batch: dict[str, Any], m: dict) -> Any:
        out = m["g"](batch["lr"], upto="coarse")
        terms = coarse_terms(batch, out)
        if identity is not None and (p.coarse_identity or not c.fine):  # the dagger: always
            terms.update(identity_terms(batch, {"identity": out["coarse"]}))
        yield "g", terms, w

    def touch_step(batch: dict[str, Any], m: dict) -> Any:
        # the component sets: crops of the frozen coarse faces and of the clean ones
        out = m["g"](batch["lr"], upto="touch")
        yield "g", {"touch": touch_loss(batch, out)}, w

    def joint_step(batch: dict[str, Any], m: dict) -> Any:
        out = m["g"](batch["lr"], batch["hr"], upto="fine")
        coarse, fine = out["coarse"], out["fine"]
        if adversarial:
            yield (
                "d",
                {
                    "adv_coarse": discriminator_loss(
                        m["d_coarse"](batch["hr"]), m["d_coarse"](coarse.detach()), p.adversarial
                    ),
                    "adv_fine": discriminator_loss(
                        m["d_fine"](batch["hr"]), m["d_fine"](fine.detach()), p.adversarial
                    ),
                },
                {"adv_coarse": 1.0, "adv_fine": 1.0},
            )
        terms = {f"c_{k}": v for k, v in coarse_terms(batch, out).items()}
        terms["f_mse"] = mse_loss(fine, batch["hr"])
        if out["heatmaps"]:
            maps = out["heatmaps"]
            terms["f_heatmap"] = sum(heatmap_loss(h, batch["heatmaps"]) for h in maps) / len(maps)
        if touches:
            terms["touch"] = touch_loss(batch, out)
        if identity is not None:
            terms.update(identity_terms(batch, {"c_identity": coarse, "f_identity": fine}))
        if adversarial:
            terms["c_adv"] = generator_loss(m["d_coarse"](coarse), p.adversarial)
            terms["f_adv"] = generator_loss(m["d_fine"](fine), p.adversarial)
        # c_mse -> the mse weight, f_identity -> identity, touch -> touch, ...
        yield "g", terms, {k: w[k.split("_", 1)[1] if k[:2] in ("c_", "f_") else k] for k in terms}

    if not c.fine:
        phases = [
            Phase("coarse", p.train.steps, {"g": [{"params": _params(g.coarse)}]}, coarse_step)
        ]
    else:
        rest = [g.coarse, g.locator] + ([g.touching_up] if touches else [])
        joint_groups = [
            {"params": _params(g.fine)},
            {"params": _params(*rest), "lr_scale": p.rest_lr_scale},
        ]
        joint_opts: dict[str, list[dict[str, Any]]] = {"g": joint_groups}
        if adversarial:
            joint_opts["d"] = [{"params": _params(d_coarse, d_fine)}]
        touch = p.touch_steps if touches else 0
        phases = [
            Phase(
                "coarse",
                p.coarse_steps,
                {"g": [{"params": _params(g.coarse, g.locator)}]},
                coarse_step,
            ),
            Phase("touch", touch, {"g": [{"params": _params(g.touching_up)}]}, touch_step),
            Phase("joint", p.train.steps - p.coarse_steps - touch, joint_opts, joint_step),
        ]
    phases = [ph for ph in phases if ph.steps > 0]
    config = {
        "network": "vividgan",
        "task": "pose",
        "arch": c.outputs(),
        "weights": w,
        "coarse_steps": p.coarse_steps,
        "touch_steps": p.touch_steps,
        "coarse_identity": p.coarse_identity,
        "rest_lr_scale": p.rest_lr_scale,
        "adversarial": p.adversarial,
        "disc_width": p.disc_width,
    }
    return Recipe(
        {"g": g, "d_coarse": d_coarse, "d_fine": d_fine},
        phases,
        "g",
        config,
        # the coarse phase leaves the fine net out of its backward pass
        find_unused_parameters=c.fine,
    )
