"""``python -m datagen.tools.masks stats``: hole-ratio histograms of each occlusion mask generator
(and of a mask folder, e.g. NVIDIA's PConv masks) side by side, then the shape statistics of
each irregular style per PConv bin against the folder's, with the ratio ours / folder.

``python -m datagen.tools.masks fit``: refits ``STROKE_SHAPES`` (the ``strokes`` style's few
numbers per bin) to a mask folder's shape statistics and prints the table to paste into
``datagen/face/masks.py``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, fields, replace
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from datagen.core import tables
from datagen.face.masks import (
    IRREGULAR_STYLES,
    N_BINS,
    STROKE_SHAPES,
    MaskFolder,
    MaskFolderError,
    StrokeShape,
    hole_ratio,
    irregular_mask,
    square_mask,
    strokes_mask,
)

# --------------------------------------------------------------------------- statistics


class Shape(NamedTuple):
    """Shape statistics of one mask (see ``shape_stats``)."""

    holes: float
    width: float
    perimeter: float
    largest: float


STAT_HEADS = {
    "holes": "holes",
    "width": "width px",
    "perimeter": "perim/sqrt(area)",
    "largest": "largest hole share",
}
GOAL = 0.2  # the goal: every statistic within 20% of the folder's, in every bin


def shape_stats(mask: np.ndarray) -> Shape:
    """Shape statistics of a (H, W) mask (nonzero = hole); all zeros for an empty mask.

    - ``holes``: connected components of the hole, 8-connectivity;
    - ``width``: 2 x the mean, over hole pixels, of ``cv2.distanceTransform`` (``DIST_L2``,
      5x5 mask: Euclidean distance from the pixel to the nearest kept pixel). The image border
      is not an edge (OpenCV's behaviour), so a hole running off the image reads wider. Reads
      2R/3 + 1 for a disk of radius R and w/2 + 1 for a long band w px wide;
    - ``perimeter``: length of the holes' outer contours (``cv2.findContours`` with
      ``RETR_EXTERNAL`` and ``CHAIN_APPROX_NONE``, through the boundary pixels' centres,
      diagonal steps sqrt(2), ``cv2.arcLength``) summed over the holes, over sqrt(hole pixels).
      Kept islands inside a hole do not count; a hole's run along the image edge does. About
      2 sqrt(pi) = 3.5 for a disk, large for many thin holes;
    - ``largest``: the largest hole's share of the hole pixels (1: one hole; 1/n: n equal holes),
      the spread of the hole sizes.
    """
    hole = (np.asarray(mask) > 0).astype(np.uint8)
    area = int(cv2.countNonZero(hole))
    if area == 0:
        return Shape(0.0, 0.0, 0.0, 0.0)
    n, _, comps, _ = cv2.connectedComponentsWithStats(hole, connectivity=8)
    dist = cv2.distanceTransform(hole, cv2.DIST_L2, 5)
    contours, _ = cv2.findContours(hole, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return Shape(
        holes=float(n - 1),
        width=float(2 * dist[hole > 0].mean()),
        perimeter=float(perimeter / math.sqrt(area)),
        largest=float(comps[1:, cv2.CC_STAT_AREA].max() / area),
    )


def mean_shape(masks: Sequence[np.ndarray]) -> Shape:
    """The mean of ``shape_stats`` over ``masks`` (NaNs for none)."""
    if not masks:
        return Shape(*[math.nan] * len(Shape._fields))
    return Shape(*np.mean([shape_stats(m) for m in masks], axis=0).tolist())


def ratio_bin(r: float) -> int | None:
    """The PConv bin of hole ratio ``r`` (0: 0-10%, ..., 5: 50-60%); None above 60%."""
    b = int(r * 10)
    return b if b < N_BINS else None


def bin_label(b: int) -> str:
    return f"{b}: {10 * b}-{10 * b + 10}%"


def by_bin(masks: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
    """``masks`` grouped by the PConv bin of their own hole ratio; over 60% left out."""
    out: list[list[np.ndarray]] = [[] for _ in range(N_BINS)]
    for m in masks:
        b = ratio_bin(hole_ratio(m))
        if b is not None:
            out[b].append(m)
    return out


def histogram(ratios: list[float]) -> np.ndarray:
    """Share of masks per 10% hole-ratio bin: 0-10, ..., 50-60, and 60-100 last."""
    idx = np.minimum((np.asarray(ratios) * 10).astype(int), N_BINS)
    return np.bincount(idx, minlength=N_BINS + 1) / max(1, len(ratios))


@dataclass
class Masks:
    """What ``stats`` draws and reads: ``irregular[style]`` lists n masks, bin i % 6 for the
    i-th; ``folder_whole`` every folder file whole (resized, thresholded)."""

    irregular: dict[str, list[np.ndarray]]
    square: list[np.ndarray]
    folder_whole: list[np.ndarray] | None
    folder_sampled: list[np.ndarray] | None


def draw(
    n: int, size: int, seed: int, folder: Path | None, threshold: int, square: tuple[int, int]
) -> Masks:
    """``n`` masks per generator from ``default_rng(seed)`` (irregular per style, square, the
    folder as the ``folder`` kind samples it) and every folder file whole."""
    rng = np.random.default_rng(seed)
    irregular = {
        style: [irregular_mask(rng, size, i % N_BINS, style)[0] for i in range(n)]
        for style in IRREGULAR_STYLES
    }
    squares = [square_mask(rng, size, *square)[0] for _ in range(n)]
    whole = sampled = None
    if folder is not None:
        mf = MaskFolder(folder, threshold)
        whole = [mf.whole_file(i, size) for i in range(len(mf.files))]
        sampled = [mf.sample(rng, size)[0] for _ in range(n)]
    return Masks(irregular, squares, whole, sampled)


def ratio_rows(masks: Masks, square: tuple[int, int]) -> dict[str, list[float]]:
    """Hole ratios per generator, named as the histogram table shows them."""
    out = {
        f"irregular {style} (bins uniform)": [hole_ratio(m) for m in ms]
        for style, ms in masks.irregular.items()
    }
    out[f"square {square[0]}-{square[1]} px"] = [hole_ratio(m) for m in masks.square]
    if masks.folder_whole is not None and masks.folder_sampled is not None:
        out[f"folder, whole files ({len(masks.folder_whole)})"] = [
            hole_ratio(m) for m in masks.folder_whole
        ]
        out["folder, as sampled (crop+resize)"] = [hole_ratio(m) for m in masks.folder_sampled]
    return out


@dataclass(frozen=True)
class BinRow:
    """One bin's mean shape statistics: ours (``n`` masks) and, when there is a folder, the
    folder's (``n_folder`` whole files whose hole ratio is in the bin)."""

    label: str
    n: int
    ours: Shape
    n_folder: int = 0
    folder: Shape | None = None

    def ratios(self) -> Shape | None:
        if self.folder is None:
            return None
        return Shape(
            *(a / b if b else math.nan for a, b in zip(self.ours, self.folder, strict=True))
        )


