"""Facial components of a 128 px face (VividGAN's touching-up subnetwork): where they are, their
crops, and the prior they are stitched into. Pure tensor functions, differentiable in the
images (not in the locations, which are rounded to whole pixels so a crop at unit scale is an
exact copy of the pixels).

Components, in this order: ``left_eye`` (the eye on the image's left, iBUG points 36-41),
``right_eye`` (42-47), ``nose`` (27-35), ``mouth`` (the middle of the corners 48 and 54), each
located at the mean of its points, as the VividGAN author code reduces 68 points to 5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

COMPONENTS = ("left_eye", "right_eye", "nose", "mouth")
# (width, height) in pixels of a 128 px face: the VividGAN author code's crops
DEFAULT_SIZES: dict[str, tuple[int, int]] = {
    "left_eye": (40, 40),
    "right_eye": (40, 40),
    "nose": (40, 32),
    "mouth": (48, 32),
}


def component_centres(landmarks: torch.Tensor) -> torch.Tensor:
    """B x 68 x 2 landmarks (x, y; pixel centres) -> B x 4 x 2 centres in ``COMPONENTS`` order."""
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2):
        raise ValueError(f"expected B x 68 x 2 landmarks, got {tuple(landmarks.shape)}")
    return torch.stack(
        [
            landmarks[:, 36:42].mean(1),
            landmarks[:, 42:48].mean(1),
            landmarks[:, 27:36].mean(1),
            (landmarks[:, 48] + landmarks[:, 54]) / 2,
        ],
        1,
    )


def component_boxes(
    centres: torch.Tensor, sizes: list[tuple[int, int]], image_size: int
) -> torch.Tensor:
    """B x 4 x 2 centres -> B x 4 x 4 whole-pixel boxes (x1, y1, x2, y2; x2 - x1 = width):
    the crop of width w starts at pixel floor(cx) - w // 2 + 1 (the author code's convention),
    moved inside the image where it would leave it. Returned as float, holding integers."""
    sizes_t = torch.tensor(sizes, dtype=centres.dtype, device=centres.device)  # 4 x 2
    start = torch.floor(centres.detach()) - torch.div(sizes_t, 2, rounding_mode="floor") + 1
    start = torch.minimum(start.clamp(min=0), image_size - sizes_t)
    return torch.cat([start, start + sizes_t], -1)


def crop_components(
    image: torch.Tensor, boxes: torch.Tensor, sizes: list[tuple[int, int]]
) -> list[torch.Tensor]:
    """The four component crops of B x C x H x W ``image`` at B x 4 x 4 ``boxes``: a list of
    B x C x h_k x w_k. ``roi_align`` with one sample per output pixel and whole-pixel boxes
    copies the pixels exactly, and passes gradients back to ``image``."""
    b = image.shape[0]
    index = torch.arange(b, dtype=boxes.dtype, device=boxes.device)[:, None]
    out = []
    for k, (w, h) in enumerate(sizes):
        rois = torch.cat([index, boxes[:, k]], 1)  # B x 5: batch index, x1, y1, x2, y2
        out.append(
            roi_align(image, rois, (h, w), spatial_scale=1.0, sampling_ratio=1, aligned=True)
        )
    return out


def stitch_components(
    components: list[torch.Tensor], boxes: torch.Tensor, image_size: int, fill: float = -1.0
) -> torch.Tensor:
    """The facial component appearance prior: each B x C x h_k x w_k component pasted at its
    box on a template of ``fill`` (-1: black, the lowest value of the networks' range, i.e. the
    face masked out), overlapping components merged by max-out (element-wise maximum).

    -> B x C x image_size x image_size."""
    b, c = components[0].shape[:2]
    canvas = components[0].new_full((b, c, image_size, image_size), fill)
    xy = boxes[..., :2].long().tolist()
    for k, comp in enumerate(components):
        h, w = comp.shape[-2:]
        placed = []
        for i in range(b):
            x, y = xy[i][k]
            # F.pad places the component on a template-valued canvas without in-place writes
            placed.append(
                F.pad(comp[i], (x, image_size - x - w, y, image_size - y - h), value=fill)
            )
        canvas = torch.maximum(canvas, torch.stack(placed))
    return canvas


def heatmap_landmarks(heatmaps: torch.Tensor, image_size: int, window: int = 2) -> torch.Tensor:
    """B x K x S x S heatmaps -> B x K x 2 landmarks (x, y) in pixels of an ``image_size``
    image (pixel centres): each map's peak refined to the centroid of its positive values in
    the (2 ``window`` + 1)^2 neighbourhood (sub-pixel), mapped by the inverse of
    ``gaussian_heatmaps``' (u + 0.5) * S / image_size - 0.5. Not differentiable (a location)."""
    b, k, s, _ = heatmaps.shape
    h = heatmaps.detach().float().reshape(b * k, 1, s, s)
    peak = h.flatten(1).argmax(1)
    py, px = torch.div(peak, s, rounding_mode="floor"), peak % s
    offsets = torch.arange(-window, window + 1, device=h.device)
    ys, xs = py[:, None] + offsets, px[:, None] + offsets  # N x (2w+1)
    # positions outside the map weigh nothing (clamping them would count the edge again)
    inside = ((ys >= 0) & (ys < s))[:, :, None] & ((xs >= 0) & (xs < s))[:, None, :]
    ys, xs = ys.clamp(0, s - 1), xs.clamp(0, s - 1)
    n = torch.arange(b * k, device=h.device)[:, None, None]
    patch = h[:, 0][n, ys[:, :, None], xs[:, None, :]].clamp(min=0) * inside  # N x (2w+1)^2
    total = patch.sum((1, 2)).clamp(min=1e-12)
    y = (patch.sum(2) * ys).sum(1) / total
    x = (patch.sum(1) * xs).sum(1) / total
    # an all-zero map has no centroid: keep its peak
    empty = patch.sum((1, 2)) <= 1e-12
    x, y = torch.where(empty, px.float(), x), torch.where(empty, py.float(), y)
    pts = torch.stack([x, y], 1).reshape(b, k, 2)
    return (pts + 0.5) * (image_size / s) - 0.5
