"""Occlusion masks (uint8, 255 = hole, 0 = kept), every one drawn from the sample's generator.

- ``irregular_mask``: PConv-style free-form holes (thick random strokes, arcs, circles,
  ellipses) with the hole ratio inside a requested PConv bin (0-10%, ..., 50-60%);
- ``square_mask``: one square, side uniform in [min, max] px, centred on the face;
- ``MaskFolder``: masks from image files (NVIDIA's PConv masks, say), randomly cropped, flipped
  and resized to the HR size, hole = value above a threshold.

``python -m datagen.tools.masks stats`` prints hole-ratio histograms of each generator (and of
a mask folder) side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from datagen.core.images import is_image_path

N_BINS = 6  # PConv's hole-ratio bins: [0, 0.1), [0.1, 0.2), ..., [0.5, 0.6)
HOLE = 255


class MaskFolderError(ValueError):
    """A mask folder that cannot be used; the message names the folder or file."""


def hole_ratio(mask: np.ndarray) -> float:
    return float(np.count_nonzero(mask) / mask.size)


def bin_range(b: int) -> tuple[float, float]:
    """Hole-ratio interval of PConv bin ``b``; bin 0 starts at 1% so a mask is never empty."""
    if not 0 <= b < N_BINS:
        raise ValueError(f"irregular mask bin must be 0..{N_BINS - 1}, not {b}")
    return max(0.01, b / 10), (b + 1) / 10


def _shape(rng: np.random.Generator, size: int, extent: float) -> np.ndarray:
    """One random PConv-like shape on an empty canvas; ``extent`` scales it (fraction of size)."""
    canvas = np.zeros((size, size), np.uint8)
    r = max(2.0, extent * size)
    width = max(2, int(rng.uniform(0.15, 0.45) * r))
    kind = rng.choice(["stroke", "stroke", "arc", "circle", "ellipse"])
    x, y = rng.uniform(0, size, 2)
    if kind == "stroke":  # a random walk of thick segments with round joints
        for _ in range(int(rng.integers(2, 6))):
            a = rng.uniform(0, 2 * np.pi)
            step = rng.uniform(0.5, 1.2) * r
            nx = float(np.clip(x + step * np.cos(a), 0, size - 1))
            ny = float(np.clip(y + step * np.sin(a), 0, size - 1))
            cv2.line(canvas, (int(x), int(y)), (int(nx), int(ny)), HOLE, width)
            cv2.circle(canvas, (int(nx), int(ny)), width // 2, HOLE, -1)
            x, y = nx, ny
    elif kind == "arc":
        axes = (int(rng.uniform(0.4, 1.0) * r), int(rng.uniform(0.4, 1.0) * r))
        start = rng.uniform(0, 360)
        cv2.ellipse(
            canvas,
            (int(x), int(y)),
            axes,
            rng.uniform(0, 180),
            start,
            start + rng.uniform(90, 270),
            HOLE,
            width,
        )
    elif kind == "circle":
        cv2.circle(canvas, (int(x), int(y)), max(1, int(rng.uniform(0.2, 0.5) * r)), HOLE, -1)
    else:
        axes = (max(1, int(rng.uniform(0.2, 0.6) * r)), max(1, int(rng.uniform(0.1, 0.4) * r)))
        cv2.ellipse(canvas, (int(x), int(y)), axes, rng.uniform(0, 180), 0, 360, HOLE, -1)
    return canvas


def irregular_mask(
    rng: np.random.Generator, size: int, b: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """A free-form mask whose hole ratio lies in PConv bin ``b``.

    Shapes are added until the ratio passes a target drawn uniformly inside the bin; a shape that
    would overshoot the bin is dropped and the shapes get smaller, so the result always lands
    inside the bin.
    """
    lo, hi = bin_range(b)
    target = rng.uniform(lo, hi)
    mask = np.zeros((size, size), np.uint8)
    extent = 0.15 + 0.5 * np.sqrt(hi)
    for _ in range(2000):
        if hole_ratio(mask) >= target:
            break
        grown = mask | _shape(rng, size, extent)
        if hole_ratio(grown) < hi:
            mask = grown
        else:
            extent = max(0.02, extent * 0.7)
    else:
        raise RuntimeError(f"irregular mask did not reach bin {b} (internal error)")
    return mask, {"mask_kind": "irregular", "mask_bin": b, "hole_ratio": hole_ratio(mask)}


def square_mask(
    rng: np.random.Generator,
    size: int,
    min_side: int,
    max_side: int,
    landmarks: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One square hole, side uniform in [min_side, max_side]; its centre is uniform over the
    landmarks' bounding box (the face), and the square is kept inside the image."""
    if not 1 <= min_side <= max_side <= size:
        raise ValueError(f"square side range [{min_side}, {max_side}] must lie in [1, {size}]")
    side = int(rng.integers(min_side, max_side + 1))
    if landmarks is not None:
        (x0, y0), (x1, y1) = np.min(landmarks, 0), np.max(landmarks, 0)
    else:
        x0 = y0 = 0.0
        x1 = y1 = size - 1.0
    cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
    left = int(np.clip(round(cx - side / 2), 0, size - side))
    top = int(np.clip(round(cy - side / 2), 0, size - side))
    mask = np.zeros((size, size), np.uint8)
    mask[top : top + side, left : left + side] = HOLE
    return mask, {"mask_kind": "square", "mask_bin": -1, "hole_ratio": hole_ratio(mask)}