def shape_rows(ours: Sequence[np.ndarray], folder: Sequence[np.ndarray] | None) -> list[BinRow]:
    """Per bin (each mask binned by its own hole ratio), then over bins 0-5 together."""
    mine, theirs = by_bin(ours), by_bin(folder) if folder is not None else None
    rows = []
    for b in range(N_BINS):
        f = theirs[b] if theirs is not None else None
        rows.append(
            BinRow(
                bin_label(b),
                len(mine[b]),
                mean_shape(mine[b]),
                len(f) if f is not None else 0,
                mean_shape(f) if f is not None else None,
            )
        )
    every = [m for ms in mine for m in ms]
    f_every = [m for ms in theirs for m in ms] if theirs is not None else None
    rows.append(
        BinRow(
            "all (0-60%)",
            len(every),
            mean_shape(every),
            len(f_every) if f_every is not None else 0,
            mean_shape(f_every) if f_every is not None else None,
        )
    )
    return rows


def within_goal(rows: Sequence[BinRow]) -> bool:
    """Whether every statistic of every bin 0-5 is within ``GOAL`` of the folder's (each ratio
    in [1 - GOAL, 1 + GOAL]; a bin missing on either side, or a ratio that is zero or not
    finite, fails)."""
    for row in rows[:N_BINS]:
        r = row.ratios() if row.n and row.n_folder else None
        if r is None or not all(math.isfinite(v) and abs(v - 1) <= GOAL for v in r):
            return False
    return True


