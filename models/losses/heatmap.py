"""Landmark heatmaps and the heatmap loss L_h (CPGAN, VividGAN, Pro-UIGAN): the networks'
hourglass branches predict one Gaussian heatmap per facial landmark, compared by MSE with
heatmaps drawn at the ground-truth landmarks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.losses.pixel import check_pair


def gaussian_heatmaps(
    landmarks: torch.Tensor, image_size: int, heatmap_size: int, sigma: float
) -> torch.Tensor:
    """One Gaussian heatmap per landmark: B x K x 2 -> B x K x heatmap_size x heatmap_size.

    ``landmarks``: (x, y) in pixels of a square image of side ``image_size``, pixel-centre
    convention (integer coordinates are pixel centres, as dlib's and our aligned landmarks).
    A coordinate u maps to the heatmap grid, whose integer coordinates are again its pixel
    centres, by (u + 0.5) * heatmap_size / image_size - 0.5: the image's and the heatmap's
    outer pixel edges coincide. Each map is exp(-d^2 / (2 sigma^2)), d the distance from the
    mapped landmark in heatmap pixels and ``sigma`` in heatmap pixels: peak 1 (reached when
    the landmark falls on a heatmap pixel centre), not normalised to unit sum.

    A landmark with a NaN coordinate (not found) gets an all-zero map, as in VividGAN's code.
    The dtype is the landmarks' if floating, float32 otherwise; the device is theirs.
    """
    if landmarks.ndim != 3 or landmarks.shape[-1] != 2:
        raise ValueError(f"expected B x K x 2 landmarks, got {tuple(landmarks.shape)}")
    if image_size <= 0 or heatmap_size <= 0:
        raise ValueError(f"sizes must be positive: {image_size}, {heatmap_size}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    dtype = landmarks.dtype if landmarks.is_floating_point() else torch.float32
    centres = (landmarks.to(dtype) + 0.5) * (heatmap_size / image_size) - 0.5
    grid = torch.arange(heatmap_size, dtype=dtype, device=landmarks.device)
    # the 2-D Gaussian is the product of a column and a row profile: B x K x S each
    gx = torch.exp(-((grid - centres[..., 0:1]) ** 2) / (2 * sigma**2))
    gy = torch.exp(-((grid - centres[..., 1:2]) ** 2) / (2 * sigma**2))
    maps = gy[..., :, None] * gx[..., None, :]
    # a NaN coordinate makes its map NaN throughout; a missing landmark is an empty map
    return torch.nan_to_num(maps, nan=0.0)


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_h: MSE over all elements between predicted and target heatmaps, B x K x S x S each
    (a scalar). The authors' code divides this further by K = 68; we leave that constant to
    the loss weight."""
    check_pair(pred, target)
    return F.mse_loss(pred, target)


def soft_argmax(heatmaps: torch.Tensor, image_size: int, temperature: float = 0.05) -> torch.Tensor:
    """B x K x S x S heatmaps -> B x K x 2 landmarks (x, y) in pixels of an ``image_size``
    face: the softmax-weighted mean position of each map (sub-pixel, unlike the argmax), each
    map first divided by its peak so that ``temperature`` means the same for every map.
    Not ``components.heatmap_landmarks`` (a peak's local centroid): on heatmaps drawn with
    sigma 2 at 32 px that is up to 1.2 px off at 128 px, this within 0.5 px (prior editing
    compares outputs drawn from these landmarks; the evaluation scores the estimator by them)."""
    b, k, s, _ = heatmaps.shape
    flat = heatmaps.reshape(b, k, s * s)
    flat = flat / flat.amax(-1, keepdim=True).clamp_min(1e-6)
    w = torch.softmax(flat / temperature, -1).reshape(b, k, s, s)
    grid = torch.arange(s, dtype=heatmaps.dtype, device=heatmaps.device)
    xy = torch.stack([(w.sum(2) * grid).sum(-1), (w.sum(3) * grid).sum(-1)], -1)
    return (xy + 0.5) * (image_size / s) - 0.5  # heatmap pixel centres -> image pixels
