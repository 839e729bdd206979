"""Pixel loss: L_mse, the reconstruction term of all three papers (CPGAN, VividGAN,
Pro-UIGAN), and the shape check the paired losses share."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def check_pair(output: torch.Tensor, target: torch.Tensor) -> None:
    """Raise ValueError unless ``output`` and ``target`` have the same shape.

    torch's own losses broadcast mismatched shapes with only a warning (B x 1 against B x 3, a
    64 px output against a 128 px target from the wrong scale), which silently trains towards
    the wrong thing; a paired loss should refuse instead."""
    if output.shape != target.shape:
        raise ValueError(
            f"output and target shapes differ: {tuple(output.shape)} vs {tuple(target.shape)}"
        )


def mse_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all elements (a scalar).

    ``output``, ``target``: B x 3 x H x W images in [-1, 1] (the networks' range), the same
    shape. The value depends on that range: on [0, 1] images it would be 4 times smaller."""
    check_pair(output, target)
    return F.mse_loss(output, target)