def worst(rows: Sequence[BinRow]) -> tuple[float, str, str] | None:
    """The ratio furthest from 1 (in log) over the bins 0-5: (ratio, bin label, statistic);
    None when no bin has masks on both sides."""
    found = [
        (abs(math.log(v)), v, row.label, name)
        for row in rows[:N_BINS]
        if (r := row.ratios()) is not None
        for name, v in zip(Shape._fields, r, strict=True)
        if v > 0 and math.isfinite(v)
    ]
    if not found:
        return None
    _, v, label, name = max(found)
    return v, label, name


def shape_table(rows: Sequence[BinRow], markdown: bool) -> str:
    with_folder = rows[0].folder is not None
    head = ["bin", "n", "n folder"] if with_folder else ["bin", "n"]
    for name in Shape._fields:
        head += [STAT_HEADS[name], "folder", "ratio"] if with_folder else [STAT_HEADS[name]]
    fmt = {"holes": "{:.1f}", "width": "{:.1f}", "perimeter": "{:.1f}", "largest": "{:.2f}"}
    body = []
    for row in rows:
        cells = [row.label, str(row.n)] + ([str(row.n_folder)] if with_folder else [])
        ratios = row.ratios()
        for i, name in enumerate(Shape._fields):
            cells.append(fmt[name].format(row.ours[i]))
            if row.folder is not None and ratios is not None:
                cells += [fmt[name].format(row.folder[i]), f"{ratios[i]:.2f}"]
        body.append(cells)
    return tables.format_table(head, body, markdown=markdown)


# --------------------------------------------------------------------------- fitting

FIT_STEPS = (0.3, 0.2, 0.3, 0.3, 0.3)  # first log-step per StrokeShape field


def fit_masks(b: int, shape: StrokeShape, n: int, size: int, seed: int) -> list[np.ndarray]:
    # The same generator seeds for every candidate: the fit compares shapes, not luck.
    return [strokes_mask(np.random.default_rng([seed, b, i]), size, b, shape) for i in range(n)]


def misfit(ours: Shape, target: Shape) -> float:
    """The worst |log(ours / target)| over the statistics: 0.18 is 20% off."""
    return max(abs(math.log(max(a, 1e-9) / b)) for a, b in zip(ours, target, strict=True) if b > 0)


def fit_bin(
    b: int,
    target: Shape,
    start: StrokeShape,
    n: int,
    size: int,
    seed: int,
    sweeps: int,
    report: Callable[[str], None] = lambda s: None,
) -> tuple[StrokeShape, Shape]:
    """Coordinate descent on ``misfit`` over ``StrokeShape``'s fields, by multiplicative steps
    that halve after a sweep without a gain; returns the best shape and its statistics."""
    best = start
    got = mean_shape(fit_masks(b, best, n, size, seed))
    loss = misfit(got, target)
    steps = list(FIT_STEPS)
    names = [f.name for f in fields(StrokeShape)]
    for sweep in range(sweeps):
        gained = False
        for k, name in enumerate(names):
            for sign in (1, -1):
                value = getattr(best, name) * math.exp(sign * steps[k])
                cand = replace(best, **{name: value})
                s = mean_shape(fit_masks(b, cand, n, size, seed))
                if (l_cand := misfit(s, target)) < loss:
                    best, got, loss, gained = cand, s, l_cand, True
        if not gained:
            steps = [x / 2 for x in steps]
        report(f"bin {b} sweep {sweep}: worst |log ratio| {loss:.3f}")
    return best, got


