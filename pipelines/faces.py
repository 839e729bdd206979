"""DVC stage ``faces``: photos under ``faces.input`` -> ``data/faces`` (aligned faces + rejects)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from datagen.core.params import group, load_params
from datagen.stages.faces import build_faces
from pipelines.metrics import write_metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="data/faces")
    ap.add_argument("--metrics", default="metrics/faces.json")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    t0 = time.perf_counter()
    summary = build_faces(
        None,  # faces.input
        Path(args.out),
        group(params, "faces"),
        group(params, "shards"),
        int(params.get("seed", 0)),
    )
    write_metrics(args.metrics, summary, t0)

    print(
        f"faces: {summary['inputs']} input files -> {summary['faces']} faces, {summary['rejects']} rejected"
    )
    for reason, n in summary["rejects_by_reason"].items():
        print(f"  rejected, {reason}: {n}")
    ids = summary["identities"]
    per = summary["faces_per_split"]
    print(
        f"  train: {per['train']} faces of {ids['train']} identities; test: {per['test']} faces of {ids['test']}"
    )
    print(f"  {summary['seconds']} s; rejects listed in {args.out}/rejects.parquet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
