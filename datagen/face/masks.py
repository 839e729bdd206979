"""Occlusion masks (uint8, 255 = hole, 0 = kept), every one drawn from the sample's generator.

- ``irregular_mask``: free-form holes with the hole ratio inside a requested PConv bin (0-10%,
  ..., 50-60%) (Liu et al., "Image Inpainting for Irregular Holes Using Partial Convolutions",
  ECCV 2018). Two styles: ``strokes`` (default), random-walk brush strokes and specks whose
  count, width and length spread are fitted per bin to the shapes of NVIDIA's PConv test masks
  (many thin strokes at low bins, fewer wide ones at high bins); ``blobs``, the earlier shapes
  (thick strokes, arcs, circles, ellipses), matching PConv's bins in size but not in shape;
- ``square_mask``: one square, side uniform in [min, max] px, centred on the face;
- ``MaskFolder``: masks from image files (NVIDIA's PConv masks, say), randomly cropped, flipped
  and resized to the HR size, hole = value above a threshold.

``python -m datagen.tools.masks stats`` prints hole-ratio histograms of each generator (and of
a mask folder) side by side, and the shape statistics per bin against a mask folder;
``python -m datagen.tools.masks fit`` refits ``STROKE_SHAPES`` to a mask folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from datagen.core.images import is_image_path

N_BINS = 6  # PConv's hole-ratio bins: [0, 0.1), [0.1, 0.2), ..., [0.5, 0.6)
HOLE = 255
IRREGULAR_STYLES = ("strokes", "blobs")


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


def blobs_mask(rng: np.random.Generator, size: int, b: int) -> np.ndarray:
    """The ``blobs`` style: a (size, size) uint8 mask whose hole ratio lies in PConv bin ``b``.

    Shapes are added until the ratio passes a target drawn uniformly inside the bin; a shape that
    would overshoot the bin is dropped and the shapes get smaller, so the result always lands
    inside the bin. About two fat holes at every bin: PConv's sizes, not its shapes.
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
        # A target within a pixel of the bin's top cannot be passed without leaving the bin:
        # keep the mask if it is in the bin (any mask this loop finished is unchanged).
        if not lo <= hole_ratio(mask) < hi:
            raise RuntimeError(f"irregular mask did not reach bin {b} (internal error)")
    return mask


@dataclass(frozen=True)
class StrokeShape:
    """How the ``strokes`` style draws one bin (lengths in pixels of a 128 px mask; they scale
    with the mask size).

    ``strokes``: mean number of brush strokes (1 + Poisson(strokes - 1));
    ``width``: median brush thickness (``cv2.line``'s thickness, which paints about one or two
    pixels wider), per stroke log-normal with sigma ``width_spread``; ``length_spread``: log-normal sigma of each stroke's step length,
    so of its final length (all strokes grow in turn until the bin is reached);
    ``specks``: mean number (Poisson) of 1-3 px square specks scattered over the mask.
    """

    strokes: float
    width: float
    width_spread: float
    length_spread: float
    specks: float


# Fitted by `python -m datagen.tools.masks fit --folder ../shared/data/pconv-masks/masks`
# (coordinate descent on the worst ours/folder ratio of the four shape statistics, 200 masks per
# bin) to NVIDIA's PConv test masks resized whole to 128 px; see README "Mask statistics".
STROKE_SHAPES: tuple[StrokeShape, ...] = (
    StrokeShape(strokes=4.204, width=3.358, width_spread=0.540, length_spread=0.491, specks=6.971),
    StrokeShape(strokes=8.958, width=4.524, width_spread=0.400, length_spread=0.981, specks=9.770),
    StrokeShape(strokes=9.283, width=5.660, width_spread=0.351, length_spread=0.529, specks=9.111),
    StrokeShape(strokes=9.127, width=7.277, width_spread=0.331, length_spread=0.377, specks=6.890),
    StrokeShape(strokes=13.195, width=9.006, width_spread=0.308, length_spread=0.928, specks=5.569),
    StrokeShape(strokes=8.633, width=12.896, width_spread=0.393, length_spread=0.192, specks=3.510),
)
TURN = 0.5  # s.d. of a stroke's heading change per step, radians: PConv's strokes bend gently
STEP = 1.5  # a step is this many brush widths long (at least 6 px at 128) before length_spread
SPECK_MAX = 3  # largest speck side, px at 128
_SHIFT = 4  # cv2 drawing at 1/16 px so that a segment's end can be placed finely
_ONE = 1 << _SHIFT


