"""``python -m datagen.export DIR --format folders|hf --out OUT``: write a shard dataset's pairs
as PNG folders (BasicSR's paired layout) or as Parquet that Hugging Face ``datasets`` loads.

Examples::

    python -m datagen.export data/pairs/pose --format folders --out exports/pose
    python -m datagen.export data/pairs/occlusion --format hf --out exports/occlusion-hf \\
        --split test --columns lr,hr,mask --filter "mask_kind = 'square'"

``--filter`` is a polars expression on index columns, in SQL (``abs(yaw) >= 40``) or in Python
(``pl.col("yaw").abs() >= 40``). Re-running an interrupted export finishes it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from datagen.export.encode import PNG_LEVEL
from datagen.export.run import FORMATS, export
from datagen.export.selection import SPLITS, ExportError


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m datagen.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("dir", help="a shard dataset folder (data/pairs/pose, data/faces, ...)")
    ap.add_argument("--format", required=True, choices=list(FORMATS), help="output layout")
    ap.add_argument("--out", required=True, help="output folder (new, empty, or this export's)")
    ap.add_argument("--split", default="all", choices=SPLITS, help="rows to export (default all)")
    ap.add_argument(
        "--columns", default=None, help="image columns, comma-separated (default: every one)"
    )
    ap.add_argument("--filter", default=None, help="polars expression on index columns")
    ap.add_argument(
        "--png-level",
        type=int,
        default=PNG_LEVEL,
        help=f"PNG zlib level 0-9 (default {PNG_LEVEL}; every level is lossless; columns of png-encoded "
        "shards are copied as they are)",
    )
    ap.add_argument("--overwrite", action="store_true", help="replace another export held in --out")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    columns = [c.strip() for c in args.columns.split(",")] if args.columns is not None else None
    try:
        report = export(
            args.dir,
            args.out,
            args.format,
            args.split,
            columns,
            args.filter,
            args.overwrite,
            args.png_level,
            not args.no_progress,
        )
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    splits = ", ".join(f"{s} {n}" for s, n in report.per_split.items())
    if report.written == 0:
        print(f"{report.out}: up to date ({report.rows} rows: {splits})")
    else:
        rate = report.written / max(report.seconds, 1e-9)
        done = f", {report.skipped} already there" if report.skipped else ""
        print(
            f"exported {report.written} rows to {report.out} ({splits}{done}) in "
            f"{report.seconds:.1f} s, {rate:.0f} rows/s"
        )
    return 0
