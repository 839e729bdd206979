"""DVC stage ``pairs_pose``: ``data/faces`` + ``data/fits`` -> ``data/pairs/pose`` (VividGAN pairs)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from datagen.core.params import group, load_params
from datagen.stages.pairs_pose import build_pairs_pose
from pipelines.metrics import write_metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--faces", default="data/faces")
    ap.add_argument("--fits", default="data/fits")
    ap.add_argument("--out", default="data/pairs/pose")
    ap.add_argument("--metrics", default="metrics/pairs_pose.json")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    p = group(params, "pose")
    t0 = time.perf_counter()
    summary = build_pairs_pose(
        Path(args.faces),
        Path(args.fits),
        Path(args.out),
        p,
        group(params, "degrade"),
        group(params, "shards"),
        int(params.get("seed", 0)),
    )
    seconds = time.perf_counter() - t0
    summary["faces_per_second"] = round(summary["fitted_faces"] / max(seconds, 1e-9), 2)
    write_metrics(args.metrics, summary, t0)
    print(
        f"pairs_pose: {summary['fitted_faces']} of {summary['faces']} faces -> {summary['pairs']} pairs "
        f"in {summary['seconds']} s ({summary['faces_per_second']} faces/s); "
        f"{summary['rejects']} rejected, listed in {args.out}/rejects.parquet"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
