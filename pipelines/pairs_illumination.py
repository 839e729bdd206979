"""DVC stage ``pairs_illumination``: ``data/faces`` + ``artifacts/rain`` (+ ``data/fits`` for the
physical source) -> ``data/pairs/illumination`` (CPGAN pairs)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from datagen.core.params import group, load_params
from datagen.stages.pairs_illumination import build_pairs_illumination
from pipelines.metrics import write_metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--faces", default="data/faces")
    ap.add_argument("--fits", default="data/fits")
    ap.add_argument("--out", default="data/pairs/illumination")
    ap.add_argument("--metrics", default="metrics/pairs_illumination.json")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    t0 = time.perf_counter()
    summary = build_pairs_illumination(
        Path(args.faces),
        Path(args.out),
        group(params, "illumination"),
        group(params, "degrade"),
        group(params, "shards"),
        int(params.get("seed", 0)),
        relight_params=group(params, "relight"),
        fits_dir=Path(args.fits),
    )
    seconds = time.perf_counter() - t0
    summary["pairs_per_second"] = round(summary["pairs"] / max(seconds, 1e-9), 2)
    write_metrics(args.metrics, summary, t0)
    print(
        f"pairs_illumination ({summary['source']}): {summary['faces']} faces -> "
        f"{summary['pairs']} pairs in "
        f"{summary['seconds']} s ({summary['pairs_per_second']} pairs/s); "
        f"{summary['rejects']} rejected, listed in {args.out}/rejects.parquet"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