class MaskFolder:
    """Mask images from a folder (recursively). Raises MaskFolderError naming what is wrong."""

    def __init__(self, root: str | Path, threshold: int = 127):
        self.root = Path(root)
        if not self.root.is_dir():
            raise MaskFolderError(f"mask folder {self.root} does not exist")
        self.files = sorted(p for p in self.root.rglob("*") if p.is_file() and is_image_path(p))
        if not self.files:
            raise MaskFolderError(f"mask folder {self.root} holds no image files")
        for p in self.files:  # header check: cheap, and catches non-images before any work
            try:
                with Image.open(p):
                    pass
            except (UnidentifiedImageError, OSError) as e:
                raise MaskFolderError(f"mask file {p} is not a readable image ({e})") from e
        self.threshold = threshold

    def sample(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, Any]]:
        """A random file, randomly cropped (half to full side), flipped, resized to ``size``."""
        i = int(rng.integers(len(self.files)))
        path = self.files[i]
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is None or img.size == 0:
            raise MaskFolderError(f"mask file {path} is corrupt or unreadable")
        h, w = img.shape
        side = max(1, int(rng.uniform(0.5, 1.0) * min(h, w)))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = img[top : top + side, left : left + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = crop[::-1]
        small = cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA)
        mask = np.where(small > self.threshold, HOLE, 0).astype(np.uint8)
        meta = {"mask_kind": "folder", "mask_bin": -1, "hole_ratio": hole_ratio(mask)}
        return mask, {**meta, "mask_file": path.relative_to(self.root).as_posix()}

    def ratio_of_file(self, i: int, size: int) -> float:
        """Hole ratio of file ``i`` as a whole (resized, thresholded): for statistics."""
        img = cv2.imread(str(self.files[i]), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise MaskFolderError(f"mask file {self.files[i]} is corrupt or unreadable")
        return hole_ratio(
            cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA) > self.threshold
        )


FILLS = ("zeros", "noise", "mean")


def fill_hole(
    image: np.ndarray, mask: np.ndarray, fill: str, rng: np.random.Generator
) -> np.ndarray:
    """The image with its hole filled: ``zeros`` (black), ``noise`` (uniform random pixels) or
    ``mean`` (the mean colour of the kept pixels)."""
    hole = mask > 0
    out = image.copy()
    if fill == "zeros":
        out[hole] = 0
    elif fill == "noise":
        out[hole] = rng.integers(0, 256, (int(hole.sum()), image.shape[2]), dtype=np.uint8)
    elif fill == "mean":
        kept = image[~hole]
        colour = kept.mean(0) if len(kept) else np.full(image.shape[2], 127.5)
        out[hole] = np.round(colour).astype(np.uint8)
    else:
        raise ValueError(f"occlusion.fill must be one of {FILLS}, not {fill!r}")
    return out
