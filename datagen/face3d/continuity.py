"""Tears and folds in a re-rendered picture, read off its source map.

A render shows, at each pixel, the photo at some source pixel (``turning.Render.source_map``).
Where the picture is continuous, the source moves steadily from pixel to pixel: by about one
source pixel per pixel, or by several where a surface turned away from the camera is squeezed
(the far cheek, the hair beyond it), which is foreshortening, not a tear. The picture *jumps*
between two neighbours when the step between their sources exceeds ``threshold`` source pixels
and also differs by more than ``threshold`` from the steps just before and after it along the
same row or column (the map breaks, it does not merely run fast). A jump has one of two causes:

- an occlusion edge: the nearer surface hides the farther one (the profile against what lies
  behind it, the nose over the far cheek). A real turned head has these; they are told by the
  depth step between the two pixels' surfaces (``Render.depth``), over ``occlusion_mm``;
- a tear or fold: two parts of the photo that were apart now touch with no depth step between
  them (hair torn along the face's rim, a strip of the old face beside the new silhouette, a
  mirrored patch's seam, an inpainted hole). These are what a renderer must avoid.

``jump_mask`` flags both, ``tear_mask`` the second kind only; a pixel is flagged when it jumps
from any of its four neighbours, and a pixel with no source (NaN: inpainted) always is. Where a
depth is unknown (NaN: a renderer that warps the surroundings flat) no step can be shown, so the
jump counts as a tear. The first and last step of a row or column have one neighbour only and
are never counted: a tear right at the picture's border goes unseen.
"""

from __future__ import annotations

import numpy as np

THRESHOLD_PX = 2.0
OCCLUSION_MM = 3.0


def _breaks(m: np.ndarray, axis: int, threshold: float) -> np.ndarray:
    """Between each pixel and the next along ``axis``: whether the source map jumps (see the
    module docstring). Shape: ``m``'s with one fewer along ``axis``."""
    t2 = threshold * threshold
    d = np.diff(m, axis=axis)  # steps, ... x 2
    big = (d * d).sum(-1) > t2
    e = np.diff(d, axis=axis)  # how each step differs from the next
    bent = (e * e).sum(-1) > t2
    out = np.zeros(big.shape, bool)
    inner = [slice(None)] * 2
    inner[axis] = slice(1, -1)
    # a step jumps when it is long and differs from both its neighbours; the first and last step
    # of a line have only one neighbour, taken as equal to themselves (never a jump)
    out[tuple(inner)] = (
        big[tuple(inner)]
        & np.take(bent, range(0, bent.shape[axis] - 1), axis=axis)
        & np.take(bent, range(1, bent.shape[axis]), axis=axis)
    )
    return out


def _pairs(source_map: np.ndarray, threshold: float, depth: np.ndarray | None, occlusion: float):
    m = np.asarray(source_map, np.float32)
    bad = ~np.isfinite(m).all(-1)
    z = None if depth is None else np.asarray(depth, np.float32)
    out = bad.copy()
    for axis in (0, 1):
        # NaN kept: a step to or next to a pixel without a source is NaN, so never a break
        # (the pixel itself is flagged already)
        step = _breaks(m, axis, threshold)
        if z is not None:
            dz = np.abs(np.diff(z, axis=axis))
            step &= ~(dz > occlusion)  # NaN depth: not a known occlusion
        out[tuple(_lo(axis))] |= step
        out[tuple(_hi(axis))] |= step
    return out


def _lo(axis: int) -> list[slice]:
    s = [slice(None)] * 2
    s[axis] = slice(0, -1)
    return s


def _hi(axis: int) -> list[slice]:
    s = [slice(None)] * 2
    s[axis] = slice(1, None)
    return s


def jump_mask(source_map: np.ndarray, threshold: float = THRESHOLD_PX) -> np.ndarray:
    """H x W bool: pixels of a render where its source map (``source_map``, H x W x 2, NaN where
    there is none) jumps from a 4-neighbour's (module docstring)."""
    return _pairs(source_map, threshold, None, 0.0)


def tear_mask(
    source_map: np.ndarray,
    depth: np.ndarray,
    threshold: float = THRESHOLD_PX,
    occlusion_mm: float = OCCLUSION_MM,
) -> np.ndarray:
    """``jump_mask`` less the jumps across an occlusion edge: a depth step (``depth``, H x W,
    camera-space millimetres, NaN where unknown) over ``occlusion_mm`` between the two pixels."""
    return _pairs(source_map, threshold, depth, occlusion_mm)


def tear_fraction(source_map: np.ndarray, depth: np.ndarray, **kwargs) -> float:
    """Share of the render's pixels that ``tear_mask`` flags."""
    return float(tear_mask(source_map, depth, **kwargs).mean())


def mark(image: np.ndarray, mask: np.ndarray, colour=(255, 0, 255)) -> np.ndarray:
    """``image`` (H x W x 3 uint8) with the flagged pixels painted ``colour``."""
    out = np.array(image, copy=True)
    out[mask] = colour
    return out
