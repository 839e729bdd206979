"""DVC stage ``pairs_occlusion``: ``data/faces`` -> ``data/pairs/occlusion`` (Pro-UIGAN pairs)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from datagen.core.params import group, load_params
from datagen.stages.pairs_occlusion import build_pairs_occlusion
from pipelines.metrics import write_metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--faces", default="data/faces")
    ap.add_argument("--out", default="data/pairs/occlusion")
    ap.add_argument("--metrics", default="metrics/pairs_occlusion.json")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    occ = group(params, "occlusion")
    t0 = time.perf_counter()
    summary = build_pairs_occlusion(
        Path(args.faces),
        Path(args.out),
        occ,
        group(params, "degrade"),
        group(params, "shards"),
        int(params.get("seed", 0)),
    )
    write_metrics(args.metrics, summary, t0)
    print(
        f"pairs_occlusion: {summary['faces']} faces -> {summary['pairs']} pairs in {summary['seconds']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
