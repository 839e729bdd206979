"""Inspect and check shard datasets from the command line::

python -m datagen.tools.shards show DIR --n 16 --out grid.png [--landmarks] [--column hr]
python -m datagen.tools.shards verify DIR
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq

from datagen.core.images import tile_grid, write_png
from datagen.core.shards import ShardDataset, image_specs, verify


def landmarks_column(image_column: str) -> str:
    """Naming convention: image ``hr`` goes with ``landmarks``, ``hr_<x>`` with ``landmarks_<x>``."""
    return (
        "landmarks" + image_column[2:]
        if image_column.startswith("hr")
        else f"landmarks_{image_column}"
    )


def contact_sheet(
    root: Path,
    n: int = 16,
    column: str | None = None,
    landmarks: bool = False,
    seed: int = 0,
    scale: int = 1,
) -> np.ndarray:
    """A grid of ``n`` random samples from ``column`` (RGB uint8); landmarks drawn if asked."""
    meta = image_specs(root)
    column = column or next(iter(meta))
    ds = ShardDataset(root, images=[column])
    if len(ds) == 0:
        raise ValueError(f"{root}: dataset is empty")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(ds), size=min(n, len(ds)), replace=False)
    tiles = []
    for i in sorted(picks):
        s = ds[int(i)]
        img = s[column].permute(1, 2, 0).numpy()
        img = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img
        img = np.ascontiguousarray(
            cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        )
        lm_key = landmarks_column(column)
        if landmarks and lm_key in s:
            pts = np.asarray(s[lm_key], dtype=np.float64).reshape(-1, 2)
            for x, y in (pts + 0.5) * scale - 0.5:
                cv2.circle(
                    img,
                    (int(round(x)), int(round(y))),
                    max(1, img.shape[0] // 128),
                    (0, 255, 0),
                    -1,
                )
        tiles.append(img)
    cols = int(np.ceil(np.sqrt(len(tiles))))
    return tile_grid([tiles[i : i + cols] for i in range(0, len(tiles), cols)], border=False)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m datagen.tools.shards", description="Inspect and check shard datasets."
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("show", help="write a contact sheet of random samples")
    s.add_argument("dir", type=Path)
    s.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    s.add_argument(
        "--out", type=Path, default=Path("grid.png"), help="output PNG (default grid.png)"
    )
    s.add_argument("--column", default=None, help="image column (default: the first one)")
    s.add_argument(
        "--landmarks", action="store_true", help="draw the landmarks that go with the column"
    )
    s.add_argument("--seed", type=int, default=0, help="which random samples (default 0)")
    s.add_argument(
        "--scale", type=int, default=1, help="integer upscaling of each tile (default 1)"
    )
    v = sub.add_parser("verify", help="check every shard against the index; non-zero exit if bad")
    v.add_argument("dir", type=Path)
    args = ap.parse_args(argv)

    if args.cmd == "verify":
        problems = verify(args.dir)
        for p in problems:
            print(f"BAD {args.dir}/{p}", file=sys.stderr)
        if problems:
            return 1
        n = pq.read_metadata(args.dir / "index.parquet").num_rows
        print(f"OK {args.dir}: {n} samples, every shard matches its checksum and the index")
        return 0
    try:
        sheet = contact_sheet(args.dir, args.n, args.column, args.landmarks, args.seed, args.scale)
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_png(args.out, sheet)
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
