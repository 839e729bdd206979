"""Adversarial losses L_adv on the discriminator's logits (raw scores, no sigmoid), for the
generator and for the discriminator, in two forms:

- ``"nonsaturating"``: the GAN of Goodfellow et al. with the generator maximising log D(G(z))
  instead of minimising log(1 - D(G(z))), which gives strong gradients early, when D easily
  rejects the fakes. Written with softplus, log(1 + e^x), which is -log(sigmoid(-x)) without
  the overflow and the log(0) of taking the sigmoid first.
- ``"lsgan"``: least squares (Mao et al., 2017) with targets 1 for real and 0 for fake, halved
  as in that paper. It is what the three papers' code uses (an MSE criterion against ones and
  zeros; their generator term is not halved).

Logits may be of any shape (one per image, or a PatchGAN map); every loss is a mean over them.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Kind = Literal["nonsaturating", "lsgan"]
KINDS: tuple[str, ...] = ("nonsaturating", "lsgan")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown adversarial loss kind {kind!r}; choose one of {KINDS}")


def generator_loss(fake_logits: torch.Tensor, kind: Kind = "nonsaturating") -> torch.Tensor:
    """The generator's term, from D's logits on generated images (a scalar).

    nonsaturating: mean softplus(-fake) = -mean log sigmoid(fake); lsgan: mean (fake - 1)^2 / 2.
    """
    _check_kind(kind)
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()
    return 0.5 * ((fake_logits - 1) ** 2).mean()


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: Kind = "nonsaturating"
) -> torch.Tensor:
    """The discriminator's loss from its logits on real and on generated images (a scalar;
    pass the generated images detached, so that this loss does not train the generator).

    nonsaturating: mean softplus(-real) + mean softplus(fake), the binary cross-entropy of
    real as 1 and fake as 0; lsgan: (mean (real - 1)^2 + mean fake^2) / 2. The two means are
    taken separately, so real and fake batches may differ in size.
    """
    _check_kind(kind)
    if kind == "nonsaturating":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    return 0.5 * (((real_logits - 1) ** 2).mean() + (fake_logits**2).mean())
