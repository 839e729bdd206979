"""Adaptive instance normalisation (Huang & Belongie, 2017), the core of RaIN: content features
take on a given set of per-channel statistics."""

from __future__ import annotations

import torch

EPS = 1e-5


def channel_stats(feat: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and standard deviation (B x C each) of B x C x H x W
    features; the deviation is the population one, with ``eps`` inside the root."""
    flat = feat.flatten(2)
    mean = flat.mean(2)
    std = (flat.var(2, unbiased=False) + eps).sqrt()
    return mean, std


def style_vector(feat: torch.Tensor) -> torch.Tensor:
    """Means then deviations, B x 2C: the 1024 statistics of relu4_1 that RaIN's VAE models."""
    mean, std = channel_stats(feat)
    return torch.cat([mean, std], 1)


def adain(content: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``content`` (B x C x H x W) normalised per channel, then scaled by ``std`` and shifted by
    ``mean`` (B x C): its statistics become exactly the given ones (up to ``EPS``)."""
    c_mean, c_std = channel_stats(content)
    normalised = (content - c_mean[..., None, None]) / c_std[..., None, None]
    return normalised * std[..., None, None] + mean[..., None, None]