def _segment(canvas: np.ndarray, x0: float, y0: float, x1: float, y1: float, w: int) -> None:
    p0 = (round(x0 * _ONE), round(y0 * _ONE))
    p1 = (round(x1 * _ONE), round(y1 * _ONE))
    cv2.line(canvas, p0, p1, HOLE, w, cv2.LINE_8, _SHIFT)  # thick lines have round ends


def _fold(v: float, top: float) -> tuple[float, bool]:
    """``v`` mirrored back into [0, top] (a step is at most a quarter of the side, so one fold
    suffices) and whether it was."""
    if v < 0:
        return -v, True
    if v > top:
        return 2 * top - v, True
    return v, False


def _land(
    before: np.ndarray,
    n_before: int,
    seg: tuple[float, float, float, float],
    w: int,
    lo: float,
    goal: float,
    hi: float,
) -> np.ndarray:
    """The last segment ``seg`` (x0, y0, x1, y1) took ``before`` (``n_before`` < ``goal`` hole
    pixels) past the bin (>= ``hi``): shorten it by bisection to the point where the count
    passes ``goal``. One of ``before``, the two sides of that point lies in [lo, hi): near the
    point the two sides differ by about one cap's outline (< 1% of the mask) while the bin is
    9-10% wide, and a bare cap (width <= side / 4 + 2) adds under 6%."""
    x0, y0, x1, y1 = seg
    f_lo, f_hi = 0.0, 1.0
    found: list[tuple[np.ndarray, int]] = [(before, n_before)]
    for _ in range(12):  # a step is <= side / 4: 12 halvings end below 1/16 px up to 1024
        f = (f_lo + f_hi) / 2
        trial = before.copy()
        _segment(trial, x0, y0, x0 + f * (x1 - x0), y0 + f * (y1 - y0), w)
        n = cv2.countNonZero(trial)
        found.append((trial, n))
        if n >= goal:
            f_hi = f
        else:
            f_lo = f
    inside = [(abs(n - goal), i) for i, (_, n) in enumerate(found) if lo <= n < hi]
    if not inside:
        raise RuntimeError("stroke mask could not land in its bin (internal error)")
    return found[min(inside)[1]][0]


