"""CPGAN's training recipe (supplement s2): L_G = alpha L_mse + beta L_id + gamma L_h + zeta L_ic
+ psi L_adv, the paper's weights (1, 1e-3, 1e-2, 1, 1e-2), Adam (0.9, 0.999, 1e-8), lr 1e-3 x
0.99 per epoch, a spectral-norm discriminator, the illumination pairs (``lr``, ``hr``,
``guide``, heatmaps). The CPU default's weights differ (``CPGANWeights`` says which and why).

Two phases: ``pretrain`` (the generator alone with L_mse + L_h: cheap, and it gives the
discriminator a generator worth judging) then ``joint`` (D and G in turn, every term with a
non-zero weight). The paper trains jointly from the start; ``pretrain_steps: 0`` is that
recipe. L_ic compares VGG-19 statistics of the output and the guide at ``ic_size`` px (the
paper: 128; the default 64, a quarter of the cost; the statistics are means and deviations,
which change little with the size)"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.nn import functional as F

from datagen.core.params import ParamGroup
from models.archs.cpgan import CPGANConfig, CPGANGenerator
from models.archs.discriminators import PatchDiscriminator
from models.losses.adversarial import KINDS, discriminator_loss, generator_loss
from models.losses.heatmap import heatmap_loss
from models.losses.pixel import mse_loss
from models.train.loop import Phase, Recipe, TrainParams


@dataclass(frozen=True)
class CPGANWeights(ParamGroup):
    """``cpgan.weights``: alpha, beta, gamma, zeta, psi of L_G. The paper's (supplement s2) are
    (1, 1e-3, 1e-2, 1, 1e-2); the CPU default differs in three, each measured (README, "CPGAN"):
    ``identity`` 20, because our L_id is the MSE of unit-length dlib descriptors (~3e-3 on
    these faces, where the paper's 1e-3 would make it vanish; 20 is the baseline's weight), and
    ``ic`` and ``adv`` 0, because in a 100-step joint phase they cost 0.5-2.5 dB and identity
    (the GAN needs the GPU recipe's length). With ``adv`` 0 no discriminator is trained."""

    GROUP = "cpgan.weights"
    mse: float = 1.0
    identity: float = 20.0
    heatmap: float = 1e-2
    ic: float = 0.0
    adv: float = 0.0

    def validate(self) -> None:
        if min(asdict(self).values()) < 0 or not self.mse + self.ic + self.identity > 0:
            raise ValueError("cpgan.weights must be >= 0, with mse, ic or identity > 0")


@dataclass(frozen=True)
class CPGANParams(ParamGroup):
    """The ``cpgan`` param group."""

    GROUP = "cpgan"
    arch: CPGANConfig = field(default_factory=CPGANConfig)
    weights: CPGANWeights = field(default_factory=CPGANWeights)
    train: TrainParams = field(default_factory=lambda: TrainParams(steps=450, lr_decay=0.99))
    pretrain_steps: int = 250  # steps of L_mse + L_h alone before the joint phase (paper: 0)
    adversarial: str = "lsgan"  # lsgan (the author code's MSE criterion) | nonsaturating
    disc_width: int = 32  # PatchGAN width (3 stride-2 layers, spectral norm)
    ic_size: int = 64  # side at which L_ic reads the VGG statistics (paper: 128)
    heatmap_size: int = 64  # side of the 68 target heatmaps (the author code: 64)

    def validate(self) -> None:
        if not 0 <= self.pretrain_steps <= self.train.steps:
            raise ValueError("cpgan.pretrain_steps must be in [0, cpgan.train.steps]")
        if self.adversarial not in KINDS:
            raise ValueError(f"cpgan.adversarial must be one of {KINDS}, not {self.adversarial!r}")
        if self.disc_width < 4 or self.ic_size < 16:
            raise ValueError("cpgan.disc_width must be >= 4 and ic_size >= 16")


def _resized(x: torch.Tensor, size: int) -> torch.Tensor:
    return x if x.shape[-1] == size else F.interpolate(x, size=(size, size), mode="area")


def cpgan_recipe(p: CPGANParams, lr_size: int = 16, seed: int = 0) -> Recipe:
    """Generator ``g`` and discriminator ``d`` with the two phases above. Initial weights come
    from ``seed`` alone. The losses' frozen networks (VGG-19, dlib's ResNet) are built only
    when their weight is non-zero."""
    p.validate()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        g = CPGANGenerator(p.arch, lr_size)
        d = PatchDiscriminator(3, p.disc_width, layers=3, spectral_norm=True)
    w = asdict(p.weights)
    ic = identity = None
    if p.weights.ic:
        from models.losses.perceptual import IlluminationCompensationLoss

        ic = IlluminationCompensationLoss()
    if p.weights.identity:
        from models.losses.identity import IdentityLoss

        identity = IdentityLoss()
    cheap = {k: w[k] for k in ("mse", "heatmap")}

    def reconstruction(batch: dict[str, Any], m: dict) -> tuple[torch.Tensor, dict]:
        sr, maps = m["g"](batch["lr"], batch["guide"], heatmaps=True)
        terms = {
            "mse": mse_loss(sr, batch["hr"]),
            # every stack is supervised (Newell's intermediate supervision)
            "heatmap": sum(heatmap_loss(h, batch["heatmaps"]) for h in maps) / len(maps),
        }
        return sr, terms

    def pretrain(batch: dict[str, Any], m: dict) -> Any:
        yield "g", reconstruction(batch, m)[1], cheap

    adversarial = p.weights.adv > 0

    def joint(batch: dict[str, Any], m: dict) -> Any:
        sr, terms = reconstruction(batch, m)
        if adversarial:
            d_loss = discriminator_loss(m["d"](batch["hr"]), m["d"](sr.detach()), p.adversarial)
            yield "d", {"adv": d_loss}, {"adv": 1.0}
            terms["adv"] = generator_loss(m["d"](sr), p.adversarial)
        if ic is not None:
            ic.to(sr.device)
            terms["ic"] = ic(_resized(sr, p.ic_size), _resized(batch["guide"], p.ic_size))
        if identity is not None:
            terms["identity"] = identity.to(sr.device)(sr, batch["hr"])
        yield "g", terms, w

    g_groups = [{"params": list(g.parameters())}]
    phases = [
        Phase("pretrain", p.pretrain_steps, {"g": g_groups}, pretrain),
        Phase(
            "joint",
            p.train.steps - p.pretrain_steps,
            # with adv 0 no discriminator is trained (the L_G of the other terms alone)
            {"d": [{"params": list(d.parameters())}], "g": g_groups}
            if adversarial
            else {"g": g_groups},
            joint,
        ),
    ]
    phases = [ph for ph in phases if ph.steps > 0]
    config = {
        "network": "cpgan",
        "task": "illumination",
        "arch": p.arch.outputs(),
        "weights": w,
        "pretrain_steps": p.pretrain_steps,
        "adversarial": p.adversarial,
        "disc_width": p.disc_width,
        "ic_size": p.ic_size,
        "heatmap_size": p.heatmap_size,
    }
    return Recipe({"g": g, "d": d}, phases, "g", config)