def shapes_source(shapes: Sequence[StrokeShape]) -> str:
    """``shapes`` as the Python literal of ``STROKE_SHAPES``."""
    lines = ["STROKE_SHAPES: tuple[StrokeShape, ...] = ("]
    for s in shapes:
        args = ", ".join(f"{f.name}={v:.3f}" for f, v in zip(fields(s), astuple(s), strict=True))
        lines.append(f"    StrokeShape({args}),")
    return "\n".join([*lines, ")"])


# --------------------------------------------------------------------------- commands


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=int, default=128, help="mask size in pixels (default 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threshold", type=int, default=127, help="folder masks: hole = value above this"
    )


def run_stats(args: argparse.Namespace) -> int:
    square = tuple(args.square)
    masks = draw(args.n, args.size, args.seed, args.folder, args.threshold, square)
    ratios = ratio_rows(masks, square)
    heads = [f"{10 * i}-{10 * i + 10}%" for i in range(N_BINS)] + ["60-100%"]
    body = [
        [name, str(len(r)), f"{100 * np.mean(r):.1f}%", *(f"{100 * v:.1f}%" for v in histogram(r))]
        for name, r in ratios.items()
    ]
    print(tables.format_table(["generator", "n", "mean hole", *heads], body, markdown=True))
    against = (
        f" against the folder's {len(masks.folder_whole)} files, whole"
        if masks.folder_whole is not None
        else ""
    )
    for style, ms in masks.irregular.items():
        print()
        print(f"Shape statistics per bin, irregular {style}{against} ({args.size} px):")
        rows = shape_rows(ms, masks.folder_whole)
        print(shape_table(rows, markdown=True))
        if masks.folder_whole is None:
            continue
        if (w := worst(rows)) is None:
            print(f"{style}: no bin holds masks of both ours and the folder")
            continue
        v, label, name = w
        verdict = "yes" if within_goal(rows) else "no"
        print(
            f"{style}: worst ratio {v:.2f} (bin {label}, {STAT_HEADS[name]}); every "
            f"statistic within {100 * GOAL:.0f}% of the folder's in every bin: {verdict}"
        )
    return 0


def run_fit(args: argparse.Namespace) -> int:
    mf = MaskFolder(args.folder, args.threshold)
    groups = by_bin([mf.whole_file(i, args.size) for i in range(len(mf.files))])
    shapes = list(STROKE_SHAPES)
    rows = []
    for b in args.bins:
        if not groups[b]:
            print(f"bin {b}: no folder mask in it, kept as is", file=sys.stderr)
            continue
        target = mean_shape(groups[b])
        shapes[b], got = fit_bin(
            b,
            target,
            shapes[b],
            args.n,
            args.size,
            args.seed,
            args.sweeps,
            report=lambda s: print(s, file=sys.stderr, flush=True),
        )
        rows.append(BinRow(bin_label(b), args.n, got, len(groups[b]), target))
    print(shape_table(rows, markdown=True))
    print()
    print(shapes_source(shapes))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m datagen.tools.masks", description="Mask generator tools."
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser(
        "stats", help="hole-ratio histograms and per-bin shape statistics, side by side"
    )
    s.add_argument("--n", type=int, default=600, help="masks per generator (default 600)")
    add_common(s)
    s.add_argument(
        "--folder",
        type=Path,
        default=None,
        help="a mask folder to compare (e.g. NVIDIA's PConv masks)",
    )
    s.add_argument("--square", type=int, nargs=2, default=(16, 64), metavar=("MIN", "MAX"))
    f = sub.add_parser("fit", help="refit the strokes style's per-bin shapes to a mask folder")
    f.add_argument("--folder", type=Path, required=True, help="the mask folder to match")
    f.add_argument("--n", type=int, default=200, help="masks per bin and candidate (default 200)")
    f.add_argument("--sweeps", type=int, default=10, help="coordinate-descent sweeps per bin")
    f.add_argument("--bins", type=int, nargs="+", default=list(range(N_BINS)))
    add_common(f)
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error("--n must be >= 1")
    if args.cmd == "fit" and not all(0 <= b < N_BINS for b in args.bins):
        ap.error(f"--bins must lie in 0..{N_BINS - 1}")
    try:
        return run_stats(args) if args.cmd == "stats" else run_fit(args)
    except MaskFolderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
