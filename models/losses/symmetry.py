"""VividGAN's symmetry loss L_sym, a term of the coarse network's loss L_C."""

from __future__ import annotations

import torch


def symmetry_loss(image: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between ``image`` and its left-right mirror (a scalar).

    ``image``: B x C x H x W, the output face in [-1, 1] (the networks' range). Every pixel
    pair is counted twice (once from each side), which leaves the mean unchanged.
    """
    if image.ndim != 4:
        raise ValueError(f"expected B x C x H x W images, got {tuple(image.shape)}")
    # Assumes a frontal face aligned so that its midline is the image's vertical centre line
    # (as our aligned crops are). On a turned face, or one lit from the side, the mirror is
    # not what the face should look like, and the loss pulls towards a wrong, symmetric face.
    return (image - image.flip(-1)).abs().mean()
