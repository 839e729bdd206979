"""``python -m datagen.tools.masks stats``: hole-ratio histograms of each occlusion mask
generator (and of a mask folder, e.g. NVIDIA's PConv masks) side by side."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from datagen.core import tables
from datagen.face.masks import (
    N_BINS,
    MaskFolder,
    MaskFolderError,
    hole_ratio,
    irregular_mask,
    square_mask,
)

# --------------------------------------------------------------------------- statistics


def histogram(ratios: list[float]) -> np.ndarray:
    """Share of masks per 10% hole-ratio bin: 0-10, ..., 50-60, and 60-100 last."""
    idx = np.minimum((np.asarray(ratios) * 10).astype(int), N_BINS)
    return np.bincount(idx, minlength=N_BINS + 1) / max(1, len(ratios))


def stats(
    n: int, size: int, seed: int, folder: Path | None, threshold: int, square: tuple[int, int]
) -> dict[str, list[float]]:
    """Hole ratios of ``n`` masks per generator (irregular over all bins, square, folder)."""
    out: dict[str, list[float]] = {}
    rng = np.random.default_rng(seed)
    out["irregular (bins uniform)"] = [
        hole_ratio(irregular_mask(rng, size, i % N_BINS)[0]) for i in range(n)
    ]
    out[f"square {square[0]}-{square[1]} px"] = [
        hole_ratio(square_mask(rng, size, *square)[0]) for _ in range(n)
    ]
    if folder is not None:
        mf = MaskFolder(folder, threshold)
        out[f"folder, whole files ({len(mf.files)})"] = [
            mf.ratio_of_file(i, size) for i in range(len(mf.files))
        ]
        out["folder, as sampled (crop+resize)"] = [
            hole_ratio(mf.sample(rng, size)[0]) for _ in range(n)
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m datagen.tools.masks", description="Mask generator tools."
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stats", help="hole-ratio histograms of each generator, side by side")
    s.add_argument("--n", type=int, default=600, help="masks per generator (default 600)")
    s.add_argument("--size", type=int, default=128, help="mask size in pixels (default 128)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--folder",
        type=Path,
        default=None,
        help="a mask folder to compare (e.g. NVIDIA's PConv masks)",
    )
    s.add_argument(
        "--threshold", type=int, default=127, help="folder masks: hole = value above this"
    )
    s.add_argument("--square", type=int, nargs=2, default=(16, 64), metavar=("MIN", "MAX"))
    args = ap.parse_args(argv)
    try:
        ratios = stats(
            args.n, args.size, args.seed, args.folder, args.threshold, tuple(args.square)
        )
    except MaskFolderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    heads = [f"{10 * i}-{10 * i + 10}%" for i in range(N_BINS)] + ["60-100%"]
    body = [
        [name, str(len(r)), f"{100 * np.mean(r):.1f}%", *(f"{100 * v:.1f}%" for v in histogram(r))]
        for name, r in ratios.items()
    ]
    print(tables.format_table(["generator", "n", "mean hole", *heads], body, markdown=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