def strokes_mask(
    rng: np.random.Generator, size: int, b: int, shape: StrokeShape | None = None
) -> np.ndarray:
    """The ``strokes`` style: a (size, size) uint8 mask whose hole ratio lies in PConv bin ``b``.

    PConv-like random-walk brush strokes (after Liu et al., ECCV 2018) and specks, shaped per
    bin by ``shape`` (default ``STROKE_SHAPES[b]``): the specks are scattered, then every stroke
    takes one step in turn (heading jittered, mirrored at the mask's edge) until the hole
    ratio passes a target drawn uniformly inside the bin; the step that passes it is shortened,
    if need be, so that the ratio lands inside the bin. A pure function of ``rng``.
    """
    lo, hi = bin_range(b)
    s = STROKE_SHAPES[b] if shape is None else shape
    area = size * size
    goal, lo_px, hi_px = rng.uniform(lo, hi) * area, lo * area, hi * area
    scale = size / 128
    canvas = np.zeros((size, size), np.uint8)

    speck = max(1, round(SPECK_MAX * scale))
    k = min(int(rng.poisson(s.specks)), int((hi_px - 1) // speck**2))  # specks alone stay < hi
    corners = rng.integers(0, size, (k, 2)).tolist()
    sides = np.maximum(1, np.round(rng.integers(1, SPECK_MAX + 1, k) * scale)).astype(int)
    for (x, y), side in zip(corners, sides.tolist(), strict=True):
        canvas[y : y + side, x : x + side] = HOLE
    count = cv2.countNonZero(canvas)
    if count >= goal:  # only when the goal is at the very bottom of bin 0
        return canvas

    n = 1 + int(rng.poisson(max(s.strokes - 1, 0.0)))
    top = size - 1.0
    xs = rng.uniform(0, top, n).tolist()
    ys = rng.uniform(0, top, n).tolist()
    heads = rng.uniform(0, 2 * math.pi, n).tolist()
    w_max = max(1, size // 4)
    widths = np.exp(math.log(s.width * scale) + s.width_spread * rng.standard_normal(n))
    ws = np.clip(np.round(widths), 1, w_max).astype(int).tolist()
    steps = np.maximum(STEP * np.asarray(ws), 6 * scale) * np.exp(
        s.length_spread * rng.standard_normal(n)
    )
    steps = np.minimum(steps, size / 4).tolist()

    # Counting every step would dominate the cost: keep an upper bound on the hole pixels
    # (a segment adds at most (w + 2) x (length + w + 2)) and count only near the goal.
    bound = count
    for rnd in range(1, 20_000):
        if rnd % 64 == 0:  # a walk stuck covering its own track: widen every brush
            ws = [min(w_max, int(w * 1.25) + 1) for w in ws]
        turns = rng.normal(0.0, TURN, n).tolist()
        for i in range(n):
            h, step, w = heads[i] + turns[i], steps[i], ws[i]
            x1, flip_x = _fold(xs[i] + step * math.cos(h), top)
            y1, flip_y = _fold(ys[i] + step * math.sin(h), top)
            grow = (w + 2) * (step + w + 2)
            if bound + grow >= goal:
                bound = cv2.countNonZero(canvas)
            if bound + grow < goal:
                _segment(canvas, xs[i], ys[i], x1, y1, w)
                bound += grow
            else:  # bound is the exact count here
                before, n_before = canvas.copy(), bound
                _segment(canvas, xs[i], ys[i], x1, y1, w)
                bound = cv2.countNonZero(canvas)
                if bound >= goal:
                    if bound < hi_px:
                        return canvas
                    return _land(
                        before,
                        n_before,
                        (xs[i], ys[i], x1, y1),
                        w,
                        lo_px,
                        goal,
                        hi_px,
                    )
            xs[i], ys[i] = x1, y1
            h = math.pi - h if flip_x else h
            heads[i] = -h if flip_y else h
    raise RuntimeError(f"stroke mask did not reach bin {b} (internal error)")


def irregular_mask(
    rng: np.random.Generator, size: int, b: int, style: str = "strokes"
) -> tuple[np.ndarray, dict[str, Any]]:
    """A free-form (size, size) uint8 mask whose hole ratio lies in PConv bin ``b``, drawn in
    ``style`` (``strokes`` or ``blobs``, see ``strokes_mask`` and ``blobs_mask``)."""
    if style == "strokes":
        mask = strokes_mask(rng, size, b)
    elif style == "blobs":
        mask = blobs_mask(rng, size, b)
    else:
        raise ValueError(f"irregular mask style must be one of {IRREGULAR_STYLES}, not {style!r}")
    meta = {"mask_kind": "irregular", "mask_bin": b, "hole_ratio": hole_ratio(mask)}
    return mask, {**meta, "mask_style": style}


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

    def whole_file(self, i: int, size: int) -> np.ndarray:
        """File ``i`` as a whole, area-resized to (size, size) and thresholded (uint8, 255 =
        hole): for statistics, not the crop that ``sample`` makes."""
        img = cv2.imread(str(self.files[i]), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise MaskFolderError(f"mask file {self.files[i]} is corrupt or unreadable")
        small = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        return np.where(small > self.threshold, HOLE, 0).astype(np.uint8)

    def ratio_of_file(self, i: int, size: int) -> float:
        """Hole ratio of file ``i`` as a whole (resized, thresholded): for statistics."""
        return hole_ratio(self.whole_file(i, size))


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
