"""DVC stage ``fits``: ``data/faces`` -> ``data/fits`` (one Surrey Face Model fit per face)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from datagen.core.params import group, load_params
from datagen.stages.fits import build_fits
from pipelines.metrics import write_metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--faces", default="data/faces")
    ap.add_argument("--out", default="data/fits")
    ap.add_argument("--metrics", default="metrics/fits.json")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    fits = group(params, "fits")
    t0 = time.perf_counter()
    summary = build_fits(
        Path(args.faces),
        Path(args.out),
        fits,
        group(params, "shards"),
    )
    write_metrics(args.metrics, summary, t0)
    print(
        f"fits: {summary['faces']} faces -> {summary['fits']} fits, {summary['rejects']} rejected "
        f"(mean error {summary['mean_error_px']} px) in {summary['seconds']} s; "
        f"rejects listed in {args.out}/rejects.parquet"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
